#!/bin/sh
# SPDX-License-Identifier: MIT
# Regenerates tests/abi/libpimoe.abi, the ABI baseline check_abi compares against. Run it deliberately: for a release,
# or with the change that adds to or breaks the ABI on purpose (docs/versioning.md, "The ABI baseline").
#   usage: sh tests/abi/make_abi_baseline.sh [BUILD_DIR]   (default: a fresh folder under ${TMPDIR:-/tmp})
# It builds the library alone with -g (RelWithDebInfo, no GPU backends, nothing else) in BUILD_DIR: the C API's ABI
# does not depend on the backends compiled in (every pimoe_* call is exported in every build).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$(mktemp -d "${TMPDIR:-/tmp}/pimoe-abi.XXXXXX")}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPIMOE_BUILD_TESTS=OFF -DPIMOE_BUILD_BENCH=OFF \
  -DPIMOE_BUILD_EXAMPLES=OFF -DPIMOE_BUILD_BINDINGS=OFF -DPIMOE_WITH_CUDA=OFF -DPIMOE_WITH_VULKAN=OFF >/dev/null
cmake --build "$build" --target pimoe -j "$(nproc)"
lib=$(find "$build" -maxdepth 1 -name 'libpimoe.so.*.*.*' | head -n 1)
[ -n "$lib" ] || { echo "no libpimoe.so.X.Y.Z in $build"; exit 1; }
sh "$root/tests/abi/abi_dump.sh" "$lib" "$root/include/pimoe" "$root/tests/abi/libpimoe.abi"
echo "wrote tests/abi/libpimoe.abi from $lib: review the diff (git diff tests/abi) and commit it with the change"
