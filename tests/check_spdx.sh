#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every source file of the tree carries the licence's SPDX identifier in its first lines (LICENSE: MIT).
#   usage: check_spdx.sh SOURCE_DIR
# Sources: C, C++, CUDA, GLSL, SWIG, Java, C#, Go, CMake, shell and Python files, pyproject.toml, the CI entry point
# and the templates of the installed pkg-config and CMake files, the Doxygen configuration, the man pages and
# debian/rules. Data (tests/fixtures), Markdown, lists read by scripts (debian-packages) and debian/'s control files
# (their formats have no comments, or the licence is in debian/copyright) carry none. A package build's folders
# (obj-<triplet>, debian/<package>) are not sources.
set -euo pipefail
root=${1:?source directory}
cd "$root"
missing=0 checked=0
while IFS= read -r -d '' f; do
  checked=$((checked + 1))
  if ! head -n 3 "$f" | grep -q 'SPDX-License-Identifier: MIT'; then
    echo "no SPDX-License-Identifier in the first 3 lines: $f"
    missing=$((missing + 1))
  fi
done < <(find . \( -path ./tests/fixtures -o -path './build*' -o -path ./.git -o -path ./.dev -o -path ./.gl \
  -o -path './obj-*' -o \( -path './debian/*' -type d \) \) -prune -o \
  -type f \( -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' -o -name '*.cu' -o -name '*.cuh' \
  -o -name '*.comp' -o -name '*.glsl' -o -name '*.i' -o -name '*.java' -o -name '*.cs' -o -name '*.go' \
  -o -name '*.cmake' -o -name 'CMakeLists.txt' -o -name '*.sh' -o -name '*.py' -o -name 'run' -path './.ci/*' \
  -o -name 'pimoe.pc.in' -o -name 'pimoeConfig.cmake.in' -o -name '*.map' -o -name '*.supp' -o -name 'go.mod' -o -name 'pyproject.toml' \
  -o -name 'Doxyfile.in' -o -name '*.1' -o -path ./debian/rules \) \
  -print0)
echo "$checked source files checked, $missing without the identifier"
[ "$checked" -gt 100 ] || { echo "FAIL: too few files found under $root"; exit 1; }
[ "$missing" -eq 0 ]
