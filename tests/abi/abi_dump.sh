#!/bin/sh
# SPDX-License-Identifier: MIT
# The ABI of a built libpimoe as libabigail's XML, the one way both the baseline and the check make it:
#   usage: abi_dump.sh LIBRARY HEADERS_DIR OUT_FILE
# Only the exported interfaces and the types the public headers (HEADERS_DIR: include/pimoe) define are kept, and
# nothing that depends on how or where the library was built (its path, the compilation folders, the libraries it
# needs, source locations): a baseline regenerated after an unrelated edit, or from another build type, is the same.
set -eu
lib=${1:?library}
headers=${2:?headers dir}
out=${3:?output file}
command -v abidw >/dev/null || { echo "abidw not found: install abigail-tools (cmake/debian-deps.sh does)"; exit 1; }
abidw --headers-dir "$headers" --drop-private-types --exported-interfaces-only --no-elf-needed --no-corpus-path \
  --no-comp-dir-path --no-show-locs --out-file "$out.tmp" "$lib"
# Each translation unit is named by the path it was compiled from (absolute, or relative to the build folder):
# keep it from the source tree's top folder on (abidiff compares declarations, not these names).
sed -E "s#(<abi-instr [^>]*path=')[^']*/((src|backends)/[^']*')#\1\2#" "$out.tmp" >"$out"
rm -f "$out.tmp"
