// SPDX-License-Identifier: MIT
// The Hopper (sm_90a) form of the tensor-core grouped GEMM (grouped_gemm_sm90.cu): wgmma + TMA, same arguments and
// results as launch_mma_gemm (grouped_gemm.cuh), bf16/fp16 only, tiles of kMmaTileRows rows. Built into its own
// object for sm_90a alone (backends/cuda/cuda.cmake); the backend uses it only where sm90_gemm_supported() says so
// and falls back to launch_mma_gemm otherwise.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "device_types.h"

namespace pimoe::cuda {

constexpr size_t kSm90MapBytes = 128;  // one CUtensorMap

// Device 0 has compute capability 9.0 and the driver provides cuTensorMapEncodeTiled.
bool sm90_gemm_supported();

// Encodes the weight tensor maps of groups[0, count) (host copies of the descriptors, device pointers) into maps
// (host memory, 3 * count * kSm90MapBytes bytes: gate, up, down of each group; zeros for absent matrices). Needs H and
// every I multiple of 8 (16-byte rows). False when a map cannot be encoded.
bool sm90_weight_maps(const GroupDesc *groups, int32_t count, int32_t hidden, WType w, void *maps);

// One projection (args as for launch_mma_gemm; in_rows: rows of the input buffer, the bound of the tensor map over
// it). weight_maps: the device copy of sm90_weight_maps' output. False when nothing was launched (the caller then
// launches the mma.sync kernel instead).
bool launch_sm90_gemm(const ProjectionArgs &args, const void *weight_maps, int64_t in_rows, WType w,
                      cudaStream_t stream);

}  // namespace pimoe::cuda
