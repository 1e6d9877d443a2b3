#!/bin/sh
# SPDX-License-Identifier: MIT
# The Vulkan tests of tests/vulkan.cmake, outside ctest: for a copied build on a machine with a GPU (the build's
# ctest files hold its own absolute paths), or to run them on any device:
#   tests/vulkan/run_vulkan_tests.sh BIN_DIR [BACKEND] [LOG_DIR]
# BIN_DIR holds test_parity, test_vulkan, test_vulkan_unavailable, libhide_vulkan_loader.so and, where the build has
# it, test_routing_features (a build's tests/
# folder); libpimoe.so must be found by the loader (LD_LIBRARY_PATH, or the build's RUNPATH). BACKEND defaults to
# vulkan:0. The environment picks the driver (VK_DRIVER_FILES) and turns on the validation layer
# (PIMOE_VULKAN_VALIDATION=1 or sync). A test fails on a gtest failure or on any validation message of error severity.
set -u
bin=${1:?BIN_DIR}
backend=${2:-vulkan:0}
logs=${3:-$(mktemp -d)}
mkdir -p "$logs"
failed=0

run() {  # name, then env assignments and the command
  name=$1; shift
  start=$(date +%s)
  env "$@" >"$logs/$name.log" 2>&1
  rc=$?
  if grep -q 'pimoe vulkan validation error\|Validation Error' "$logs/$name.log"; then
    echo "FAIL $name: validation errors ($(grep -c 'pimoe vulkan validation error\|Validation Error' "$logs/$name.log"))"
    failed=1
  elif [ $rc -ne 0 ]; then
    echo "FAIL $name (exit $rc):"; grep -E '^\[  FAILED|Failure|error' "$logs/$name.log" | head -20
    failed=1
  else
    echo "ok   $name ($(grep -c '^\[       OK' "$logs/$name.log") tests, $(( $(date +%s) - start )) s)"
  fi
}

run test_vulkan PIMOE_TEST_BACKEND="$backend" "$bin/test_vulkan"
run test_parity_vulkan PIMOE_TEST_BACKEND="$backend" "$bin/test_parity"
run test_parity_vulkan_host PIMOE_TEST_BACKEND="$backend" PIMOE_VULKAN_ROUTING=host "$bin/test_parity"
run test_parity_vulkan_large_tiles PIMOE_TEST_BACKEND="$backend" PIMOE_VULKAN_TILES=large "$bin/test_parity"
# The tensor-core kernels that split each activation into two fp16 parts, for every call (fp16 weights, where the
# device has cooperative matrices; elsewhere this repeats the small tiles): within test_parity's 1e-5 bounds. The
# default tensor-core tiles round activations to fp16 (1e-2): test_vulkan's VulkanWeights tests take them.
run test_parity_vulkan_coopmat_split PIMOE_TEST_BACKEND="$backend" PIMOE_VULKAN_TILES=coopmat-split "$bin/test_parity"
# PIMOE_TEST_EXTRA_TILES="coopmat-w ...": test_parity again through each of these PIMOE_VULKAN_TILES choices.
for tiles in ${PIMOE_TEST_EXTRA_TILES:-}; do
  run "test_parity_vulkan_$tiles" PIMOE_TEST_BACKEND="$backend" PIMOE_VULKAN_TILES="$tiles" "$bin/test_parity"
done
if [ -x "$bin/test_routing_features" ]; then
  run test_routing_features_vulkan PIMOE_TEST_BACKEND="$backend" "$bin/test_routing_features"
fi
# Without a loader or a driver there is nothing to validate (the loader would report the missing driver as an error).
run test_vulkan_no_loader PIMOE_VULKAN_VALIDATION=0 LD_PRELOAD="$bin/libhide_vulkan_loader.so" \
  PIMOE_EXPECT_VULKAN_REASON="the Vulkan loader libvulkan.so.1 was not found" "$bin/test_vulkan_unavailable"
run test_vulkan_no_driver PIMOE_VULKAN_VALIDATION=0 VK_DRIVER_FILES=/nonexistent/icd.json VK_ICD_FILENAMES=/nonexistent/icd.json \
  PIMOE_EXPECT_VULKAN_REASON="no usable Vulkan driver" "$bin/test_vulkan_unavailable"
echo "logs in $logs"
exit $failed
