# SPDX-License-Identifier: MIT
# The installed programs (src/tools/README.md), included from CMakeLists.txt after the library.
#   pimoe-info  what a native file or checkpoint holds and whether it loads (always built).
#   pimoe       info, run and bench subcommands, built when CLI11 is found (Debian: libcli11-dev).
# Both read files with the library's own readers, compiled in (the library exports only the C API), and run layers
# through the C API. An installed program finds libpimoe through its RUNPATH ($ORIGIN/../lib: pimoe_install_program).

# The library's readers the programs compile in: the native format and the Hugging Face config, to LayerConfig.
set(PIMOE_TOOL_READER_SOURCES
    src/formats/mapped_file.cpp src/formats/safetensors.cpp src/formats/json_document.cpp src/error.cpp)
add_library(pimoe_layer_info STATIC
            src/tools/layer_info.cpp src/tools/layer_text.cpp src/tools/reader_link.cpp
            src/formats/native_format.cpp src/formats/hf_config.cpp src/options.cpp src/option_env.cpp
            src/layer_config.cpp src/compact_matrix.cpp src/dtype.cpp ${PIMOE_TOOL_READER_SOURCES})
target_include_directories(pimoe_layer_info PUBLIC ${PROJECT_SOURCE_DIR}/src PRIVATE ${PROJECT_SOURCE_DIR})
target_compile_options(pimoe_layer_info PRIVATE ${PIMOE_WARNINGS})
target_link_libraries(pimoe_layer_info PUBLIC pimoe::pimoe nlohmann_json::nlohmann_json)

# pimoe-info: what a native file or checkpoint holds and whether it loads (pimoe info --load, plus the file's own view).
add_executable(pimoe-info src/tools/pimoe_info.cpp)
target_compile_options(pimoe-info PRIVATE ${PIMOE_WARNINGS})
target_link_libraries(pimoe-info PRIVATE pimoe_layer_info)
pimoe_install_program(pimoe-info)

# pimoe: the command with subcommands. CLI11 (header-only) parses its arguments.
find_package(CLI11 2 CONFIG QUIET)
if(CLI11_FOUND)
  set(PIMOE_HAVE_CLI ON)
  add_executable(pimoe-cli src/tools/pimoe_main.cpp src/tools/cmd_info.cpp src/tools/cmd_run.cpp
                           src/tools/cmd_bench.cpp src/tools/tool_model.cpp src/tools/npy.cpp src/tools/token_files.cpp
                           src/tools/measure.cpp src/formats/safetensors_writer.cpp)
  set_target_properties(pimoe-cli PROPERTIES OUTPUT_NAME pimoe)
  target_compile_options(pimoe-cli PRIVATE ${PIMOE_WARNINGS})
  target_link_libraries(pimoe-cli PRIVATE pimoe_layer_info CLI11::CLI11 Threads::Threads)
  if(PIMOE_HAVE_CBLAS)  # the same-run GEMM rate beside bench results (src/tools/measure.cpp)
    target_compile_definitions(pimoe-cli PRIVATE PIMOE_TOOLS_HAVE_CBLAS=1)
    target_include_directories(pimoe-cli PRIVATE ${PIMOE_CBLAS_INCLUDE_DIR})
    target_link_libraries(pimoe-cli PRIVATE ${PIMOE_OPENBLAS_LIBRARY})
  endif()
  pimoe_install_program(pimoe-cli)
  message(STATUS "libpimoe: the pimoe command is built (CLI11 ${CLI11_VERSION})")
else()
  set(PIMOE_HAVE_CLI OFF)
  message(STATUS "libpimoe: the pimoe command is NOT built: CLI11 not found (Debian: libcli11-dev)")
endif()
