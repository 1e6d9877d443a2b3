# The option table (src/option_table.h) against pimoe.h, its documentation, the bindings' option lists and the
# Vulkan tile choices, read as text from the source tree; and the setters generated from it.
# Included from tests/CMakeLists.txt (pimoe_add_gtest is defined there).
pimoe_add_gtest(test_option_table ${CMAKE_CURRENT_SOURCE_DIR}/test_option_table.cpp)
target_include_directories(test_option_table PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/backends/vulkan)
target_compile_definitions(test_option_table PRIVATE PIMOE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
set_tests_properties(test_option_table PROPERTIES LABELS "api" TIMEOUT 60)
