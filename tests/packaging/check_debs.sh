#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Debian packages end to end, with the commands the README's "Debian packages" section shows:
#   1. builds libpimoe0, libpimoe-dev and pimoe-tools from debian/ (`dpkg-buildpackage -b -us -uc`) in a copy of the
#      source tree (its tracked and not-ignored files, so that nothing of a local build gets in);
#   2. runs lintian on them: any error fails, warnings are printed;
#   3. makes a fresh Debian 12 root with debootstrap, installs the three .deb files there with `apt install ./...deb`
#      (apt fetches their dependencies), plus gcc, pkg-config and cmake;
#   4. in that root: checks the files each package must hold, builds the packaged C example with
#      `cc ... $(pkg-config --cflags --libs pimoe)` and a CMake project with find_package(pimoe), runs both and checks
#      that they load /usr/lib/<triplet>/libpimoe.so.0 built with the Vulkan backend and OpenBLAS, and runs
#      `pimoe-info --version` and `pimoe --version` (the changelog's version).
# Needs: root (debootstrap, chroot, mount), the Build-Depends of debian/control, dpkg-dev, debhelper, lintian,
# debootstrap, and the Debian archive over the network (debootstrap, and apt inside the new root). A full package
# build plus a root: 11 to 15 minutes on 2 cores, so CI does not run it: run it by hand after changing debian/.
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
packages="libpimoe0 libpimoe-dev pimoe-tools"

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
  (cd "$work/libpimoe-$upstream" && DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-parallel=2} dpkg-buildpackage -b -us -uc) \
    >"$work/dpkg-buildpackage.log" 2>&1 || { tail -n 40 "$work/dpkg-buildpackage.log"; fail "dpkg-buildpackage failed"; }
  debs=$work
fi
files=""
for p in $packages; do
  f=${p}_${version}_${arch}.deb
  [ -f "$debs/$f" ] || fail "$debs/$f not found"
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
in_root "apt-get install -y -qq --no-install-recommends gcc libc6-dev pkg-config cmake make" >>"$work/apt.log" 2>&1 ||
  { tail -n 30 "$work/apt.log"; fail "apt install of gcc, pkg-config and cmake failed"; }
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
echo "PASS: the Debian packages $version build, pass lintian, install in a fresh Debian 12 root and work there"
