#!/bin/sh
# SPDX-License-Identifier: MIT
# Installed-package test of the Go binding (driven by go.cmake; runnable by hand):
#
#   run_go_consumer.sh BUILD_DIR SOURCE_DIR CMAKE GO [CC]
#
# 1. cmake --install BUILD_DIR into a fresh prefix BUILD_DIR/go-consumer-test/prefix.
# 2. Builds examples/go as an outside module whose go.mod requires libpimoe.org/pimoe and replaces it with the Go
#    module INSTALLED under PREFIX/share/pimoe/go; cgo finds libpimoe through `pkg-config pimoe` with PKG_CONFIG_PATH
#    at the prefix only (no build-tree path anywhere), then `go vet`s the installed package.
# 3. Runs the example with LD_LIBRARY_PATH at the prefix and checks with ldd that the prefix's libpimoe is loaded.
set -eu
[ $# -ge 4 ] || { echo "usage: $0 BUILD_DIR SOURCE_DIR CMAKE GO [CC]" >&2; exit 2; }
BUILD_DIR=$(cd "$1" && pwd -P)
SOURCE_DIR=$(cd "$2" && pwd -P)
CMAKE=$3
GO=$4
CC_BIN=${5:-cc}
WORK=$BUILD_DIR/go-consumer-test
PREFIX=$WORK/prefix
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "==== install into $PREFIX"
rm -rf "$WORK"
mkdir -p "$WORK/app"
"$CMAKE" --install "$BUILD_DIR" --prefix "$PREFIX" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; fail "install"; }
GOMOD=$PREFIX/share/pimoe/go
[ -f "$GOMOD/go.mod" ] || fail "no Go module installed at $GOMOD"
[ -f "$GOMOD/internal/cpimoe/pimoe_wrap.c" ] || fail "the installed Go module lacks the SWIG-generated files"
if find "$GOMOD" -name '*_test.go' | grep -q .; then fail "test files were installed"; fi
PCDIR=$(dirname "$(find "$PREFIX" -name pimoe.pc -path '*/pkgconfig/*' | head -n 1)")
[ -f "$PCDIR/pimoe.pc" ] || fail "no pimoe.pc installed"
echo "installed Go module:"; (cd "$GOMOD" && find . -type f | sort | sed 's/^/    /')

echo "==== pkg-config pimoe (PKG_CONFIG_PATH=$PCDIR only)"
export PKG_CONFIG_PATH="$PCDIR" PKG_CONFIG_LIBDIR="$PCDIR"
flags=$(pkg-config --cflags --libs pimoe)
echo "    $flags"
case $flags in *"$PREFIX"*) ;; *) fail "pkg-config does not point into the prefix: $flags" ;; esac
case $flags in *"$BUILD_DIR/"[!g]*|*"$SOURCE_DIR/include"*) fail "pkg-config points at the build or source tree" ;; esac

echo "==== go build examples/go against the installed package"
cp "$SOURCE_DIR/examples/go/main.go" "$WORK/app/main.go"
cat >"$WORK/app/go.mod" <<EOT
module example.com/pimoe-consumer

go 1.19

require libpimoe.org/pimoe v0.0.0

replace libpimoe.org/pimoe => $GOMOD
EOT
export GOCACHE="$WORK/gocache" GOPATH="$WORK/gopath" GOENV=off GOPROXY=off GO111MODULE=on \
       GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=1 CC="$CC_BIN"
unset CGO_CFLAGS CGO_LDFLAGS CPATH LIBRARY_PATH
(cd "$WORK/app" && "$GO" build -o demo_go . && "$GO" vet libpimoe.org/pimoe) || fail "go build / go vet"

echo "==== run"
LD_LIBRARY_PATH=$(dirname "$PCDIR")  # the libdir holding pkgconfig/
export LD_LIBRARY_PATH
ldd "$WORK/app/demo_go" | sed 's/^/    /'
lib=$(ldd "$WORK/app/demo_go" | awk '/libpimoe/ { print $3 }')
[ -n "$lib" ] || fail "demo_go does not load libpimoe"
case $(realpath "$lib") in "$PREFIX"/*) echo "ok: loads the installed $(realpath "$lib")" ;;
  *) fail "demo_go loads $lib, not the copy under $PREFIX" ;; esac
"$WORK/app/demo_go" | tee "$WORK/demo.out"
grep -q "example: ok" "$WORK/demo.out" || fail "the example did not finish"
echo "==== Go consumer test passed"
