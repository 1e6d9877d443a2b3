# SPDX-License-Identifier: MIT
# The shared C reference of the bindings' tests (bindings/reference/README.md). Included by bindings/CMakeLists.txt
# before the languages; a language whose tests compare against it calls pimoe_bindings_reference_fixture(<label>)
# and then requires the ctest fixture pimoe_bindings_reference, whose output folder is PIMOE_BINDINGS_REFERENCE_DIR.
set(PIMOE_BINDINGS_REFERENCE_DIR ${CMAKE_CURRENT_BINARY_DIR}/reference)

# Defines (once) the program pimoe_bindings_reference and the ctest fixture that runs it, and adds `label` to the
# fixture's labels.
function(pimoe_bindings_reference_fixture label)
  if(NOT TARGET pimoe_bindings_reference)
    add_executable(pimoe_bindings_reference ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/reference.c)
    target_link_libraries(pimoe_bindings_reference PRIVATE pimoe::pimoe m)
    set_target_properties(pimoe_bindings_reference PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON)
    add_test(NAME bindings_reference COMMAND pimoe_bindings_reference ${PIMOE_BINDINGS_REFERENCE_DIR})
    set_tests_properties(bindings_reference PROPERTIES FIXTURES_SETUP pimoe_bindings_reference TIMEOUT 120)
  endif()
  set_property(TEST bindings_reference APPEND PROPERTY LABELS ${label})
endfunction()
