#!/bin/sh
# SPDX-License-Identifier: MIT
# Installed-package test for libpimoe (driven by tests/consumer.cmake; runnable by hand).
#
#   run_consumer.sh BUILD_DIR SOURCE_DIR CMAKE [--config=CFG] [--version=X.Y.Z] [--cc=CC] [--cxx=CXX]
#                   [--generator=GEN] [--flags=EXTRA_FLAGS] [--with-cli=ON|OFF]
#
# 1. cmake --install BUILD_DIR into a fresh prefix BUILD_DIR/consumer-test/prefix, and checks the installed files.
# 2. Compiles examples/c/demo.c with `pkg-config --cflags --libs pimoe` (PKG_CONFIG_PATH at the prefix only), runs it
#    with LD_LIBRARY_PATH at the prefix, and checks with ldd that the prefix's libpimoe is the one loaded.
#    Checks `pkg-config --static` too, and if a static libpimoe.a was installed, links and runs demo.c against it.
# 3. Configures and builds tests/consumer (find_package(pimoe), pimoe::pimoe) with CMAKE_PREFIX_PATH at the prefix,
#    building examples/c/demo.c and examples/cpp/demo.cpp, runs both, and checks with ldd again.
# 4. Copies the prefix to another folder and hides the original: the copied pimoe-info and pimoe (--with-cli=ON: the
#    build has the command) must start (no LD_LIBRARY_PATH: their RUNPATH $ORIGIN/../<libdir>) and load the copy's
#    libpimoe, and pkg-config reading the copy's pimoe.pc must give -I and -L flags into the copy.
# Step 1 also checks share/doc/pimoe: LICENSE and CHANGELOG.md as in the source tree, and the examples' sources; and
# share/man/man1: a man page for every installed program, linted by groff and rendered by man (MANPATH at the prefix).
# Everything happens under BUILD_DIR/consumer-test, wiped first, so it can run any number of times.
set -eu

if [ $# -lt 3 ]; then
  echo "usage: $0 BUILD_DIR SOURCE_DIR CMAKE [--config=CFG] [--version=V] [--cc=CC] [--cxx=CXX]" \
       "[--generator=GEN] [--flags=FLAGS] [--with-cli=ON|OFF]" >&2
  exit 2
fi
BUILD_DIR=$(cd "$1" && pwd -P)
SOURCE_DIR=$(cd "$2" && pwd -P)
CMAKE=$3
shift 3
CONFIG=
VERSION=
CC_BIN=${CC:-cc}
CXX_BIN=${CXX:-c++}
GENERATOR=
EXTRA_FLAGS=
WITH_CLI=OFF
for arg in "$@"; do
  case $arg in
    --config=*) CONFIG=${arg#--config=} ;;
    --version=*) VERSION=${arg#--version=} ;;
    --cc=*) CC_BIN=${arg#--cc=} ;;
    --cxx=*) CXX_BIN=${arg#--cxx=} ;;
    --generator=*) GENERATOR=${arg#--generator=} ;;
    --flags=*) EXTRA_FLAGS=${arg#--flags=} ;;
    --with-cli=*) WITH_CLI=${arg#--with-cli=} ;;
    *) echo "run_consumer.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

WORK=$BUILD_DIR/consumer-test
PREFIX=$WORK/prefix
STEP=setup
fail() {
  echo "FAIL [$STEP]: $*" >&2
  exit 1
}
step() {
  STEP=$1
  echo
  echo "==== $1"
}

# Loaded copy of libpimoe for an executable, as ldd resolves it (empty when statically linked).
loaded_pimoe() {
  ldd "$1" | awk '/libpimoe/ { print $3 }'
}

# Fails unless executable $1 loads libpimoe from the prefix $2 (default: $PREFIX), not from the build tree or the
# system.
check_loads_installed() {
  expected_prefix=${2:-$PREFIX}
  echo "ldd $1:"
  ldd "$1" | sed 's/^/    /'
  lib=$(loaded_pimoe "$1")
  [ -n "$lib" ] || fail "$1 does not load libpimoe at all"
  [ -e "$lib" ] || fail "$1: libpimoe not found ($lib)"
  real=$(realpath "$lib")
  case $real in
    "$expected_prefix"/*) echo "ok: $1 loads the installed $real" ;;
    *) fail "$1 loads $real, not the copy installed under $expected_prefix" ;;
  esac
}

# The real path of the one directory that pkg-config flag $2 (-I or -L) names in the flags $1; fails unless there is
# exactly one.
flag_dir() {
  dirs=$(for f in $1; do case $f in "$2"*) echo "${f#"$2"}" ;; esac; done)
  [ "$(echo "$dirs" | grep -c .)" = 1 ] || fail "expected one $2 flag in '$1', got: $(echo $dirs)"
  [ -d "$dirs" ] || fail "$2$dirs: no such directory"
  realpath "$dirs"
}

# ------------------------------------------------------------------------------------------------ 1. install
step "install into $PREFIX"
rm -rf "$WORK"
mkdir -p "$WORK"
if [ -n "$CONFIG" ]; then
  "$CMAKE" --install "$BUILD_DIR" --prefix "$PREFIX" --config "$CONFIG"
else
  "$CMAKE" --install "$BUILD_DIR" --prefix "$PREFIX"
fi

PC_FILE=$(find "$PREFIX" -name pimoe.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$PC_FILE" ] || fail "no pimoe.pc installed under $PREFIX"
PC_DIR=$(dirname "$PC_FILE")
LIBDIR=$(dirname "$PC_DIR")
CONFIG_FILE=$(find "$PREFIX" -name pimoeConfig.cmake | head -n 1)
[ -n "$CONFIG_FILE" ] || fail "no pimoeConfig.cmake installed under $PREFIX"
[ -f "$PREFIX/include/pimoe/pimoe.h" ] || fail "pimoe.h not installed in $PREFIX/include/pimoe"
for h in pimoe.h pimoe_status.h pimoe_options.h pimoe_model.h pimoe_stats.h pimoe_tensors.h pimoe_backends.h \
         pimoe_export.h pimoe.hpp; do
  [ -f "$PREFIX/include/pimoe/$h" ] || fail "header $h not installed"
done
SHARED=
STATIC=
if [ -e "$LIBDIR/libpimoe.so" ]; then
  SHARED=$LIBDIR/libpimoe.so
  soname=$(readelf -d "$SHARED" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  [ -n "$soname" ] || fail "libpimoe.so has no SONAME"
  [ -e "$LIBDIR/$soname" ] || fail "the SONAME link $soname is not installed"
  if readelf -d "$SHARED" | grep -E '\((RPATH|RUNPATH)\)' | grep -q "$BUILD_DIR"; then
    fail "the installed libpimoe.so keeps an RPATH into the build tree"
  fi
  echo "ok: shared library $(basename "$(realpath "$SHARED")"), SONAME $soname"
fi
if [ -e "$LIBDIR/libpimoe.a" ]; then
  STATIC=$LIBDIR/libpimoe.a
  echo "ok: static library libpimoe.a"
fi
[ -n "$SHARED$STATIC" ] || fail "no libpimoe.so or libpimoe.a in $LIBDIR"
echo "installed files:"
(cd "$PREFIX" && find . -type f -o -type l | sort | sed 's/^/    /')

# share/doc/pimoe: the licence and the changelog as in the source tree, and exactly the examples' sources.
DOCDIR=$PREFIX/share/doc/pimoe
for f in LICENSE CHANGELOG.md; do
  [ -f "$DOCDIR/$f" ] || fail "$f not installed in $DOCDIR"
  cmp -s "$SOURCE_DIR/$f" "$DOCDIR/$f" || fail "the installed $DOCDIR/$f differs from the source tree's"
done
grep -q '^MIT License$' "$DOCDIR/LICENSE" || fail "the installed LICENSE is not the MIT licence"
[ -d "$DOCDIR/examples" ] || fail "no examples installed in $DOCDIR/examples"
example_sources() {  # the examples' sources under $1, as sorted relative paths
  (cd "$1" && find . -type f \( -name '*.c' -o -name '*.cpp' -o -name '*.java' -o -name '*.cs' -o -name '*.go' \
    -o -name '*.py' \) | sort)
}
want_examples=$(example_sources "$SOURCE_DIR/examples")
[ -n "$want_examples" ] || fail "no example sources found under $SOURCE_DIR/examples"
[ "$(example_sources "$DOCDIR/examples")" = "$want_examples" ] ||
  fail "$DOCDIR/examples holds $(example_sources "$DOCDIR/examples" | tr '\n' ' ')instead of $(echo $want_examples)"
for f in $want_examples; do
  cmp -s "$SOURCE_DIR/examples/$f" "$DOCDIR/examples/$f" || fail "the installed example $f differs from its source"
done
echo "ok: $DOCDIR holds LICENSE, CHANGELOG.md and the examples:" $want_examples

# Every program in bin/ (pimoe-info, pimoe): found through a RUNPATH relative to its own folder, never one into the
# build tree.
INFO=$(find "$PREFIX" -type f -name pimoe-info -path '*/bin/*' | head -n 1)
[ -n "$INFO" ] || fail "pimoe-info not installed under $PREFIX"
for prog in "$(dirname "$INFO")"/*; do
  [ -f "$prog" ] && [ -x "$prog" ] || continue
  name=$(basename "$prog")
  runpath=$(readelf -d "$prog" | sed -n 's/.*(\(RPATH\|RUNPATH\)).*\[\(.*\)\]/\2/p')
  echo "$name RUNPATH: ${runpath:-(none)}"
  case $runpath in *"$BUILD_DIR"*) fail "the installed $name keeps an RPATH into the build tree" ;; esac
  if [ -n "$SHARED" ]; then
    case ":$runpath:" in
      *':$ORIGIN/'*) echo "ok: $name finds libpimoe relative to its folder" ;;
      *) fail "the installed $name has no \$ORIGIN-relative RUNPATH: it cannot start from a custom prefix" ;;
    esac
  fi
done
# pimoe, the command with subcommands, is built when CLI11 is found; this build says whether it was.
CLI=$(dirname "$INFO")/pimoe
if [ "$WITH_CLI" = ON ]; then
  [ -x "$CLI" ] || fail "the build has the pimoe command (CLI11 found) but $CLI is not installed"
else
  [ ! -e "$CLI" ] || fail "$CLI is installed by a build without the pimoe command"
fi

# share/man/man1: a page for every program installed into bin/. groff's lint finds nothing in it (-ww: every warning;
# -z: no output), man finds it through MANPATH (as `man NAME` does once the prefix's share/man is on it) and renders it
# without a warning, its NAME section names the program, and its OPTIONS section has an entry for every option of the
# program's usage line.
MANDIR=$PREFIX/share/man
command -v man >/dev/null || fail "man not found (Debian: man-db); this test renders the installed man pages"
command -v groff >/dev/null || fail "groff not found (Debian: groff-base); this test lints the installed man pages"
programs=0
for prog in "$PREFIX"/bin/*; do
  [ -f "$prog" ] && [ -x "$prog" ] || continue
  name=$(basename "$prog")
  programs=$((programs + 1))
  page=$MANDIR/man1/$name.1
  [ -f "$page" ] || fail "no man page for the installed program $name: $page"
  lint=$(groff -man -ww -z "$page" 2>&1) || fail "groff -man -ww -z $page exited with $?: $lint"
  [ -z "$lint" ] || fail "groff -man -ww -z $page: $lint"
  rc=0
  LC_ALL=C MANWIDTH=80 MANPATH=$MANDIR man --warnings -P cat "$name" >"$WORK/man-$name.txt" 2>"$WORK/man-$name.err" ||
    rc=$?
  [ "$rc" = 0 ] || fail "MANPATH=$MANDIR man $name exited with $rc: $(cat "$WORK/man-$name.err")"
  [ ! -s "$WORK/man-$name.err" ] || fail "man $name warns: $(cat "$WORK/man-$name.err")"
  grep -A1 '^NAME' "$WORK/man-$name.txt" | grep -q "^ *$name  *- " ||
    fail "man $name: its NAME section does not name $name"
  usage=$("$prog" --help 2>&1) || true  # pimoe-info prints it on stderr, pimoe (CLI11) on stdout
  options=$(echo "$usage" | grep -oE '[[ ]--?[a-z][a-z-]*' | cut -c2- | sort -u)
  [ -n "$options" ] || fail "$name --help prints no usage line with options: '$usage'"
  # Each option heads an entry of the OPTIONS section ("--opt", "--opt ARG" or "-o, --opt" at the line's start).
  sed -n '/^OPTIONS/,/^[A-Z]/p' "$WORK/man-$name.txt" >"$WORK/man-$name.options"
  for option in $options; do
    grep -qE -e "^ +(-[a-z], )?$option( |,|$)" "$WORK/man-$name.options" ||
      fail "man $name has no entry for $option in its OPTIONS section (its usage: $usage)"
  done
  echo "ok: man $name renders (lines: $(wc -l <"$WORK/man-$name.txt")) and documents" $options
done
[ "$programs" -gt 0 ] || fail "no program installed in $PREFIX/bin"

# ------------------------------------------------------------------------------------------------ 2. pkg-config
step "pkg-config"
# Only the prefix: never a system-wide pimoe.pc.
PKG_CONFIG_PATH=$PC_DIR
PKG_CONFIG_LIBDIR=$PC_DIR
export PKG_CONFIG_PATH PKG_CONFIG_LIBDIR
unset PKG_CONFIG_SYSROOT_DIR 2>/dev/null || true
command -v pkg-config >/dev/null || fail "pkg-config not found (Debian: pkg-config); this test uses it"
pkg-config --exists --print-errors pimoe || fail "pkg-config cannot read pimoe.pc"
pc_version=$(pkg-config --modversion pimoe)
header_version=$(sed -n 's/^#define PIMOE_VERSION_STRING "\(.*\)"$/\1/p' "$PREFIX/include/pimoe/pimoe.h")
echo "pkg-config --modversion pimoe: $pc_version (pimoe.h: $header_version)"
[ "$pc_version" = "$header_version" ] || fail "pimoe.pc version $pc_version != header version $header_version"
if [ -n "$VERSION" ]; then
  [ "$pc_version" = "$VERSION" ] || fail "pimoe.pc version $pc_version != project version $VERSION"
fi
# The .pc must describe the prefix it was installed to (cmake --install --prefix relocates the package; pimoe.pc
# finds its prefix from its own folder, step 4 moves it).
pc_prefix=$(pkg-config --variable=prefix pimoe)
pc_includedir=$(pkg-config --variable=includedir pimoe)
pc_libdir=$(pkg-config --variable=libdir pimoe)
echo "prefix=$pc_prefix includedir=$pc_includedir libdir=$pc_libdir"
if [ ! -f "$pc_includedir/pimoe/pimoe.h" ] ||
   [ "$(realpath "$pc_includedir/pimoe/pimoe.h")" != "$PREFIX/include/pimoe/pimoe.h" ]; then
  fail "pimoe.pc's includedir ($pc_includedir) is not the installed $PREFIX/include: the .pc is not relocatable"
fi
if [ ! -d "$pc_libdir" ] || [ "$(realpath "$pc_libdir")" != "$(realpath "$LIBDIR")" ]; then
  fail "pimoe.pc's libdir ($pc_libdir) is not the installed $LIBDIR: the .pc is not relocatable"
fi

CFLAGS_PC=$(pkg-config --cflags pimoe)
LIBS_PC=$(pkg-config --libs pimoe)
LIBS_STATIC=$(pkg-config --static --libs pimoe)
echo "--cflags:        $CFLAGS_PC"
echo "--libs:          $LIBS_PC"
echo "--static --libs: $LIBS_STATIC"
case " $LIBS_PC " in *" -lpimoe "*) ;; *) fail "pkg-config --libs lacks -lpimoe" ;; esac
# Static linking must name every library that libpimoe itself depends on.
if [ -n "$SHARED" ]; then
  for needed in $(readelf -d "$SHARED" | sed -n 's/.*(NEEDED).*\[lib\([^.]*\)\.so.*\]/\1/p'); do
    case $needed in
      c | gcc_s | dl | rt) continue ;; # always linked by the compiler driver
      asan | ubsan | tsan | lsan) continue ;; # sanitizer runtimes come with -fsanitize
      stdc++ | c++)
        # A C program linking libpimoe.a needs the C++ runtime named explicitly.
        case " $LIBS_STATIC " in
          *" -l$needed "*) ;;
          *) echo "WARNING: libpimoe needs lib$needed but pkg-config --static --libs does not list -l$needed" \
                  "(C programs linking libpimoe.a statically will fail)" ;;
        esac
        continue ;;
    esac
    case " $LIBS_STATIC " in
      *" -l$needed "* | *"/lib$needed."*) echo "ok: static libs list lib$needed" ;;
      *) fail "libpimoe.so needs lib$needed, which pkg-config --static --libs pimoe does not list" ;;
    esac
  done
fi

# shellcheck disable=SC2086 # the flags are word lists
if [ -n "$SHARED" ]; then
  echo "compiling demo.c: $CC_BIN -std=c99 ... \$(pkg-config --cflags --libs pimoe)"
  "$CC_BIN" -std=c99 -Wall -Wextra -Wpedantic -Werror $EXTRA_FLAGS "$SOURCE_DIR/examples/c/demo.c" \
    $CFLAGS_PC $LIBS_PC -o "$WORK/demo_pkgconfig" || fail "demo.c does not build with pkg-config's flags"
  echo "compiling demo.cpp: $CXX_BIN -std=c++17 ... \$(pkg-config --cflags --libs pimoe)"
  "$CXX_BIN" -std=c++17 -Wall -Wextra -Wpedantic -Werror $EXTRA_FLAGS "$SOURCE_DIR/examples/cpp/demo.cpp" \
    $CFLAGS_PC $LIBS_PC -o "$WORK/demo_cpp_pkgconfig" || fail "demo.cpp does not build with pkg-config's flags"
  (
    LD_LIBRARY_PATH=$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export LD_LIBRARY_PATH
    check_loads_installed "$WORK/demo_pkgconfig"
    check_loads_installed "$WORK/demo_cpp_pkgconfig"
    echo "running demo_pkgconfig 64 auto 5"
    "$WORK/demo_pkgconfig" 64 auto 5 || fail "demo (pkg-config build) exited with $?"
    echo "running demo_cpp_pkgconfig"
    "$WORK/demo_cpp_pkgconfig" || fail "demo_cpp (pkg-config build) exited with $?"
  ) || exit 1
fi
if [ -n "$STATIC" ]; then
  step "pkg-config --static (libpimoe.a)"
  # -l:libpimoe.a picks the archive even when libpimoe.so sits beside it.
  static_libs=$(echo " $LIBS_STATIC " | sed 's/ -lpimoe / -l:libpimoe.a /')
  echo "compiling demo.c: $CC_BIN -std=c99 ... $static_libs"
  "$CC_BIN" -std=c99 -Wall -Wextra -Wpedantic -Werror $EXTRA_FLAGS "$SOURCE_DIR/examples/c/demo.c" \
    $CFLAGS_PC $static_libs -o "$WORK/demo_static" ||
    fail "demo.c does not link statically with pkg-config --static --libs pimoe"
  [ -z "$(loaded_pimoe "$WORK/demo_static")" ] || fail "demo_static still loads a shared libpimoe"
  "$WORK/demo_static" 16 cpu 2 >/dev/null || fail "demo_static exited with $?"
  echo "ok: statically linked demo runs"
fi

# ------------------------------------------------------------------------------------------------ 3. find_package
step "find_package(pimoe) consumer project"
unset PKG_CONFIG_PATH PKG_CONFIG_LIBDIR
set -- -S "$SOURCE_DIR/tests/consumer" -B "$WORK/cmake-build" \
  -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DCMAKE_BUILD_TYPE="${CONFIG:-Release}" \
  -DCMAKE_C_COMPILER="$CC_BIN" -DCMAKE_CXX_COMPILER="$CXX_BIN" \
  -DPIMOE_EXAMPLES_DIR="$SOURCE_DIR/examples" \
  -DPIMOE_EXPECTED_VERSION="$VERSION"
if [ -n "$GENERATOR" ]; then set -- "$@" -G "$GENERATOR"; fi
if [ -n "$EXTRA_FLAGS" ]; then
  set -- "$@" -DCMAKE_C_FLAGS="$EXTRA_FLAGS" -DCMAKE_CXX_FLAGS="$EXTRA_FLAGS" -DCMAKE_EXE_LINKER_FLAGS="$EXTRA_FLAGS"
fi
"$CMAKE" "$@" > "$WORK/cmake-configure.log" 2>&1 || { cat "$WORK/cmake-configure.log"; fail "configure failed"; }
cat "$WORK/cmake-configure.log"
found_dir=$(sed -n 's/^-- consumer: found pimoe .* in \(.*\)$/\1/p' "$WORK/cmake-configure.log")
case $(realpath "$found_dir") in
  "$PREFIX"/*) echo "ok: find_package used $found_dir" ;;
  *) fail "find_package(pimoe) found $found_dir, not the package installed under $PREFIX" ;;
esac
"$CMAKE" --build "$WORK/cmake-build" --config "${CONFIG:-Release}" || fail "the consumer project does not build"
for exe in consumer_demo_c consumer_demo_cpp; do
  path=$(find "$WORK/cmake-build" -type f -name "$exe" | head -n 1)
  [ -n "$path" ] || fail "$exe was not built"
  if [ -n "$SHARED" ]; then check_loads_installed "$path"; fi
  echo "running $exe"
  if [ "$exe" = consumer_demo_c ]; then
    "$path" 64 auto 5 || fail "$exe exited with $?"
  else
    "$path" || fail "$exe exited with $?"
  fi
done

# ------------------------------------------------------------------------------------------------ 4. moved prefix
step "the prefix moved to another folder"
MOVED=$WORK/moved/pimoe-prefix
mkdir -p "$(dirname "$MOVED")"
cp -a "$PREFIX" "$MOVED"
# The original prefix is hidden while the copy runs, so that no absolute path into it can serve.
mv "$PREFIX" "$PREFIX.hidden"
(
  moved_info=$MOVED${INFO#"$PREFIX"}
  unset LD_LIBRARY_PATH
  if [ -n "$SHARED" ]; then check_loads_installed "$moved_info" "$MOVED"; fi
  echo "running $moved_info $SOURCE_DIR/tests/fixtures/mixtral"
  rc=0
  "$moved_info" "$SOURCE_DIR/tests/fixtures/mixtral" > "$WORK/moved-info.log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    cat "$WORK/moved-info.log"
    fail "pimoe-info from the moved prefix exited with $rc"
  fi
  sed 's/^/    /' "$WORK/moved-info.log"
  grep -q '^loads: *yes' "$WORK/moved-info.log" || fail "pimoe-info from the moved prefix does not report 'loads: yes'"
  echo "ok: pimoe-info runs from the moved prefix"
  if [ "$WITH_CLI" = ON ]; then
    moved_cli=$MOVED${CLI#"$PREFIX"}
    if [ -n "$SHARED" ]; then check_loads_installed "$moved_cli" "$MOVED"; fi
    echo "running $moved_cli info $SOURCE_DIR/tests/fixtures/mixtral --layer 1 --load"
    rc=0
    "$moved_cli" info "$SOURCE_DIR/tests/fixtures/mixtral" --layer 1 --load > "$WORK/moved-cli.log" 2>&1 || rc=$?
    sed 's/^/    /' "$WORK/moved-cli.log"
    [ "$rc" = 0 ] || fail "pimoe info from the moved prefix exited with $rc"
    grep -q '^loads: *yes' "$WORK/moved-cli.log" || fail "pimoe info from the moved prefix does not report 'loads: yes'"
    echo "ok: pimoe runs from the moved prefix"
  fi

  moved_pc_dir=$MOVED${PC_DIR#"$PREFIX"}
  PKG_CONFIG_PATH=$moved_pc_dir
  PKG_CONFIG_LIBDIR=$moved_pc_dir
  export PKG_CONFIG_PATH PKG_CONFIG_LIBDIR
  moved_cflags=$(pkg-config --cflags pimoe) || fail "pkg-config cannot read the moved pimoe.pc"
  moved_libs=$(pkg-config --libs pimoe)
  echo "--cflags: $moved_cflags"
  echo "--libs:   $moved_libs"
  [ "$(flag_dir "$moved_cflags" -I)" = "$MOVED/include" ] ||
    fail "pkg-config --cflags of the moved pimoe.pc points at $(flag_dir "$moved_cflags" -I), not $MOVED/include"
  [ "$(flag_dir "$moved_libs" -L)" = "$MOVED${LIBDIR#"$PREFIX"}" ] ||
    fail "pkg-config --libs of the moved pimoe.pc points at $(flag_dir "$moved_libs" -L), not $MOVED${LIBDIR#"$PREFIX"}"
  echo "ok: the moved pimoe.pc gives -I and -L into the moved prefix"
  if [ -n "$SHARED" ]; then
    # shellcheck disable=SC2086 # the flags are word lists
    "$CC_BIN" -std=c99 $EXTRA_FLAGS "$SOURCE_DIR/examples/c/demo.c" $moved_cflags $moved_libs -o "$WORK/demo_moved" ||
      fail "demo.c does not build with the moved pimoe.pc's flags"
    LD_LIBRARY_PATH=$MOVED${LIBDIR#"$PREFIX"} "$WORK/demo_moved" 8 cpu 1 >/dev/null ||
      fail "demo built against the moved prefix exited with $?"
    echo "ok: demo.c builds and runs against the moved prefix"
  fi
) || { mv "$PREFIX.hidden" "$PREFIX"; exit 1; }
mv "$PREFIX.hidden" "$PREFIX"

echo
echo "PASS: the installed libpimoe works through pkg-config and find_package, and from a moved prefix"
