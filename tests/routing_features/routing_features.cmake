# SPDX-License-Identifier: MIT
# test_routing_features: every routing feature of the host router (expert choice, group trees, the attention router,
# adaptive bias, dynamic capacity, the attention combine, callback experts) against the reference oracle, behaviour,
# save/load, errors and concurrency. One binary from the files below (a missing file is a configure error); the
# Vulkan and CUDA parts run the same binary on their backend (PIMOE_TEST_BACKEND). Included from tests/CMakeLists.txt.
pimoe_add_gtest(test_routing_features
                ${CMAKE_CURRENT_LIST_DIR}/harness.cpp
                ${CMAKE_CURRENT_LIST_DIR}/test_feature_parity.cpp
                ${CMAKE_CURRENT_LIST_DIR}/test_behaviour.cpp
                ${CMAKE_CURRENT_LIST_DIR}/test_save_load.cpp
                ${CMAKE_CURRENT_LIST_DIR}/test_errors.cpp
                ${CMAKE_CURRENT_LIST_DIR}/test_concurrency.cpp)
target_include_directories(test_routing_features PRIVATE ${CMAKE_CURRENT_LIST_DIR} ${CMAKE_CURRENT_LIST_DIR}/..)
