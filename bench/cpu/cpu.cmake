# SPDX-License-Identifier: MIT
# bench_moe (bench/cpu/bench_moe.cpp): the CPU backend on the standard shapes through the public C ABI and, in the
# same run, the reference rates it is judged against: OpenBLAS sgemm on the dense GEMMs of the same FLOPs and a
# memory copy/read bandwidth (src/tools/measure.cpp, shared with `pimoe bench`). It links OpenBLAS directly (not
# through libpimoe) for those references.
add_executable(bench_moe ${CMAKE_CURRENT_LIST_DIR}/bench_moe.cpp ${PROJECT_SOURCE_DIR}/src/tools/measure.cpp)
target_include_directories(bench_moe PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(bench_moe PRIVATE pimoe::pimoe Threads::Threads)
target_compile_options(bench_moe PRIVATE ${PIMOE_WARNINGS})
if(PIMOE_HAVE_CBLAS)
  target_compile_definitions(bench_moe PRIVATE PIMOE_BENCH_HAVE_CBLAS=1 PIMOE_TOOLS_HAVE_CBLAS=1)
  target_include_directories(bench_moe PRIVATE ${PIMOE_CBLAS_INCLUDE_DIR})
  target_link_libraries(bench_moe PRIVATE ${PIMOE_OPENBLAS_LIBRARY})
endif()

# bench_formats (bench/cpu/bench_formats.cpp): the weight formats side by side, decode with cold weights.
add_executable(bench_formats ${CMAKE_CURRENT_LIST_DIR}/bench_formats.cpp)
target_link_libraries(bench_formats PRIVATE pimoe::pimoe)
target_compile_options(bench_formats PRIVATE ${PIMOE_WARNINGS})

# bench_peer_method (bench/cpu/bench_peer_method.cpp): libpimoe timed with the peers' method, for the peer table.
add_executable(bench_peer_method ${CMAKE_CURRENT_LIST_DIR}/bench_peer_method.cpp)
target_link_libraries(bench_peer_method PRIVATE pimoe::pimoe)
target_compile_options(bench_peer_method PRIVATE ${PIMOE_WARNINGS} -Wno-conversion)
