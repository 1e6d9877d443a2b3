# SPDX-License-Identifier: MIT
# The Vulkan backend's tests, on Mesa's lavapipe (a CPU implementation of Vulkan: Debian mesa-vulkan-drivers) with
# the Khronos validation layer on (vulkan-validationlayers), so that CI without a GPU runs every kernel:
#   test_parity_vulkan       every parity case of test_parity against the oracle, routing on the device
#   test_parity_vulkan_host  the same with routing on the host (the path of the routing features the device lacks),
#                            the compact-weight cases left to the other two
#   test_parity_vulkan_large_tiles  the same through the large GEMM tiles only (by default small calls use the
#                            small-row kernels and small tiles)
#   test_routing_features_vulkan  every routing feature the host router has (attention router, expert choice,
#                            multi-level groups, adaptive bias, dynamic capacity, attention combine, callback experts,
#                            expert input scaling) against the oracle, through router_logits + run_experts on the device
#   test_hf_import_vulkan    every Hugging Face family's fixture against transformers (test_hf_import's HfParity); the
#                            layer Vulkan refuses (gpt_oss's swiglu_oai) must be refused; FP8 weights run there
#   test_vulkan              device list and selection, weights, fused vs host routing, concurrency, errors
#   test_vulkan_no_loader    libvulkan.so.1 hidden: libpimoe loads, reports Vulkan unavailable, runs on the CPU
#   test_vulkan_no_driver    no Vulkan driver: the same
# Any message of the validation layer's error severity fails the test (FAIL_REGULAR_EXPRESSION below), and
# test_vulkan checks that the layer is really on. tests/vulkan/run_vulkan_tests.sh runs the same binaries on a GPU.
# Included from tests/CMakeLists.txt only when the library has the Vulkan backend (PIMOE_HAVE_VULKAN).

# Built like pimoe_add_gtest's binaries, but registered below only with the environments they need.
foreach(_t test_vulkan test_vulkan_unavailable)
  add_executable(${_t} ${CMAKE_CURRENT_LIST_DIR}/vulkan/${_t}.cpp)
  target_link_libraries(${_t} PRIVATE pimoe::pimoe GTest::gtest GTest::gtest_main Threads::Threads)
  target_include_directories(${_t} PRIVATE ${CMAKE_CURRENT_LIST_DIR})
  target_compile_options(${_t} PRIVATE ${PIMOE_WARNINGS} -Wno-conversion)
endforeach()

add_library(hide_vulkan_loader SHARED ${CMAKE_CURRENT_LIST_DIR}/vulkan/hide_vulkan_loader.c)
target_link_libraries(hide_vulkan_loader PRIVATE ${CMAKE_DL_LIBS})
# libpimoe's reference is versioned (dlopen@GLIBC_2.34): only a definition of that version interposes on it.
target_link_options(hide_vulkan_loader PRIVATE "LINKER:--version-script=${CMAKE_CURRENT_LIST_DIR}/vulkan/hide_vulkan_loader.map")

file(GLOB PIMOE_LAVAPIPE_ICD /usr/share/vulkan/icd.d/lvp_icd*.json)
if(NOT PIMOE_LAVAPIPE_ICD)
  message(STATUS "libpimoe: no lavapipe ICD (Debian: mesa-vulkan-drivers): the Vulkan tests on lavapipe are not built")
  return()
endif()
list(GET PIMOE_LAVAPIPE_ICD 0 PIMOE_LAVAPIPE_ICD)
set(PIMOE_VULKAN_RUNTIME_DIR ${CMAKE_CURRENT_BINARY_DIR}/vulkan-runtime)
file(MAKE_DIRECTORY ${PIMOE_VULKAN_RUNTIME_DIR})
set(_lavapipe_env
    VK_DRIVER_FILES=${PIMOE_LAVAPIPE_ICD}
    VK_ICD_FILENAMES=${PIMOE_LAVAPIPE_ICD}
    XDG_RUNTIME_DIR=${PIMOE_VULKAN_RUNTIME_DIR}
    PIMOE_VULKAN_VALIDATION=sync
    PIMOE_TEST_BACKEND=vulkan:0)
# The backend's messenger prints "pimoe vulkan validation error: ..."; the layer's own log (messages outside the
# messenger's lifetime) says "Validation Error".
set(_validation_fail "pimoe vulkan validation error;Validation Error")

add_test(NAME test_parity_vulkan COMMAND test_parity)
set_tests_properties(test_parity_vulkan PROPERTIES ENVIRONMENT "${_lavapipe_env}")
# Compact weights are decoded by the same kernels whichever side routes: their cases run in the other two variants.
add_test(NAME test_parity_vulkan_host COMMAND test_parity --gtest_filter=-*Compact*)
set_tests_properties(test_parity_vulkan_host PROPERTIES ENVIRONMENT "${_lavapipe_env};PIMOE_VULKAN_ROUTING=host")
add_test(NAME test_parity_vulkan_large_tiles COMMAND test_parity)
set_tests_properties(test_parity_vulkan_large_tiles PROPERTIES ENVIRONMENT "${_lavapipe_env};PIMOE_VULKAN_TILES=large")
add_test(NAME test_routing_features_vulkan COMMAND test_routing_features)
set_tests_properties(test_routing_features_vulkan PROPERTIES ENVIRONMENT "${_lavapipe_env}")
# The Hugging Face fixtures of every family against transformers' outputs, on Vulkan (test_hf_import's HfParity).
add_test(NAME test_hf_import_vulkan COMMAND test_hf_import --gtest_filter=Families/HfParity.*)
set_tests_properties(test_hf_import_vulkan PROPERTIES ENVIRONMENT "${_lavapipe_env}")
add_test(NAME test_vulkan_lavapipe COMMAND test_vulkan)
set_tests_properties(test_vulkan_lavapipe PROPERTIES ENVIRONMENT "${_lavapipe_env}")
set_tests_properties(test_parity_vulkan test_parity_vulkan_host test_parity_vulkan_large_tiles
                     test_routing_features_vulkan test_hf_import_vulkan test_vulkan_lavapipe PROPERTIES
                     LABELS "vulkan" TIMEOUT 900 FAIL_REGULAR_EXPRESSION "${_validation_fail}")

add_test(NAME test_vulkan_no_loader COMMAND test_vulkan_unavailable)
set_tests_properties(test_vulkan_no_loader PROPERTIES LABELS "vulkan" TIMEOUT 120 ENVIRONMENT
  "PIMOE_VULKAN_VALIDATION=0;LD_PRELOAD=$<TARGET_FILE:hide_vulkan_loader>;ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=1;PIMOE_EXPECT_VULKAN_REASON=the Vulkan loader libvulkan.so.1 was not found")
add_test(NAME test_vulkan_no_driver COMMAND test_vulkan_unavailable)
set_tests_properties(test_vulkan_no_driver PROPERTIES LABELS "vulkan" TIMEOUT 120 ENVIRONMENT
  "PIMOE_VULKAN_VALIDATION=0;VK_DRIVER_FILES=${PIMOE_VULKAN_RUNTIME_DIR}/no-such-icd.json;VK_ICD_FILENAMES=${PIMOE_VULKAN_RUNTIME_DIR}/no-such-icd.json;XDG_RUNTIME_DIR=${PIMOE_VULKAN_RUNTIME_DIR};PIMOE_EXPECT_VULKAN_REASON=no usable Vulkan driver")

# libpimoe must not link libvulkan (it is opened at run time): a NEEDED entry would make the library fail to load
# where Vulkan is not installed, before any of the checks above could run.
if(PIMOE_BUILD_SHARED)
  add_test(NAME check_no_vulkan_link
           COMMAND sh -c "readelf -d \"$1\" | grep NEEDED; ! readelf -d \"$1\" | grep -q 'NEEDED.*libvulkan'" sh
                   $<TARGET_FILE:pimoe>)
  set_tests_properties(check_no_vulkan_link PROPERTIES LABELS "vulkan" TIMEOUT 60)
endif()
