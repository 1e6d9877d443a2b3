// SPDX-License-Identifier: MIT
// The streaming GEMV of decode-sized projections: weights stream through shared memory with cp.async and the grid is
// sized to the GPU, each warp taking an equal share of the call's tasks. launch_gemv (gemv.cuh) chooses it.
#pragma once

#include <cuda_runtime_api.h>

#include "device_types.h"

namespace pimoe::cuda {

// As launch_gemv, for calls whose rows are whole 16-byte chunks (K, the input stride and the input's address).
// gated_up: an up projection with gate rows (2 outputs a task), else 4 outputs a task.
void launch_gemv_stream(const ProjectionArgs &args, WType w, bool gated_up, bool pdl, cudaStream_t stream);

}  // namespace pimoe::cuda
