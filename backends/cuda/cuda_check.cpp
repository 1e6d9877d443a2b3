// SPDX-License-Identifier: MIT
#include "cuda_check.h"

namespace pimoe::cuda {

pimoe_status status_of(cudaError_t e) {
  switch (e) {
    case cudaErrorMemoryAllocation:
      return PIMOE_ERR_OUT_OF_MEMORY;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
      return PIMOE_ERR_BACKEND_UNAVAILABLE;
    default:
      return PIMOE_ERR_INTERNAL;
  }
}

void check(cudaError_t e, const char *what) {
  if (e == cudaSuccess) return;
  cudaGetLastError();
  const bool sticky = e == cudaErrorIllegalAddress || e == cudaErrorLaunchFailure || e == cudaErrorHardwareStackError ||
                      e == cudaErrorIllegalInstruction || e == cudaErrorMisalignedAddress ||
                      e == cudaErrorInvalidAddressSpace || e == cudaErrorInvalidPc || e == cudaErrorAssert;
  fail(status_of(e), "cuda: ", what, " failed: ", cudaGetErrorString(e), " (", cudaGetErrorName(e), ")",
       sticky ? "; the CUDA context of this process is lost, no further CUDA work can run in it" : "");
}

void check_launch(const char *kernel) {
  check(cudaGetLastError(), kernel);
}

std::string mib(size_t bytes) {
  return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB";
}

}  // namespace pimoe::cuda
