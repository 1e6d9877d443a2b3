# SPDX-License-Identifier: MIT
# The reference oracle (see oracle.h): a static library that tests link against. It reads weights through the public
# C API only, so it links libpimoe; it shares no code with src/ or backends/.
add_library(pimoe_oracle STATIC ${CMAKE_CURRENT_LIST_DIR}/oracle.cpp ${CMAKE_CURRENT_LIST_DIR}/oracle_routing.cpp
                              ${CMAKE_CURRENT_LIST_DIR}/oracle_quant.cpp ${CMAKE_CURRENT_LIST_DIR}/oracle_quant.h
                              ${CMAKE_CURRENT_LIST_DIR}/oracle.h)
target_include_directories(pimoe_oracle PUBLIC ${CMAKE_CURRENT_LIST_DIR} ${CMAKE_CURRENT_LIST_DIR}/..)
target_link_libraries(pimoe_oracle PUBLIC pimoe::pimoe)
target_compile_options(pimoe_oracle PRIVATE ${PIMOE_WARNINGS})
