# SPDX-License-Identifier: MIT
# bench_cuda (bench/cuda/bench_cuda.cpp): the CUDA backend on the standard shapes with same-run copy and cuBLAS
# references. It links the CUDA runtime and cuBLAS itself, for those references only.
if(PIMOE_HAVE_CUDA)
  add_executable(bench_cuda ${CMAKE_CURRENT_LIST_DIR}/bench_cuda.cpp)
  target_link_libraries(bench_cuda PRIVATE pimoe::pimoe CUDA::cudart_static CUDA::cublas)
  target_compile_options(bench_cuda PRIVATE ${PIMOE_WARNINGS} -Wno-conversion)
endif()
