# SPDX-License-Identifier: MIT
# Internal pieces of the CPU backend, built from their sources (as test_option_env is), without libpimoe.
# Included from tests/CMakeLists.txt.
# The weight arena (backends/cpu/weight_arena.h).
add_executable(test_weight_arena ${CMAKE_CURRENT_SOURCE_DIR}/test_weight_arena.cpp
                                 ${PROJECT_SOURCE_DIR}/backends/cpu/weight_arena.cpp ${PROJECT_SOURCE_DIR}/src/error.cpp)
target_include_directories(test_weight_arena PRIVATE ${PROJECT_SOURCE_DIR}
                                                     $<TARGET_PROPERTY:pimoe,INTERFACE_INCLUDE_DIRECTORIES>)
target_link_libraries(test_weight_arena PRIVATE GTest::gtest GTest::gtest_main Threads::Threads)
target_compile_options(test_weight_arena PRIVATE ${PIMOE_WARNINGS} -Wno-conversion)
# Under qemu-user madvise is a hint the emulator drops (qemu 7.2 returns success without passing it on), so the
# huge-page advice cannot be seen in smaps there: that one case is left out of emulated runs.
if(CMAKE_CROSSCOMPILING_EMULATOR MATCHES "qemu")
  add_test(NAME test_weight_arena COMMAND test_weight_arena --gtest_filter=-WeightArena.StartsOnAHugePageAndIsAdvised)
else()
  add_test(NAME test_weight_arena COMMAND test_weight_arena)
endif()
set_tests_properties(test_weight_arena PROPERTIES LABELS "cpu" TIMEOUT 60)

# The kernels chosen at run time (backends/cpu/cpu_isa.cpp), once per value of PIMOE_CPU_ISA: the CPU's best (none
# set), then each name lowering it (a name of the other architecture must change nothing).
pimoe_add_gtest(test_cpu_kernels ${CMAKE_CURRENT_SOURCE_DIR}/test_cpu_kernels.cpp)
set_tests_properties(test_cpu_kernels PROPERTIES LABELS "cpu" TIMEOUT 60)
foreach(_isa generic avx2 neon)
  add_test(NAME test_cpu_kernels_${_isa} COMMAND test_cpu_kernels)
  set_tests_properties(test_cpu_kernels_${_isa} PROPERTIES LABELS "cpu" TIMEOUT 60 ENVIRONMENT "PIMOE_CPU_ISA=${_isa}")
endforeach()
# Under qemu-user, a CPU model without the dot-product instructions: the detection must fall back to plain NEON.
if(CMAKE_CROSSCOMPILING_EMULATOR MATCHES "qemu-aarch64")
  add_test(NAME test_cpu_kernels_qemu_cortex_a57 COMMAND test_cpu_kernels)
  set_tests_properties(test_cpu_kernels_qemu_cortex_a57 PROPERTIES LABELS "cpu" TIMEOUT 60 ENVIRONMENT "QEMU_CPU=cortex-a57")
endif()
