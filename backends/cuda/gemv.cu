// SPDX-License-Identifier: MIT
#include "gemv.cuh"

#include <algorithm>

#include "cuda_common.cuh"
#include "gemv_stream.cuh"

namespace pimoe::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kRowsPerWarp = 2;
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;  // output rows per block
static_assert(kRowsPerBlock == kGemvSliceColumns, "a block computes one column slice of the fused combine");

// xv[m][i] = xs[m][off + i] for tokens m < mc (<= MC), VEC elements; zeros past mc.
template <int VEC, int MC>
__device__ __forceinline__ void load_inputs(const float *const (&xs)[kGemvTokens], int off, int mc,
                                            float (&xv)[MC][VEC]) {
#pragma unroll
  for (int m = 0; m < MC; ++m) {
#pragma unroll
    for (int i = 0; i < VEC; i += 4) {
      float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (m < mc) v = __ldg(reinterpret_cast<const float4 *>(xs[m] + off + i));
      xv[m][i] = v.x, xv[m][i + 1] = v.y, xv[m][i + 2] = v.z, xv[m][i + 3] = v.w;
    }
  }
}

// acc[m] += w . xv[m] over VEC elements, tokens m < mc, element by element in order.
template <int VEC, int MC>
__device__ __forceinline__ void dot_cached(const float *w, const float (&xv)[MC][VEC], int mc,
                                           float (&acc)[kGemvTokens]) {
#pragma unroll
  for (int m = 0; m < MC; ++m) {
    if (m < mc) {
#pragma unroll
      for (int i = 0; i < VEC; ++i) acc[m] = fmaf(w[i], xv[m][i], acc[m]);
    }
  }
}

// Loads of 16 bytes each lane keeps in flight: decode calls are bound by how many bytes are in flight, and a warp's
// rows are short (K = 768: three chunks a lane), so a warp streams all its rows (and gate and up) at once. More than
// 8 does not fit in the 128 registers of two blocks per SM: the compiler hoists the input loads of every chunk.
template <int MC>
__host__ __device__ constexpr int loads_in_flight() {
  return 8;
}

// One warp: acc[r][m] = W[r][:] . x[m, :] for rows r < rc of R and tokens m < mc <= MC (and the same for the gate
// matrices when gated). Each row's sum runs over the lane's chunks in order, then across lanes: the same order
// whatever rc, MC and the depth.
template <typename WT, bool GATED, int R, int MC>
__device__ __forceinline__ void row_dots(const WT *const (&W)[R], const WT *const (&Wg)[R], int rc,
                                         const float *const (&xs)[kGemvTokens], int K, int mc, bool vector_ok,
                                         float (&acc)[R][kGemvTokens], float (&accg)[R][kGemvTokens]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < kGemvTokens; ++m) acc[r][m] = accg[r][m] = 0.0f;
  constexpr int VEC = Vec<WT>::n;
  if (vector_ok) {
    const int chunks = K / VEC;
    // kDepth chunks per lane per row (and matrix) per step, all loads issued before the first is used. Chunks past
    // the row's end load nothing and count as zeros.
    constexpr int kDepth = loads_in_flight<MC>() / (R * (GATED ? 2 : 1));
    for (int c = lane; c < chunks; c += 32 * kDepth) {
      int4 w[R][kDepth], g[R][kDepth];
#pragma unroll
      for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int d = 0; d < kDepth; ++d) {
          const int cd = c + 32 * d;
          if (r < rc && cd < chunks) {
            w[r][d] = Vec<WT>::load(W[r] + static_cast<int64_t>(cd) * VEC);
            if (GATED) g[r][d] = Vec<WT>::load(Wg[r] + static_cast<int64_t>(cd) * VEC);
          }
        }
      }
      // Each chunk's inputs are read once (from L1) for all the warp's rows and the gate: reading them per row and
      // matrix made the 4-token calls L1-bound (ncu at C, 16 tokens: L1 85% busy, DRAM 45%). Per row the chunks
      // still add in order.
#pragma unroll
      for (int d = 0; d < kDepth; ++d) {
        const int cd = c + 32 * d;
        if (cd < chunks) {
          float xv[MC][VEC];
          load_inputs<VEC, MC>(xs, cd * VEC, mc, xv);
#pragma unroll
          for (int r = 0; r < R; ++r) {
            if (r < rc) {
              float f[VEC];
              Vec<WT>::convert(w[r][d], f);
              dot_cached<VEC, MC>(f, xv, mc, acc[r]);
              if (GATED) {
                Vec<WT>::convert(g[r][d], f);
                dot_cached<VEC, MC>(f, xv, mc, accg[r]);
              }
            }
          }
        }
      }
    }
  } else {  // any K and alignment (odd sizes): one element per lane per step
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (r >= rc) continue;
      for (int kk = lane; kk < K; kk += 32) {
        const float w = to_float(W[r][kk]);
        const float g = GATED ? to_float(Wg[r][kk]) : 0.0f;
#pragma unroll
        for (int m = 0; m < MC; ++m) {
          if (m < mc) {
            const float xv = xs[m][kk];
            acc[r][m] = fmaf(w, xv, acc[r][m]);
            if (GATED) accg[r][m] = fmaf(g, xv, accg[r][m]);
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int m = 0; m < MC; ++m) {
      if (r < rc && m < mc) {  // rc and mc are the same in the whole warp: only rows in use pay for a reduction
        acc[r][m] = warp_sum(acc[r][m]);
        if (GATED) accg[r][m] = warp_sum(accg[r][m]);
      }
    }
  }
}

// The fused combine of a down projection (FusedCombine): called by every block after its outputs are written; the
// last block of column slice blockIdx.y combines that slice. `out` is read through L2 (__ldcg): lines of it may sit
// in this SM's L1 from another slice's combine, read before every block had written them.
__device__ void combine_slice(const ProjectionArgs &a, int n_begin, int n_end) {
  const FusedCombine &c = a.combine;
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(&c.counters[blockIdx.y], 1u) == gridDim.x - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  const float *out = static_cast<const float *>(a.out);
  const int H = a.hidden, width = n_end - n_begin, k = c.top_k;
  const int64_t shared0 = c.shared ? a.offsets[c.experts] : -1;
  for (int idx = threadIdx.x; idx < c.tokens * width; idx += blockDim.x) {
    const int t = idx / width, n = n_begin + idx % width;
    float acc = 0.0f;
    for (int j = 0; j < k; ++j) {
      const int64_t slot = static_cast<int64_t>(t) * k + j;
      const int32_t p = c.position[slot];
      if (p < 0) continue;
      const float w = c.weight[slot];
      const float *bias = a.groups[c.expert[slot]].down_bias;
      const float v = __ldcg(out + static_cast<int64_t>(p) * H + n);
      acc += bias ? w * (v + bias[n]) : w * v;
    }
    if (shared0 >= 0) acc += 1.0f * __ldcg(out + (shared0 + t) * H + n);
    c.y[static_cast<int64_t>(t) * H + n] = acc;
  }
  if (threadIdx.x == 0) c.counters[blockIdx.y] = 0u;
}

template <typename WT>
__global__ void __launch_bounds__(kWarps * 32, 2) gemv_kernel(ProjectionArgs a) {
  grid_dependency_wait();  // the plan, rows and hidden buffers come from the previous kernel
  grid_launch_dependents();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const float *in = static_cast<const float *>(a.in);
  float *out = static_cast<float *>(a.out);
  int32_t row0 = 0, count = 0, K, N, act = -1;
  const WT *W, *Wg = nullptr;
  const float *bias = nullptr;
  if (a.dense_rows > 0) {
    row0 = 0;
    count = a.dense_rows;
    K = a.dense_k;
    N = a.dense_n;
    W = reinterpret_cast<const WT *>(a.dense_weight);
  } else {
    // A slot past the active groups has no rows (count 0), but still takes part in the fused combine's count.
    const bool active = static_cast<int32_t>(blockIdx.x) < *a.list_count;
    const int32_t g = active ? a.list[blockIdx.x] : 0;
    const GroupDesc &d = a.groups[g];
    row0 = a.offsets[g];
    count = active ? a.offsets[g + 1] - row0 : 0;
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
  // Each warp owns kRowsPerWarp output rows (n_begin + warp + kWarps * r) and streams them together. Rows outer,
  // tokens inner: a group with more than kGemvTokens rows rereads its weight rows while they are still in L1.
  const int n0 = n_begin + warp;
  const int rc = n0 < n_end ? min(kRowsPerWarp, (n_end - n0 + kWarps - 1) / kWarps) : 0;
  if (rc > 0) {
    const WT *wrows[kRowsPerWarp], *grows[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int64_t n = min(n0 + kWarps * r, n_end - 1);
      wrows[r] = W + n * K;
      grows[r] = Wg ? Wg + n * K : nullptr;
    }
    for (int m0 = 0; m0 < count; m0 += kGemvTokens) {
      const int mc = min(kGemvTokens, count - m0);
      const float *xs[kGemvTokens];
#pragma unroll
      for (int m = 0; m < kGemvTokens; ++m) {
        const int r = row0 + m0 + min(m, mc - 1);
        xs[m] = in + static_cast<int64_t>(a.in_rows ? a.in_rows[r] : r) * a.in_stride;
      }
      float acc[kRowsPerWarp][kGemvTokens], accg[kRowsPerWarp][kGemvTokens];
      if (Wg && mc == 1) {
        row_dots<WT, true, kRowsPerWarp, 1>(wrows, grows, rc, xs, K, mc, vector_ok, acc, accg);
      } else if (Wg) {
        row_dots<WT, true, kRowsPerWarp, kGemvTokens>(wrows, grows, rc, xs, K, mc, vector_ok, acc, accg);
      } else if (mc == 1) {
        row_dots<WT, false, kRowsPerWarp, 1>(wrows, grows, rc, xs, K, mc, vector_ok, acc, accg);
      } else {
        row_dots<WT, false, kRowsPerWarp, kGemvTokens>(wrows, grows, rc, xs, K, mc, vector_ok, acc, accg);
      }
      if (lane == 0) {
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) {
          const int n = n0 + kWarps * r;
#pragma unroll
          for (int m = 0; m < kGemvTokens; ++m) {
            if (r < rc && m < mc) {
              float v = acc[r][m];
              if (act == kSwiglu) {
                v = silu(accg[r][m]) * v;
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
  if (a.combine.y) combine_slice(a, n_begin, n_end);
}

template <typename WT>
void launch_typed(const ProjectionArgs &args, dim3 grid, bool pdl, cudaStream_t stream) {
  launch_with_pdl(gemv_kernel<WT>, grid, dim3(kWarps * 32), 0, pdl, stream, args);
}

template <typename WT>
void launch_projection(const ProjectionArgs &args, WType w, bool pdl, cudaStream_t stream) {
  constexpr int VEC = Vec<WT>::n;
  const bool dense = args.dense_rows > 0;
  const int64_t k_align = dense ? args.dense_k : args.up ? args.hidden : args.inter_align;
  const bool whole_chunks = args.streaming && k_align % VEC == 0 && args.in_stride % 4 == 0 &&
                            (reinterpret_cast<uintptr_t>(args.in) & 15) == 0;
  if (whole_chunks && args.up && !dense && args.gated) {
    launch_gemv_stream(args, w, true, pdl, stream);
  } else if (whole_chunks) {
    launch_gemv_stream(args, w, false, pdl, stream);
  } else {
    const int32_t n = dense ? args.dense_n : args.max_n;
    const dim3 grid(dense ? 1u : static_cast<unsigned>(args.max_list),
                    static_cast<unsigned>((n + kRowsPerBlock - 1) / kRowsPerBlock));
    if (grid.x == 0 || grid.y == 0) return;
    launch_typed<WT>(args, grid, pdl, stream);
  }
}

}  // namespace

void launch_gemv(const ProjectionArgs &args, WType w, bool pdl, cudaStream_t stream) {
  if (is_compact(w)) {  // any shape: the streaming kernel reads a compact row's partial last chunk
    launch_gemv_stream(args, w, args.up && args.dense_rows == 0 && args.gated, pdl, stream);
    return;
  }
  switch (w) {
    case WType::F32:
      launch_projection<float>(args, w, pdl, stream);
      break;
    case WType::BF16:
      launch_projection<__nv_bfloat16>(args, w, pdl, stream);
      break;
    case WType::F16:
      launch_projection<__half>(args, w, pdl, stream);
      break;
    default:
      break;
  }
}

int32_t gemv_column_slices(int32_t n) {
  return (n + kRowsPerBlock - 1) / kRowsPerBlock;
}

}  // namespace pimoe::cuda
