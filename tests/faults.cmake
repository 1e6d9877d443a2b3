# SPDX-License-Identifier: MIT
# Failure injection: allocation failure swept over every N on create, load, import and forward (the injector replaces
# operator new and interposes mmap in this binary only). Run in every suite; in the ASan build LeakSanitizer checks
# each sweep. Included from tests/CMakeLists.txt (pimoe_add_gtest is defined there).
pimoe_add_gtest(test_alloc_failure ${CMAKE_CURRENT_LIST_DIR}/test_alloc_failure.cpp
                ${CMAKE_CURRENT_LIST_DIR}/faults/alloc_injector.cpp)
target_include_directories(test_alloc_failure PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(test_alloc_failure PRIVATE ${CMAKE_DL_LIBS})
target_compile_definitions(test_alloc_failure PRIVATE PIMOE_HF_FIXTURE_DIR="${CMAKE_CURRENT_LIST_DIR}/fixtures")
set_tests_properties(test_alloc_failure PROPERTIES LABELS "api;faults" TIMEOUT 300)
# The interposed mmap runs inside ThreadSanitizer's own start-up (its symbolizer maps memory before the runtime can
# record a call): instrumented, its function-entry hook writes to a trace not yet set up and the binary dies before
# main. The injector is uninstrumented in the TSan build; the library and the test under it stay instrumented.
if(PIMOE_SANITIZE MATCHES "thread")
  set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/faults/alloc_injector.cpp PROPERTIES
                              COMPILE_OPTIONS "-fno-sanitize=thread")
endif()
