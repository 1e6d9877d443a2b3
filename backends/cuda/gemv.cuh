// SPDX-License-Identifier: MIT
// Decode-sized projections: each output row of each touched expert is one warp's dot products against the few rows
// routed to that expert, so every touched weight byte is read from memory once per call (GEMV-style streaming).
#pragma once

#include <cuda_runtime_api.h>

#include "device_types.h"

namespace pimoe::cuda {

// Rows per group a GEMV pass takes at once; groups with more rows take several passes over their weights.
constexpr int32_t kGemvTokens = 4;

// Outputs per column slice of a down projection's fused combine (a block of gemv.cu's kernel computes one slice; the
// streaming kernel of gemv_stream.cu counts its tasks in the same slices).
constexpr int32_t kGemvSliceColumns = 16;

// fp32 in and out (rows, hidden and out buffers); weights of type `w`. pdl: may overlap the previous kernel's tail
// (programmatic dependent launch; the kernel waits for it before reading anything). Takes the streaming kernel
// (gemv_stream.cuh) when the call asks for it and every row is whole 16-byte chunks, else the kernel of gemv.cu.
void launch_gemv(const ProjectionArgs &args, WType w, bool pdl, cudaStream_t stream);

// Column slices (gridDim.y) of a GEMV with n outputs per row: the counters a fused combine needs.
int32_t gemv_column_slices(int32_t n);

}  // namespace pimoe::cuda
