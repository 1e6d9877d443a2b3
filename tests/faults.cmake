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
