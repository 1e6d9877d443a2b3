#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The PyTorch peers of bench_cuda, on the same GPU in the same run.

  eager       the loop-over-experts MoE block that Hugging Face models run (MixtralSparseMoeBlock, transformers >= 4.46:
              router Linear, softmax in fp32, top-k, renormalise, a Python loop over the experts that got tokens, each
              gathering its rows, running w2(silu(w1 x) * w3 x) and adding the weighted rows with index_add_);
  grouped_mm  the same block with the experts as two torch._grouped_mm calls over the rows sorted by expert (gate+up
              fused into one [E, H, 2I] weight, then down), SiLU-and-multiply between them, weighted index_add_.
Shape D routes like DeepSeek-V3 (sigmoid scores, selection bias, 8 groups with top-2-sum group scores, top-4 groups,
renormalised weights times 2.5) and adds one always-on shared SwiGLU expert of width I.

Weights in the given dtype (bf16 default), router in fp32; inputs uniform in [-1, 1], rotated through several
different inputs for decode sizes. Time per call: CUDA events around each call, median over the calls of at least
--min-time seconds. Prints a table and one RESULT line per case; --json writes them; --lib-json FILE (bench_cuda's
--json output) adds the summary table of libpimoe against the peers and the references.
"""
import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F

SHAPES = {"S": (512, 2048, 8, 2, False), "F": (2048, 768, 128, 8, False), "C": (4096, 14336, 8, 2, False),
          "D": (7168, 2048, 256, 8, True)}


class Block:
    def __init__(self, H, I, E, k, deepseek, dtype):
        dev = "cuda"
        g = torch.Generator(device=dev)
        g.manual_seed(0)

        def uniform(shape, fan_in, dt):
            t = torch.empty(shape, device=dev, dtype=dt)
            t.uniform_(-1.0 / fan_in ** 0.5, 1.0 / fan_in ** 0.5, generator=g)
            return t

        self.H, self.I, self.E, self.k, self.deepseek = H, I, E, k, deepseek
        self.router = uniform((E, H), H, torch.float32)
        self.w13 = uniform((E, 2 * I, H), H, dtype)  # gate rows [0, I), up rows [I, 2I)
        self.w2 = uniform((E, H, I), I, dtype)
        if deepseek:
            self.bias = uniform((E,), H, torch.float32)
            self.shared13 = uniform((2 * I, H), H, dtype)
            self.shared2 = uniform((H, I), I, dtype)

    def route(self, x):
        logits = x.float() @ self.router.t()
        if not self.deepseek:
            p = F.softmax(logits, dim=-1)
            w, ids = torch.topk(p, self.k, dim=-1)
            return w / w.sum(dim=-1, keepdim=True), ids
        s = torch.sigmoid(logits)
        sel = s + self.bias
        T = x.shape[0]
        gs = sel.view(T, 8, self.E // 8).topk(2, dim=-1).values.sum(-1)
        keep = torch.zeros_like(gs, dtype=torch.bool).scatter_(1, gs.topk(4, dim=-1).indices, True)
        sel = sel.masked_fill(~keep.repeat_interleave(self.E // 8, dim=1), float("-inf"))
        ids = sel.topk(self.k, dim=-1).indices
        w = s.gather(1, ids)
        return w / (w.sum(dim=-1, keepdim=True) + 1e-20) * 2.5, ids

    def shared(self, x):
        gu = x @ self.shared13.t()
        return (F.silu(gu[:, :self.I]) * gu[:, self.I:]) @ self.shared2.t()

    def eager(self, x):
        w, ids = self.route(x)
        w = w.to(x.dtype)
        y = torch.zeros_like(x)
        mask = F.one_hot(ids, num_classes=self.E).permute(2, 1, 0)
        hit = torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()
        for e in hit:
            e = int(e)
            idx, top = torch.where(mask[e])
            cur = x[top]
            gu = cur @ self.w13[e].t()
            o = (F.silu(gu[:, :self.I]) * gu[:, self.I:]) @ self.w2[e].t()
            y.index_add_(0, top, o * w[top, idx, None])
        if self.deepseek:
            y = y + self.shared(x)
        return y

    def grouped(self, x):
        w, ids = self.route(x)
        flat = ids.reshape(-1)
        order = torch.argsort(flat, stable=True)
        offs = torch.cumsum(torch.bincount(flat, minlength=self.E), 0).to(torch.int32)
        tok = order // self.k
        xs = x[tok]
        gu = torch._grouped_mm(xs, self.w13.transpose(-2, -1), offs=offs)
        h = F.silu(gu[:, :self.I]) * gu[:, self.I:]
        o = torch._grouped_mm(h, self.w2.transpose(-2, -1), offs=offs)
        o = o * w.reshape(-1)[order, None].to(o.dtype)
        y = torch.zeros_like(x)
        y.index_add_(0, tok, o)
        if self.deepseek:
            y = y + self.shared(x)
        return y


def time_calls(fn, xs, min_time):
    for i in range(3):
        fn(xs[i % len(xs)])
    torch.cuda.synchronize()
    times, start, n = [], time.perf_counter(), 0
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    while n < 10 or (time.perf_counter() - start < min_time and n < 3000):
        e0.record()
        fn(xs[n % len(xs)])
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1) * 1e-3)
        n += 1
    times.sort()
    return times[len(times) // 2], n


def summary(lib, peers):
    copy = lib["copy_gbps"]
    print(f"\nSummary ({lib['dtype']} weights; copy bandwidth {copy:.0f} GB/s measured in bench_cuda's run):")
    print("| shape | T | libpimoe us | TFLOP/s | weight GB/s | wt BW / copy | time / BW floor | vs cuBLAS | "
          "eager us | grouped_mm us | grouped_mm TFLOP/s | x eager | x grouped_mm |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    by = {(p["shape"], p["tokens"], p["peer"]): p for p in peers}
    for c in lib["cases"]:
        s, t = c["shape"], c["tokens"]
        e, g = by.get((s, t, "eager")), by.get((s, t, "grouped_mm"))
        floor_us = c["weight_bytes"] / (copy * 1e9) * 1e6
        def f(v, fmt):
            return fmt.format(v) if v is not None else "n/a"
        print(f"| {s} | {t} | {c['us']:.1f} | {c['tflops']:.2f} | {c['weight_gbps']:.0f} | "
              f"{c['weight_gbps'] / copy:.3f} | {c['us'] / floor_us:.2f} | {c['tflops'] / c['cublas_tflops']:.3f} | "
              f"{f(e and e['us'], '{:.1f}')} | {f(g and g['us'], '{:.1f}')} | {f(g and g['tflops'], '{:.2f}')} | "
              f"{f(e and e['us'] / c['us'], '{:.2f}')} | {f(g and g['us'] / c['us'], '{:.2f}')} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="S,F,C,D")
    ap.add_argument("--tokens", default="1,16,512,4096")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"])
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--json", default="")
    ap.add_argument("--lib-json", default="")
    args = ap.parse_args()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
    results = []
    with torch.inference_mode():
        for name in args.shapes.split(","):
            H, I, E, k, ds = SHAPES[name]
            block = Block(H, I, E, k, ds, dtype)
            for t in [int(v) for v in args.tokens.split(",")]:
                pool = 32 if t <= 16 else 2
                xs = [torch.empty(t, H, device="cuda", dtype=dtype).uniform_(-1, 1) for _ in range(pool)]
                flops = 2.0 * t * (k + (1 if ds else 0)) * H * I * 3 + 2.0 * t * H * E
                for peer, fn in (("eager", block.eager), ("grouped_mm", block.grouped)):
                    try:
                        sec, n = time_calls(fn, xs, args.min_time)
                    except Exception as ex:  # e.g. _grouped_mm missing or refusing this GPU
                        print(f"{name} T={t} {peer}: failed: {ex}", file=sys.stderr)
                        continue
                    r = {"shape": name, "tokens": t, "peer": peer, "us": sec * 1e6, "tflops": flops / sec / 1e12,
                         "calls": n}
                    results.append(r)
                    print(f"RESULT peer={peer} shape={name} T={t} us={r['us']:.1f} tflops={r['tflops']:.3f}",
                          flush=True)
                del xs
            del block
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "cases": results}, f, indent=1)
    if args.lib_json:
        with open(args.lib_json) as f:
            summary(json.load(f), results)


if __name__ == "__main__":
    main()
