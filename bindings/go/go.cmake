# SPDX-License-Identifier: MIT
# Go binding (included by bindings/CMakeLists.txt).
#
# CMake's UseSWIG cannot build Go (cgo must compile the wrapper), so this file:
#   1. copies the hand-written Go module (bindings/go: go.mod, package pimoe, internal/...) into
#      <build>/bindings/go/module, and runs `swig -go -cgo -intgosize 64 -package cpimoe -Werror` there to generate
#      internal/cpimoe/{pimoe.go,pimoe_wrap.c};
#   2. writes a build-tree pimoe.pc (<build>/bindings/go/pkgconfig) so that cgo's `#cgo pkg-config: pimoe` finds the
#      headers and the library of this build, exactly as it finds an installed libpimoe;
#   3. runs `go build ./...` (target pimoe_go, part of ALL) and builds examples/go;
#   4. adds the ctests (label "go"): go vet, go test (reference = the C API called directly through cgo), the
#      example, and the installed-package test (run_go_consumer.sh);
#   5. installs the Go module (generated files included, tests excluded) into share/pimoe/go.
# Go runs offline: GOPROXY=off, GOFLAGS=-mod=mod, GOCACHE and GOPATH under the build tree.
find_program(PIMOE_GO_EXECUTABLE NAMES go PATHS /usr/lib/go/bin)
find_program(PIMOE_PKG_CONFIG_EXECUTABLE NAMES pkg-config pkgconf)
if(NOT SWIG_EXECUTABLE OR NOT PIMOE_GO_EXECUTABLE OR NOT PIMOE_PKG_CONFIG_EXECUTABLE)
  message(STATUS "libpimoe: Go binding skipped (needs swig, go and pkg-config: bindings/go/debian-packages)")
  return()
endif()
if(PIMOE_SANITIZE)
  message(STATUS "libpimoe: Go binding skipped in a sanitizer build (cgo binaries are not instrumented)")
  return()
endif()
message(STATUS "libpimoe: Go binding with ${PIMOE_GO_EXECUTABLE}")

set(_go_src ${CMAKE_CURRENT_SOURCE_DIR}/go)
set(_go_bin ${CMAKE_CURRENT_BINARY_DIR}/go)
set(_go_mod ${_go_bin}/module)
set(_go_example ${_go_bin}/example)
set(_go_gen ${_go_mod}/internal/cpimoe)

# ---------------------------------------------------------------- 1. module tree: hand-written files + SWIG output
file(GLOB_RECURSE _go_files RELATIVE ${_go_src} CONFIGURE_DEPENDS ${_go_src}/*.go ${_go_src}/go.mod)
set(_go_copy_commands)
set(_go_copied)
foreach(_f IN LISTS _go_files)
  list(APPEND _go_copy_commands COMMAND ${CMAKE_COMMAND} -E copy_if_different ${_go_src}/${_f} ${_go_mod}/${_f})
  list(APPEND _go_copied ${_go_src}/${_f})
endforeach()
add_custom_command(OUTPUT ${_go_bin}/copied.stamp
                   COMMAND ${CMAKE_COMMAND} -E make_directory ${_go_gen}
                   ${_go_copy_commands}
                   COMMAND ${CMAKE_COMMAND} -E touch ${_go_bin}/copied.stamp
                   DEPENDS ${_go_copied}
                   COMMENT "Go: copying the hand-written module into ${_go_mod}")

add_custom_command(OUTPUT ${_go_gen}/pimoe.go ${_go_gen}/pimoe_wrap.c
                   COMMAND ${CMAKE_COMMAND} -E make_directory ${_go_gen}
                   COMMAND ${SWIG_EXECUTABLE} -go -cgo -intgosize 64 -package cpimoe -Wall -Werror
                           -I${PROJECT_SOURCE_DIR}/include -I${PROJECT_BINARY_DIR}/include
                           -outdir ${_go_gen} -o ${_go_gen}/pimoe_wrap.c ${CMAKE_CURRENT_SOURCE_DIR}/pimoe.i
                   DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/pimoe.i ${_go_src}/pimoe_go.i
                           ${CMAKE_CURRENT_SOURCE_DIR}/pimoe_headers.i ${PIMOE_PUBLIC_C_HEADERS}
                   COMMENT "SWIG: generating the Go package internal/cpimoe")

# ---------------------------------------------------------------- 2. build-tree pkg-config file
file(GENERATE OUTPUT ${_go_bin}/pkgconfig/pimoe.pc CONTENT
"Name: pimoe
Description: libpimoe (build tree ${PROJECT_BINARY_DIR})
Version: ${PROJECT_VERSION}
Cflags: -I${PROJECT_SOURCE_DIR}/include -I${PROJECT_BINARY_DIR}/include
Libs: -L$<TARGET_FILE_DIR:pimoe> -Wl,-rpath,$<TARGET_FILE_DIR:pimoe> -lpimoe
")

set(PIMOE_GO_ENV
    GOCACHE=${_go_bin}/cache GOPATH=${_go_bin}/gopath GOENV=off GOPROXY=off GO111MODULE=on
    "GOFLAGS=-mod=mod -buildvcs=false" CGO_ENABLED=1 CC=${CMAKE_C_COMPILER}
    PKG_CONFIG_PATH=${_go_bin}/pkgconfig)

# ---------------------------------------------------------------- 3. go build, and the example
configure_file(${PROJECT_SOURCE_DIR}/examples/go/main.go ${_go_example}/main.go COPYONLY)
file(WRITE ${_go_example}/go.mod.in
"module libpimoe.org/pimoe/examples/go

go 1.19

require libpimoe.org/pimoe v0.0.0

replace libpimoe.org/pimoe => ${_go_mod}
")
configure_file(${_go_example}/go.mod.in ${_go_example}/go.mod COPYONLY)
add_custom_command(OUTPUT ${_go_bin}/built.stamp ${_go_example}/pimoe_example_go
                   COMMAND ${CMAKE_COMMAND} -E env ${PIMOE_GO_ENV} ${PIMOE_GO_EXECUTABLE} build ./...
                   COMMAND ${CMAKE_COMMAND} -E chdir ${_go_example}
                           ${CMAKE_COMMAND} -E env ${PIMOE_GO_ENV} ${PIMOE_GO_EXECUTABLE} build -o pimoe_example_go .
                   COMMAND ${CMAKE_COMMAND} -E touch ${_go_bin}/built.stamp
                   WORKING_DIRECTORY ${_go_mod}
                   DEPENDS ${_go_bin}/copied.stamp ${_go_gen}/pimoe.go ${_go_gen}/pimoe_wrap.c
                           ${_go_example}/main.go ${_go_example}/go.mod pimoe ${_go_bin}/pkgconfig/pimoe.pc
                   COMMENT "Go: go build of package pimoe and examples/go")
add_custom_target(pimoe_go ALL DEPENDS ${_go_bin}/built.stamp)

# ---------------------------------------------------------------- 4. tests
if(PIMOE_BUILD_TESTS)
  add_test(NAME go_vet
           COMMAND ${CMAKE_COMMAND} -E env ${PIMOE_GO_ENV} ${PIMOE_GO_EXECUTABLE} vet . ./internal/cref
           WORKING_DIRECTORY ${_go_mod})
  # The unit tests, and each benchmark once (-benchtime=1x) so that they stay runnable; measure with
  #   go test -run '^$' -bench . -benchtime 2s   (in ${_go_mod}, with the environment of PIMOE_GO_ENV).
  add_test(NAME go_test
           COMMAND ${CMAKE_COMMAND} -E env ${PIMOE_GO_ENV} PIMOE_FIXTURES=${PROJECT_SOURCE_DIR}/tests/fixtures
                   ${PIMOE_GO_EXECUTABLE} test -count=1 -v
                   -bench=. -benchtime=1x .
           WORKING_DIRECTORY ${_go_mod})
  add_test(NAME go_example COMMAND ${_go_example}/pimoe_example_go)
  set_tests_properties(go_example PROPERTIES PASS_REGULAR_EXPRESSION "example: ok")
  add_test(NAME go_consumer_installed_package
           COMMAND sh ${_go_src}/run_go_consumer.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${CMAKE_COMMAND}
                   ${PIMOE_GO_EXECUTABLE} ${CMAKE_C_COMPILER})
  set_tests_properties(go_vet go_test go_example go_consumer_installed_package PROPERTIES LABELS go TIMEOUT 300)
  # cmake --install of one build tree writes its install_manifest.txt there: one install at a time.
  set_tests_properties(go_consumer_installed_package PROPERTIES RESOURCE_LOCK pimoe_consumer_prefix)
endif()

# ---------------------------------------------------------------- 5. install the Go module
install(DIRECTORY ${_go_mod}/ DESTINATION ${CMAKE_INSTALL_DATADIR}/pimoe/go
        FILES_MATCHING PATTERN "*.go" PATTERN "*.c" PATTERN "go.mod"
        PATTERN "*_test.go" EXCLUDE PATTERN "cref" EXCLUDE)
# A Go module carries its licence at its root (the go tool and pkg.go.dev look for it there).
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DATADIR}/pimoe/go)

unset(_go_files)
unset(_go_copy_commands)
unset(_go_copied)
