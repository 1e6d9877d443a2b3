#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Debian packages end to end, with the commands the README's "Debian packages" section shows:
#   1. builds the packages of debian/control (`dpkg-buildpackage -b -us -uc`) in a copy of the source tree (its
#      tracked and not-ignored files, so that nothing of a local build gets in);
#   2. runs lintian on them: any error fails, warnings are printed;
#   3. makes a fresh Debian 12 root with debootstrap, installs every .deb file there with `apt install ./...deb`
#      (apt fetches their dependencies), plus the toolchains of the consumers below (gcc, pkg-config, cmake, a JDK and
#      Maven with Debian's plugins, Mono's mcs, xbuild and nuget, Go);
#   4. in that root: checks the files each package must hold, builds the packaged C example with
#      `cc ... $(pkg-config --cflags --libs pimoe)` and a CMake project with find_package(pimoe), runs both and checks
#      that they load /usr/lib/<triplet>/libpimoe.so.0 built with the Vulkan backend and OpenBLAS, and runs
#      `pimoe-info --version` and `pimoe --version` (the changelog's version);
#   5. in that root, with no network (unshare -n), each binding's packaged example through its ecosystem's own
#      commands: a Maven project (`mvn -s /etc/maven/settings-debian.xml package exec:java`, Debian's offline Maven
#      repository), a C# program (`mcs -pkg:pimoe-sharp`, the assembly from Mono's GAC) and a C# project restored
#      from the packaged NuGet folder feed (`nuget restore`, `xbuild`), a Go module (`go build` with a `replace` to
#      /usr/share/gocode/src/libpimoe.org/pimoe), a Python script (`python3 hello.py`).
# Needs: root (debootstrap, chroot, mount), the Build-Depends of debian/control, dpkg-dev, debhelper, lintian,
# debootstrap, and the Debian archive over the network (debootstrap, and apt inside the new root). A full package
# build plus a root took 18 minutes on the 2-core development machine, so CI does not run it: run it by hand after
# changing debian/.
#
# usage: tests/packaging/check_debs.sh [--work DIR] [--debs DIR] [--mirror URL] [--keep]
#   --work DIR    where the source copy, the .deb files and the root go (default: .dev/debs in the source tree;
#                 emptied first)
#   --debs DIR    use the .deb files already built in DIR (skips step 1)
#   --mirror URL  the Debian archive for debootstrap (default http://deb.debian.org/debian)
#   --keep        leave the root in place (default: removed at the end)
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
work=$src/.dev/debs
debs=""
mirror=http://deb.debian.org/debian
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --work) work=${2:?--work DIR}; shift 2 ;;
    --debs) debs=$(cd "${2:?--debs DIR}" && pwd); shift 2 ;;
    --mirror) mirror=${2:?--mirror URL}; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: $0 [--work DIR] [--debs DIR] [--mirror URL] [--keep]" >&2; exit 2 ;;
  esac
done

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }
[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot and mount)"
for tool in dpkg-buildpackage dpkg-parsechangelog lintian debootstrap chroot objdump; do
  command -v "$tool" >/dev/null || fail "$tool not found (Debian: dpkg-dev, debhelper, lintian, debootstrap)"
done

version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
upstream=${version%-*}
arch=$(dpkg --print-architecture)
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
header_version=$(sed -nE 's/^#define PIMOE_VERSION_STRING "([0-9.]+)"$/\1/p' "$src/include/pimoe/pimoe.h")
[ "$upstream" = "$header_version" ] ||
  fail "debian/changelog's version $version is not that of include/pimoe/pimoe.h ($header_version): add an entry"
packages="libpimoe0 libpimoe-dev pimoe-tools libpimoe-jni libpimoe-java libpimoe-cil libpimoe-cil-dev
golang-libpimoe-pimoe-dev python3-pimoe"

root=$work/root
cleanup() {
  # Never remove a root whose /proc is still mounted: rm would walk into the host's /proc.
  if mountpoint -q "$root/proc" 2>/dev/null; then umount "$root/proc" || return; fi
  if [ "$keep" = 0 ] && [ -d "$root" ]; then rm -rf "$root"; fi
}
trap cleanup EXIT
if mountpoint -q "$root/proc" 2>/dev/null; then umount "$root/proc"; fi
rm -rf "$work"
mkdir -p "$work"

# ------------------------------------------------------------------ 1. build
if [ -z "$debs" ]; then
  step "building the packages in $work/libpimoe-$upstream"
  mkdir "$work/libpimoe-$upstream"
  (cd "$src" && git ls-files -co --exclude-standard -z | tar -c --null -T -) | tar -x -C "$work/libpimoe-$upstream"
  # Debian's tools only (an interpreter or compiler of /usr/local or of a version manager on PATH would be built
  # against instead of Debian's python3, javac or go).
  (cd "$work/libpimoe-$upstream" && PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-parallel=2} dpkg-buildpackage -b -us -uc) \
    >"$work/dpkg-buildpackage.log" 2>&1 || { tail -n 40 "$work/dpkg-buildpackage.log"; fail "dpkg-buildpackage failed"; }
  debs=$work
fi
files=""
for p in $packages; do
  f=${p}_${version}_${arch}.deb
  [ -f "$debs/$f" ] || f=${p}_${version}_all.deb  # the architecture-independent ones
  [ -f "$debs/$f" ] || fail "$debs/${p}_${version}_{$arch,all}.deb not found"
  files="$files $f"
done
echo "ok: built$files"

# ------------------------------------------------------------------ 2. lintian
step "lintian"
changes=$debs/libpimoe_${version}_${arch}.changes
if [ -f "$changes" ]; then lintian_input=$changes; else lintian_input=$(printf "$debs/%s " $files); fi
# shellcheck disable=SC2086
lintian --fail-on error --display-info $lintian_input | tee "$work/lintian.txt" || fail "lintian reports errors"
echo "ok: lintian: $(grep -c '^E:' "$work/lintian.txt" || true) errors, $(grep -c '^W:' "$work/lintian.txt" || true) warnings"

# ------------------------------------------------------------------ 3. a fresh Debian 12 root
step "debootstrap bookworm $root"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 20 "$work/debootstrap.log"; fail "debootstrap failed"; }
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive \
  sh -ec "$1"; }
mkdir "$root/root/debs"
for f in $files; do cp "$debs/$f" "$root/root/debs/"; done

step "apt install the packages"
in_root "apt-get update -qq"
# The README's command (apt resolves the packages' dependencies, e.g. libopenblas0, from the archive).
in_root "cd /root/debs && apt install -y $(printf './%s ' $files)" >"$work/apt.log" 2>&1 ||
  { tail -n 30 "$work/apt.log"; fail "apt install of the packages failed"; }
# The consumers' toolchains: C, Java + Maven with Debian's plugins (maven-debian-helper: settings-debian.xml),
# Mono's compiler, xbuild and nuget, Go.
toolchains="gcc libc6-dev pkg-config cmake make default-jdk-headless maven maven-debian-helper libexec-maven-plugin-java
mono-devel mono-xbuild nuget golang-go"
in_root "apt-get install -y -qq --no-install-recommends $(echo $toolchains)" >>"$work/apt.log" 2>&1 ||
  { tail -n 30 "$work/apt.log"; fail "apt install of the toolchains ($(echo $toolchains)) failed"; }
echo "ok: installed$files"

# ------------------------------------------------------------------ 4. use them
step "what the packages hold"
for expect in "libpimoe0 /usr/lib/$triplet/libpimoe.so.0" \
              "libpimoe0 /usr/share/doc/libpimoe0/copyright" \
              "libpimoe-dev /usr/lib/$triplet/libpimoe.so" \
              "libpimoe-dev /usr/include/pimoe/pimoe.h" \
              "libpimoe-dev /usr/include/pimoe/pimoe.hpp" \
              "libpimoe-dev /usr/lib/$triplet/pkgconfig/pimoe.pc" \
              "libpimoe-dev /usr/lib/$triplet/cmake/pimoe/pimoeConfig.cmake" \
              "libpimoe-dev /usr/share/doc/libpimoe-dev/examples/c/demo.c" \
              "pimoe-tools /usr/bin/pimoe-info" \
              "libpimoe-jni /usr/lib/$triplet/jni/libpimoe_java.so" \
              "libpimoe-java /usr/share/java/pimoe.jar" \
              "libpimoe-java /usr/share/maven-repo/org/pimoe/pimoe/$upstream/pimoe-$upstream.pom" \
              "libpimoe-java /usr/share/doc/libpimoe-java/examples/java/pom.xml" \
              "libpimoe-cil /usr/lib/cli/pimoe-${upstream%.*}/Pimoe.dll" \
              "libpimoe-cil /usr/lib/cli/pimoe-${upstream%.*}/libpimoe_csharp.so" \
              "libpimoe-cil-dev /usr/share/pkgconfig/pimoe-sharp.pc" \
              "libpimoe-cil-dev /usr/share/pimoe/nuget/Pimoe.$upstream.nupkg" \
              "golang-libpimoe-pimoe-dev /usr/share/gocode/src/libpimoe.org/pimoe/go.mod" \
              "golang-libpimoe-pimoe-dev /usr/share/gocode/src/libpimoe.org/pimoe/internal/cpimoe/pimoe_wrap.c" \
              "python3-pimoe /usr/lib/python3/dist-packages/pimoe/__init__.py" \
              "pimoe-tools /usr/bin/pimoe"; do
  set -- $expect
  in_root "dpkg -L $1 | grep -qx '$2'" || fail "package $1 does not hold $2"
  echo "ok: $1 holds $2"
done
soname=$(objdump -p "$root/usr/lib/$triplet/libpimoe.so.0" | awk '$1 == "SONAME" {print $2}')
[ "$soname" = libpimoe.so.0 ] || fail "SONAME is '$soname', expected libpimoe.so.0"
echo "ok: SONAME $soname"

step "a C program through pkg-config"
# The README's commands, in a fresh folder of the new root.
out=$(in_root "mkdir /root/app && cd /root/app
cc -std=c99 /usr/share/doc/libpimoe-dev/examples/c/demo.c \$(pkg-config --cflags --libs pimoe) -o demo
./demo 64 cpu 3
ldd ./demo") || { echo "$out"; fail "the C program did not build or run"; }
# /lib is /usr/lib in Debian 12 (merged /usr), so the loader may name either.
loaded=$(grep -E "^[[:space:]]*libpimoe\.so\.0 => " <<<"$out" || true)
grep -qE "=> (/usr)?/lib/$triplet/libpimoe\.so\.0 " <<<"$loaded" ||
  { echo "$out"; fail "the C program does not load /usr/lib/$triplet/libpimoe.so.0"; }
grep -E "^(libpimoe|build|backend|layer|ran) " <<<"$out" || true
# The package is built with the backends debian/rules asks for (the demo prints pimoe_build_info()).
grep -qE "^build .* backends=vulkan,cpu cpu_gemm=packed,openblas " <<<"$out" ||
  fail "the packaged library is not built with the Vulkan backend and OpenBLAS (see the 'build' line above)"
echo "ok: demo built with pkg-config, ran, loaded${loaded#*=>}"

step "a CMake project through find_package(pimoe)"
mkdir "$root/root/cmake-app"
cat >"$root/root/cmake-app/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.25)
project(app C)
find_package(pimoe ${upstream%.*} REQUIRED)
add_executable(demo /usr/share/doc/libpimoe-dev/examples/c/demo.c)
target_link_libraries(demo PRIVATE pimoe::pimoe)
EOF
out=$(in_root "cd /root/cmake-app && cmake -S . -B build >/dev/null && cmake --build build >/dev/null && build/demo 64 cpu 3") ||
  { echo "$out"; fail "the CMake project did not build or run"; }
echo "ok: demo built with find_package(pimoe) and ran"

step "pimoe-info --version"
out=$(in_root "pimoe-info --version") || fail "pimoe-info --version failed"
echo "$out"
[ "$out" = "pimoe-info (libpimoe) $upstream" ] || fail "pimoe-info --version printed '$out', expected the version $upstream"
echo "ok: pimoe-info --version"
out=$(in_root "pimoe --version") || fail "pimoe --version failed"
[ "$out" = "pimoe (libpimoe) $upstream" ] || fail "pimoe --version printed '$out', expected the version $upstream"
echo "ok: pimoe --version"

# ------------------------------------------------------------------ 5. the bindings, offline
# Each consumer runs in a network namespace of its own with only a loopback device: nothing can be fetched.
offline() { in_root "unshare -n sh -ec '$(printf '%s' "$1" | sed "s/'/'\\\\''/g")'"; }
offline "true" || fail "unshare -n does not work in the root (needed to prove the consumers offline)"

step "Java: a Maven project, offline (Debian's Maven repository)"
out=$(offline "cp -r /usr/share/doc/libpimoe-java/examples/java /root/maven-app && cd /root/maven-app
mvn -B -q -s /etc/maven/settings-debian.xml package exec:java" 2>&1) || { echo "$out"; fail "the Maven project"; }
echo "$out" | grep -vE '^\s*$' | sed 's/^/    /'
grep -q "natives: java.library.path" <<<"$out" || fail "the Java binding did not load the JNI library of libpimoe-jni"
grep -q "java example OK" <<<"$out" || fail "the Java example did not finish"
echo "ok: Maven built and ran examples/java against org.pimoe:pimoe:$upstream of /usr/share/maven-repo"

step "C#: mcs -pkg:pimoe-sharp, the assembly from Mono's GAC"
out=$(offline "mkdir /root/cs-app && cd /root/cs-app
mcs -pkg:pimoe-sharp /usr/share/doc/libpimoe-cil-dev/examples/csharp/Example.cs -out:Example.exe
mono Example.exe
ls" 2>&1) || { echo "$out"; fail "the C# program"; }
echo "$out" | sed 's/^/    /'
grep -q '^ok$' <<<"$out" || fail "the C# example did not finish"
grep -q '^Pimoe.dll$' <<<"$out" && fail "mcs copied Pimoe.dll beside the program (the GAC's should be used)"
in_root "ls -d /usr/lib/mono/gac/Pimoe/${upstream}.0__*" || fail "Pimoe.dll is not in Mono's GAC"
echo "ok: the C# example built with pkg-config pimoe-sharp and ran against the GAC's Pimoe.dll"

step "C#: a project restored from the local NuGet feed /usr/share/pimoe/nuget"
out=$(offline "cp -r /usr/share/doc/libpimoe-cil-dev/examples/csharp /root/nuget-app && cd /root/nuget-app
nuget restore packages.config -Source /usr/share/pimoe/nuget -PackagesDirectory packages -NonInteractive
xbuild /nologo /v:minimal /p:Configuration=Release Example.csproj
mono bin/Release/Example.exe" 2>&1) || { echo "$out"; fail "the NuGet project"; }
echo "$out" | sed 's/^/    /'
grep -q '^ok$' <<<"$out" || fail "the C# example of the NuGet project did not finish"
echo "ok: nuget restore from the folder feed, xbuild, run"

step "Go: a module with a replace to /usr/share/gocode/src/libpimoe.org/pimoe"
out=$(offline "mkdir /root/go-app && cd /root/go-app
cp /usr/share/doc/golang-libpimoe-pimoe-dev/examples/go/main.go .
printf 'module example.com/app\n\ngo 1.19\n\nrequire libpimoe.org/pimoe v0.0.0\n\nreplace libpimoe.org/pimoe => /usr/share/gocode/src/libpimoe.org/pimoe\n' >go.mod
GOPROXY=off go build -o app .
./app" 2>&1) || { echo "$out"; fail "the Go module"; }
echo "$out" | sed 's/^/    /'
grep -q "example: ok" <<<"$out" || fail "the Go example did not finish"
echo "ok: go build with a replace to the packaged module, run"

step "Python: a script importing pimoe (python3-pimoe)"
mkdir "$root/root/py-app"
cat >"$root/root/py-app/hello.py" <<'EOF_PY'
import numpy as np, pimoe
with pimoe.Model(hidden=512, num_experts=8, top_k=2) as m:
    y = m.forward(np.zeros((1, 1, 512), np.float32))
    print(m.stats().tokens_per_second)
print(pimoe.__file__, pimoe.version(), y.shape)
EOF_PY
out=$(offline "cd /root/py-app && python3 hello.py" 2>&1) || { echo "$out"; fail "the Python script"; }
echo "$out" | sed 's/^/    /'
grep -q "^/usr/lib/python3/dist-packages/pimoe/__init__.py $upstream (1, 1, 512)$" <<<"$out" ||
  fail "the script did not run the packaged pimoe $upstream"
echo "ok: python3 hello.py"
echo "PASS: the Debian packages $version build, pass lintian, install in a fresh Debian 12 root and work there"
