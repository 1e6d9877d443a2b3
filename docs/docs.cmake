# SPDX-License-Identifier: MIT
# Generated documentation (included from CMakeLists.txt after the public headers and the programs are defined):
#   docs              target: the C API reference in HTML, <build>/docs/html/index.html, made by Doxygen from the
#                     public headers' comments (docs/doxygen/Doxyfile.in; Debian: doxygen). Optional: a build without
#                     Doxygen has the target, which then fails saying what to install. Not part of `all`.
#   man pages         docs/man/*.1, installed into share/man/man1: one per program installed into bin/
#                     (tests/consumer/run_consumer.sh checks that each renders). pimoe-info.1 is written by hand in
#                     man(7) troff; pimoe.1 is generated from pimoe's --help by docs/man/make_pimoe_man.sh (help2man)
#                     and committed (the ctest pimoe_man_page_current holds it to the program's help).
# The ctest doxygen_api_docs (tests/docs.cmake) runs the same Doxygen configuration and fails on any warning.

# ---------------------------------------------------------------- man pages, one per installed program
set(PIMOE_MAN1_PAGES ${PROJECT_SOURCE_DIR}/docs/man/pimoe-info.1)
if(PIMOE_HAVE_CLI)  # pimoe.1 is generated from pimoe's --help by docs/man/make_pimoe_man.sh (help2man), committed
  list(APPEND PIMOE_MAN1_PAGES ${PROJECT_SOURCE_DIR}/docs/man/pimoe.1)
endif()
install(FILES ${PIMOE_MAN1_PAGES} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# ---------------------------------------------------------------- the C API reference (Doxygen)
# 1.9.4 (Debian 12) is the first release that knows every setting Doxyfile.in uses (an unknown one is a warning).
find_package(Doxygen 1.9.4 QUIET)
set(PIMOE_DOCS_OUTPUT_DIR ${PROJECT_BINARY_DIR}/docs)
set(PIMOE_DOXYFILE ${PIMOE_DOCS_OUTPUT_DIR}/Doxyfile)
set(PIMOE_DOXYGEN_HEADERS ${PIMOE_PUBLIC_C_HEADERS} ${PROJECT_SOURCE_DIR}/include/pimoe/pimoe_cuda.h)
set(PIMOE_DOXYGEN_INPUT "")
foreach(_pimoe_doc_input IN LISTS PIMOE_DOXYGEN_HEADERS ITEMS ${PROJECT_SOURCE_DIR}/docs/doxygen/mainpage.md)
  string(APPEND PIMOE_DOXYGEN_INPUT " \\\n                         \"${_pimoe_doc_input}\"")
endforeach()
configure_file(${PROJECT_SOURCE_DIR}/docs/doxygen/Doxyfile.in ${PIMOE_DOXYFILE} @ONLY)
if(DOXYGEN_FOUND)
  message(STATUS "libpimoe: API docs with Doxygen ${DOXYGEN_VERSION}: cmake --build <build> --target docs")
  add_custom_target(docs
    COMMAND ${CMAKE_COMMAND} -E rm -rf ${PIMOE_DOCS_OUTPUT_DIR}/html
    COMMAND ${DOXYGEN_EXECUTABLE} ${PIMOE_DOXYFILE}
    COMMAND ${CMAKE_COMMAND} -E echo "API reference: ${PIMOE_DOCS_OUTPUT_DIR}/html/index.html"
    DEPENDS ${PIMOE_DOXYFILE} ${PIMOE_DOXYGEN_HEADERS} ${PROJECT_SOURCE_DIR}/docs/doxygen/mainpage.md
    COMMENT "Doxygen: the C API reference"
    VERBATIM)
else()
  message(STATUS "libpimoe: API docs not available: Doxygen >= 1.9.4 not found (Debian: doxygen)")
  add_custom_target(docs
    COMMAND ${CMAKE_COMMAND} -E echo "the docs target needs Doxygen >= 1.9.4 (Debian: doxygen); reconfigure after installing it"
    COMMAND ${CMAKE_COMMAND} -E false
    VERBATIM)
endif()
unset(_pimoe_doc_input)
