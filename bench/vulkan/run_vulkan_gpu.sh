#!/bin/sh
# SPDX-License-Identifier: MIT
# One run on a GPU machine that has a Vulkan driver but no Vulkan packages: the Vulkan tests on the GPU with the
# validation layer, then bench_vulkan. Everything it needs sits next to it (see bench/vulkan/README.md, "On a GPU
# machine"): bin/ (test binaries, bench_vulkan, libhide_vulkan_loader.so), lib/ (libpimoe.so.0), vvl/ (Debian's
# vulkan-validationlayers unpacked), run_vulkan_tests.sh. The Vulkan loader itself must be installed or unpacked.
#   OUT=DIR BENCH_SHAPES="F,C" BENCH_TOKENS=1,4096 [BENCH_PEER=cuda BENCH_PEER_DTYPE=bf16] sh run_vulkan_gpu.sh
# Writes DIR/summary.txt, DIR/logs.tar.gz (every log) and DIR/bench*.json.
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/pimoe-vulkan-out}
shapes=${BENCH_SHAPES:-F,C}
tokens=${BENCH_TOKENS:-1,4096}
mkdir -p "$out/logs"
export LD_LIBRARY_PATH="$here/lib:$here/vvl/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -z "${VK_DRIVER_FILES:-}" ]; then
  icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f "$icd" ] || icd=$(ls /usr/share/vulkan/icd.d/nvidia*.json /etc/vulkan/icd.d/nvidia*.json 2>/dev/null | head -n 1)
  export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"
fi
export VK_LAYER_PATH="$here/vvl/usr/share/vulkan/explicit_layer.d"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/pimoe-xdg}
mkdir -p "$XDG_RUNTIME_DIR"
summary="$out/summary.txt"
{
  echo "== machine"; nvidia-smi -L 2>&1; uname -r; echo "driver files: $VK_DRIVER_FILES"
} >"$summary"
# Is there a Vulkan device? If not, say why (the loader's own messages) and try the driver's library folders too.
probe() {
  PIMOE_VULKAN_VALIDATION=0 "$here/bin/test_vulkan" --gtest_filter=VulkanDevices.ListNamesTypesAndMemory \
    >"$out/logs/probe.log" 2>&1
}
if ! probe; then
  {
    echo "no Vulkan device with the defaults; loader messages:"
    PIMOE_VULKAN_VALIDATION=0 VK_LOADER_DEBUG=error,warn,driver "$here/bin/test_vulkan" \
      --gtest_filter=VulkanDevices.ListNamesTypesAndMemory 2>&1 | grep -v '^\[' | head -n 40
    cat "$VK_DRIVER_FILES"
    ls /usr/local/nvidia/lib64 /usr/local/nvidia/lib 2>/dev/null | grep -iE 'glx|glcore|glvk|vulkan|dispatch'
    ldconfig -p | grep -iE 'GLdispatch|GLX|glvk|glcore|vulkan'
  } >>"$summary" 2>&1
  for extra in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$extra" ] || continue
    export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$extra"
    if probe; then echo "device found with $extra on LD_LIBRARY_PATH" >>"$summary"; break; fi
  done
fi
grep -E '^vulkan:' "$out/logs/probe.log" >>"$summary"
echo "== tests (validation layer, synchronisation validation on)" >>"$summary"
PIMOE_VULKAN_VALIDATION=sync timeout 240 sh "$here/run_vulkan_tests.sh" "$here/bin" vulkan:0 "$out/logs" >>"$summary" 2>&1
echo "tests exit: $?" >>"$summary"
echo "== bench (fp16 weights; without timestamps, so the wall times carry no profiling cost)" >>"$summary"
# BENCH_PEER=cuda also times the CUDA backend of the same library on the same calls (the ratio column)
timeout 300 "$here/bin/bench_vulkan" --shape "$shapes" --tokens "$tokens" --dtype fp16 \
  ${BENCH_PEER:+--peer "$BENCH_PEER" --peer-dtype "${BENCH_PEER_DTYPE:-fp16}"} \
  --min-time 1.5 --min-reps 5 --json "$out/bench.json" >>"$summary" 2>"$out/logs/bench.log"
echo "bench exit: $?" >>"$summary"
profile_tokens=${PROFILE_TOKENS:-1}
echo "== GPU step times per call (PIMOE_VULKAN_PROFILE=1, tokens $profile_tokens; these wall times include the timestamps)" >>"$summary"
PIMOE_VULKAN_PROFILE=1 timeout 120 "$here/bin/bench_vulkan" --shape "$shapes" --tokens "$profile_tokens" --dtype fp16 \
  --min-time 0.5 --min-reps 5 >>"$summary" 2>"$out/logs/bench_profile.log"
echo "profiled bench exit: $?" >>"$summary"
grep -v '^shape .*created' "$out/logs/bench_profile.log" >>"$summary"
# The same shapes at 4096 tokens through other kernel choices: PIMOE_VULKAN_TILES values (coopmat-fp16, fma, small,
# large) or n8 (the tensor-core kernels with 16x8 fragments, PIMOE_VULKAN_COOPMAT_N=8).
for choice in ${BENCH_COMPARE:-}; do
  echo "== bench, $choice" >>"$summary"
  if [ "$choice" = n8 ]; then set -- PIMOE_VULKAN_COOPMAT_N=8; else set -- PIMOE_VULKAN_TILES="$choice"; fi
  env "$@" timeout 120 "$here/bin/bench_vulkan" --shape "$shapes" --tokens 4096 --dtype fp16 --min-time 1 \
    --min-reps 3 --json "$out/bench_$choice.json" >>"$summary" 2>&1
done
# PROFILE_COMPARE="coopmat-w ...": the profile's GPU step times at 4096 tokens through each PIMOE_VULKAN_TILES choice
# (the projection kernels' lines), each for at least PROFILE_MIN_TIME seconds per shape (default 0.5).
for choice in ${PROFILE_COMPARE:-}; do
  echo "== GPU step times, PIMOE_VULKAN_TILES=$choice, 4096 tokens" >>"$summary"
  PIMOE_VULKAN_PROFILE=1 PIMOE_VULKAN_TILES="$choice" timeout 120 "$here/bin/bench_vulkan" --shape "$shapes" \
    --tokens 4096 --dtype fp16 --min-time "${PROFILE_MIN_TIME:-0.5}" --min-reps 3 >"$out/logs/profile_$choice.log" 2>&1
  echo "exit $?" >>"$summary"
  grep -E 'matmul|submit|fence|^ *[A-Z] ' "$out/logs/profile_$choice.log" >>"$summary"
done
# How far the activations rounded to fp16 (PIMOE_VULKAN_TILES=coopmat-fp16) take the parity cases from the oracle
# (information only: test_parity's 1e-5 bound for fp16 weights assumes fp32 arithmetic).
if [ -n "${PARITY_COOPMAT_FP16:-}" ]; then
  echo "== test_parity, PIMOE_VULKAN_TILES=coopmat-fp16 (information)" >>"$summary"
  PIMOE_TEST_BACKEND=vulkan:0 PIMOE_VULKAN_TILES=coopmat-fp16 timeout 60 "$here/bin/test_parity" \
    >"$out/logs/parity_coopmat_fp16.log" 2>&1
  echo "exit $?" >>"$summary"
  grep -E 'differs from the oracle|^\[  FAILED|Expected|Which is|rms' "$out/logs/parity_coopmat_fp16.log" | head -40 >>"$summary"
fi
if [ -n "${BENCH_SMALL_TILES:-}" ]; then  # the same calls through the small GEMM tiles, for comparison
  echo "== bench, PIMOE_VULKAN_TILES=small" >>"$summary"
  PIMOE_VULKAN_TILES=small timeout 120 "$here/bin/bench_vulkan" --shape "$BENCH_SMALL_TILES" --tokens 4096 \
    --dtype fp16 --min-time 1 --min-reps 3 --json "$out/bench_small_tiles.json" >>"$summary" 2>&1
fi
(cd "$out" && tar czf logs.tar.gz logs && rm -rf logs)
cat "$summary"
