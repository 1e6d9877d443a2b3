# SPDX-License-Identifier: MIT
# Soak: resident memory stays flat over many forwards with varying shapes, threads and backends, and the model
# lifecycle mixed in (tests/soak/soak_rss.cpp). A measurement of the process's memory, so it is registered only in
# builds without a sanitizer (their shadow memory and quarantine grow on their own; there LeakSanitizer is the leak
# check). ctest runs it for 15 s; a long run: soak_rss --seconds 3600. Included from tests/CMakeLists.txt.
add_executable(soak_rss ${CMAKE_CURRENT_LIST_DIR}/soak/soak_rss.cpp)
target_link_libraries(soak_rss PRIVATE pimoe::pimoe)
target_compile_options(soak_rss PRIVATE ${PIMOE_WARNINGS} -Wno-conversion)
if(NOT PIMOE_SANITIZE)
  add_test(NAME soak_rss_short COMMAND soak_rss --seconds 15)
  set_tests_properties(soak_rss_short PROPERTIES LABELS "api;soak" TIMEOUT 120)
endif()
