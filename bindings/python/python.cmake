# SPDX-License-Identifier: MIT
# Python binding (included by bindings/CMakeLists.txt). The binding is an ordinary pip package (bindings/python:
# pyproject.toml + setup.py, which runs SWIG itself), so CMake builds nothing of it; it provides what its test needs:
#   - a build-tree pimoe.pc (<build>/bindings/python/pkgconfig) naming this build's headers and library, through
#     which setup.py finds libpimoe exactly as it finds an installed one (`pkg-config pimoe`);
#   - pimoe_python_probe, the zero-copy probe the tests preload (tests/forward_probe.c);
#   - the ctest python_pytest (label "python"): a fresh venv over the system's site-packages, `pip install
#     --no-build-isolation` of a copy of the package (run_python_tests.sh), then pytest against the C reference.
# The interpreter is Debian's /usr/bin/python3 when present (PIMOE_PYTHON overrides): its packages (python3-numpy,
# python3-setuptools, python3-pytest: python/debian-packages) are what the offline build uses.
if(EXISTS /usr/bin/python3)
  set(_pp_default_python /usr/bin/python3)
else()
  set(_pp_default_python python3)
endif()
set(PIMOE_PYTHON ${_pp_default_python} CACHE STRING "The Python interpreter the Python binding is tested with")
find_program(PIMOE_PKG_CONFIG_EXECUTABLE NAMES pkg-config pkgconf)
if(NOT SWIG_EXECUTABLE OR NOT PIMOE_PKG_CONFIG_EXECUTABLE)
  message(STATUS "libpimoe: Python binding skipped (needs swig and pkg-config: bindings/python/debian-packages)")
  return()
endif()
if(PIMOE_SANITIZE)
  message(STATUS "libpimoe: Python binding skipped in a sanitizer build (the interpreter is not instrumented)")
  return()
endif()
execute_process(COMMAND ${PIMOE_PYTHON} -c "import ensurepip, numpy, pytest, setuptools, sysconfig, venv, wheel; \
import os; assert os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h'))"
                RESULT_VARIABLE _pp_missing OUTPUT_QUIET ERROR_QUIET)
if(NOT _pp_missing EQUAL 0)
  message(STATUS "libpimoe: Python binding skipped (${PIMOE_PYTHON} lacks numpy, pytest, setuptools, wheel, venv or "
                 "Python.h: bindings/python/debian-packages)")
  return()
endif()
message(STATUS "libpimoe: Python binding tested with ${PIMOE_PYTHON}")

set(_pp_src ${CMAKE_CURRENT_SOURCE_DIR}/python)
set(_pp_bin ${CMAKE_CURRENT_BINARY_DIR}/python)

file(GENERATE OUTPUT ${_pp_bin}/pkgconfig/pimoe.pc CONTENT
"Name: pimoe
Description: libpimoe (build tree ${PROJECT_BINARY_DIR})
Version: ${PROJECT_VERSION}
Cflags: -I${PROJECT_SOURCE_DIR}/include -I${PROJECT_BINARY_DIR}/include
Libs: -L$<TARGET_FILE_DIR:pimoe> -lpimoe
")

if(PIMOE_BUILD_TESTS)
  add_library(pimoe_python_probe SHARED ${_pp_src}/tests/forward_probe.c)
  target_include_directories(pimoe_python_probe PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_BINARY_DIR}/include)
  target_link_libraries(pimoe_python_probe PRIVATE ${CMAKE_DL_LIBS})
  set_target_properties(pimoe_python_probe PROPERTIES C_STANDARD 11 C_VISIBILITY_PRESET default)
  pimoe_bindings_reference_fixture(python)
  add_test(NAME python_pytest
           COMMAND sh ${_pp_src}/run_python_tests.sh ${PIMOE_PYTHON} ${_pp_bin} ${_pp_bin}/pkgconfig
                   ${PIMOE_BINDINGS_REFERENCE_DIR} $<TARGET_FILE:pimoe_python_probe>
                   ${PROJECT_SOURCE_DIR}/tests/fixtures)
  set_tests_properties(python_pytest PROPERTIES LABELS python TIMEOUT 300
                       FIXTURES_REQUIRED pimoe_bindings_reference
                       ENVIRONMENT "SWIG=${SWIG_EXECUTABLE};PKG_CONFIG=${PIMOE_PKG_CONFIG_EXECUTABLE}")
  # ctest builds nothing: the probe must exist before the test runs (part of ALL).
endif()
