#!/bin/sh
# SPDX-License-Identifier: MIT
# The Python binding's test (ctest python_pytest, driven by python.cmake; runnable by hand):
#
#   run_python_tests.sh PYTHON WORK_DIR PKG_CONFIG_DIR REFERENCE_DIR PROBE FIXTURES_DIR
#
# 1. Copies the package (bindings/python and the shared bindings/*.i) into WORK_DIR/tree, so that the build leaves
#    nothing in the source tree.
# 2. Makes a fresh venv over the interpreter's own site-packages (Debian's numpy, setuptools, wheel, pytest) and
#    runs `pip install --no-build-isolation --no-index` there: offline, as the README says. setup.py finds libpimoe
#    through `pkg-config pimoe` with PKG_CONFIG_PATH=PKG_CONFIG_DIR (this build's pimoe.pc).
# 3. Runs pytest on the installed package (not the copy: the tests import pimoe from the venv) with the zero-copy
#    probe preloaded and the C reference's outputs at PIMOE_BINDINGS_REFERENCE.
set -eu
[ $# -eq 6 ] || { echo "usage: $0 PYTHON WORK_DIR PKG_CONFIG_DIR REFERENCE_DIR PROBE FIXTURES_DIR" >&2; exit 2; }
PYTHON=$1
WORK=$2
PCDIR=$3
REFERENCE=$4
PROBE=$5
FIXTURES=$6
HERE=$(cd "$(dirname "$0")" && pwd -P)
BINDINGS=$(dirname "$HERE")

rm -rf "$WORK/tree" "$WORK/venv"
mkdir -p "$WORK/tree/python"
cp "$BINDINGS/pimoe.i" "$BINDINGS/pimoe_headers.i" "$WORK/tree/"
(cd "$HERE" && cp -R README.md pyproject.toml setup.py pimoe_python.i src tests "$WORK/tree/python/")

echo "==== venv and pip install (offline)"
"$PYTHON" -m venv --system-site-packages "$WORK/venv"
PKG_CONFIG_PATH=$PCDIR "$WORK/venv/bin/python" -m pip install --no-build-isolation --no-index --no-cache-dir \
  --disable-pip-version-check -q "$WORK/tree/python"

echo "==== pytest"
cd "$WORK"  # not the package's folder: `import pimoe` must find the installed package
LD_PRELOAD=$PROBE PIMOE_PYTHON_PROBE=$PROBE PIMOE_BINDINGS_REFERENCE=$REFERENCE PIMOE_FIXTURES=$FIXTURES \
  "$WORK/venv/bin/python" -m pytest -p no:cacheprovider -ra "$WORK/tree/python/tests"
