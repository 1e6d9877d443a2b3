# SPDX-License-Identifier: MIT
# Parity of the library against the reference oracle (tests/oracle): router options, activations, presets, shapes,
# thread counts, determinism and statistics, at fp32. One binary from the files of tests/parity (listed: a missing
# file is a configure error); the Vulkan and CUDA parts run the same binary on their backend (PIMOE_TEST_BACKEND).
pimoe_add_gtest(test_parity
                ${CMAKE_CURRENT_LIST_DIR}/parity/harness.cpp
                ${CMAKE_CURRENT_LIST_DIR}/parity/test_oracle_and_weights.cpp
                ${CMAKE_CURRENT_LIST_DIR}/parity/test_router_and_capacity.cpp
                ${CMAKE_CURRENT_LIST_DIR}/parity/test_experts.cpp
                ${CMAKE_CURRENT_LIST_DIR}/parity/test_shapes_and_determinism.cpp
                ${CMAKE_CURRENT_LIST_DIR}/parity/test_stats_and_router_extensions.cpp
                ${CMAKE_CURRENT_LIST_DIR}/parity/test_compact_weights.cpp
                ${CMAKE_CURRENT_LIST_DIR}/parity/test_gpt_oss_features.cpp)
target_include_directories(test_parity PRIVATE ${CMAKE_CURRENT_LIST_DIR}/parity ${CMAKE_CURRENT_LIST_DIR})
# The compact-weight cases again on the portable kernels (what CPUs without AVX2 run), PIMOE_CPU_ISA lowering the
# detected instruction set (backends/cpu/cpu_isa.cpp).
add_test(NAME test_parity_compact_generic_isa COMMAND test_parity --gtest_filter=*CompactWeights*)
set_tests_properties(test_parity_compact_generic_isa PROPERTIES ENVIRONMENT "PIMOE_CPU_ISA=generic")
# On aarch64 the default is NEON with dot products where the CPU has them (qemu's default CPU does): the NEON
# integer path without them (smull and pair adds) runs here.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64|ARM64")
  add_test(NAME test_parity_compact_neon_isa COMMAND test_parity --gtest_filter=*CompactWeights*)
  set_tests_properties(test_parity_compact_neon_isa PROPERTIES ENVIRONMENT "PIMOE_CPU_ISA=neon")
endif()
