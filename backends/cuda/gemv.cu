#include "gemv.cuh"

#include "cuda_common.cuh"

namespace pimoe::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kRowsPerBlock = 16;  // output rows per block: 2 per warp

// 16 bytes of weights as floats.
template <typename WT>
struct Vec;
template <>
struct Vec<float> {
  static constexpr int n = 4;
  __device__ static void load(const float *p, float *w) {
    const float4 v = __ldcs(reinterpret_cast<const float4 *>(p));
    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
  }
};
template <typename H2, float2 (*ToFloat2)(H2)>
struct Vec16 {
  static constexpr int n = 8;
  __device__ static void load(const void *p, float *w) {
    const int4 v = __ldcs(reinterpret_cast<const int4 *>(p));
    const H2 *h = reinterpret_cast<const H2 *>(&v);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = ToFloat2(h[i]);
      w[2 * i] = f.x;
      w[2 * i + 1] = f.y;
    }
  }
};
__device__ __forceinline__ float2 bf2_to_f2(__nv_bfloat162 v) { return __bfloat1622float2(v); }
__device__ __forceinline__ float2 h2_to_f2(__half2 v) { return __half22float2(v); }
template <>
struct Vec<__nv_bfloat16> : Vec16<__nv_bfloat162, bf2_to_f2> {};
template <>
struct Vec<__half> : Vec16<__half2, h2_to_f2> {};

// acc[m] += w . x[m] over VEC elements, rows m < mc.
template <int VEC>
__device__ __forceinline__ void dot_rows(const float *w, const float *x, int64_t stride, int mc,
                                         float (&acc)[kGemvTokens]) {
#pragma unroll
  for (int m = 0; m < kGemvTokens; ++m) {
    if (m < mc) {
      const float *xm = x + m * stride;
#pragma unroll
      for (int i = 0; i < VEC; i += 4) {
        const float4 v = __ldg(reinterpret_cast<const float4 *>(xm + i));
        acc[m] = fmaf(w[i], v.x, acc[m]);
        acc[m] = fmaf(w[i + 1], v.y, acc[m]);
        acc[m] = fmaf(w[i + 2], v.z, acc[m]);
        acc[m] = fmaf(w[i + 3], v.w, acc[m]);
      }
    }
  }
}

// One warp: acc[m] = W[n, :] . x[m, :] for m < mc (and the same for a second matrix G when gated).
template <typename WT, bool GATED>
__device__ __forceinline__ void row_dots(const WT *W, const WT *Wg, const float *x, int64_t stride, int K, int mc,
                                         bool vector_ok, float (&acc)[kGemvTokens], float (&accg)[kGemvTokens]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int m = 0; m < kGemvTokens; ++m) acc[m] = accg[m] = 0.0f;
  constexpr int VEC = Vec<WT>::n;
  if (vector_ok) {
    const int chunks = K / VEC;
    // kDepth chunks per lane (per matrix) per step, all loads issued before the first is used: decode calls are bound
    // by how many bytes are in flight. Chunks past the row's end load nothing and count as zeros, so short rows
    // (K = 768: three chunks a lane) still have all their loads in flight at once.
    constexpr int kDepth = 4;
    for (int c = lane; c < chunks; c += 32 * kDepth) {
      float w[kDepth][VEC], g[kDepth][VEC];
#pragma unroll
      for (int d = 0; d < kDepth; ++d) {
        const int cd = c + 32 * d;
        if (cd < chunks) {
          Vec<WT>::load(W + static_cast<int64_t>(cd) * VEC, w[d]);
          if (GATED) Vec<WT>::load(Wg + static_cast<int64_t>(cd) * VEC, g[d]);
        }
      }
#pragma unroll
      for (int d = 0; d < kDepth; ++d) {
        const int cd = c + 32 * d;
        if (cd < chunks) {
          dot_rows<VEC>(w[d], x + cd * VEC, stride, mc, acc);
          if (GATED) dot_rows<VEC>(g[d], x + cd * VEC, stride, mc, accg);
        }
      }
    }
  } else {  // any K and alignment (odd sizes): one element per lane per step
    for (int kk = lane; kk < K; kk += 32) {
      const float w = to_float(W[kk]);
      const float g = GATED ? to_float(Wg[kk]) : 0.0f;
#pragma unroll
      for (int m = 0; m < kGemvTokens; ++m) {
        if (m < mc) {
          const float xv = x[m * stride + kk];
          acc[m] = fmaf(w, xv, acc[m]);
          if (GATED) accg[m] = fmaf(g, xv, accg[m]);
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < kGemvTokens; ++m) {
    if (m < mc) {  // mc is the same in the whole warp: only the rows in use pay for a reduction
      acc[m] = warp_sum(acc[m]);
      if (GATED) accg[m] = warp_sum(accg[m]);
    }
  }
}

template <typename WT>
__global__ void __launch_bounds__(kWarps * 32, 2) gemv_kernel(ProjectionArgs a) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const float *in = static_cast<const float *>(a.in);
  float *out = static_cast<float *>(a.out);
  int32_t row0, count, K, N, act = -1;
  const WT *W, *Wg = nullptr;
  const float *bias = nullptr;
  if (a.dense_rows > 0) {
    row0 = 0;
    count = a.dense_rows;
    K = a.dense_k;
    N = a.dense_n;
    W = reinterpret_cast<const WT *>(a.dense_weight);
  } else {
    if (static_cast<int32_t>(blockIdx.x) >= *a.list_count) return;
    const int32_t g = a.list[blockIdx.x];
    const GroupDesc &d = a.groups[g];
    row0 = a.offsets[g];
    count = a.offsets[g + 1] - row0;
    K = a.up ? a.hidden : d.inter;
    N = a.up ? d.inter : a.hidden;
    W = static_cast<const WT *>(a.up ? d.up : d.down);
    if (a.up) {
      act = d.activation;
      if (act == kSwiglu) Wg = static_cast<const WT *>(d.gate);
      bias = d.up_bias;
    }
  }
  const int n_begin = blockIdx.y * kRowsPerBlock;
  const int n_end = min(N, n_begin + kRowsPerBlock);
  constexpr int VEC = Vec<WT>::n;
  const bool vector_ok = K % VEC == 0 && a.in_stride % 4 == 0 && (reinterpret_cast<uintptr_t>(in) & 15) == 0;
  for (int n = n_begin + warp; n < n_end; n += kWarps) {
    const WT *wrow = W + static_cast<int64_t>(n) * K;
    const WT *grow = Wg ? Wg + static_cast<int64_t>(n) * K : nullptr;
    for (int m0 = 0; m0 < count; m0 += kGemvTokens) {
      const int mc = min(kGemvTokens, count - m0);
      const float *x = in + static_cast<int64_t>(row0 + m0) * a.in_stride;
      float acc[kGemvTokens], accg[kGemvTokens];
      if (grow) {
        row_dots<WT, true>(wrow, grow, x, a.in_stride, K, mc, vector_ok, acc, accg);
      } else {
        row_dots<WT, false>(wrow, nullptr, x, a.in_stride, K, mc, vector_ok, acc, accg);
      }
      if (lane == 0) {
#pragma unroll
        for (int m = 0; m < kGemvTokens; ++m) {
          if (m < mc) {
            float v = acc[m];
            if (act == kSwiglu) {
              v = silu(accg[m]) * v;
            } else if (act >= 0) {
              v = activate(act, bias ? v + bias[n] : v);
            }
            out[static_cast<int64_t>(row0 + m0 + m) * a.out_stride + n] = v;
          }
        }
      }
    }
  }
}

}  // namespace

void launch_gemv(const ProjectionArgs &args, WType w, cudaStream_t stream) {
  const int32_t n = args.dense_rows > 0 ? args.dense_n : args.max_n;
  const dim3 grid(args.dense_rows > 0 ? 1u : static_cast<unsigned>(args.max_list),
                  static_cast<unsigned>((n + kRowsPerBlock - 1) / kRowsPerBlock));
  if (grid.x == 0 || grid.y == 0) return;
  switch (w) {
    case WType::F32:
      gemv_kernel<float><<<grid, kWarps * 32, 0, stream>>>(args);
      break;
    case WType::BF16:
      gemv_kernel<__nv_bfloat16><<<grid, kWarps * 32, 0, stream>>>(args);
      break;
    case WType::F16:
      gemv_kernel<__half><<<grid, kWarps * 32, 0, stream>>>(args);
      break;
  }
}

}  // namespace pimoe::cuda
