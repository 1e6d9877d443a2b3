#!/bin/sh
# SPDX-License-Identifier: MIT
# The C API reference builds without a single Doxygen warning, and documents every public function.
#   usage: check_api_docs.sh DOXYGEN DOXYFILE OUTPUT_DIR SOURCE_DIR
# Runs DOXYGEN on the configured DOXYFILE (docs/doxygen/Doxyfile.in: undocumented public symbols are warnings, and
# any warning fails the run) with its output in OUTPUT_DIR. Fails on a non-zero exit or on any output at all (the
# configuration is QUIET: only warnings and errors print), printing them and their count. Then checks that the HTML
# has a page for every public header and an entry for every PIMOE_API function they declare, so that a header or a
# declaration Doxygen did not see cannot pass unnoticed.
set -eu
doxygen=${1:?doxygen}
doxyfile=${2:?Doxyfile}
out=${3:?output directory}
src=${4:?source directory}

rm -rf "$out"
mkdir -p "$out"
log=$out/doxygen.log
rc=0
# The configuration with its OUTPUT_DIRECTORY replaced (a later setting wins), read from stdin.
{ cat "$doxyfile"; echo "OUTPUT_DIRECTORY = \"$out\""; } | "$doxygen" - >"$log" 2>&1 || rc=$?
if [ "$rc" != 0 ] || [ -s "$log" ]; then
  cat "$log"
  echo "FAIL: doxygen exited with $rc and printed $(grep -cE '(warning|error):' "$log") warning(s)"
  exit 1
fi
echo "ok: doxygen $("$doxygen" --version): no warning"

html=$out/html
[ -f "$html/index.html" ] || { echo "FAIL: no $html/index.html"; exit 1; }
headers=$(sed -n 's|^ *"\(.*/include/pimoe/[a-z_]*\.h\)".*|\1|p' "$doxyfile")
[ -n "$headers" ] || { echo "FAIL: no public header found in the INPUT of $doxyfile"; exit 1; }
missing=0 functions=0
for h in $headers; do
  page=$html/$(basename "$h" .h | sed 's/_/__/g')_8h.html
  [ -f "$page" ] || { echo "FAIL: no page for $(basename "$h") ($page)"; missing=$((missing + 1)); continue; }
  # Every function declared PIMOE_API (a declaration starts a line; its name is the word before the first '('),
  # listed in the index of functions as "<li>name()&#160;:&#160;<a ...>header</a>".
  for f in $(grep -E '^PIMOE_API .*\(' "$h" | sed -E 's/^[^(]*[ *]([a-z_0-9]+)\(.*/\1/'); do
    functions=$((functions + 1))
    grep -q "<li>$f()&#160;:&#160;<a [^>]*>$(basename "$h")</a>" "$html/globals_func.html" ||
      { echo "FAIL: $f ($(basename "$h")) is not in the reference's function index"; missing=$((missing + 1)); }
  done
done
[ "$functions" -gt 0 ] || { echo "FAIL: no PIMOE_API function found in $headers"; exit 1; }
[ "$missing" = 0 ] || exit 1
echo "ok: $(echo "$headers" | wc -w) headers, $functions functions, all in the reference ($html/index.html)"
