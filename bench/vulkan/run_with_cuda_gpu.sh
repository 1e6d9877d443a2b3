#!/bin/sh
# SPDX-License-Identifier: MIT
# Both GPU backends of one build on a GPU machine without Vulkan packages: the CUDA tests (test_cuda, and test_parity
# and test_routing_features on PIMOE_TEST_BACKEND=cuda), then run_vulkan_gpu.sh (the Vulkan tests with synchronisation
# validation, bench_vulkan with the CUDA backend as same-run peer through the same call, a profiled bench), then
# bench_cuda (device pointers: the CUDA kernels without host copies). Next to it, laid out as for run_vulkan_gpu.sh
# (bench/vulkan/README.md), from a build with CUDA and Vulkan and without OpenBLAS: bin/ also holding test_cuda and
# bench_cuda, lib/libpimoe.so.0, vvl/, run_vulkan_tests.sh, run_vulkan_gpu.sh. cuBLAS comes from /usr/local/cuda.
#   OUT=DIR sh run_with_cuda_gpu.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:?}
mkdir -p "$out/cuda"
export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
s="$out/cuda/summary.txt"
nvidia-smi -L >"$s" 2>&1
t0=$(date +%s)
for t in test_cuda test_parity test_routing_features; do
  PIMOE_TEST_BACKEND=cuda timeout 300 "$here/bin/$t" >"$out/cuda/$t.log" 2>&1
  rc=$?
  echo "$t (cuda): exit $rc, $(grep -c '^\[       OK' "$out/cuda/$t.log") OK, $(grep -c '^\[  FAILED' "$out/cuda/$t.log") FAILED lines, $(grep -E '^\[  PASSED|^\[  SKIPPED' "$out/cuda/$t.log" | tr '\n' ' ')" >>"$s"
done
echo "cuda tests done at $(( $(date +%s) - t0 )) s" >>"$s"
OUT="$out/vulkan" BENCH_SHAPES=F,C BENCH_TOKENS=1,4096 PROFILE_TOKENS=1,4096 BENCH_PEER=cuda sh "$here/run_vulkan_gpu.sh"
echo "vulkan done at $(( $(date +%s) - t0 )) s" >>"$s"
timeout 120 "$here/bin/bench_cuda" --shapes F,C --tokens 1,4096 --min-time 0.5 --json "$out/cuda/bench_cuda.json" \
  >"$out/cuda/bench_cuda.log" 2>&1
echo "bench_cuda exit $? at $(( $(date +%s) - t0 )) s" >>"$s"
cat "$s"; cat "$out/vulkan/summary.txt" | grep -v "^ok \|^\[" | head -80; cat "$out/cuda/bench_cuda.log" | tail -15
