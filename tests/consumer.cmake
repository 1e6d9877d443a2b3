# SPDX-License-Identifier: MIT
# Installed-package test: installs this build into a prefix under the build tree, then builds examples/c/demo.c and
# examples/cpp/demo.cpp against the INSTALLED copy, once through pkg-config and once through find_package(pimoe)
# (tests/consumer/CMakeLists.txt), runs them, and checks with ldd that the installed library is the one loaded; checks
# share/doc/pimoe (LICENSE, CHANGELOG.md, the examples' sources) and share/man/man1 (a page per program, linted and
# rendered by man); then copies the prefix elsewhere, hides the original,
# and runs the copied pimoe-info and pimoe (their RUNPATH) and pkg-config on the copied pimoe.pc (relocatable).
set(_pimoe_consumer_flags "")
if(PIMOE_SANITIZE)
  # A sanitized libpimoe needs sanitized executables (the runtime must come first).
  set(_pimoe_consumer_flags "-fsanitize=${PIMOE_SANITIZE} -fno-omit-frame-pointer")
endif()
add_test(NAME consumer_installed_package
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/consumer/run_consumer.sh
                 ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${CMAKE_COMMAND}
                 "--config=$<CONFIG>"
                 "--version=${PROJECT_VERSION}"
                 "--cc=${CMAKE_C_COMPILER}"
                 "--cxx=${CMAKE_CXX_COMPILER}"
                 "--generator=${CMAKE_GENERATOR}"
                 "--flags=${_pimoe_consumer_flags}"
                 "--with-cli=${PIMOE_HAVE_CLI}")
# Installing overwrites the prefix, and every install writes the build tree's install_manifest.txt: never at the same
# time as another installed-package test. The build must be complete (ctest runs after it).
set_tests_properties(consumer_installed_package PROPERTIES LABELS consumer TIMEOUT 900
                     RESOURCE_LOCK pimoe_consumer_prefix)
unset(_pimoe_consumer_flags)
