# SPDX-License-Identifier: MIT
# bench_vulkan (bench/vulkan/bench_vulkan.cpp): the Vulkan backend on the standard shapes, with the device's
# same-run copy bandwidth, which it measures itself through volk (compiled in, like the library does).
add_executable(bench_vulkan ${CMAKE_CURRENT_LIST_DIR}/bench_vulkan.cpp ${PIMOE_VOLK_INCLUDE_DIR}/volk.c)
target_include_directories(bench_vulkan PRIVATE ${PIMOE_VOLK_INCLUDE_DIR})
target_link_libraries(bench_vulkan PRIVATE pimoe::pimoe Vulkan::Headers ${CMAKE_DL_LIBS})
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/bench_vulkan.cpp PROPERTIES COMPILE_OPTIONS
                            "${PIMOE_WARNINGS};-Wno-missing-field-initializers")
set_source_files_properties(${PIMOE_VOLK_INCLUDE_DIR}/volk.c PROPERTIES COMPILE_OPTIONS "-w")
