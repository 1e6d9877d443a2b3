# SPDX-License-Identifier: MIT
# C-ABI behaviour tests: errors, basics, statistics, threading, a strict C99 consumer, and the exported symbols.
# Included from tests/CMakeLists.txt (pimoe_add_gtest is defined there).

set(PIMOE_API_TEST_DIR ${CMAKE_CURRENT_SOURCE_DIR})

foreach(t test_api_errors test_api_basics test_stats test_concurrency test_prune)
  pimoe_add_gtest(${t} ${PIMOE_API_TEST_DIR}/${t}.cpp)
  target_include_directories(${t} PRIVATE ${PIMOE_API_TEST_DIR})
  set_tests_properties(${t} PROPERTIES LABELS "api" TIMEOUT 300)
endforeach()
# test_api_errors is two files of one binary around a shared fixture (tests/api/api_errors_fixture.h).
target_sources(test_api_errors PRIVATE ${PIMOE_API_TEST_DIR}/test_api_errors_calls.cpp)

# The header from a strict C99 program: the flags are set on this target only.
add_executable(test_c99_header ${PIMOE_API_TEST_DIR}/test_c99_header.c)
set_target_properties(test_c99_header PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
target_compile_options(test_c99_header PRIVATE -std=c99 -Wall -Wextra -pedantic -Werror)
target_link_libraries(test_c99_header PRIVATE pimoe::pimoe m)
add_test(NAME test_c99_header COMMAND test_c99_header)
set_tests_properties(test_c99_header PROPERTIES LABELS "api" TIMEOUT 60)

# Every public C header compiles alone as strict C99 (a build-time check: one unit per header that includes only it;
# pimoe_export.h holds macros only, an empty unit to pedantic C, and is covered by the others).
set(_pimoe_c99_alone)
foreach(_h IN LISTS PIMOE_PUBLIC_C_HEADERS ITEMS ${PROJECT_SOURCE_DIR}/include/pimoe/pimoe_cuda.h)
  get_filename_component(_name ${_h} NAME_WE)
  if(NOT _name STREQUAL "pimoe_export")
    file(CONFIGURE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/c99_alone/${_name}.c CONTENT "#include <pimoe/${_name}.h>\n")
    list(APPEND _pimoe_c99_alone ${CMAKE_CURRENT_BINARY_DIR}/c99_alone/${_name}.c)
  endif()
endforeach()
add_library(test_c99_headers_alone OBJECT ${_pimoe_c99_alone})
set_target_properties(test_c99_headers_alone PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
target_include_directories(test_c99_headers_alone PRIVATE ${PROJECT_SOURCE_DIR}/include)
target_compile_options(test_c99_headers_alone PRIVATE -std=c99 -Wall -Wextra -pedantic -Werror)

# Exported symbols and SONAME of the shared library.
if(PIMOE_BUILD_SHARED AND CMAKE_SYSTEM_NAME STREQUAL "Linux")
  add_test(NAME check_exports
           COMMAND bash ${PIMOE_API_TEST_DIR}/check_exports.sh $<TARGET_FILE:pimoe>
                   ${PROJECT_SOURCE_DIR}/include/pimoe/pimoe.h)
  set_tests_properties(check_exports PROPERTIES LABELS "api" TIMEOUT 60)
endif()

# The ABI against the committed baseline (tests/abi/): abidw reads the library's DWARF, so the check is registered in
# builds that compile with -g: RelWithDebInfo and Debug, and every sanitizer build (which adds -g), such as the ASan and
# TSan suites of tests/run_tests.sh. A Release build has no debug info and no check_abi (compiling the library once
# more with -g for it would cost CI minutes that the sanitizer suites' libraries already paid).
if(PIMOE_BUILD_SHARED AND CMAKE_SYSTEM_NAME STREQUAL "Linux")
  string(TOUPPER "${CMAKE_BUILD_TYPE}" _pimoe_config)
  if(PIMOE_SANITIZE OR " ${CMAKE_CXX_FLAGS} ${CMAKE_CXX_FLAGS_${_pimoe_config}} " MATCHES " -g[0-9]? ")
    add_test(NAME check_abi
             COMMAND sh ${PIMOE_API_TEST_DIR}/abi/check_abi.sh $<TARGET_FILE:pimoe> ${PROJECT_SOURCE_DIR}/include/pimoe
                     ${PIMOE_API_TEST_DIR}/abi/libpimoe.abi)
    set_tests_properties(check_abi PROPERTIES LABELS "api" TIMEOUT 120 SKIP_RETURN_CODE 77)
  else()
    message(STATUS "libpimoe: no check_abi in this build (no -g: build RelWithDebInfo or Debug to have it)")
  endif()
endif()

# Every source file carries the licence's SPDX identifier.
add_test(NAME check_spdx COMMAND bash ${PIMOE_API_TEST_DIR}/check_spdx.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(check_spdx PROPERTIES LABELS "api" TIMEOUT 60)

# The layering of the source tree, by include scan (docs/design.md, "The rooms").
add_test(NAME check_layering COMMAND bash ${PIMOE_API_TEST_DIR}/check_layering.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(check_layering PROPERTIES LABELS "api" TIMEOUT 60)

# The workspace bytes pimoe_stats reports are the heap the scratch objects hold (operator new is replaced there too).
pimoe_add_gtest(test_workspace_bytes ${PIMOE_API_TEST_DIR}/test_workspace_bytes.cpp)
set_tests_properties(test_workspace_bytes PROPERTIES LABELS "api" TIMEOUT 120)

# No heap allocation per forward call in steady state (operator new is replaced in that test binary).
pimoe_add_gtest(test_steady_state_alloc ${PIMOE_API_TEST_DIR}/test_steady_state_alloc.cpp)
set_tests_properties(test_steady_state_alloc PROPERTIES LABELS "api" TIMEOUT 300)

# Resident memory of compact layers after creation: one process per case (see the file's header).
add_executable(test_compact_memory ${PIMOE_API_TEST_DIR}/test_compact_memory.cpp)
target_link_libraries(test_compact_memory PRIVATE pimoe::pimoe GTest::gtest GTest::gtest_main Threads::Threads)
target_compile_options(test_compact_memory PRIVATE ${PIMOE_WARNINGS} -Wno-conversion)
foreach(_f int4 int8 fp32)
  add_test(NAME test_compact_memory_${_f} COMMAND test_compact_memory --gtest_filter=*/${_f})
  set_tests_properties(test_compact_memory_${_f} PROPERTIES LABELS "api" TIMEOUT 120)
endforeach()
