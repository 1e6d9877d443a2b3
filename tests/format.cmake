# SPDX-License-Identifier: MIT
# The native file format: round trips, BF16/F16 files, hostile files, the fuzz corpus as regression tests, compact
# matrices (test_format_compact: every format's layout and round trip, loading into another format, hostile
# quantised files), the pimoe-info CLI and (with clang) a bounded libFuzzer run. Included from tests/CMakeLists.txt.

set(PIMOE_FORMAT_TEST_DIR ${CMAKE_CURRENT_SOURCE_DIR})

pimoe_add_gtest(test_format ${PIMOE_FORMAT_TEST_DIR}/test_format.cpp)
target_include_directories(test_format PRIVATE ${PIMOE_FORMAT_TEST_DIR})
target_link_libraries(test_format PRIVATE nlohmann_json::nlohmann_json)
target_compile_definitions(test_format PRIVATE PIMOE_FUZZ_CORPUS_DIR="${PIMOE_FORMAT_TEST_DIR}/fuzz/corpus")
set_tests_properties(test_format PROPERTIES LABELS "format" TIMEOUT 300)

pimoe_add_gtest(test_format_compact ${PIMOE_FORMAT_TEST_DIR}/test_format_compact.cpp)
target_include_directories(test_format_compact PRIVATE ${PIMOE_FORMAT_TEST_DIR})
target_link_libraries(test_format_compact PRIVATE nlohmann_json::nlohmann_json)
set_tests_properties(test_format_compact PROPERTIES LABELS "format" TIMEOUT 300)

add_test(NAME pimoe_info_cli
         COMMAND bash ${PIMOE_FORMAT_TEST_DIR}/fuzz/check_pimoe_info.sh $<TARGET_FILE:pimoe-info>
                 ${PIMOE_FORMAT_TEST_DIR}/fuzz/corpus ${PIMOE_FORMAT_TEST_DIR}/fixtures ${PROJECT_VERSION})
set_tests_properties(pimoe_info_cli PROPERTIES LABELS "format" TIMEOUT 60)

# libFuzzer needs clang; the main build may use g++, so the script compiles the parser and the target itself with
# clang++ -fsanitize=fuzzer,address,undefined and runs it for a bounded time (60 s when CI=true, else
# PIMOE_FUZZ_SECONDS, default 10). Skipped (ctest status "skipped") when clang++ or libFuzzer is missing.
find_program(PIMOE_CLANGXX NAMES clang++ clang++-14)
if(PIMOE_CLANGXX AND CMAKE_SYSTEM_NAME STREQUAL "Linux")
  add_test(NAME fuzz_safetensors
           COMMAND bash ${PIMOE_FORMAT_TEST_DIR}/fuzz/run_fuzz.sh ${PIMOE_CLANGXX} ${PROJECT_SOURCE_DIR}
                   ${PROJECT_BINARY_DIR}/include ${CMAKE_CURRENT_BINARY_DIR}/fuzz)
  set_tests_properties(fuzz_safetensors PROPERTIES LABELS "format;fuzz" TIMEOUT 600 SKIP_RETURN_CODE 77)
endif()
