#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The weight formats' benchmark of issue 15 (compact weights), every number a same-run ratio to fp32:
#   decode with cold weights, shapes S and F (T = 1); prefill S@256, F@512 and the Mixtral-size layer M@64.
#
#   bench/cpu/run_formats.sh [BUILD_DIR]        (default <repo>/build-bench; it must hold bench/bench_formats)
#
# machine-probe before and after; bench_formats interleaves the formats round by round (ROUNDS, default 5; the
# Mixtral-size case 3, its fp32 layer alone is 5.6 GB). Environment: THREADS (default 2), ROUNDS, FORMATS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${1:-$repo/build-bench}
bench=$build/bench/bench_formats
probe=$repo/../shared/tools/machine-probe
threads=${THREADS:-2}
rounds=${ROUNDS:-5}
formats=${FORMATS:-fp32,bf16,int8,int4,int4-g128,fp8_e4m3,mxfp4}
[ -x "$bench" ] || { echo "no $bench: build it first (cmake --build $build --target bench_formats)" >&2; exit 1; }
[ -x "$probe" ] && "$probe" | grep RESULT
"$bench" --shape S --tokens 1,256 --threads "$threads" --rounds "$rounds" --formats "$formats"
"$bench" --shape F --tokens 1,512 --threads "$threads" --rounds "$rounds" --formats "$formats"
"$bench" --shape M --tokens 64 --threads "$threads" --rounds 3 --min-time 1 --formats fp32,int8,int4,int4-g128
[ -x "$probe" ] && "$probe" | grep RESULT
