#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""PyTorch eager MoE block: the peer that bench_moe's libpimoe numbers are compared with.

The block is written the way Hugging Face models run it on the CPU: router nn.Linear, softmax in fp32, top-k,
renormalise the k weights (Mixtral; the library's default PIMOE_OPT_RENORMALIZE=1), then a Python loop over the experts
that received tokens, each gathering its rows by index, running its FFN and adding the weighted result with index_add_.
SwiGLU experts mirror MixtralBlockSparseTop2MLP (w2(silu(w1 x) * w3 x), no biases) and the loop mirrors
MixtralSparseMoeBlock in transformers >= 4.46 (only experts that were hit are visited); the GELU expert is the same
block with down(gelu(up x)) (GELU erf form, no biases), as the S-gelu shape of libpimoe.

Run with Debian's torch:  /usr/bin/python3 bench/cpu/torch_peer.py --threads 2 --shape S-gelu --tokens 256
It prints one RESULT line per case (grep RESULT) with the median tokens/s over interleaved rounds.
"""
import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPES = {
    # name: (H, I, E, k, activation, default token counts)
    "S-gelu": (512, 2048, 8, 2, "gelu", [1, 256]),
    "S-swiglu": (512, 2048, 8, 2, "swiglu", [1, 256]),
    "F": (2048, 768, 128, 8, "swiglu", [1, 512]),
}


class SwiGLUExpert(nn.Module):  # MixtralBlockSparseTop2MLP
    def __init__(self, hidden, inter):
        super().__init__()
        self.w1 = nn.Linear(hidden, inter, bias=False)  # gate
        self.w2 = nn.Linear(inter, hidden, bias=False)  # down
        self.w3 = nn.Linear(hidden, inter, bias=False)  # up
        self.act_fn = nn.SiLU()

    def forward(self, x):
        return self.w2(self.act_fn(self.w1(x)) * self.w3(x))


class GeluExpert(nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.up = nn.Linear(hidden, inter, bias=False)
        self.down = nn.Linear(inter, hidden, bias=False)
        self.act_fn = nn.GELU()  # approximate='none' (erf), as PIMOE_ACT_GELU

    def forward(self, x):
        return self.down(self.act_fn(self.up(x)))


class SparseMoeBlock(nn.Module):  # MixtralSparseMoeBlock.forward, transformers >= 4.46
    def __init__(self, hidden, inter, num_experts, top_k, act):
        super().__init__()
        self.hidden_dim, self.num_experts, self.top_k = hidden, num_experts, top_k
        self.gate = nn.Linear(hidden, num_experts, bias=False)
        cls = SwiGLUExpert if act == "swiglu" else GeluExpert
        self.experts = nn.ModuleList([cls(hidden, inter) for _ in range(num_experts)])

    def forward(self, hidden_states):
        batch_size, sequence_length, hidden_dim = hidden_states.shape
        hidden_states = hidden_states.view(-1, hidden_dim)
        router_logits = self.gate(hidden_states)
        routing_weights = F.softmax(router_logits, dim=1, dtype=torch.float)
        routing_weights, selected_experts = torch.topk(routing_weights, self.top_k, dim=-1)
        routing_weights /= routing_weights.sum(dim=-1, keepdim=True)
        routing_weights = routing_weights.to(hidden_states.dtype)
        final_hidden_states = torch.zeros((batch_size * sequence_length, hidden_dim), dtype=hidden_states.dtype,
                                          device=hidden_states.device)
        expert_mask = F.one_hot(selected_experts, num_classes=self.num_experts).permute(2, 1, 0)
        expert_hit = torch.greater(expert_mask.sum(dim=(-1, -2)), 0).nonzero()
        for expert_idx in expert_hit:
            expert_layer = self.experts[expert_idx]
            idx, top_x = torch.where(expert_mask[expert_idx].squeeze(0))
            current_state = hidden_states[None, top_x].reshape(-1, hidden_dim)
            current_hidden_states = expert_layer(current_state) * routing_weights[top_x, idx, None]
            final_hidden_states.index_add_(0, top_x, current_hidden_states.to(hidden_states.dtype))
        final_hidden_states = final_hidden_states.reshape(batch_size, sequence_length, hidden_dim)
        return final_hidden_states, router_logits


def openblas_core():
    """The OpenBLAS core torch's BLAS calls run on, if the BLAS torch loaded is OpenBLAS (Debian: libblas.so.3 ->
    openblas-pthread). Only a library already mapped into this process is asked, so a different OpenBLAS found on the
    library path is never reported in its place."""
    torch.mm(torch.ones(8, 8), torch.ones(8, 8))  # make sure the BLAS is loaded
    paths = []
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            if ("openblas" in p or "libblas" in p) and p not in paths:
                paths.append(p)
    for p in paths:
        try:
            lib = ctypes.CDLL(p)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            return lib.openblas_get_corename().decode(), lib.openblas_get_config().decode()
        except (OSError, AttributeError):
            continue
    return "n/a", "torch's BLAS is not OpenBLAS"


def blas_summary():
    for line in torch.__config__.show().splitlines():
        if "BLAS_INFO" in line:
            fields = [f.strip() for f in line.split(",") if "BLAS" in f or "CPU capability" in f or "MKLDNN" in f]
            return ", ".join(f.replace("Build settings: ", "") for f in fields)
    return "unknown"


def _cpu_seconds():
    """(CPU seconds of every process on the machine, of this process) now; see bench_moe.cpp's Noise."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    tck = os.sysconf("SC_CLK_TCK")
    t = os.times()
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tck, t.user + t.system


def run_case(name, tokens, threads, rounds, min_time, seed=0):
    H, I, E, k, act, _ = SHAPES[name]
    torch.manual_seed(seed)
    block = SparseMoeBlock(H, I, E, k, act).eval()
    pool = 32 if tokens == 1 else 2  # cycle inputs so decode calls do not find their experts hot in cache
    xs = [torch.empty(1, tokens, H).uniform_(-1.0, 1.0) for _ in range(pool)]
    with torch.inference_mode():
        def batch(n):
            t0 = time.perf_counter()
            for i in range(n):
                block(xs[i % pool])
            return (time.perf_counter() - t0) / n

        batch(2)  # warm-up
        t1 = batch(1)
        n = max(1, min(100000, int(min_time / max(t1, 1e-9)) + 1))
        (b0, s0), w0 = _cpu_seconds(), time.perf_counter()
        times = [batch(n) for _ in range(rounds)]
        (b1, s1), w1 = _cpu_seconds(), time.perf_counter()
    others = max(0.0, ((b1 - b0) - (s1 - s0)) / (w1 - w0))
    med = statistics.median(times)
    g = 3 if act == "swiglu" else 2
    flops = 2.0 * tokens * k * H * I * g + 2.0 * tokens * H * E
    return {"shape": name, "tokens": tokens, "threads": threads, "calls_per_round": n,
            "ms": [t * 1e3 for t in times], "median_ms": med * 1e3, "tokens_per_s": tokens / med,
            "gflops": flops / med / 1e9, "others_cores": others}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=7, help="timed rounds; the median is reported")
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per timed batch")
    ap.add_argument("--shape", default="all", choices=["all"] + list(SHAPES))
    ap.add_argument("--tokens", default="", help="comma-separated token counts (default: the shape's)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    core, config = openblas_core()
    print(f"torch {torch.__version__} ({torch.__file__}) | python {sys.version.split()[0]} ({sys.executable})")
    print(f"torch BLAS: {blas_summary()} | openblas core: {core} | {config}")
    env = " ".join(f"{v}={os.environ.get(v, '(unset)')}" for v in
                   ("OPENBLAS_CORETYPE", "OMP_WAIT_POLICY", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"))
    print(f"torch threads {torch.get_num_threads()} | {env}")
    results = []
    shapes = list(SHAPES) if args.shape == "all" else [args.shape]
    for name in shapes:
        toks = [int(t) for t in args.tokens.split(",")] if args.tokens else SHAPES[name][5]
        for t in toks:
            r = run_case(name, t, args.threads, args.reps, args.min_time)
            r["torch"] = torch.__version__
            r["openblas_core"] = core
            results.append(r)
            print(f"{name:9s} T={t:5d}  {r['median_ms']:10.3f} ms  {r['tokens_per_s']:11.1f} tokens/s  "
                  f"{r['gflops']:7.1f} GFLOP/s  (rounds min..max {min(r['ms']):.3f}..{max(r['ms']):.3f} ms; others {r['others_cores']:.2f} cores)")
            print(f"RESULT peer=torch-eager torch={torch.__version__} shape={name} T={t} threads={args.threads} "
                  f"core={core} omp_wait={os.environ.get('OMP_WAIT_POLICY', 'default')} ms={r['median_ms']:.4f} tokens_per_s={r['tokens_per_s']:.2f} gflops={r['gflops']:.3f} others={r['others_cores']:.3f}",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "blas": blas_summary(), "openblas_core": core,
                       "cases": results}, f, indent=1)


if __name__ == "__main__":
    main()
