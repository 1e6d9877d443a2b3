// SPDX-License-Identifier: MIT
#include "cuda_scratch.h"

#include "cuda_check.h"
#include "cuda_device.h"
#include "gemv.cuh"

namespace pimoe::cuda {

CudaScratch::~CudaScratch() {
  cudaSetDevice(kDevice);
  if (stream) {
    cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
  }
}

size_t CudaScratch::bytes() const {
  return sizeof(*this) + x.bytes() + y.bytes() + logits.bytes() + router_input.bytes() + rows.bytes() + hidden.bytes() +
         out.bytes() + call.bytes() + decode.bytes() + host_call.bytes() + staging.bytes();
}

std::unique_ptr<CudaScratch> make_cuda_scratch(int32_t hidden) {
  select_device();
  auto s = std::make_unique<CudaScratch>();
  check(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "creating a stream");
  s->call_stream = s->stream;
  s->staging.create_events();
  s->decode.reserve(DecodeState::bytes(gemv_column_slices(hidden)), "decode counters");
  check(cudaMemset(s->decode.get(), 0, s->decode.bytes()), "clearing decode counters");
  check(cudaMemset(s->decode.get(), 0xff, sizeof(unsigned long long)), "clearing the input check");
  return s;
}

}  // namespace pimoe::cuda
