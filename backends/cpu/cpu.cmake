# SPDX-License-Identifier: MIT
# The CPU backend (backends/cpu): always built. Kernels are compiled once per instruction set of the target
# architecture (x86-64: generic, AVX2, AVX-512; aarch64: generic, NEON, NEON with dot products) and chosen at run time
# (cpu_isa.h), so one binary serves every CPU of its architecture. -fno-trapping-math lets the compiler if-convert
# their clamps and selects, which vectorisation needs; the library never inspects floating-point exception flags.
set(_cpu backends/cpu)
# Each architecture's kernel files: only the target's are compiled (the others would be more copies of the portable
# code, never called).
set(_cpu_x86 ${_cpu}/activation_avx2.cpp ${_cpu}/activation_avx512.cpp ${_cpu}/packed_gemm_avx2.cpp
             ${_cpu}/packed_gemm_avx512.cpp ${_cpu}/compact_gemm_avx2.cpp ${_cpu}/compact_gemm_avx512.cpp)
set(_cpu_arm ${_cpu}/activation_neon.cpp ${_cpu}/packed_gemm_neon.cpp ${_cpu}/compact_gemm_neon.cpp
             ${_cpu}/compact_gemm_neon_dot.cpp)
set(PIMOE_HAVE_X86_ISAS OFF)
set(PIMOE_HAVE_ARM_ISAS OFF)
set(_cpu_isa_sources "")
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
    set(PIMOE_HAVE_X86_ISAS ON)
    set(_cpu_isa_sources ${_cpu_x86})
  elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64|ARM64")
    set(PIMOE_HAVE_ARM_ISAS ON)
    set(_cpu_isa_sources ${_cpu_arm})
  endif()
endif()
pimoe_add_backend(cpu
  SOURCES ${_cpu}/cpu_backend.cpp ${_cpu}/cpu_family.cpp ${_cpu}/activation.cpp ${_cpu}/activation_generic.cpp
          ${_cpu}/cpu_isa.cpp ${_cpu}/gemm.cpp ${_cpu}/packed_gemm.cpp ${_cpu}/packed_gemm_generic.cpp
          ${_cpu}/compact_panels.cpp ${_cpu}/compact_gemm_generic.cpp ${_cpu}/weight_arena.cpp ${_cpu_isa_sources}
  CONFIGURE pimoe_configure_cpu)

set(PIMOE_KERNEL_FLAGS -fno-trapping-math -fno-math-errno -ffp-contract=fast -Wno-psabi)
set_source_files_properties(${_cpu}/activation_generic.cpp ${_cpu}/packed_gemm_generic.cpp
                            ${_cpu}/compact_gemm_generic.cpp PROPERTIES COMPILE_OPTIONS "${PIMOE_KERNEL_FLAGS}")
if(PIMOE_HAVE_X86_ISAS)
  set_source_files_properties(${_cpu}/activation_avx2.cpp ${_cpu}/packed_gemm_avx2.cpp ${_cpu}/compact_gemm_avx2.cpp
                              PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c;${PIMOE_KERNEL_FLAGS}")
  set_source_files_properties(${_cpu}/activation_avx512.cpp ${_cpu}/packed_gemm_avx512.cpp
                              ${_cpu}/compact_gemm_avx512.cpp
                              PROPERTIES COMPILE_OPTIONS "-mavx512f;-mavx512dq;-mavx2;-mfma;-mf16c;${PIMOE_KERNEL_FLAGS}")
endif()
# aarch64: Advanced SIMD (NEON) is part of the base architecture, so the compiler would vectorise the portable files
# with it too; +nosimd keeps them the portable path (scalar fp32, as a C compiler without SIMD emits it), so that
# PIMOE_CPU_ISA=generic runs other code than the NEON files (their __ARM_NEON branches) and tests it. The dot-product
# file is the one place sdot/udot may appear (FEAT_DotProd, optional from ARMv8.2, checked at run time). GCC 12 offers
# the dot-product intrinsics only with armv8.2-a, whose other instructions (LSE atomics) an ARMv8.0 core lacks: the
# file holds no inline function the linker could pick for callers elsewhere (its object has no weak symbol: `nm`),
# so its code runs only when cpu_isa.cpp has chosen it.
if(PIMOE_HAVE_ARM_ISAS)
  set_source_files_properties(${_cpu}/activation_generic.cpp ${_cpu}/packed_gemm_generic.cpp
                              ${_cpu}/compact_gemm_generic.cpp
                              PROPERTIES COMPILE_OPTIONS "-march=armv8-a+nosimd;${PIMOE_KERNEL_FLAGS}")
  set_source_files_properties(${_cpu}/activation_neon.cpp ${_cpu}/packed_gemm_neon.cpp ${_cpu}/compact_gemm_neon.cpp
                              PROPERTIES COMPILE_OPTIONS "${PIMOE_KERNEL_FLAGS}")
  set_source_files_properties(${_cpu}/compact_gemm_neon_dot.cpp
                              PROPERTIES COMPILE_OPTIONS "-march=armv8.2-a+dotprod;${PIMOE_KERNEL_FLAGS}")
endif()

function(pimoe_configure_cpu target)
  if(PIMOE_HAVE_X86_ISAS)
    target_compile_definitions(${target} PRIVATE PIMOE_HAVE_X86_ISAS=1)
  endif()
  if(PIMOE_HAVE_ARM_ISAS)
    target_compile_definitions(${target} PRIVATE PIMOE_HAVE_ARM_ISAS=1)
  endif()
  if(PIMOE_HAVE_CBLAS)
    target_compile_definitions(${target} PRIVATE PIMOE_HAVE_CBLAS=1)
    target_include_directories(${target} PRIVATE ${PIMOE_CBLAS_INCLUDE_DIR})
    target_link_libraries(${target} PRIVATE ${PIMOE_OPENBLAS_LIBRARY})
  endif()
endfunction()
