#!/bin/sh
# SPDX-License-Identifier: MIT
# ctest check_abi: the ABI of the built libpimoe against the committed baseline (tests/abi/libpimoe.abi), through
# the public headers only. Fails on any difference, compatible additions included: a new call or an appended field
# is recorded deliberately by regenerating the baseline (tests/abi/make_abi_baseline.sh, docs/versioning.md).
#   usage: check_abi.sh LIBRARY HEADERS_DIR BASELINE
# abidiff's exit status is a bit field: 1 tool error, 2 usage error, 4 an ABI change, 8 an incompatible ABI change
# (set for a removed function or variable; a struct layout changed behind a pointer parameter gets 4 alone). Every
# non-zero status fails this check (1 and 2 because a check that could not compare has not passed).
# The library needs debug info (tests/api.cmake registers the check only in builds compiled with -g); the baseline
# describes x86-64, so elsewhere the check reports Skipped (exit 77).
set -eu
lib=${1:?library}
headers=${2:?headers dir}
baseline=${3:?baseline}
here=$(cd "$(dirname "$0")" && pwd)
command -v abidiff >/dev/null || { echo "abidiff not found: install abigail-tools (cmake/debian-deps.sh does)"; exit 1; }
if [ "$(uname -m)" != x86_64 ]; then
  echo "the ABI baseline describes x86-64; this is $(uname -m)"
  exit 77
fi
if ! readelf -S "$lib" | grep -q '\.debug_info'; then
  echo "FAIL: $lib has no debug info (build it with -g: RelWithDebInfo, Debug or a sanitizer build)"
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$here/abi_dump.sh" "$lib" "$headers" "$tmp/current.abi"
status=0
abidiff --no-default-suppression "$baseline" "$tmp/current.abi" >"$tmp/report" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  cat "$tmp/report"
  echo "FAIL: abidiff exit status $status (bits: 1 error, 2 usage, 4 ABI change, 8 removed interface)"
  echo "An intended change is recorded by regenerating the baseline: sh tests/abi/make_abi_baseline.sh"
  echo "(docs/versioning.md, \"The ABI baseline\"); anything but an addition is incompatible (PIMOE_ABI_VERSION)."
  exit 1
fi
echo "ABI unchanged against $(basename "$baseline")"
