# SPDX-License-Identifier: MIT
# The libFuzzer targets of tests/fuzz/targets.txt (one table: name, CI seconds, -max_len, replayed here or not).
# Included from tests/CMakeLists.txt.
#
# Replays (every suite, any compiler): fuzz_replay_<name> runs a target of the public C API on its committed corpus
# tests/fuzz/corpus/<name>/ (seeds and every finding ever fixed), linked to libpimoe like any test, so the Release,
# ASan+UBSan and TSan suites each replay it. The native format's corpus is replayed by test_format (format.cmake).
#
# Fuzzing (with clang and libFuzzer, on Linux, in the suite without sanitizers: the fuzz binaries carry their own
# ASan+UBSan, so running them again in the sanitizer suites would repeat the same work): fuzz_build (a fixture) builds
# an instrumented static libpimoe and every target with tests/fuzz/run_fuzz.sh, then fuzz_<name> fuzzes each for the
# table's seconds when CI=true (else PIMOE_FUZZ_SECONDS, default 10). Skipped (exit 77) without libFuzzer's runtime.

set(PIMOE_FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
file(STRINGS ${PIMOE_FUZZ_DIR}/targets.txt _pimoe_fuzz_rows REGEX "^[a-z]")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PIMOE_FUZZ_DIR}/targets.txt)

find_program(PIMOE_CLANGXX NAMES clang++ clang++-14)
set(_pimoe_fuzzing OFF)
# A cross build leaves fuzzing out: the host clang would build host binaries, tested natively already.
if(PIMOE_CLANGXX AND CMAKE_SYSTEM_NAME STREQUAL "Linux" AND NOT PIMOE_SANITIZE AND NOT CMAKE_CROSSCOMPILING)
  set(_pimoe_fuzzing ON)
  set(_pimoe_fuzz_script bash ${PIMOE_FUZZ_DIR}/run_fuzz.sh --clang ${PIMOE_CLANGXX} --work ${CMAKE_CURRENT_BINARY_DIR}/fuzz)
  add_test(NAME fuzz_build COMMAND ${_pimoe_fuzz_script} build)
  set_tests_properties(fuzz_build PROPERTIES LABELS "fuzz" TIMEOUT 1800 SKIP_RETURN_CODE 77
                       FIXTURES_SETUP pimoe_fuzz_binaries)
endif()

foreach(_row IN LISTS _pimoe_fuzz_rows)
  string(REGEX MATCH "^([a-z_]+) +([0-9]+) +([0-9]+) +(yes|no)" _ "${_row}")
  set(_name ${CMAKE_MATCH_1})
  if(NOT _name OR NOT EXISTS ${PIMOE_FUZZ_DIR}/fuzz_${_name}.cpp OR NOT IS_DIRECTORY ${PIMOE_FUZZ_DIR}/corpus/${_name})
    message(FATAL_ERROR "tests/fuzz/targets.txt: '${_row}' needs tests/fuzz/fuzz_<name>.cpp and corpus/<name>/")
  endif()
  if(CMAKE_MATCH_4 STREQUAL "yes")
    add_executable(fuzz_replay_${_name} ${PIMOE_FUZZ_DIR}/fuzz_replay_main.cpp ${PIMOE_FUZZ_DIR}/fuzz_${_name}.cpp)
    target_link_libraries(fuzz_replay_${_name} PRIVATE pimoe::pimoe Threads::Threads)
    target_compile_options(fuzz_replay_${_name} PRIVATE ${PIMOE_WARNINGS} -Wno-conversion)
    add_test(NAME fuzz_replay_${_name} COMMAND fuzz_replay_${_name} ${PIMOE_FUZZ_DIR}/corpus/${_name})
    set_tests_properties(fuzz_replay_${_name} PROPERTIES LABELS "fuzz" TIMEOUT 300)
  endif()
  if(_pimoe_fuzzing)
    add_test(NAME fuzz_${_name} COMMAND ${_pimoe_fuzz_script} run ${_name})
    set_tests_properties(fuzz_${_name} PROPERTIES LABELS "fuzz" TIMEOUT 600 SKIP_RETURN_CODE 77
                         FIXTURES_REQUIRED pimoe_fuzz_binaries)
  endif()
endforeach()
