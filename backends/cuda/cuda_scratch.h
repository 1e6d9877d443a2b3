/* SPDX-License-Identifier: MIT */
// The per-call scratch of the CUDA backend: a stream, the device buffers of a call, the page-locked memory its plan
// and routing results pass through, the staging of large host inputs and outputs, and what set_input recorded.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "cuda_memory.h"
#include "cuda_staging.h"
#include "src/backend.h"

namespace pimoe::cuda {

// Device words of the decode kernels that persist between calls (each launch restores them): the input-check flag
// (UINT64_MAX), the decode routing's finished-block counter and the fused combine's per-slice counters (0).
struct DecodeState {
  unsigned long long flag;
  unsigned int route_counter;
  unsigned int pad;
  unsigned int combine_counters[1];  // gemv_column_slices(H) of them
  static size_t bytes(int32_t slices) { return offsetof(DecodeState, combine_counters) + 4 * size_t(slices); }
};

struct CudaScratch final : BackendScratch {
  cudaStream_t stream = nullptr;  // this scratch's own stream: concurrent calls run concurrently on the GPU
  DeviceMemory x, y, logits, router_input, rows, hidden, out, call, decode;
  MappedHostMemory host_call;
  Staging staging;

  // The call in progress, as set_input left it.
  const float *input = nullptr;  // [tokens, H] on the device: `x`, or the caller's memory (device_io)
  int64_t tokens = 0;
  bool device_io = false;              // input and run_experts' output are the caller's device memory
  cudaStream_t call_stream = nullptr;  // the stream the call's work is ordered on: `stream`, or the caller's

  ~CudaScratch() override;
  DecodeState *decode_state() const { return decode.as<DecodeState>(); }
  size_t bytes() const override;
};

// A scratch with its stream, events and decode state ready, for a layer of hidden size `hidden`.
std::unique_ptr<CudaScratch> make_cuda_scratch(int32_t hidden);

}  // namespace pimoe::cuda
