// SPDX-License-Identifier: MIT
#include "elementwise.cuh"

#include <cmath>

#include "cuda_common.cuh"

namespace pimoe::cuda {
namespace {

constexpr int kRowThreads = 128;

__device__ double block_sum(double v, double *scratch) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read from a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) total += scratch[w];
  return total;
}

template <typename OutT>
__global__ void __launch_bounds__(kRowThreads)
    gather_kernel(const float *x, DevicePlan plan, const GroupDesc *groups, int32_t group_count, int32_t H,
                  float eps, OutT *rows) {
  __shared__ double scratch[kRowThreads / 32];
  const int64_t r = blockIdx.x;
  if (r >= plan.offsets[group_count]) return;
  const float *src = x + static_cast<int64_t>(plan.row_token[r]) * H;
  OutT *dst = rows + r * H;
  const GroupDesc &g = groups[plan.row_group[r]];
  if (g.norm_weight == nullptr) {
    for (int i = threadIdx.x; i < H; i += blockDim.x) dst[i] = from_float<OutT>(src[i]);
    return;
  }
  // LayerNorm in two passes (mean, then the variance of the centred values), accumulated in double as on the CPU.
  double s = 0.0;
  for (int i = threadIdx.x; i < H; i += blockDim.x) s += src[i];
  const double mean = block_sum(s, scratch) / H;
  double v = 0.0;
  for (int i = threadIdx.x; i < H; i += blockDim.x) v += (src[i] - mean) * (src[i] - mean);
  const double var = block_sum(v, scratch) / H;
  const float inv = static_cast<float>(1.0 / sqrt(var + eps));
  const float m = static_cast<float>(mean);
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    dst[i] = from_float<OutT>((src[i] - m) * inv * g.norm_weight[i] + g.norm_bias[i]);
  }
}

constexpr int kCombineThreads = 256;

__global__ void __launch_bounds__(kCombineThreads) combine_kernel(CombineArgs a) {
  __shared__ double scratch[kCombineThreads / 32];
  const int t = blockIdx.x;
  const int H = a.hidden, k = a.top_k;
  float gate = 1.0f;
  if (a.shared && a.shared_score) {
    const float *xt = a.x + static_cast<int64_t>(t) * H;
    double dot = 0.0;
    for (int i = threadIdx.x; i < H; i += blockDim.x) dot += static_cast<double>(a.shared_score[i]) * xt[i];
    dot = block_sum(dot, scratch);
    gate = static_cast<float>(1.0 / (1.0 + exp(-dot)));
  }
  const int64_t shared_row = a.shared ? a.plan.offsets[a.experts] + t : -1;
  float *dst = a.y + static_cast<int64_t>(t) * H;
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    float acc = 0.0f;
    for (int j = 0; j < k; ++j) {
      const int64_t slot = static_cast<int64_t>(t) * k + j;
      const int32_t p = a.plan.position[slot];
      if (p < 0) continue;
      const float w = a.plan.weight[slot];
      const float *bias = a.groups[a.plan.expert[slot]].down_bias;
      const float v = a.out[static_cast<int64_t>(p) * H + i];
      acc += bias ? w * (v + bias[i]) : w * v;
    }
    if (shared_row >= 0) acc += gate * a.out[shared_row * H + i];
    dst[i] = acc;
  }
}

__global__ void find_non_finite_kernel(const float *x, int64_t n, unsigned long long *first_bad) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (!isfinite(x[i])) {
      atomicMin(first_bad, static_cast<unsigned long long>(i));
      return;  // later elements of this thread have higher indices
    }
  }
}

}  // namespace

void launch_gather(const float *x, const DevicePlan &plan, const GroupDesc *groups, int32_t group_count,
                   int64_t max_rows, int32_t hidden, float eps, void *rows, WType out_type, cudaStream_t stream) {
  if (max_rows <= 0) return;
  const dim3 grid(static_cast<unsigned>(max_rows));
  switch (out_type) {
    case WType::F32:
      gather_kernel<<<grid, kRowThreads, 0, stream>>>(x, plan, groups, group_count, hidden, eps,
                                                      static_cast<float *>(rows));
      break;
    case WType::BF16:
      gather_kernel<<<grid, kRowThreads, 0, stream>>>(x, plan, groups, group_count, hidden, eps,
                                                      static_cast<__nv_bfloat16 *>(rows));
      break;
    case WType::F16:
      gather_kernel<<<grid, kRowThreads, 0, stream>>>(x, plan, groups, group_count, hidden, eps,
                                                      static_cast<__half *>(rows));
      break;
  }
}

void launch_combine(const CombineArgs &args, cudaStream_t stream) {
  combine_kernel<<<args.tokens, kCombineThreads, 0, stream>>>(args);
}

void launch_find_non_finite(const float *x, int64_t n, unsigned long long *first_bad, cudaStream_t stream) {
  const int64_t blocks = std::min<int64_t>((n + 255) / 256, 4096);
  find_non_finite_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(x, n, first_bad);
}

}  // namespace pimoe::cuda
