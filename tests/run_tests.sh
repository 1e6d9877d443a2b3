#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's test command: installs what is missing, then builds and runs the whole suite three times:
#   1. Release build with OpenBLAS           (build/)        every test
#   2. ASan + UBSan build                    (build-asan/)   every test
#   3. TSan build without OpenBLAS           (build-tsan/)   every test (OpenBLAS is not TSan-instrumented)
# The CUDA backend (when nvcc is found) is built in the Release suite only: its GPU tests need a GPU (elsewhere ctest
# lists them as "Skipped"), and the sanitizers cannot instrument device code, so the other suites leave it out.
# Set PIMOE_QUICK=1 to run only the first.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
# The bindings' toolchains (SWIG, JDK + JUnit 5, Mono + NUnit, Go), one list per language.
"$root/cmake/debian-deps.sh" $(cat "$root"/bindings/*/debian-packages 2>/dev/null)
jobs=$(nproc)

run_suite() {  # name build-dir cmake-args...
  name=$1; dir=$2; shift 2
  echo "== [$name] configure and build in $dir"
  mkdir -p "$dir"
  # PIMOE_BUILD_TESTS=ON: a missing GoogleTest stops here instead of leaving the suite out (its default is AUTO).
  cmake -S "$root" -B "$dir" -DPIMOE_BUILD_BENCH=OFF -DPIMOE_BUILD_TESTS=ON "$@" >"$dir/configure.log" 2>&1 || { cat "$dir/configure.log"; exit 1; }
  cmake --build "$dir" -j "$jobs" >"$dir/build.log" 2>&1 || { tail -n 60 "$dir/build.log"; exit 1; }
  echo "== [$name] ctest"
  (cd "$dir" && ctest --output-on-failure -j "$jobs")
}

run_suite release "$root/build" -DCMAKE_BUILD_TYPE=Release
if [ "${PIMOE_QUICK:-0}" != 1 ]; then
  # The Vulkan driver that "auto" probes (lavapipe on a machine without a GPU) keeps memory until exit: see lsan.supp.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    LSAN_OPTIONS=suppressions=$root/tests/vulkan/lsan.supp \
    run_suite asan+ubsan "$root/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPIMOE_SANITIZE=address,undefined \
    -DPIMOE_BUILD_EXAMPLES=ON -DPIMOE_BUILD_BINDINGS=OFF -DPIMOE_WITH_CUDA=OFF
  # The Vulkan driver and validation layer are not TSan-instrumented: see tsan.supp.
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/vulkan/tsan.supp \
    run_suite tsan "$root/build-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPIMOE_SANITIZE=thread \
    -DPIMOE_WITH_OPENBLAS=OFF -DPIMOE_BUILD_BINDINGS=OFF -DPIMOE_WITH_CUDA=OFF
fi
echo "== all suites passed"
