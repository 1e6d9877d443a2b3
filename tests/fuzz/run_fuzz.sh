#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the safetensors/native-format fuzz target with clang++ (libFuzzer + ASan + UBSan) and runs it for a bounded
# time over a copy of tests/fuzz/corpus.
#   usage: run_fuzz.sh CLANGXX SOURCE_DIR GENERATED_INCLUDE_DIR WORK_DIR
# Duration: 60 s when CI=true, else $PIMOE_FUZZ_SECONDS (default 10). Exit 77 (ctest: skipped) when the compiler
# cannot build a libFuzzer binary (no libclang-rt-*-dev). A finding is saved in WORK_DIR/findings/; copy it into
# tests/fuzz/corpus/ once fixed, so the regression test replays it forever.
set -euo pipefail

cxx=${1:?clang++}
src=${2:?source dir}
gen_include=${3:?generated include dir}
work=${4:?work dir}
if [ "${CI:-}" = "true" ]; then seconds=60; else seconds=${PIMOE_FUZZ_SECONDS:-10}; fi

mkdir -p "$work/findings" "$work/corpus"
binary="$work/fuzz_safetensors"
sources=(
  "$src/tests/fuzz/fuzz_safetensors.cpp" "$src/tests/fuzz/fuzz_stubs.cpp"
  "$src/src/formats/safetensors.cpp" "$src/src/formats/json_document.cpp" "$src/src/formats/mapped_file.cpp"
  "$src/src/formats/native_format.cpp" "$src/src/error.cpp"
  "$src/src/options.cpp" "$src/src/option_env.cpp" "$src/src/layer_config.cpp" "$src/src/compact_matrix.cpp"
  "$src/src/dtype.cpp"
)
# Rebuild only when a source is newer than the binary.
rebuild=0
[ -x "$binary" ] || rebuild=1
for f in "${sources[@]}" "$src"/src/formats/*.h "$src"/src/*.h; do [ "$f" -nt "$binary" ] && rebuild=1; done
if [ $rebuild = 1 ]; then
  echo "== building $binary"
  if ! "$cxx" -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
      -I"$src/src" -I"$src" -I"$src/include" -I"$gen_include" -DPIMOE_STATIC_DEFINE \
      "${sources[@]}" -o "$binary.tmp" 2>"$work/build.log"; then
    if grep -qE "libclang_rt|fuzzer" "$work/build.log"; then
      cat "$work/build.log"
      echo "SKIP: $cxx cannot build a libFuzzer binary (install libclang-rt-14-dev)"
      exit 77
    fi
    cat "$work/build.log"
    exit 1
  fi
  mv "$binary.tmp" "$binary"
fi

# New inputs go to the work corpus; the committed corpus is only read (seeds and regressions).
echo "== fuzzing for ${seconds}s"
"$binary" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/findings/" "$work/corpus" "$src/tests/fuzz/corpus" 2>&1 | tail -25
status=${PIPESTATUS[0]}
if [ "$status" != 0 ]; then
  echo "FAIL: the fuzzer found a crash; the input is in $work/findings/"
  ls -l "$work/findings/"
fi
exit "$status"
