# SPDX-License-Identifier: MIT
# The native file format: round trips, BF16/F16 files, hostile files, the safetensors fuzz corpus as regression tests,
# compact matrices (test_format_compact: every format's layout and round trip, loading into another format, hostile
# quantised files) and the pimoe-info CLI. Included from tests/CMakeLists.txt. The fuzz targets: tests/fuzz.cmake.

set(PIMOE_FORMAT_TEST_DIR ${CMAKE_CURRENT_SOURCE_DIR})

pimoe_add_gtest(test_format ${PIMOE_FORMAT_TEST_DIR}/test_format.cpp ${PIMOE_FORMAT_TEST_DIR}/test_format_hostile.cpp)
target_include_directories(test_format PRIVATE ${PIMOE_FORMAT_TEST_DIR})
target_link_libraries(test_format PRIVATE nlohmann_json::nlohmann_json)
target_compile_definitions(test_format PRIVATE PIMOE_FUZZ_CORPUS_DIR="${PIMOE_FORMAT_TEST_DIR}/fuzz/corpus/safetensors")
set_tests_properties(test_format PROPERTIES LABELS "format" TIMEOUT 300)

pimoe_add_gtest(test_format_compact ${PIMOE_FORMAT_TEST_DIR}/test_format_compact.cpp)
target_include_directories(test_format_compact PRIVATE ${PIMOE_FORMAT_TEST_DIR})
target_link_libraries(test_format_compact PRIVATE nlohmann_json::nlohmann_json)
set_tests_properties(test_format_compact PROPERTIES LABELS "format" TIMEOUT 300)

add_test(NAME pimoe_info_cli
         COMMAND bash ${PIMOE_FORMAT_TEST_DIR}/fuzz/check_pimoe_info.sh $<TARGET_FILE:pimoe-info>
                 ${PIMOE_FORMAT_TEST_DIR}/fuzz/corpus/safetensors ${PIMOE_FORMAT_TEST_DIR}/fixtures ${PROJECT_VERSION})
set_tests_properties(pimoe_info_cli PROPERTIES LABELS "format" TIMEOUT 60)
