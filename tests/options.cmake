# SPDX-License-Identifier: MIT
# The option table (src/option_table.h) against pimoe_options.h, its documentation, the bindings' option lists and the
# Vulkan tile choices, read as text from the source tree; and the setters generated from it.
# Included from tests/CMakeLists.txt (pimoe_add_gtest is defined there).
pimoe_add_gtest(test_option_table ${CMAKE_CURRENT_SOURCE_DIR}/test_option_table.cpp)
target_include_directories(test_option_table PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/backends/vulkan)
target_compile_definitions(test_option_table PRIVATE PIMOE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
set_tests_properties(test_option_table PROPERTIES LABELS "api" TIMEOUT 60)

# The environment over the experimental options: apply_tuning_environment is internal, so this test is built from its
# sources, with its own stub for the backend-name check (as tests/fuzz does), and without libpimoe.
add_executable(test_option_env ${CMAKE_CURRENT_SOURCE_DIR}/test_option_env.cpp ${PROJECT_SOURCE_DIR}/src/options.cpp
                               ${PROJECT_SOURCE_DIR}/src/option_env.cpp ${PROJECT_SOURCE_DIR}/src/error.cpp)
target_include_directories(test_option_env PRIVATE ${PROJECT_SOURCE_DIR}/src
                                                   $<TARGET_PROPERTY:pimoe,INTERFACE_INCLUDE_DIRECTORIES>)
target_compile_definitions(test_option_env PRIVATE $<TARGET_PROPERTY:pimoe,INTERFACE_COMPILE_DEFINITIONS>)
target_link_libraries(test_option_env PRIVATE GTest::gtest GTest::gtest_main Threads::Threads)
target_compile_options(test_option_env PRIVATE ${PIMOE_WARNINGS} -Wno-conversion)
add_test(NAME test_option_env COMMAND test_option_env)
set_tests_properties(test_option_env PROPERTIES LABELS "api" TIMEOUT 60)
