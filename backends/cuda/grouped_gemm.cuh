// SPDX-License-Identifier: MIT
// Grouped GEMMs for larger calls: every group's row tiles of one projection in one launch (tiles of empty groups do
// not exist; the tile list is built with the plan), the activation fused into the up projection's epilogue.
//   simt: fp32 rows and outputs, weights of any type converted on load, fp32 FMA (exact fp32 path, any shape).
//   mma:  bf16/fp16 rows, hidden and weights on the tensor cores (mma.sync m16n8k16), fp32 accumulation; needs H and
//         every I_g to be multiples of 8 (16-byte rows). On compute capability 9.0 the backend runs the wgmma + TMA
//         form of it instead (grouped_gemm_sm90.cuh), same arguments and results.
#pragma once

#include <cuda_runtime_api.h>

#include "device_types.h"

namespace pimoe::cuda {

constexpr int32_t kSimtTileRows = 64;
constexpr int32_t kMmaTileRows = 128;

// in/out fp32; up: out = hidden (fp32), down: out fp32. Dense (router) calls take fp32 weights.
void launch_simt_gemm(const ProjectionArgs &args, WType w, cudaStream_t stream);

// in of type w (bf16/fp16); up: out = hidden of type w, down: out fp32. w must be BF16 or F16.
void launch_mma_gemm(const ProjectionArgs &args, WType w, cudaStream_t stream);

}  // namespace pimoe::cuda
