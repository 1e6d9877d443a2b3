/* SPDX-License-Identifier: MIT */
// Large host-memory passes (copies into and out of a GPU backend's staging memory, the front end's finite-input
// check) split over a few threads. One memcpy or scan from one thread reaches only a fraction of a server's memory
// bandwidth: 32 MiB of input then costs milliseconds, as much as the GPU's whole layer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "thread_pool.h"

namespace pimoe {

// The most threads a front-end check or a CUDA staging copy uses. On the H100 machine (16 cores, one socket) one
// thread copied 6-8 GB/s between pageable and page-locked memory, 8-12 threads 46-62 GB/s, 16 threads only 42-47
// (the probe in bench/cuda/RESULTS.md, "Host buffers against the kernels").
constexpr int kHostPassThreads = 12;

// Threads of a model's large host passes: THREADS (the option; 0 = unset) bounds them, and so does `cap`.
inline int host_pass_threads(int64_t threads, int cap = kHostPassThreads) {
  return threads > 0 && threads < cap ? static_cast<int>(threads) : cap;
}

class HostParallel {
 public:
  // At most max_threads threads per pass (the calling thread is one of them), and no more than the machine has.
  explicit HostParallel(int max_threads = 8);
  HostParallel(const HostParallel &) = delete;
  HostParallel &operator=(const HostParallel &) = delete;

  // memcpy(dst, src, bytes), split into cache-line aligned pieces when it is large enough to pay for the threads.
  void copy(void *dst, const void *src, size_t bytes) const;

  // The index of the first NaN or Inf in x[0, n), or n when every element is finite.
  size_t first_non_finite(const float *x, size_t n) const;

 private:
  // Pieces worth running for a pass over `bytes`; creates the pool on the first pass that uses more than one.
  int64_t pieces_for(size_t bytes) const;

  int threads_;
  // The workers start on the first large pass: a model or backend that only ever sees small calls keeps no idle
  // threads. Concurrent calls share the pool (ThreadPool runs several loops at once).
  mutable std::once_flag started_;
  mutable std::unique_ptr<ThreadPool> pool_;
};

}  // namespace pimoe
