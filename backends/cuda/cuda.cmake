# SPDX-License-Identifier: MIT
# The CUDA backend (backends/cuda), built when PIMOE_WITH_CUDA is ON and nvcc is found. Sets PIMOE_HAVE_CUDA and
# PIMOE_CUDA_SOURCES; the library links the CUDA runtime statically (only the driver, libcuda.so.1, is needed at run
# time, and only once the backend is used, so a CUDA build still loads and runs on the CPU where no driver exists).
# CMAKE_CUDA_ARCHITECTURES defaults to 80;90 (sm_80 and sm_90 machine code plus compute_80/90 PTX for newer GPUs).
set(PIMOE_HAVE_CUDA OFF)
set(PIMOE_CUDA_SOURCES "")
if(PIMOE_WITH_CUDA)
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)  # CUDA's usual prefix, when nvcc is not on PATH
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(CMAKE_CUDA_VISIBILITY_PRESET hidden)
    set(PIMOE_HAVE_CUDA ON)
    set(PIMOE_CUDA_SOURCES
        backends/cuda/cuda_backend.cpp
        backends/cuda/cuda_call_plan.cpp
        backends/cuda/cuda_check.cpp
        backends/cuda/cuda_device.cpp
        backends/cuda/cuda_family.cpp
        backends/cuda/cuda_memory.cpp
        backends/cuda/cuda_scratch.cpp
        backends/cuda/cuda_staging.cpp
        backends/cuda/cuda_tuning.cpp
        backends/cuda/cuda_weights.cpp
        backends/cuda/routing.cu
        backends/cuda/elementwise.cu
        backends/cuda/gemv.cu
        backends/cuda/gemv_stream.cu
        backends/cuda/grouped_gemm.cu)
    # The Hopper grouped GEMM (wgmma, TMA) exists only as sm_90a machine code, which runs on compute capability 9.0
    # alone: its own object, built for that target whatever CMAKE_CUDA_ARCHITECTURES says (CUDA_ARCHITECTURES OFF:
    # the -gencode below is the only target); the backend chooses it at run time and otherwise keeps the mma.sync
    # kernel of the architectures above.
    set(PIMOE_HAVE_SM90A OFF)
    if(CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.5)
      add_library(pimoe_cuda_sm90a OBJECT backends/cuda/grouped_gemm_sm90.cu)
      set_target_properties(pimoe_cuda_sm90a PROPERTIES CUDA_ARCHITECTURES OFF POSITION_INDEPENDENT_CODE ON
                            CUDA_VISIBILITY_PRESET hidden CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON)
      target_compile_options(pimoe_cuda_sm90a PRIVATE "-gencode=arch=compute_90a,code=sm_90a")
      set(PIMOE_HAVE_SM90A ON)
    endif()
    pimoe_add_backend(cuda SOURCES ${PIMOE_CUDA_SOURCES} CONFIGURE pimoe_configure_cuda)
    message(STATUS "libpimoe: CUDA backend (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}"
                   "; sm_90a grouped GEMM ${PIMOE_HAVE_SM90A})")
  else()
    message(STATUS "libpimoe: nvcc not found; no CUDA backend")
  endif()
endif()

# Called for each library target (pimoe_configure_backends).
function(pimoe_configure_cuda target)
  if(PIMOE_HAVE_CUDA)
    target_link_libraries(${target} PRIVATE CUDA::cudart_static)
    if(PIMOE_HAVE_SM90A)
      target_sources(${target} PRIVATE $<TARGET_OBJECTS:pimoe_cuda_sm90a>)
      target_compile_definitions(${target} PRIVATE PIMOE_HAVE_SM90A=1)
    endif()
  endif()
endfunction()
