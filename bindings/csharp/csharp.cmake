# SPDX-License-Identifier: MIT
# C# bindings: SWIG generates the P/Invoke layer and its C wrapper (libpimoe_csharp.so); Mono's mcs compiles the
# generated code and the hand-written API (src/*.cs) into Pimoe.dll, with its XML documentation Pimoe.xml. Tests run
# with NUnit 2.6's console runner. Included from bindings/CMakeLists.txt (so CMAKE_CURRENT_SOURCE_DIR is bindings/);
# everything here is labelled "csharp". Toolchain packages: bindings/csharp/debian-packages.
set(_cs_dir ${CMAKE_CURRENT_LIST_DIR})
set(_cs_out ${CMAKE_CURRENT_BINARY_DIR}/csharp)

find_program(PIMOE_MCS mcs)
find_program(PIMOE_MONO mono)
find_program(PIMOE_NUNIT_CONSOLE nunit-console)
find_file(PIMOE_NUNIT_FRAMEWORK nunit.framework.dll
          PATHS /usr/lib/cli/nunit.framework-2.6.3 /usr/lib/cli/nunit.framework-2.6 NO_DEFAULT_PATH)

if(NOT SWIG_FOUND OR NOT PIMOE_MCS OR NOT PIMOE_MONO)
  message(STATUS "libpimoe: C# bindings skipped (need swig, mcs and mono: bindings/csharp/debian-packages)")
  return()
endif()
message(STATUS "libpimoe: C# bindings with ${PIMOE_MCS}")

include(UseSWIG)

# ---------------------------------------------------------------- SWIG: P/Invoke layer + C wrapper
swig_add_library(pimoe_csharp TYPE SHARED LANGUAGE csharp
                 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/pimoe.i
                 OUTPUT_DIR ${_cs_out}/generated
                 OUTFILE_DIR ${_cs_out}/wrap)
set_property(TARGET pimoe_csharp PROPERTY SWIG_COMPILE_OPTIONS -Werror -Wall -namespace Pimoe)
set_property(TARGET pimoe_csharp PROPERTY SWIG_USE_TARGET_INCLUDE_DIRECTORIES TRUE)
target_include_directories(pimoe_csharp PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(pimoe_csharp PRIVATE pimoe::pimoe)
set_target_properties(pimoe_csharp PROPERTIES
                      LIBRARY_OUTPUT_DIRECTORY ${_cs_out}
                      INSTALL_RPATH "$ORIGIN"
                      # $ORIGIN in the build tree too: the NuGet package takes this file, beside libpimoe.so.N
                      # (the build tree's tests set LD_LIBRARY_PATH).
                      BUILD_WITH_INSTALL_RPATH TRUE
                      SWIG_DEPENDS "${_cs_dir}/pimoe_csharp.i;${CMAKE_CURRENT_SOURCE_DIR}/pimoe_headers.i")

# ---------------------------------------------------------------- mcs: Pimoe.dll
# PIMOE_CSHARP_KEYFILE: a key pair (sn -k) that strong-names Pimoe.dll, as a global assembly cache needs (the Debian
# package signs it with debian/pimoe.snk and installs it into Mono's GAC); the tests and the benchmark, which see the
# assembly's internals, are signed with it too. Empty (the default): not signed.
set(PIMOE_CSHARP_KEYFILE "" CACHE FILEPATH "Key pair (sn -k) that strong-names Pimoe.dll; empty: not signed")
set(_cs_sign "")
set(_cs_friend_key "")
if(PIMOE_CSHARP_KEYFILE)
  find_program(PIMOE_SN sn REQUIRED)
  file(MAKE_DIRECTORY ${_cs_out})
  execute_process(COMMAND ${PIMOE_SN} -q -p ${PIMOE_CSHARP_KEYFILE} ${_cs_out}/Pimoe.pub COMMAND_ERROR_IS_FATAL ANY)
  execute_process(COMMAND ${PIMOE_SN} -tp ${_cs_out}/Pimoe.pub OUTPUT_VARIABLE _cs_sn_out COMMAND_ERROR_IS_FATAL ANY)
  string(REGEX MATCH "Public Key:[ \t\r\n]*([0-9a-fA-F \t\r\n]+)Public Key Token" _cs_match "${_cs_sn_out}")
  string(REGEX REPLACE "[ \t\r\n]" "" _cs_public_key "${CMAKE_MATCH_1}")
  if(NOT _cs_public_key)
    message(FATAL_ERROR "libpimoe: no public key in ${PIMOE_CSHARP_KEYFILE} (sn -tp printed: ${_cs_sn_out})")
  endif()
  set(_cs_sign -keyfile:${PIMOE_CSHARP_KEYFILE})
  set(_cs_friend_key ", PublicKey=${_cs_public_key}")
  message(STATUS "libpimoe: Pimoe.dll strong-named with ${PIMOE_CSHARP_KEYFILE}")
endif()
file(CONFIGURE OUTPUT ${_cs_out}/BuildConstants.cs CONTENT
"[assembly: System.Runtime.CompilerServices.InternalsVisibleTo(\"PimoeTests${_cs_friend_key}\")]
[assembly: System.Runtime.CompilerServices.InternalsVisibleTo(\"PimoeBench${_cs_friend_key}\")]
namespace Pimoe { internal static class BuildConstants { internal const string Version = \"${PROJECT_VERSION}\"; } }\n")
file(GLOB _cs_sources CONFIGURE_DEPENDS ${_cs_dir}/src/*.cs)
set(PIMOE_MCS_FLAGS -nologo -warn:4 -warnaserror+ -unsafe -optimize+ -debug- CACHE STRING "Flags for mcs")
set(_cs_dll ${_cs_out}/Pimoe.dll)
# Pimoe.xml: the XML documentation of the assembly (from the /// comments), installed beside it where IDEs look for
# it. Under -warnaserror+ a malformed comment or a cref that resolves to nothing fails the build; a public member
# without a comment is not reported (-nowarn:1591: the enums SWIG generates carry none).
set(_cs_doc ${_cs_out}/Pimoe.xml)
add_custom_command(
  OUTPUT ${_cs_dll} ${_cs_doc}
  COMMAND ${PIMOE_MCS} ${PIMOE_MCS_FLAGS} ${_cs_sign} -target:library -out:${_cs_dll} -doc:${_cs_doc} -nowarn:1591
          "-recurse:${_cs_out}/generated/*.cs" ${_cs_out}/BuildConstants.cs ${_cs_sources}
  DEPENDS pimoe_csharp ${_cs_sources} ${_cs_out}/BuildConstants.cs
  COMMENT "mcs: Pimoe.dll"
  VERBATIM)
add_custom_target(pimoe_csharp_assembly ALL DEPENDS ${_cs_dll} ${_cs_doc})

install(TARGETS pimoe_csharp LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${_cs_dll} ${_cs_doc} DESTINATION ${CMAKE_INSTALL_LIBDIR}/cli/pimoe)

# The NuGet package (part of the build when nuget is found; a second): cmake --build <dir> --target pimoe_csharp_nupkg, made by `nuget pack`
# (Debian: nuget) from Pimoe.nuspec.in: lib/net45/Pimoe.dll (+ Pimoe.xml), runtimes/linux-x64/native/ (the glue and
# libpimoe.so.N), build/net45/Pimoe.targets (copies the natives beside a packages.config project's program), LICENSE.
find_program(PIMOE_NUGET nuget)
set(_cs_nupkg ${_cs_out}/nupkg/Pimoe.${PROJECT_VERSION}.nupkg)
set(_cs_stage ${_cs_out}/nupkg/stage)
configure_file(${_cs_dir}/Pimoe.nuspec.in ${_cs_out}/nupkg/Pimoe.nuspec @ONLY)
if(PIMOE_NUGET)
  add_custom_command(
    OUTPUT ${_cs_nupkg}
    COMMAND ${CMAKE_COMMAND} -E rm -rf ${_cs_stage} ${_cs_nupkg}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${_cs_stage}/native
    COMMAND ${CMAKE_COMMAND} -E copy ${_cs_dll} ${_cs_doc} ${_cs_dir}/Pimoe.targets ${PROJECT_SOURCE_DIR}/LICENSE
            ${_cs_stage}/
    COMMAND ${CMAKE_COMMAND} -E copy $<TARGET_FILE:pimoe_csharp> $<TARGET_SONAME_FILE:pimoe> ${_cs_stage}/native/
    COMMAND ${PIMOE_NUGET} pack ${_cs_out}/nupkg/Pimoe.nuspec -BasePath ${_cs_stage}
            -OutputDirectory ${_cs_out}/nupkg -NonInteractive -NoPackageAnalysis
    WORKING_DIRECTORY ${_cs_out}/nupkg
    DEPENDS ${_cs_dll} ${_cs_doc} pimoe_csharp pimoe ${_cs_out}/nupkg/Pimoe.nuspec ${_cs_dir}/Pimoe.targets
    COMMENT "nuget pack: Pimoe.${PROJECT_VERSION}.nupkg"
    VERBATIM)
  add_custom_target(pimoe_csharp_nupkg ALL DEPENDS ${_cs_nupkg})
else()
  message(STATUS "libpimoe: C# NuGet package skipped (nuget not found; Debian: nuget)")
endif()

# ---------------------------------------------------------------- example (examples/csharp)
set(_cs_example ${_cs_out}/Example.exe)
add_custom_command(
  OUTPUT ${_cs_example}
  COMMAND ${PIMOE_MCS} ${PIMOE_MCS_FLAGS} -target:exe -out:${_cs_example} -r:${_cs_dll}
          ${PROJECT_SOURCE_DIR}/examples/csharp/Example.cs
  DEPENDS ${_cs_dll} ${PROJECT_SOURCE_DIR}/examples/csharp/Example.cs
  COMMENT "mcs: Example.exe"
  VERBATIM)
add_custom_target(pimoe_csharp_example ALL DEPENDS ${_cs_example})

# ---------------------------------------------------------------- benchmark (bench/): C# Forward vs the C call
add_library(pimoe_csharp_bench_native SHARED ${_cs_dir}/bench/bench_native.c)
target_link_libraries(pimoe_csharp_bench_native PRIVATE pimoe::pimoe)
set_target_properties(pimoe_csharp_bench_native PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${_cs_out} C_VISIBILITY_PRESET default)
set(_cs_bench ${_cs_out}/PimoeBench.exe)
add_custom_command(
  OUTPUT ${_cs_bench}
  COMMAND ${PIMOE_MCS} ${PIMOE_MCS_FLAGS} ${_cs_sign} -target:exe -out:${_cs_bench} -r:${_cs_dll} ${_cs_dir}/bench/Bench.cs
  DEPENDS ${_cs_dll} ${_cs_dir}/bench/Bench.cs pimoe_csharp_bench_native
  COMMENT "mcs: PimoeBench.exe"
  VERBATIM)
add_custom_target(pimoe_csharp_bench ALL DEPENDS ${_cs_bench})

# ---------------------------------------------------------------- tests (NUnit 2.6 console)
if(NOT PIMOE_BUILD_TESTS)
  return()
endif()
set(_cs_env "LD_LIBRARY_PATH=${_cs_out}:$<TARGET_FILE_DIR:pimoe>")

# The example, and the benchmark in smoke mode (no timing is checked).
add_test(NAME csharp_example COMMAND ${PIMOE_MONO} ${_cs_example})
add_test(NAME csharp_bench_smoke COMMAND ${PIMOE_MONO} ${_cs_bench} --quick)
set_tests_properties(csharp_example csharp_bench_smoke PROPERTIES LABELS csharp TIMEOUT 120
                     ENVIRONMENT "${_cs_env}")
set_tests_properties(csharp_example PROPERTIES PASS_REGULAR_EXPRESSION "libpimoe [0-9]+\\.[0-9]+\\.[0-9]+.*ok")

# The consumer test: the example built and run against the INSTALLED library and assembly.
# With nuget and xbuild, it also restores the NuGet package from a folder feed into examples/csharp/Example.csproj,
# builds that with xbuild and runs it (Debian: nuget, mono-xbuild).
find_program(PIMOE_XBUILD xbuild)
set(_cs_nuget_args "")
if(PIMOE_NUGET AND PIMOE_XBUILD)
  set(_cs_nuget_args ${PIMOE_NUGET} ${PIMOE_XBUILD} ${_cs_nupkg})
else()
  message(STATUS "libpimoe: C# NuGet consumer test skipped (needs nuget and xbuild: bindings/csharp/debian-packages)")
endif()
add_test(NAME csharp_consumer_installed
         COMMAND sh ${_cs_dir}/run_consumer.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${CMAKE_COMMAND}
                 ${PIMOE_MCS} ${PIMOE_MONO} ${_cs_out}/consumer "$<CONFIG>" ${_cs_nuget_args})
set_tests_properties(csharp_consumer_installed PROPERTIES LABELS "csharp;consumer" TIMEOUT 300
                     RESOURCE_LOCK pimoe_consumer_prefix)

# The XML documentation: every public member of the hand-written API (src/*.cs) has its comment (seconds).
add_test(NAME csharp_xml_docs
         COMMAND sh ${_cs_dir}/check_xml_docs.sh ${PIMOE_MCS} ${_cs_out}/xml-docs-check ${_cs_dir}/src
                 ${_cs_out}/generated ${_cs_out}/BuildConstants.cs)
set_tests_properties(csharp_xml_docs PROPERTIES LABELS csharp TIMEOUT 120)

if(NOT PIMOE_NUNIT_CONSOLE OR NOT PIMOE_NUNIT_FRAMEWORK)
  message(STATUS "libpimoe: C# unit tests skipped (need nunit-console and libnunit-cil-dev)")
  return()
endif()

# The C library's own output on the tests' fixed input: the bindings' shared reference, run at test time (a fixture).
pimoe_bindings_reference_fixture(csharp)
# An LD_PRELOAD interposer on pimoe_forward that records the buffer addresses it receives (the no-copy test).
add_library(pimoe_csharp_spy SHARED ${_cs_dir}/tests/forward_spy.c)
target_link_libraries(pimoe_csharp_spy PRIVATE ${CMAKE_DL_LIBS})
target_include_directories(pimoe_csharp_spy PRIVATE $<TARGET_PROPERTY:pimoe,INTERFACE_INCLUDE_DIRECTORIES>)
set_target_properties(pimoe_csharp_spy PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${_cs_out} C_VISIBILITY_PRESET default)

file(GLOB _cs_test_sources CONFIGURE_DEPENDS ${_cs_dir}/tests/*.cs)
set(_cs_tests_dll ${_cs_out}/PimoeTests.dll)
add_custom_command(
  OUTPUT ${_cs_tests_dll}
  COMMAND ${CMAKE_COMMAND} -E copy ${PIMOE_NUNIT_FRAMEWORK} ${_cs_out}/
  COMMAND ${PIMOE_MCS} ${PIMOE_MCS_FLAGS} ${_cs_sign} -target:library -out:${_cs_tests_dll} -r:${_cs_dll}
          -r:${PIMOE_NUNIT_FRAMEWORK} ${_cs_test_sources}
  DEPENDS ${_cs_dll} ${_cs_test_sources}
  COMMENT "mcs: PimoeTests.dll"
  VERBATIM)
add_custom_target(pimoe_csharp_tests ALL DEPENDS ${_cs_tests_dll} pimoe_bindings_reference pimoe_csharp_spy)

add_test(NAME csharp_nunit
         COMMAND ${PIMOE_NUNIT_CONSOLE} -nologo -noshadow -labels -result=${_cs_out}/TestResult.xml ${_cs_tests_dll}
         WORKING_DIRECTORY ${_cs_out})
set_tests_properties(csharp_nunit PROPERTIES LABELS csharp TIMEOUT 120 FIXTURES_REQUIRED pimoe_bindings_reference
                     ENVIRONMENT "${_cs_env};LD_PRELOAD=$<TARGET_FILE:pimoe_csharp_spy>;PIMOE_CSHARP_EXPECTED=${PIMOE_BINDINGS_REFERENCE_DIR}/expected_output.txt;PIMOE_CSHARP_SPY=1;PIMOE_FIXTURES=${PROJECT_SOURCE_DIR}/tests/fixtures"
                     FAIL_REGULAR_EXPRESSION "Tests run: [0-9]+, Errors: [1-9]|Failures: [1-9]|Not run: [1-9]")
