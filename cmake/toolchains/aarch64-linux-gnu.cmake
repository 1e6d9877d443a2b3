# SPDX-License-Identifier: MIT
# Cross-build for aarch64 (ARM64) Linux with Debian's cross toolchain and multiarch libraries:
#   apt-get install crossbuild-essential-arm64 qemu-user        (the compilers, the emulator)
#   dpkg --add-architecture arm64 && apt-get update
#   apt-get install libgtest-dev:arm64 nlohmann-json3-dev       (the tests' GoogleTest; the JSON header is any-arch)
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
# ctest then runs every test binary through qemu-aarch64 (CMAKE_CROSSCOMPILING_EMULATOR below); tests/cross/
# run_aarch64.sh does all of it. Libraries come from Debian's multiarch folders (/usr/lib/aarch64-linux-gnu, found
# through CMAKE_LIBRARY_ARCHITECTURE), header-only packages from /usr/share: so the find modes stay at their defaults
# for packages and headers, while programs (glslc, swig, javac) are never taken for target tools.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(PIMOE_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${PIMOE_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${PIMOE_CROSS_TRIPLE}-g++)

# The target's own runtime (libc, libstdc++) lives under this root; qemu's -L points the dynamic loader at it.
set(CMAKE_FIND_ROOT_PATH /usr/${PIMOE_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# Test binaries run under user-mode QEMU (ctest, add_test, gtest_discover_tests all honour this).
find_program(PIMOE_QEMU_AARCH64 qemu-aarch64)
if(PIMOE_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${PIMOE_QEMU_AARCH64} -L /usr/${PIMOE_CROSS_TRIPLE})
endif()
