// SPDX-License-Identifier: MIT
// The memory-bound steps around the projections: gathering (and LayerNorm-ing) each row's input, the weighted
// combine of the expert outputs with the shared expert, and the input check of the device-pointer entry point.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "device_types.h"

namespace pimoe::cuda {

// rows[r, :] = norm_g(x[row_token[r], :]) in `out_type` (F32: float, BF16/F16: the 16-bit type), for every row r
// below offsets[groups] (read on the device); max_rows bounds the grid.
void launch_gather(const float *x, const DevicePlan &plan, const GroupDesc *groups, int32_t group_count,
                   int64_t max_rows, int32_t hidden, float eps, void *rows, WType out_type, cudaStream_t stream);

struct CombineArgs {
  const float *out = nullptr;  // [rows, H] expert outputs (no down bias, unweighted)
  DevicePlan plan;
  const GroupDesc *groups = nullptr;
  int32_t tokens = 0, top_k = 0, hidden = 0, experts = 0;
  bool shared = false;                // add the shared expert's rows (group E)
  const float *shared_score = nullptr;  // [H]: gate sigmoid(score . x_t), or null for g = 1
  const float *x = nullptr;             // [T, H] the call's input (for the shared gate)
  float *y = nullptr;                   // [T, H]
};
// y[t] = sum_j w(t, j) * (out[position(t, j)] + down_bias) in slot order, + g_t * shared_out[t].
void launch_combine(const CombineArgs &args, cudaStream_t stream);

// Sets *first_bad (which must hold UINT64_MAX beforehand) to the lowest index of a NaN or Inf among x[0 .. n).
void launch_find_non_finite(const float *x, int64_t n, unsigned long long *first_bad, cudaStream_t stream);

}  // namespace pimoe::cuda
