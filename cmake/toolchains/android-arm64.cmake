# SPDX-License-Identifier: MIT
# UNTESTED: written from the Android NDK's documented CMake conventions; no NDK can be installed where libpimoe is
# built and tested (docs/platforms.md says what was and was not checked). Builds the library for arm64-v8a devices:
#   cmake -S . -B build-android -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/android-arm64.cmake \
#         -DANDROID_NDK=/path/to/android-ndk-r26 -DPIMOE_BUILD_TESTS=OFF -DPIMOE_BUILD_BINDINGS=OFF \
#         -DPIMOE_WITH_OPENBLAS=OFF -DPIMOE_WITH_VULKAN=OFF -DPIMOE_WITH_CUDA=OFF
# It defers to the NDK's own toolchain file (build/cmake/android.toolchain.cmake), the supported entry point, with
# the ABI, the lowest API level and the C++ runtime fixed here. The NDK's clang targets aarch64, so cpu.cmake builds
# the NEON kernels and cpu_isa.cpp detects the dot-product instructions with getauxval (bionic has it from API 18).
if(NOT ANDROID_NDK)
  set(ANDROID_NDK "$ENV{ANDROID_NDK_HOME}")
endif()
if(NOT ANDROID_NDK OR NOT EXISTS "${ANDROID_NDK}/build/cmake/android.toolchain.cmake")
  message(FATAL_ERROR "android-arm64.cmake: set ANDROID_NDK (or the environment's ANDROID_NDK_HOME) to an NDK folder "
                      "holding build/cmake/android.toolchain.cmake")
endif()
set(ANDROID_ABI arm64-v8a CACHE STRING "The Android ABI (libpimoe's NEON kernels need arm64-v8a)")
# API 24 (Android 7.0): the lowest level the NDK's libc++ supports fully for C++17 file and thread use.
set(ANDROID_PLATFORM android-24 CACHE STRING "The lowest Android API level the library runs on")
# The shared C++ runtime: an app that loads libpimoe.so and other C++ libraries must ship one libc++_shared.so.
set(ANDROID_STL c++_shared CACHE STRING "The NDK's C++ runtime")
include("${ANDROID_NDK}/build/cmake/android.toolchain.cmake")
