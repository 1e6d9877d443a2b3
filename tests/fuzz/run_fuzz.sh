#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds and runs the libFuzzer targets listed in tests/fuzz/targets.txt (ctest's fuzz_* tests, and long campaigns).
#
#   run_fuzz.sh [--work DIR] [--clang CLANGXX] [--seconds N] [--fork N | --jobs N] COMMAND [TARGET...]
#     build            configure and build libpimoe once with clang (-fsanitize=fuzzer-no-link,address,undefined; the
#                      CPU backend only: no OpenBLAS, CUDA, Vulkan, bindings) into WORK/lib/libpimoe.a, then link each
#                      TARGET (default: every target) into WORK/bin/fuzz_TARGET (-fsanitize=fuzzer,address,undefined,
#                      libstdc++ linked statically: the binaries need only the C library to run elsewhere)
#     run TARGET...    fuzz each target in turn for --seconds over WORK/corpus/TARGET (new inputs land there) and
#                      the committed tests/fuzz/corpus/TARGET (only read). Seconds: --seconds, else the table's CI
#                      time when CI=true, else $PIMOE_FUZZ_SECONDS (default 10). --fork N runs N worker processes
#                      (libFuzzer -fork, carrying on past a finding); --jobs N runs N independent fuzzers
#                      (-jobs=N -workers=N, logs in WORK/logs)
#     replay TARGET... run each target's binary once over its committed corpus (-runs=0)
#     merge TARGET...  add to the committed corpus the inputs of WORK/corpus/TARGET that reach new edges
#                      (-merge=1: the committed files stay, the merge adds the fewest, smallest new ones)
#   WORK defaults to .dev/fuzz in the source tree. A finding is saved in WORK/findings/TARGET/: once fixed, copy it
#   into tests/fuzz/corpus/TARGET/ so that the replay tests keep it fixed.
#   Exit 77 (ctest: skipped) when CLANGXX cannot link a libFuzzer binary (Debian: libclang-rt-14-dev).
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
fuzz_dir=$src/tests/fuzz
work=$src/.dev/fuzz
cxx=${CXX_FOR_FUZZ:-clang++}
seconds=""
parallel=()
while [ $# -gt 0 ]; do
  case $1 in
    --work) work=$2; shift 2 ;;
    --clang) cxx=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --fork) parallel=(-fork="$2" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1); shift 2 ;;
    --jobs) parallel=(-jobs="$2" -workers="$2"); shift 2 ;;
    -*) echo "run_fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
command=${1:?usage: run_fuzz.sh [options] build|run|replay|merge [TARGET...]}
shift
mkdir -p "$work"
work=$(cd "$work" && pwd)

# The table: name, seconds in CI, -max_len, replayed in the normal build, what it fuzzes.
declare -A ci_seconds max_len
all_targets=()
while read -r name ci len _; do
  case $name in ''|'#'*) continue ;; esac
  all_targets+=("$name"); ci_seconds[$name]=$ci; max_len[$name]=$len
done <"$fuzz_dir/targets.txt"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [ -n "${ci_seconds[$t]:-}" ] || { echo "run_fuzz.sh: no target '$t' in $fuzz_dir/targets.txt" >&2; exit 2; }
done

sanitize=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)

# Exit 77 unless the compiler links a libFuzzer binary (checked before the minutes of the library build).
probe_libfuzzer() {
  if ! printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char *, unsigned long) { return 0; }\n' |
      "$cxx" -x c++ - -fsanitize=fuzzer -o "$work/probe" >"$work/probe.log" 2>&1; then
    cat "$work/probe.log" >&2
    echo "SKIP: $cxx cannot build a libFuzzer binary (install clang and libclang-rt-14-dev)" >&2
    exit 77
  fi
}

build_library() {
  local cc=${cxx/clang++/clang} flags="-fsanitize=fuzzer-no-link ${sanitize[*]}"
  local launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  if [ ! -f "$work/lib/CMakeCache.txt" ]; then
    echo "== configuring the instrumented library in $work/lib"
    cmake -S "$src" -B "$work/lib" -DCMAKE_BUILD_TYPE=Fuzz -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
      -DCMAKE_C_FLAGS_FUZZ="-O1 -gline-tables-only" -DCMAKE_CXX_FLAGS_FUZZ="-O1 -gline-tables-only" \
      -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" "${launcher[@]}" \
      -DPIMOE_BUILD_SHARED=OFF -DPIMOE_BUILD_TESTS=OFF -DPIMOE_BUILD_EXAMPLES=OFF -DPIMOE_BUILD_BENCH=OFF \
      -DPIMOE_BUILD_BINDINGS=OFF -DPIMOE_WITH_CUDA=OFF -DPIMOE_WITH_VULKAN=OFF -DPIMOE_WITH_OPENBLAS=OFF \
      >"$work/lib-configure.log" 2>&1 || { cat "$work/lib-configure.log"; exit 1; }
  fi
  echo "== building the instrumented library"
  cmake --build "$work/lib" --target pimoe_static -j "${PIMOE_FUZZ_BUILD_JOBS:-$(nproc)}" \
    >"$work/lib-build.log" 2>&1 || { tail -n 40 "$work/lib-build.log"; exit 1; }
}

build_target() {  # name
  local t=$1 binary=$work/bin/fuzz_$1 rebuild=0
  [ -x "$binary" ] || rebuild=1
  for f in "$fuzz_dir/fuzz_$t.cpp" "$fuzz_dir"/*.h "$work/lib/libpimoe.a"; do [ "$f" -nt "$binary" ] && rebuild=1; done
  [ $rebuild = 1 ] || return 0
  echo "== linking $binary"
  mkdir -p "$work/bin"
  "$cxx" -std=c++17 -O1 -g -fsanitize=fuzzer "${sanitize[@]}" -DPIMOE_STATIC_DEFINE \
    -I"$src/src" -I"$src" -I"$src/include" "$fuzz_dir/fuzz_$t.cpp" "$work/lib/libpimoe.a" \
    -static-libstdc++ -static-libgcc -pthread -lm -o "$binary.tmp" >"$work/bin/fuzz_$t.log" 2>&1 ||
    { cat "$work/bin/fuzz_$t.log"; exit 1; }
  mv "$binary.tmp" "$binary"
}

binary_of() {  # name: the target's binary, or exit 77/1 when it was not built
  local binary=$work/bin/fuzz_$1
  if [ ! -x "$binary" ]; then
    probe_libfuzzer
    echo "FAIL: $binary is missing: run 'run_fuzz.sh --work $work build' (ctest: the fuzz_build test) first" >&2
    exit 1
  fi
  echo "$binary"
}

dict_of() {  # name: the -dict flag when the target has a dictionary
  [ -f "$fuzz_dir/$1.dict" ] && echo "-dict=$fuzz_dir/$1.dict" || true
}

status=0
case $command in
  build)
    probe_libfuzzer
    build_library
    for t in "${targets[@]}"; do build_target "$t"; done
    ;;
  run)
    for t in "${targets[@]}"; do
      binary=$(binary_of "$t")
      if [ -n "$seconds" ]; then s=$seconds
      elif [ "${CI:-}" = "true" ]; then s=${ci_seconds[$t]}
      else s=${PIMOE_FUZZ_SECONDS:-10}; fi
      mkdir -p "$work/corpus/$t" "$work/findings/$t" "$work/logs"
      echo "== fuzzing $t for ${s}s"
      # -rss_limit_mb and -timeout: a memory blow-up or a hang is a finding too.
      rc=0
      (cd "$work/logs" && "$binary" -max_total_time="$s" -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/findings/$t/" $(dict_of "$t") "${parallel[@]}" \
        "$work/corpus/$t" "$fuzz_dir/corpus/$t") >"$work/logs/$t.log" 2>&1 || rc=$?
      # The final coverage (the last progress line, also in fork mode), libFuzzer's final stats and any report.
      grep -E "cov: .*corp:" "$work/logs/$t.log" | tail -n 1 || true
      grep -E "^stat::|ERROR|FUZZ FINDING|SUMMARY|Test unit written|artifact" "$work/logs/$t.log" | tail -n 12 || true
      findings=$(find "$work/findings/$t" -type f | wc -l)
      if [ "$rc" != 0 ] || [ "$findings" != 0 ]; then
        echo "FAIL: $t: exit $rc, $findings finding(s) in $work/findings/$t/ (log: $work/logs/$t.log)"
        status=1
      fi
    done
    ;;
  replay)
    for t in "${targets[@]}"; do
      binary=$(binary_of "$t")
      echo "== replaying tests/fuzz/corpus/$t"
      "$binary" -runs=0 "$fuzz_dir/corpus/$t" 2>&1 | tail -n 3 || status=1
    done
    ;;
  merge)
    for t in "${targets[@]}"; do
      binary=$(binary_of "$t")
      before=$(ls "$fuzz_dir/corpus/$t" | wc -l)
      # -use_counters=0: an input joins for a new edge only (not for another hit count of one), so the committed corpus
      # keeps every edge the campaign reached in a few hundred small files; WORK/corpus keeps the rest for the next run.
      "$binary" -merge=1 -use_counters=0 -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048 $(dict_of "$t") \
        "$fuzz_dir/corpus/$t" "$work/corpus/$t" >"$work/logs/$t-merge.log" 2>&1 || { tail "$work/logs/$t-merge.log"; status=1; }
      echo "== $t: committed corpus $before -> $(ls "$fuzz_dir/corpus/$t" | wc -l) files"
    done
    ;;
  *) echo "run_fuzz.sh: unknown command '$command'" >&2; exit 2 ;;
esac
exit $status
