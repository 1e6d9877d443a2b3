# SPDX-License-Identifier: MIT
# The C API reference (docs/docs.cmake): Doxygen on the public headers with every warning an error, and every
# PIMOE_API function in the HTML's index (check_api_docs.sh). Seconds. Without Doxygen the test is not added, and
# docs/docs.cmake says so at configure time (tests/run_tests.sh installs it: cmake/debian-deps.sh).
if(DOXYGEN_FOUND)
  add_test(NAME doxygen_api_docs
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/check_api_docs.sh ${DOXYGEN_EXECUTABLE} ${PIMOE_DOXYFILE}
                   ${CMAKE_CURRENT_BINARY_DIR}/api-docs ${PROJECT_SOURCE_DIR})
  set_tests_properties(doxygen_api_docs PROPERTIES LABELS "docs;api" TIMEOUT 120)
endif()
