# SPDX-License-Identifier: MIT
# The CPU backend (backends/cpu): always built. Kernels are compiled once per x86-64 instruction set and chosen at
# run time (cpu_isa.h), so one binary serves every CPU. -fno-trapping-math lets the compiler if-convert their clamps
# and selects, which vectorisation needs; the library never inspects floating-point exception flags.
set(_cpu backends/cpu)
pimoe_add_backend(cpu
  SOURCES ${_cpu}/cpu_backend.cpp ${_cpu}/cpu_family.cpp ${_cpu}/activation.cpp ${_cpu}/activation_generic.cpp
          ${_cpu}/activation_avx2.cpp ${_cpu}/activation_avx512.cpp ${_cpu}/cpu_isa.cpp ${_cpu}/gemm.cpp
          ${_cpu}/packed_gemm.cpp ${_cpu}/packed_gemm_generic.cpp ${_cpu}/packed_gemm_avx2.cpp
          ${_cpu}/packed_gemm_avx512.cpp ${_cpu}/compact_panels.cpp ${_cpu}/compact_gemm_generic.cpp
          ${_cpu}/compact_gemm_avx2.cpp ${_cpu}/compact_gemm_avx512.cpp ${_cpu}/weight_arena.cpp
  CONFIGURE pimoe_configure_cpu)

set(PIMOE_KERNEL_FLAGS -fno-trapping-math -fno-math-errno -ffp-contract=fast -Wno-psabi)
set_source_files_properties(${_cpu}/activation_generic.cpp ${_cpu}/packed_gemm_generic.cpp
                            ${_cpu}/compact_gemm_generic.cpp PROPERTIES COMPILE_OPTIONS "${PIMOE_KERNEL_FLAGS}")
set(PIMOE_HAVE_X86_ISAS OFF)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64" AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  set(PIMOE_HAVE_X86_ISAS ON)
  set_source_files_properties(${_cpu}/activation_avx2.cpp ${_cpu}/packed_gemm_avx2.cpp ${_cpu}/compact_gemm_avx2.cpp
                              PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c;${PIMOE_KERNEL_FLAGS}")
  set_source_files_properties(${_cpu}/activation_avx512.cpp ${_cpu}/packed_gemm_avx512.cpp
                              ${_cpu}/compact_gemm_avx512.cpp
                              PROPERTIES COMPILE_OPTIONS "-mavx512f;-mavx512dq;-mavx2;-mfma;-mf16c;${PIMOE_KERNEL_FLAGS}")
endif()

function(pimoe_configure_cpu target)
  if(PIMOE_HAVE_X86_ISAS)
    target_compile_definitions(${target} PRIVATE PIMOE_HAVE_X86_ISAS=1)
  endif()
  if(PIMOE_HAVE_CBLAS)
    target_compile_definitions(${target} PRIVATE PIMOE_HAVE_CBLAS=1)
    target_include_directories(${target} PRIVATE ${PIMOE_CBLAS_INCLUDE_DIR})
    target_link_libraries(${target} PRIVATE ${PIMOE_OPENBLAS_LIBRARY})
  endif()
endfunction()
