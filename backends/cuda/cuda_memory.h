/* SPDX-License-Identifier: MIT */
// Memory the backend owns: one RAII buffer type for device memory and for the two kinds of page-locked host memory.
// Buffers only grow, and do not keep their contents when they do: per-call scratch sized by the largest call seen.
#pragma once

#include <cstddef>
#include <string>

namespace pimoe::cuda {

enum class MemoryKind {
  Device,      // cudaMalloc
  MappedHost,  // page-locked host memory mapped into the device's address space: copies to and from it are
               // asynchronous and run at full PCIe speed, and kernels can write small results into it directly
  StagingHost  // page-locked host memory that only DMA copies touch (staging of large host inputs and outputs)
};

template <MemoryKind Kind>
class CudaBuffer {
 public:
  CudaBuffer() = default;
  CudaBuffer(const CudaBuffer &) = delete;
  CudaBuffer &operator=(const CudaBuffer &) = delete;
  ~CudaBuffer() { release(); }

  // At least `bytes` of memory; throws PIMOE_ERR_OUT_OF_MEMORY naming `what` when they cannot be allocated.
  void reserve(size_t bytes, const std::string &what);
  // At least `bytes` of memory; false (and the buffer empty) when they cannot be allocated. For memory the caller
  // can do without (staging: the copy then reads the caller's pageable memory as it always could).
  bool try_reserve(size_t bytes);
  void release();

  void *get() const { return ptr_; }
  template <typename T>
  T *as() const {
    return static_cast<T *>(ptr_);
  }
  // The address kernels use: the same as get() for device memory, the mapping of MappedHost memory, null otherwise.
  void *device() const { return device_; }
  size_t bytes() const { return bytes_; }

 private:
  // Frees the buffer and allocates `bytes` plus headroom (so that a slowly growing call size does not reallocate
  // often), or exactly `bytes` when the headroom does not fit. The CUDA error of the last attempt on failure.
  int grow(size_t bytes);

  void *ptr_ = nullptr;
  void *device_ = nullptr;
  size_t bytes_ = 0;
};

// Test hook, for tests only (docs/conventions.md, "Out of memory, lost devices, and how the tests provoke them"):
// when the environment variable PIMOE_TEST_CUDA_FAIL_ALLOC holds a number N >= 1 as a CUDA backend is created, the
// N-th growth of a buffer that must succeed (reserve: device or page-locked memory) made in this process from then on
// fails, once, as cudaMalloc failing with cudaErrorMemoryAllocation would. Read at every backend creation, which
// re-arms the count (or disarms it when the variable is unset); the count is process-wide, the one piece of global
// mutable state of this backend, so a test arms it for one model at a time. try_reserve (memory the caller can do
// without) is never failed by it.
void arm_allocation_fault_from_environment();

using DeviceMemory = CudaBuffer<MemoryKind::Device>;
using MappedHostMemory = CudaBuffer<MemoryKind::MappedHost>;
using StagingMemory = CudaBuffer<MemoryKind::StagingHost>;

extern template class CudaBuffer<MemoryKind::Device>;
extern template class CudaBuffer<MemoryKind::MappedHost>;
extern template class CudaBuffer<MemoryKind::StagingHost>;

}  // namespace pimoe::cuda
