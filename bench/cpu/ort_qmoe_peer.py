#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ONNX Runtime QMoE peer: the quantised MoE layer that libpimoe's compact weights (issue 15) are compared with.

One MoE layer is one ONNX graph: the router is an fp32 MatMul [T,H]x[H,E] and its logits go into the com.microsoft
QMoE contrib operator of PyPI's onnxruntime, which does softmax, top-k, renormalisation (normalize_routing_weights=1),
the expert FFNs and the weighted combine on the CPU execution provider. Expert weights are random codes and scales made
directly in QMoE's input format (no fp32 layer, no quantiser), symmetric (no zero points, so the code offset is
2^(bits-1)), block-wise along the input dimension (block_size 32 by default, which puts the experts on MLAS's QNBit
kernels, the MatMulNBits GEMMs; --block-size 0 gives one scale per output channel). Activations:
  S-gelu   FC1 -> gelu -> FC2. QMoE's CPU gelu is the tanh form (the library's GELU is the erf form); --check says so.
  SwiGLU   FC1 holds gate and up interleaved per row (swiglu_fusion=1, the only SwiGLU layout the CPU kernel takes),
           activation_alpha=1, activation_beta=0 and no limit, i.e. silu(gate x) * (up x) as Mixtral.
Variants (--variants): int4 with fp32 activations (accuracy_level 0, QMoE's default), int4 with int8 activations
(accuracy_level 4, the int8 dot-product kernels) and int8 weights (which MLAS runs with int8 activations only).

Threads: one global ONNX Runtime intra-op pool of --threads threads (the calling thread is one of them) shared by
all sessions, sequential execution, one inter-op thread. Calls go through IOBinding with preallocated outputs.

Cold weights for decode (T = 1), as the issue asks ("touched bytes well beyond the L3"): the layer is built in C
independent copies, each its own session with its own random weights (C = ceil(--cold-mb / bytes of one copy)), and
the calls cycle through the copies (call i uses copy i mod C) and through a pool of 32 input tokens (input i mod 32),
as bench_moe does with its inputs. A given expert of a given copy is then read again only after, on average, all
copies' weights have been streamed once: with the default 512 MB that is 16x this machine's 32 MB L3. It is the same
thing as C layers of a model, each read once per token. Prefill cases use one copy and two inputs.

Run (venv with PyPI's onnxruntime, onnx, numpy):
  python3 -m venv /work/venv-peers && /work/venv-peers/bin/pip install onnxruntime onnx numpy
  /work/venv-peers/bin/python bench/cpu/ort_qmoe_peer.py --threads 2               # the issue's five cases
  /work/venv-peers/bin/python bench/cpu/ort_qmoe_peer.py --check                   # semantics vs a numpy reference
It prints one RESULT line per case and variant (grep RESULT) with the median tokens/s over interleaved rounds.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

SHAPES = {
    # name: (H, I, E, k, activation, default token counts)
    "S-gelu": (512, 2048, 8, 2, "gelu", [1, 256]),
    "S-swiglu": (512, 2048, 8, 2, "swiglu", [1, 256]),
    "F": (2048, 768, 128, 8, "swiglu", [1, 512]),
    "C": (4096, 14336, 8, 2, "swiglu", [64]),  # Mixtral-8x7B-size layer (docs/design.md, "Standard shapes")
}
DEFAULT_CASES = "S-gelu@1,F@1,S-gelu@256,F@512,C@64"
WEIGHTS = ("router", "fc1", "fc1_scales", "fc2", "fc2_scales")
VARIANTS = {
    # name: (expert_weight_bits, accuracy_level)
    "int4": (4, 0),
    "int4-a8": (4, 4),
    "int8": (8, 0),
}


def _cpu_seconds():
    """(CPU seconds of every process on the machine, of this process) now; see bench_moe.cpp's Noise."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    tck = os.sysconf("SC_CLK_TCK")
    t = os.times()
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tck, t.user + t.system


class Layer:
    """The tensors of one QMoE layer in QMoE's input format: [E, N, K*bits/8] uint8 codes, [E, N, K/block] scales."""

    def __init__(self, H, I, E, act, bits, block, seed):
        rng = np.random.default_rng(seed)
        g = 2 if act == "swiglu" else 1
        self.H, self.I, self.E, self.act, self.bits, self.block = H, I, E, act, bits, block
        self.router = (rng.standard_normal((H, E), dtype=np.float32) / math.sqrt(H)).astype(np.float32)
        self.fc1 = rng.integers(0, 256, (E, g * I, H * bits // 8), dtype=np.uint8)
        self.fc2 = rng.integers(0, 256, (E, H, I * bits // 8), dtype=np.uint8)
        # A code is uniform over 2^bits levels around the offset; scale it to an nn.Linear-like 1/sqrt(K) spread.
        spread = 2.0 ** bits / math.sqrt(12.0)

        def scales(n, kk):
            shape = (E, n, kk // block) if block else (E, n)
            return (rng.uniform(0.5, 1.5, shape) / (spread * math.sqrt(kk))).astype(np.float32)

        self.fc1_scales = scales(g * I, H)
        self.fc2_scales = scales(H, I)

    def nbytes(self):
        return sum(a.nbytes for a in (self.router, self.fc1, self.fc2, self.fc1_scales, self.fc2_scales))

    def dequant(self, codes, scales):
        """fp32 [E, N, K] weights of one projection: (code - 2^(bits-1)) * scale, low nibble first for 4 bits."""
        if self.bits == 4:
            q = np.empty(codes.shape[:2] + (codes.shape[2] * 2,), dtype=np.float32)
            q[..., 0::2] = codes & 0x0F
            q[..., 1::2] = codes >> 4
        else:
            q = codes.astype(np.float32)
        q -= 2 ** (self.bits - 1)
        if self.block:
            return (q.reshape(q.shape[0], q.shape[1], -1, self.block) * scales[..., None]).reshape(q.shape)
        return q * scales[..., None]


def build_model(layer, k, accuracy_level):
    """The ONNX graph x -> MatMul(router) -> QMoE; the weights are attached per session (Session)."""
    import onnx
    from onnx import TensorProto, helper

    inits = []
    for n in WEIGHTS:
        a = getattr(layer, n)
        # Declared as external data whose bytes each session gets from add_external_initializers (Session), so the
        # weights are not serialised into the model (protobuf caps it at 2 GB) yet are constant initializers that
        # QMoE can prepack.
        tp = onnx.TensorProto(name=n, data_type=helper.np_dtype_to_tensor_dtype(a.dtype), dims=list(a.shape))
        tp.data_location = onnx.TensorProto.EXTERNAL
        for key, val in (("location", "in-memory"), ("offset", "0"), ("length", str(a.nbytes))):
            e = tp.external_data.add()
            e.key, e.value = key, val
        inits.append(tp)
    attrs = dict(k=k, activation_type=layer.act, normalize_routing_weights=1, expert_weight_bits=layer.bits,
                 use_sparse_mixer=0)
    if layer.block:
        attrs["block_size"] = layer.block
    if layer.act == "swiglu":
        attrs.update(swiglu_fusion=1, activation_alpha=1.0, activation_beta=0.0)
    if accuracy_level:
        attrs["accuracy_level"] = accuracy_level
    nodes = [
        helper.make_node("MatMul", ["x", "router"], ["logits"], name="router"),
        helper.make_node("QMoE", ["x", "logits", "fc1", "fc1_scales", "", "fc2", "fc2_scales"], ["y"],
                         name="qmoe", domain="com.microsoft", **attrs),
    ]
    graph = helper.make_graph(nodes, "qmoe_layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", layer.H])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", layer.H])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 9
    return model.SerializeToString()


class Session:
    def __init__(self, ort, model_bytes, layer, T):
        so = ort.SessionOptions()
        so.use_per_session_threads = False  # the global pool (set_global_thread_pool_sizes)
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 2  # warnings: shows QMoE's "falling back to dequantize + SGEMM" if it happens
        # The session does not own these: keep them (and the numpy arrays under them) alive.
        self.values = [ort.OrtValue.ortvalue_from_numpy(getattr(layer, n)) for n in WEIGHTS]
        so.add_external_initializers(list(WEIGHTS), self.values)
        self.sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
        self.bind = self.sess.io_binding()
        self.y = ort.OrtValue.ortvalue_from_numpy(np.zeros((T, layer.H), dtype=np.float32))
        self.bind.bind_ortvalue_output("y", self.y)

    def run(self, x):
        self.bind.bind_ortvalue_input("x", x)
        self.sess.run_with_iobinding(self.bind)


def run_case(ort, name, T, variants, args):
    H, I, E, k, act, _ = SHAPES[name]
    pool = 32 if T == 1 else 2
    rng = np.random.default_rng(100)
    xs = [ort.OrtValue.ortvalue_from_numpy(rng.uniform(-1, 1, (T, H)).astype(np.float32)) for _ in range(pool)]
    benches = []
    for vname in variants:
        bits, acc = VARIANTS[vname]
        first = Layer(H, I, E, act, bits, args.block_size, seed=1)
        ncopies = max(1, math.ceil(args.cold_mb * 1e6 / first.nbytes())) if T == 1 else 1
        model = build_model(first, k, acc)
        t0 = time.perf_counter()
        sessions = [Session(ort, model, first if c == 0 else Layer(H, I, E, act, bits, args.block_size, seed=1 + c), T)
                    for c in range(ncopies)]
        state = {"i": 0}

        def call(n, sessions=sessions, state=state):
            t = time.perf_counter()
            i = state["i"]
            for j in range(i, i + n):
                sessions[j % len(sessions)].run(xs[j % pool])
            state["i"] = i + n
            return (time.perf_counter() - t) / n

        call(max(2, ncopies))  # warm-up: every copy once (first-run allocations)
        t1 = call(max(1, min(ncopies, 16)))
        n = max(1, min(100000, int(args.min_time / max(t1, 1e-9)) + 1))
        benches.append(dict(variant=vname, bits=bits, acc=acc, copies=ncopies, layer_bytes=first.nbytes(),
                            setup_s=time.perf_counter() - t0, call=call, n=n, times=[]))
    (b0, s0), w0 = _cpu_seconds(), time.perf_counter()
    for _ in range(args.reps):
        for b in benches:
            b["times"].append(b["call"](b["n"]))
    (b1, s1), w1 = _cpu_seconds(), time.perf_counter()
    others = max(0.0, ((b1 - b0) - (s1 - s0)) / (w1 - w0))
    g = 3 if act == "swiglu" else 2
    flops = 2.0 * T * k * H * I * g + 2.0 * T * H * E
    out = []
    for b in benches:
        med = statistics.median(b["times"])
        out.append({"peer": "ort-qmoe", "shape": name, "tokens": T, "threads": args.threads, "variant": b["variant"],
                    "bits": b["bits"], "accuracy_level": b["acc"], "block_size": args.block_size,
                    "copies": b["copies"], "layer_mb": b["layer_bytes"] / 1e6, "calls_per_round": b["n"],
                    "ms": [t * 1e3 for t in b["times"]], "median_ms": med * 1e3, "tokens_per_s": T / med,
                    "gflops": flops / med / 1e9, "others_cores": others, "setup_s": b["setup_s"]})
    return out


def check(ort):
    """Small layers through QMoE against a numpy reference of the semantics the docstring states."""
    from math import erf
    ok = True
    T, H, I, E, k = 5, 64, 96, 4, 2
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (T, H)).astype(np.float32)
    for act in ("gelu", "swiglu"):
        for vname, (bits, acc) in VARIANTS.items():
            for block in (32, 0):
                layer = Layer(H, I, E, act, bits, block, seed=3)
                sess = Session(ort, build_model(layer, k, acc), layer, T)
                xv = ort.OrtValue.ortvalue_from_numpy(x)
                sess.run(xv)
                y = sess.y.numpy()
                logits = x @ layer.router
                w1, w2 = layer.dequant(layer.fc1, layer.fc1_scales), layer.dequant(layer.fc2, layer.fc2_scales)
                refs = {}
                for form in (("erf", "tanh") if act == "gelu" else ("gate-even", "up-even")):
                    ref = np.zeros_like(x)
                    for t in range(T):
                        top = np.argsort(-logits[t])[:k]
                        p = np.exp(logits[t][top] - logits[t][top].max())
                        p /= p.sum()  # softmax over all then renormalise over top-k == softmax over the top-k
                        for e, pe in zip(top, p):
                            h = w1[e] @ x[t]
                            if act == "gelu":
                                if form == "erf":
                                    h = 0.5 * h * (1 + np.vectorize(erf)(h / math.sqrt(2)))
                                else:
                                    h = 0.5 * h * (1 + np.tanh(0.7978845608 * (h + 0.044715 * h ** 3)))
                            else:
                                gte, up = (h[0::2], h[1::2]) if form == "gate-even" else (h[1::2], h[0::2])
                                h = gte / (1 + np.exp(-gte)) * up
                            ref[t] += pe * (w2[e] @ h)
                    refs[form] = float(np.abs(y - ref).max() / max(1e-12, np.abs(ref).max()))
                best = min(refs, key=refs.get)
                tol = 2e-2 if (acc == 4 or bits == 8) else 1e-4  # int8 activations are quantised per block
                good = refs[best] < tol
                ok &= good
                print(f"check {act:6s} {vname:7s} block={block:2d}: max rel err " +
                      ", ".join(f"{f} {e:.2e}" for f, e in refs.items()) + f" -> {best}{'' if good else '  FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=5, help="timed rounds, variants interleaved; the median is reported")
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per timed batch")
    ap.add_argument("--cases", default=DEFAULT_CASES, help=f"SHAPE@T list (shapes: {', '.join(SHAPES)})")
    ap.add_argument("--variants", default="int4,int4-a8,int8", help=f"from {', '.join(VARIANTS)}")
    ap.add_argument("--block-size", type=int, default=32, help="quantisation block along K; 0 = one scale per row")
    ap.add_argument("--cold-mb", type=float, default=512, help="decode: weights of all copies together (MB)")
    ap.add_argument("--json", default="")
    ap.add_argument("--check", action="store_true", help="compare small layers with a numpy reference and exit")
    args = ap.parse_args()

    import onnxruntime as ort
    from onnxruntime.capi import _pybind_state

    _pybind_state.set_global_thread_pool_sizes(args.threads, 1)  # before the first session creates the env
    ort.set_default_logger_severity(2)
    print(f"onnxruntime {ort.__version__} ({ort.__file__}) | numpy {np.__version__} | python {sys.version.split()[0]}")
    print(f"global intra-op pool {args.threads} threads, sequential | block_size {args.block_size} | "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}")
    if args.check:
        sys.exit(0 if check(ort) else 1)
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v}")
    results = []
    for case in args.cases.split(","):
        name, _, t = case.partition("@")
        if name not in SHAPES:
            ap.error(f"unknown shape {name}")
        for T in ([int(t)] if t else SHAPES[name][5]):
            for r in run_case(ort, name, T, variants, args):
                results.append(r)
                print(f"{name:8s} T={T:4d} {r['variant']:8s} {r['median_ms']:10.3f} ms {r['tokens_per_s']:11.1f} tokens/s "
                      f"{r['gflops']:7.1f} GFLOP/s  (copies {r['copies']} x {r['layer_mb']:.1f} MB, rounds "
                      f"{min(r['ms']):.3f}..{max(r['ms']):.3f} ms; others {r['others_cores']:.2f} cores)")
                print(f"RESULT peer=ort-qmoe ort={ort.__version__} shape={name} T={T} threads={args.threads} "
                      f"variant={r['variant']} bits={r['bits']} accuracy_level={r['accuracy_level']} "
                      f"block={args.block_size} copies={r['copies']} ms={r['median_ms']:.4f} "
                      f"tokens_per_s={r['tokens_per_s']:.2f} gflops={r['gflops']:.3f} others={r['others_cores']:.3f}",
                      flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"onnxruntime": ort.__version__, "cases": results}, f, indent=1)


if __name__ == "__main__":
    main()
