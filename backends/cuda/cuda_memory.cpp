// SPDX-License-Identifier: MIT
#include "cuda_memory.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "cuda_check.h"
#include "cuda_device.h"
#include "src/error.h"

namespace pimoe::cuda {
namespace {

// The test hook's count (see arm_allocation_fault_from_environment): 0 disarmed, else the required growths left
// until the one that fails.
std::atomic<long long> g_fault_countdown{0};

bool injected_fault() {
  long long left = g_fault_countdown.load(std::memory_order_relaxed);
  while (left > 0) {
    if (g_fault_countdown.compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) return left == 1;
  }
  return false;
}

cudaError_t allocate(MemoryKind kind, size_t bytes, void **ptr, void **device) {
  cudaError_t e = cudaSuccess;
  switch (kind) {
    case MemoryKind::Device:
      e = cudaMalloc(ptr, bytes);
      *device = *ptr;
      break;
    case MemoryKind::MappedHost:
      e = cudaHostAlloc(ptr, bytes, cudaHostAllocMapped);
      if (e == cudaSuccess) {
        e = cudaHostGetDevicePointer(device, *ptr, 0);
        if (e != cudaSuccess) cudaFreeHost(*ptr);
      }
      break;
    case MemoryKind::StagingHost:
      e = cudaHostAlloc(ptr, bytes, cudaHostAllocDefault);
      *device = nullptr;
      break;
  }
  if (e != cudaSuccess) *ptr = *device = nullptr;
  return e;
}

void deallocate(MemoryKind kind, void *ptr) {
  if (kind == MemoryKind::Device) {
    cudaFree(ptr);
  } else {
    cudaFreeHost(ptr);
  }
}

[[noreturn]] void fail_allocation(MemoryKind kind, cudaError_t e, size_t bytes, const std::string &what) {
  cudaGetLastError();
  if (kind != MemoryKind::Device) {
    fail(PIMOE_ERR_OUT_OF_MEMORY, "cuda: cannot allocate ", mib(bytes), " of page-locked host memory for ", what, " (",
         cudaGetErrorName(e), ")");
  }
  size_t free_bytes = 0, total = 0;
  cudaMemGetInfo(&free_bytes, &total);
  cudaGetLastError();
  fail(status_of(e), "cuda: cannot allocate ", mib(bytes), " of device memory for ", what, " (", cudaGetErrorName(e),
       "; ", mib(free_bytes), " free of ", mib(total), " on device ", kDevice, ")");
}

}  // namespace

template <MemoryKind Kind>
int CudaBuffer<Kind>::grow(size_t bytes) {
  release();
  cudaError_t e = cudaSuccess;
  for (const size_t want : {bytes + bytes / 2, bytes}) {
    e = allocate(Kind, want, &ptr_, &device_);
    if (e == cudaSuccess) {
      bytes_ = want;
      return e;
    }
    cudaGetLastError();
  }
  return e;
}

void arm_allocation_fault_from_environment() {
  const char *n = std::getenv("PIMOE_TEST_CUDA_FAIL_ALLOC");
  g_fault_countdown.store(n != nullptr ? std::max(0LL, std::atoll(n)) : 0, std::memory_order_relaxed);
}

template <MemoryKind Kind>
void CudaBuffer<Kind>::reserve(size_t bytes, const std::string &what) {
  if (bytes <= bytes_) return;
  if (injected_fault()) {
    release();
    fail_allocation(Kind, cudaErrorMemoryAllocation, bytes, what);
  }
  const int e = grow(bytes);
  if (e != cudaSuccess) fail_allocation(Kind, static_cast<cudaError_t>(e), bytes, what);
}

template <MemoryKind Kind>
bool CudaBuffer<Kind>::try_reserve(size_t bytes) {
  return bytes <= bytes_ || grow(bytes) == cudaSuccess;
}

template <MemoryKind Kind>
void CudaBuffer<Kind>::release() {
  if (ptr_) deallocate(Kind, ptr_);
  ptr_ = device_ = nullptr;
  bytes_ = 0;
}

template class CudaBuffer<MemoryKind::Device>;
template class CudaBuffer<MemoryKind::MappedHost>;
template class CudaBuffer<MemoryKind::StagingHost>;

}  // namespace pimoe::cuda
