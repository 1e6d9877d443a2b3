#!/bin/bash
# SPDX-License-Identifier: MIT
# A/B of two builds on the CPU benchmark's main case, interleaved (A B A B ...), each result a same-run ratio to
# OpenBLAS sgemm: used to show that a change did not slow the plain softmax top-k path down.
#   bench/cpu/run_ab.sh OLD_BUILD_DIR NEW_BUILD_DIR [ROUNDS] [SHAPE] [TOKENS]     (defaults: 3 S-gelu 256)
# Build the old commit with e.g.: git worktree add /tmp/old <commit> && cmake -S /tmp/old -B /tmp/old/build-bench
#   -DPIMOE_BUILD_TESTS=OFF -DPIMOE_BUILD_BINDINGS=OFF && cmake --build /tmp/old/build-bench --target bench_moe
set -euo pipefail
old=$1/bench/bench_moe new=$2/bench/bench_moe rounds=${3:-3} shape=${4:-S-gelu} tokens=${5:-256}
for r in $(seq "$rounds"); do
  for v in old new; do
    b=$old; [ $v = new ] && b=$new
    "$b" --shape "$shape" --tokens "$tokens" --reps 5 --min-time 0.2 --no-grouped 2>&1 | grep '^RESULT' |
      awk -v tag="$v round $r" '{ out = tag; for (i = 1; i <= NF; i++) if ($i ~ /^(lib_ms|ratio_dense|others)=/) out = out " " $i; print out }'
  done
done
