/* SPDX-License-Identifier: MIT */
// Copies between a caller's host buffers and device memory. Large ones go through page-locked staging memory in
// chunks, copied there and back by several threads, so that the DMA runs at full speed (which it does not from
// pageable memory) while the host copies the next chunk.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>

#include "cuda_memory.h"
#include "src/host_parallel.h"

namespace pimoe::cuda {

// Host-buffer inputs and outputs of at least this size go through the staging memory; smaller ones (decode steps:
// 1-16 tokens are at most 448 KiB even at H = 7168) take one pageable cudaMemcpyAsync, which for them costs no more
// than a staged copy would.
constexpr size_t kStagedBytes = size_t{1} << 20;
// A staged copy runs in up to this many chunks of at least kStageChunkMin, so that the host copy of one overlaps the
// DMA of the one before.
constexpr int kStageChunks = 4;
constexpr size_t kStageChunkMin = size_t{8} << 20;

// A scratch's staging memory, allocated on first use (a failure to allocate it is no error: see try_reserve).
class Staging {
 public:
  Staging() = default;
  Staging(const Staging &) = delete;
  Staging &operator=(const Staging &) = delete;
  ~Staging();

  // The events that mark each chunk of a staged output copy (throws when CUDA cannot create them).
  void create_events();
  size_t bytes() const { return in_.bytes() + out_.bytes(); }

  // Queues the copy of a caller's host input to device memory dst on stream st. Returns once x has been read (the
  // caller may then change it); the device copy completes on the stream.
  void copy_input(const HostParallel &threads, void *dst, const float *x, size_t bytes, cudaStream_t st);

  // Copies device output src to the caller's host memory y once the stream's work is done; on return y holds it
  // all. A failed kernel is reported (naming `what`) by the wait for the first chunk, before anything is written to y.
  void copy_output(const HostParallel &threads, float *y, const void *src, size_t bytes, cudaStream_t st,
                   const char *what);

 private:
  StagingMemory in_, out_;
  std::array<cudaEvent_t, kStageChunks> chunk_done_{};
};

}  // namespace pimoe::cuda
