# SPDX-License-Identifier: MIT
# Internal pieces of the CPU backend, built from their sources (as test_option_env is), without libpimoe.
# Included from tests/CMakeLists.txt.
# The weight arena (backends/cpu/weight_arena.h).
add_executable(test_weight_arena ${CMAKE_CURRENT_SOURCE_DIR}/test_weight_arena.cpp
                                 ${PROJECT_SOURCE_DIR}/backends/cpu/weight_arena.cpp ${PROJECT_SOURCE_DIR}/src/error.cpp)
target_include_directories(test_weight_arena PRIVATE ${PROJECT_SOURCE_DIR}
                                                     $<TARGET_PROPERTY:pimoe,INTERFACE_INCLUDE_DIRECTORIES>)
target_link_libraries(test_weight_arena PRIVATE GTest::gtest GTest::gtest_main Threads::Threads)
target_compile_options(test_weight_arena PRIVATE ${PIMOE_WARNINGS} -Wno-conversion)
add_test(NAME test_weight_arena COMMAND test_weight_arena)
set_tests_properties(test_weight_arena PROPERTIES LABELS "cpu" TIMEOUT 60)
