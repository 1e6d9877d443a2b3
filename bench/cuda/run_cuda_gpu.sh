#!/bin/sh
# SPDX-License-Identifier: MIT
# The CUDA backend's one command on a GPU machine: configure and build (Release, with CUDA), ctest (the GPU tests
# one at a time, since one of them fills the GPU's memory on purpose; then the rest of the suite but the
# installed-package test), then bench_cuda and its PyTorch peers with the summary table. Logs go to LOG_DIR.
#   usage: bench/cuda/run_cuda_gpu.sh [BUILD_DIR] [LOG_DIR]
#   environment: CMAKE_ARGS (extra configure arguments), SHAPES (S,F,C,D), TOKENS (1,16,512,4096),
#                SKIP_TESTS=1, SKIP_BENCH=1
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-gpu}
logs=${2:-$build/logs}
mkdir -p "$build" "$logs"
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPIMOE_BUILD_BINDINGS=OFF \
  -DPIMOE_BUILD_EXAMPLES=OFF ${CMAKE_ARGS:-} >"$logs/configure.log" 2>&1 || { tail -n 40 "$logs/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" >"$logs/build.log" 2>&1 || { grep -A12 -E 'error|FAILED' "$logs/build.log" | head -n 80; exit 1; }
echo "== built"
status=0
if [ -z "${SKIP_TESTS:-}" ]; then
  (cd "$build" && ctest -L cuda --output-on-failure -j1 --timeout 900) >"$logs/ctest_gpu.log" 2>&1 || status=1
  (cd "$build" && ctest -LE cuda -E consumer --output-on-failure -j8 --timeout 900) >"$logs/ctest_rest.log" 2>&1 || status=1
  grep -E '^\[ parity \]|FAILED|Failure|error|tests passed|did not run|Skipped' "$logs/ctest_gpu.log" | head -n 60
  grep -E 'FAILED|Failure|tests passed|Skipped|Failed' "$logs/ctest_rest.log" | head -n 30
fi
if [ -z "${SKIP_BENCH:-}" ]; then
  "$build/bench/bench_cuda" --shapes "${SHAPES:-S,F,C,D}" --tokens "${TOKENS:-1,16,512,4096}" --json "$logs/lib.json" \
    >"$logs/bench_lib.log" 2>&1 || status=1
  cat "$logs/bench_lib.log"
  PYTHONUNBUFFERED=1 python3 "$root/bench/cuda/torch_peers.py" --shapes "${SHAPES:-S,F,C,D}" \
    --tokens "${TOKENS:-1,16,512,4096}" --json "$logs/peers.json" --lib-json "$logs/lib.json" \
    >"$logs/bench_peers.log" 2>&1 || status=1
  grep -v '^RESULT' "$logs/bench_peers.log"
fi
exit $status
