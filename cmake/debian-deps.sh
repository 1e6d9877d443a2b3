#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian packages libpimoe's build and tests need, but only those that are missing.
# Usage: cmake/debian-deps.sh [extra-package ...]
set -eu

packages="cmake make g++ pkg-config libopenblas-dev libgtest-dev binutils nlohmann-json3-dev clang libclang-rt-14-dev $*"
# The ABI check (ctest check_abi): abidw and abidiff.
packages="$packages abigail-tools"
# The docs: Doxygen for the C API reference (the doxygen_api_docs test), man and groff to check the man pages,
# help2man to generate pimoe's (docs/man/make_pimoe_man.sh; the pimoe_man_page_current test).
packages="$packages doxygen man-db groff-base help2man"
# The pimoe command: CLI11 parses its arguments (header-only).
packages="$packages libcli11-dev"
# The Vulkan backend: headers, volk and glslc to build it; lavapipe and the validation layer to test it without a GPU.
packages="$packages libvulkan-dev libvulkan-volk-dev glslc spirv-tools mesa-vulkan-drivers vulkan-validationlayers"
missing=""
for p in $packages; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "libpimoe needs these Debian packages:$missing" >&2
  echo "install them as root: apt-get install -y$missing" >&2
  exit 1
fi
echo "== installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
