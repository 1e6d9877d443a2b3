// Decode-sized projections: each output row of each touched expert is one warp's dot products against the few rows
// routed to that expert, so every touched weight byte is read from memory once per call (GEMV-style streaming).
#pragma once

#include <cuda_runtime_api.h>

#include "device_types.h"

namespace pimoe::cuda {

// Rows per group a GEMV pass takes at once; groups with more rows take several passes over their weights.
constexpr int32_t kGemvTokens = 4;

// fp32 in and out (rows, hidden and out buffers); weights of type `w`.
void launch_gemv(const ProjectionArgs &args, WType w, cudaStream_t stream);

}  // namespace pimoe::cuda
