#!/bin/sh
# SPDX-License-Identifier: MIT
# The C# binding's XML documentation (Pimoe.xml, from the /// comments) is complete for the hand-written API.
#   usage: check_xml_docs.sh MCS OUT_DIR SOURCE_DIR GENERATED_DIR BUILD_CONSTANTS_CS
# Compiles Pimoe.dll again into OUT_DIR as csharp.cmake does, but with every warning reported (the build passes
# -nowarn:1591 because SWIG's generated enums carry no comments): fails on any warning about a hand-written source
# (SOURCE_DIR/*.cs: a public member without a comment, a malformed comment, a cref to nothing), then checks that the
# XML documents the main types. Warnings about GENERATED_DIR (the enums' values) are counted, not failed.
set -eu
mcs=${1:?mcs}
out=${2:?output directory}
src=${3:?source directory}
gen=${4:?generated sources}
constants=${5:?BuildConstants.cs}
rm -rf "$out"
mkdir -p "$out"
rc=0
"$mcs" -nologo -warn:4 -unsafe -target:library -out:"$out/Pimoe.dll" -doc:"$out/Pimoe.xml" "-recurse:$gen/*.cs" \
  "$constants" "$src"/*.cs >"$out/mcs.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$out/mcs.log"; echo "FAIL: mcs exited with $rc"; exit 1; }
handwritten=$(grep -F "$src/" "$out/mcs.log" | grep -F 'warning CS' || true)
if [ -n "$handwritten" ]; then
  echo "$handwritten"
  echo "FAIL: $(echo "$handwritten" | wc -l) documentation warning(s) in the hand-written sources ($src)"
  exit 1
fi
for member in T:Pimoe.Model T:Pimoe.Options T:Pimoe.Stats T:Pimoe.Routing T:Pimoe.PimoeException \
              'M:Pimoe.Model.Forward(System.Single[],System.Single[],System.Int64,System.Int64)'; do
  grep -qF "<member name=\"$member\">" "$out/Pimoe.xml" || { echo "FAIL: Pimoe.xml does not document $member"; exit 1; }
done
echo "ok: Pimoe.xml documents every public member of $src ($(grep -c '<member ' "$out/Pimoe.xml") members);" \
     "$(grep -cF "$gen/" "$out/mcs.log" || true) warnings about SWIG's generated enums left aside"
