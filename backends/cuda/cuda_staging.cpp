// SPDX-License-Identifier: MIT
#include "cuda_staging.h"

#include <algorithm>

#include "cuda_check.h"

namespace pimoe::cuda {
namespace {

// How a staged copy of `bytes` is cut: chunks of at least kStageChunkMin, at most kStageChunks of them.
size_t stage_chunk(size_t bytes) {
  const size_t chunks = std::max<size_t>(1, std::min<size_t>(kStageChunks, bytes / kStageChunkMin));
  return (bytes / chunks + 4095) / 4096 * 4096;
}

}  // namespace

Staging::~Staging() {
  for (cudaEvent_t e : chunk_done_) {
    if (e) cudaEventDestroy(e);
  }
}

void Staging::create_events() {
  for (cudaEvent_t &e : chunk_done_) {
    check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "creating an event");
  }
}

// This thread (with the copy threads) fills chunk i + 1 of the staging while the DMA engine sends chunk i.
void Staging::copy_input(const HostParallel &threads, void *dst, const float *x, size_t bytes, cudaStream_t st) {
  if (bytes < kStagedBytes || !in_.try_reserve(bytes)) {
    check(cudaMemcpyAsync(dst, x, bytes, cudaMemcpyHostToDevice, st), "copying the input to the device");
    return;
  }
  // No copy of an earlier call may still read the staging memory: a call that returned normally synchronised the
  // stream already (this wait is then immediate), one that failed part-way may have left copies queued.
  check(cudaStreamSynchronize(st), "waiting for the scratch's earlier copies");
  const size_t chunk = stage_chunk(bytes);
  const auto *src = reinterpret_cast<const char *>(x);
  char *stage = in_.as<char>();
  for (size_t at = 0; at < bytes; at += chunk) {
    const size_t n = std::min(chunk, bytes - at);
    threads.copy(stage + at, src + at, n);
    check(cudaMemcpyAsync(static_cast<char *>(dst) + at, stage + at, n, cudaMemcpyHostToDevice, st),
          "copying the input to the device");
  }
}

// Each chunk is copied out of the staging while the next one's DMA runs.
void Staging::copy_output(const HostParallel &threads, float *y, const void *src, size_t bytes, cudaStream_t st,
                          const char *what) {
  if (bytes < kStagedBytes || !out_.try_reserve(bytes)) {
    check(cudaMemcpyAsync(y, src, bytes, cudaMemcpyDeviceToHost, st), "copying the output back");
    check(cudaStreamSynchronize(st), what);
    return;
  }
  const size_t chunk = stage_chunk(bytes);
  const auto *from = static_cast<const char *>(src);
  char *stage = out_.as<char>();
  size_t c = 0;
  for (size_t at = 0; at < bytes; at += chunk, ++c) {
    check(cudaMemcpyAsync(stage + at, from + at, std::min(chunk, bytes - at), cudaMemcpyDeviceToHost, st),
          "copying the output back");
    check(cudaEventRecord(chunk_done_[c], st), "recording a copy's end");
  }
  c = 0;
  for (size_t at = 0; at < bytes; at += chunk, ++c) {
    check(cudaEventSynchronize(chunk_done_[c]), what);
    threads.copy(reinterpret_cast<char *>(y) + at, stage + at, std::min(chunk, bytes - at));
  }
}

}  // namespace pimoe::cuda
