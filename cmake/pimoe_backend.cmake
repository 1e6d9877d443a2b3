# SPDX-License-Identifier: MIT
# pimoe_add_backend(NAME SOURCES file... [CONFIGURE function]): the one way a backend joins the build.
# Called from the backend's own CMake file (backends/<name>/<name>.cmake) once it has found what it needs:
#   - its SOURCES are compiled into the library (PIMOE_BACKEND_SOURCES);
#   - NAME is recorded in PIMOE_BACKENDS, and each library target gets PIMOE_HAVE_<NAME>=1, the switch of the
#     backend's line in src/backend_registry.cpp, and the CMake variable PIMOE_HAVE_<NAME> is ON for the tests;
#   - CONFIGURE names a function(target) that adds the backend's own include directories, definitions and libraries.
# A backend whose tools are missing does not call it, and the registry lists it as not compiled in.
macro(pimoe_add_backend name)
  cmake_parse_arguments(_pimoe_backend "" "CONFIGURE" "SOURCES" ${ARGN})
  string(TOUPPER "${name}" _pimoe_backend_upper)
  list(APPEND PIMOE_BACKENDS ${name})
  list(APPEND PIMOE_BACKEND_SOURCES ${_pimoe_backend_SOURCES})
  set(PIMOE_HAVE_${_pimoe_backend_upper} ON)
  set(PIMOE_BACKEND_CONFIGURE_${name} "${_pimoe_backend_CONFIGURE}")
endmacro()

# Applies every added backend's definitions and configure function to a library target.
function(pimoe_configure_backends target)
  foreach(_name IN LISTS PIMOE_BACKENDS)
    string(TOUPPER "${_name}" _upper)
    target_compile_definitions(${target} PRIVATE PIMOE_HAVE_${_upper}=1)
    if(PIMOE_BACKEND_CONFIGURE_${_name})
      cmake_language(CALL ${PIMOE_BACKEND_CONFIGURE_${_name}} ${target})
    endif()
  endforeach()
endfunction()
