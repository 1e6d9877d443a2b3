# SPDX-License-Identifier: MIT
# GPU tests of the CUDA backend, included from tests/CMakeLists.txt when the library has it (PIMOE_HAVE_CUDA). Where
# no usable CUDA device exists each of them prints why and exits 77, which ctest reports as "Skipped"
# (SKIP_RETURN_CODE), never as passed.
pimoe_add_gtest(test_cuda ${CMAKE_CURRENT_LIST_DIR}/test_cuda.cpp)
target_link_libraries(test_cuda PRIVATE CUDA::cudart_static)
set_tests_properties(test_cuda PROPERTIES LABELS "cuda" TIMEOUT 900 SKIP_RETURN_CODE 77)
# The shared parity suite (every router option, activation, shape, determinism, statistics) on the CUDA backend.
add_test(NAME test_parity_cuda COMMAND test_parity)
set_tests_properties(test_parity_cuda PROPERTIES LABELS "cuda" TIMEOUT 900 SKIP_RETURN_CODE 77
                     ENVIRONMENT "PIMOE_TEST_BACKEND=cuda")
# Every routing feature (host routing, the backend's expert kernels) against the oracle on the CUDA backend.
add_test(NAME test_routing_features_cuda COMMAND test_routing_features)
set_tests_properties(test_routing_features_cuda PROPERTIES LABELS "cuda" TIMEOUT 900 SKIP_RETURN_CODE 77
                     ENVIRONMENT "PIMOE_TEST_BACKEND=cuda")
# Device-memory failure swept over every N on create, load and forward (the backend's test hook, cuda_memory.h).
pimoe_add_gtest(test_cuda_alloc_failure ${CMAKE_CURRENT_LIST_DIR}/test_cuda_alloc_failure.cpp)
target_link_libraries(test_cuda_alloc_failure PRIVATE CUDA::cudart_static)
set_tests_properties(test_cuda_alloc_failure PROPERTIES LABELS "cuda;faults" TIMEOUT 300 SKIP_RETURN_CODE 77)
