# SPDX-License-Identifier: MIT
# The pimoe command (src/tools/): `pimoe info --json` per importer family and per routing feature, compared with the
# fixtures' settings and the C API's view of the same layer; `pimoe run` bit for bit against pimoe_forward_routing
# and, on every family's committed input (.safetensors in and out), against pimoe_forward and the transformers output;
# hostile .npy inputs; `pimoe bench` JSON and CSV on a tiny shape; --help and --version. Only when the command is
# built (CLI11 found: src/tools/tools.cmake says so at configure time).
if(PIMOE_HAVE_CLI)
  pimoe_add_gtest(test_pimoe_cli ${CMAKE_CURRENT_LIST_DIR}/cli/test_pimoe_info.cpp
                  ${CMAKE_CURRENT_LIST_DIR}/cli/test_pimoe_run.cpp)
  target_include_directories(test_pimoe_cli PRIVATE ${CMAKE_CURRENT_LIST_DIR})  # hf_import_util.h
  target_link_libraries(test_pimoe_cli PRIVATE nlohmann_json::nlohmann_json)
  target_compile_definitions(test_pimoe_cli PRIVATE PIMOE_HF_FIXTURE_DIR="${CMAKE_CURRENT_LIST_DIR}/fixtures"
                             PIMOE_CLI_PATH="$<TARGET_FILE:pimoe-cli>" PIMOE_CLI_NAME="pimoe")
  add_dependencies(test_pimoe_cli pimoe-cli)
  set_tests_properties(test_pimoe_cli PROPERTIES LABELS "cli;format" TIMEOUT 300)
endif()
