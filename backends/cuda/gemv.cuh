// Decode-sized projections: each output row of each touched expert is one warp's dot products against the few rows
// routed to that expert, so every touched weight byte is read from memory once per call (GEMV-style streaming).
#pragma once

#include <cuda_runtime_api.h>

#include "device_types.h"

namespace pimoe::cuda {

// Rows per group a GEMV pass takes at once; groups with more rows take several passes over their weights.
constexpr int32_t kGemvTokens = 4;

// fp32 in and out (rows, hidden and out buffers); weights of type `w`. pdl: may overlap the previous kernel's tail
// (programmatic dependent launch; the kernel waits for it before reading anything).
void launch_gemv(const ProjectionArgs &args, WType w, bool pdl, cudaStream_t stream);

// Column slices (gridDim.y) of a GEMV with n outputs per row: the counters a fused combine needs.
int32_t gemv_column_slices(int32_t n);

}  // namespace pimoe::cuda
