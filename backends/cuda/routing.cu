// SPDX-License-Identifier: MIT
#include "routing.cuh"

#include <cfloat>
#include <cmath>

#include "cuda_common.cuh"

namespace pimoe::cuda {
namespace {

constexpr int kRouteWarps = 4;
constexpr int kPerLane = kFusedMaxExperts / 32;

// Index of the largest v[i] (i < n) not yet taken (bit i/32 of lane i%32's mask); ties go to the lower index, as the
// host router's top_k. Every lane gets the answer. NaN counts as -inf, so that the comparisons stay a total order
// and all lanes agree even on garbage scores (non-finite logits from huge inputs): the result is then a valid index.
__device__ int warp_argmax(const double *v, int n, uint32_t taken) {
  const int lane = threadIdx.x & 31;
  double best = 0.0;
  int best_i = -1;
  for (int s = 0; s < kPerLane; ++s) {
    const int i = lane + 32 * s;
    if (i >= n) break;
    if ((taken >> s) & 1u) continue;
    const double vi = isnan(v[i]) ? -INFINITY : v[i];
    if (best_i < 0 || vi > best) {
      best = vi;
      best_i = i;
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const double ob = __shfl_xor_sync(0xffffffffu, best, o);
    const int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
    const bool better = oi >= 0 && (best_i < 0 || ob > best || (ob == best && oi < best_i));
    if (better) {
      best = ob;
      best_i = oi;
    }
  }
  return best_i;
}

__device__ __forceinline__ void mark(uint32_t &taken, int i) {
  if ((threadIdx.x & 31) == (i & 31)) taken |= 1u << (i >> 5);
}

// Routes token t with one warp; the same arithmetic as src/router.cpp (doubles), so that near-tie-free tokens pick
// the same experts and weights as the host router and the oracle. prob, sel and group_score are this warp's shared
// scratch (E doubles each); block_prob[E] collects the block's probability sums.
__device__ void route_token(const RouteArgs &a, int t, double *prob, double *sel, double *group_score,
                            double *block_prob) {
  const int lane = threadIdx.x & 31;
  const int E = a.experts, k = a.top_k;
  const float *z = a.logits + static_cast<int64_t>(t) * E;
  double z_max = -DBL_MAX;
  for (int e = lane; e < E; e += 32) z_max = fmax(z_max, static_cast<double>(z[e]));
  z_max = warp_max(z_max);
  double sum_raw = 0.0;
  for (int e = lane; e < E; e += 32) sum_raw += exp(static_cast<double>(z[e]) - z_max);
  sum_raw = warp_sum(sum_raw);
  const double lse = z_max + log(sum_raw);

  double score_sum = 0.0;
  for (int e = lane; e < E; e += 32) {
    const double ze = z[e];
    const double p = a.sigmoid ? 1.0 / (1.0 + exp(-ze * a.inv_temperature)) : exp((ze - z_max) * a.inv_temperature);
    prob[e] = p;
    score_sum += p;
  }
  score_sum = warp_sum(score_sum);
  const double p_scale = a.sigmoid ? 1.0 / score_sum : 1.0;
  for (int e = lane; e < E; e += 32) {
    if (!a.sigmoid) prob[e] /= score_sum;
    atomicAdd(&block_prob[e], prob[e] * p_scale);
    sel[e] = a.selection_bias ? prob[e] + static_cast<double>(a.selection_bias[e]) : prob[e];
  }
  __syncwarp();

  const int G = a.num_groups;
  if (G > 1) {
    const int size = E / G;
    for (int g = lane; g < G; g += 32) {
      const double *s = sel + g * size;
      double best = -INFINITY, second = -INFINITY;
      for (int i = 0; i < size; ++i) {
        if (s[i] > best) {
          second = best;
          best = s[i];
        } else if (s[i] > second) {
          second = s[i];
        }
      }
      group_score[g] = a.group_max || size < 2 ? best : best + second;
    }
    __syncwarp();
    uint32_t taken = 0;
    for (int i = 0; i < a.topk_groups; ++i) mark(taken, warp_argmax(group_score, G, taken));
    // Lane l now knows for its groups l + 32 s whether they were kept; experts of the others leave the race.
    for (int g = 0; g < G; ++g) {
      const bool kept = (__shfl_sync(0xffffffffu, taken, g & 31) >> (g >> 5)) & 1u;
      if (!kept) {
        for (int i = lane; i < size; i += 32) sel[g * size + i] = -INFINITY;
      }
    }
    __syncwarp();
  }

  uint32_t taken = 0;
  double chosen_sum = 0.0, top1 = 0.0;
  int my_expert = -1;  // lane j keeps slot j's expert
  for (int j = 0; j < k; ++j) {
    int e = warp_argmax(sel, E, taken);
    if (e < 0) e = 0;  // cannot happen (k <= E); keeps the index valid for the sort whatever the scores
    mark(taken, e);
    if (lane == j) my_expert = e;
    if (j == 0) top1 = prob[e];
    chosen_sum += prob[e];  // in slot order, as the host router
  }
  double scale = 1.0;
  if (a.renormalize) scale = 1.0 / (a.sigmoid ? chosen_sum + 1e-20 : chosen_sum);
  if (lane < k) {
    const int64_t slot = static_cast<int64_t>(t) * k + lane;
    a.expert[slot] = my_expert;
    a.weight[slot] = static_cast<float>(prob[my_expert] * scale * a.routed_scaling);
  }
  if (lane == 0) {
    a.token_z[t] = lse * lse;
    a.token_top1[t] = top1;
  }
  __syncwarp();  // prob and sel are reused by this warp's next token
}

// One warp per token.
__global__ void __launch_bounds__(kRouteWarps * 32) route_kernel(RouteArgs a) {
  extern __shared__ double smem[];
  const int warp = threadIdx.x >> 5;
  const int E = a.experts;
  __shared__ double block_prob[kFusedMaxExperts];
  for (int e = threadIdx.x; e < E; e += blockDim.x) block_prob[e] = 0.0;
  __syncthreads();
  const int t = blockIdx.x * kRouteWarps + warp;
  if (t < a.tokens) {
    double *prob = smem + warp * 3 * E;
    route_token(a, t, prob, prob + E, prob + 2 * E, block_prob);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    if (block_prob[e] != 0.0) atomicAdd(&a.prob_sum[e], block_prob[e]);
  }
}

constexpr int kSortThreads = 1024;
constexpr int kMaxGroups = kFusedMaxExperts + 1;

// Shared memory of one block's sort.
template <int THREADS>
struct SortShared {
  int32_t count[kMaxGroups];
  int32_t cursor[kMaxGroups];
  double partial[2][THREADS / 32];
};

// One block of THREADS threads: histogram, offsets, schedules, scatter and the call's loss sums. A single block keeps
// the whole sort free of inter-block synchronisation; its cost (a few microseconds at 32K assignments) is small beside
// the projections it feeds. Reads a.plan.expert written by this block or by earlier launches.
template <int THREADS>
__device__ void sort_block(const SortArgs &a, SortShared<THREADS> &sh) {
  int32_t *count = sh.count, *cursor = sh.cursor;
  const int E = a.experts, G = E + (a.shared ? 1 : 0);
  const int64_t A = static_cast<int64_t>(a.tokens) * a.top_k;
  for (int g = threadIdx.x; g < G; g += THREADS) count[g] = 0;
  __syncthreads();
  for (int64_t i = threadIdx.x; i < A; i += THREADS) atomicAdd(&count[a.plan.expert[i]], 1);
  if (threadIdx.x == 0 && a.shared) count[E] = a.tokens;
  __syncthreads();
  // Offsets, active list and tile schedule in group order. Warp 0 does it, each lane a contiguous run of groups after
  // an exclusive scan of the runs' totals: one thread walking all groups cost microseconds of a 1-token call.
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x, per = (G + 31) / 32, lo = min(G, lane * per), hi = min(G, lo + per);
    const int32_t tr = a.tile_rows;
    int32_t my_rows = 0, my_active = 0, my_tiles = 0;
    for (int g = lo; g < hi; ++g) {
      const int32_t c = count[g];
      my_rows += c;
      my_active += c > 0 ? 1 : 0;
      my_tiles += (c + tr - 1) / tr;
    }
    int32_t rows = my_rows, active = my_active, tiles = my_tiles;  // inclusive scans across the lanes
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int32_t r = __shfl_up_sync(0xffffffffu, rows, o), ac = __shfl_up_sync(0xffffffffu, active, o),
                    ti = __shfl_up_sync(0xffffffffu, tiles, o);
      if (lane >= o) {
        rows += r;
        active += ac;
        tiles += ti;
      }
    }
    int32_t offset = rows - my_rows;
    active -= my_active;
    tiles -= my_tiles;
    for (int g = lo; g < hi; ++g) {
      a.plan.offsets[g] = offset;
      cursor[g] = offset;
      const int32_t c = count[g];
      offset += c;
      if (c > 0) a.plan.active[active++] = g;
      for (int32_t r = 0; r < c; r += tr) {
        a.plan.tiles[2 * tiles] = g;
        a.plan.tiles[2 * tiles + 1] = r;
        ++tiles;
      }
    }
    if (lane == 31) {  // its run ends at G (32 * per >= G), so its running values are the totals
      a.plan.offsets[G] = offset;
      *a.plan.active_count = active;
      *a.plan.tile_count = tiles;
    }
  }
  for (int e = threadIdx.x; e < E; e += THREADS) a.counts[e] = count[e];
  __syncthreads();
  // Rows inside a group in any order: a row's result depends only on its own input, so the output bits do not.
  for (int64_t i = threadIdx.x; i < A; i += THREADS) {
    const int32_t e = a.plan.expert[i];
    const int32_t row = atomicAdd(&cursor[e], 1);
    a.plan.position[i] = row;
    a.plan.row_token[row] = static_cast<int32_t>(i / a.top_k);
    a.plan.row_group[row] = e;
  }
  if (a.shared) {
    for (int t = threadIdx.x; t < a.tokens; t += THREADS) {
      const int32_t row = cursor[E] + t;  // cursor[E] is untouched by the routed scatter
      a.plan.row_token[row] = t;
      a.plan.row_group[row] = E;
    }
  }
  // The call's loss sums in a fixed order (per thread, then per warp, then warp 0), so repeated calls agree.
  double z = 0.0, top1 = 0.0;
  for (int t = threadIdx.x; t < a.tokens; t += THREADS) {
    z += a.token_z[t];
    top1 += a.token_top1[t];
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  z = warp_sum(z);
  top1 = warp_sum(top1);
  if (lane == 0) {
    sh.partial[0][warp] = z;
    sh.partial[1][warp] = top1;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double zs = 0.0, ts = 0.0;
    for (int w = 0; w < THREADS / 32; ++w) {
      zs += sh.partial[0][w];
      ts += sh.partial[1][w];
    }
    a.call_stats[0] = zs;
    a.call_stats[1] = ts;
  }
  __syncthreads();
}

__global__ void __launch_bounds__(kSortThreads) sort_kernel(SortArgs a) {
  __shared__ SortShared<kSortThreads> sh;
  sort_block<kSortThreads>(a, sh);
}

// ------------------------------------------------------------------------------------------------ decode routing
// Decode-sized calls route in one launch: the router logits (each block one expert row, its 8 warps splitting H, a
// fixed-order reduction so a token's logits do not depend on scheduling), the input check, and then, in whichever
// block finishes last (a counter in device memory, reset by that block), routing of every token, the sort, and the
// routing results written straight into the caller-visible page-locked buffer. This replaces five launches, two
// memsets and a device-to-host copy, each of which cost microseconds of latency at one token.
constexpr int kDecodeThreads = 256;
constexpr int kDecodeWarps = kDecodeThreads / 32;

__global__ void __launch_bounds__(kDecodeThreads) decode_route_kernel(DecodeRouteArgs a) {
  extern __shared__ double smem[];  // kRouteWarps x 3 x E doubles for the last block's routing
  __shared__ float partial[kDecodeWarps][kDecodeMaxTokens];
  __shared__ double block_prob[kFusedMaxExperts];
  __shared__ SortShared<kDecodeThreads> sort_shared;
  __shared__ bool last;
  grid_dependency_wait();  // the input may come from the work queued before this launch
  grid_launch_dependents();
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int T = a.route.tokens, E = a.route.experts, H = a.hidden;
  const int e = blockIdx.x;

  // The input check: each block scans its slice of x (n = T*H) for NaN/Inf; the lowest bad index wins.
  {
    const int64_t n = static_cast<int64_t>(T) * H;
    const int64_t per = (n + gridDim.x - 1) / gridDim.x;
    const int64_t lo = per * blockIdx.x, hi = min(n, lo + per);
    for (int64_t i = lo + tid; i < hi; i += kDecodeThreads) {
      if (!isfinite(a.x[i])) {
        atomicMin(a.flag, static_cast<unsigned long long>(i));
        break;  // later elements of this thread have higher indices
      }
    }
  }

  // logits[t, e] = x[t] . router[e] for every token t < T.
  float acc[kDecodeMaxTokens];
#pragma unroll
  for (int t = 0; t < kDecodeMaxTokens; ++t) acc[t] = 0.0f;
  const float *w = a.router + static_cast<int64_t>(e) * H;
  if ((H & 3) == 0) {
    const int H4 = H >> 2;
    for (int i = tid; i < H4; i += kDecodeThreads) {
      const float4 wv = __ldcs(reinterpret_cast<const float4 *>(w) + i);
#pragma unroll
      for (int t = 0; t < kDecodeMaxTokens; ++t) {
        if (t < T) {
          const float4 xv = __ldg(reinterpret_cast<const float4 *>(a.x + static_cast<int64_t>(t) * H) + i);
          acc[t] = fmaf(wv.x, xv.x, acc[t]);
          acc[t] = fmaf(wv.y, xv.y, acc[t]);
          acc[t] = fmaf(wv.z, xv.z, acc[t]);
          acc[t] = fmaf(wv.w, xv.w, acc[t]);
        }
      }
    }
  } else {
    for (int i = tid; i < H; i += kDecodeThreads) {
      const float wv = w[i];
#pragma unroll
      for (int t = 0; t < kDecodeMaxTokens; ++t) {
        if (t < T) acc[t] = fmaf(wv, a.x[static_cast<int64_t>(t) * H + i], acc[t]);
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kDecodeMaxTokens; ++t) {
    if (t < T) {
      const float v = warp_sum(acc[t]);
      if (lane == 0) partial[warp][t] = v;
    }
  }
  __syncthreads();
  if (tid < T) {
    float v = 0.0f;
    for (int w8 = 0; w8 < kDecodeWarps; ++w8) v += partial[w8][tid];
    a.logits[static_cast<int64_t>(tid) * E + e] = v;
  }

  // The last block to finish sees every block's logits and input-check result.
  __threadfence();
  __syncthreads();
  if (tid == 0) last = atomicAdd(a.counter, 1u) == gridDim.x - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();

  for (int i = tid; i < E; i += kDecodeThreads) block_prob[i] = 0.0;
  __syncthreads();
  if (warp < kRouteWarps) {
    double *prob = smem + warp * 3 * E;
    for (int t = warp; t < T; t += kRouteWarps) route_token(a.route, t, prob, prob + E, prob + 2 * E, block_prob);
  }
  __syncthreads();
  for (int i = tid; i < E; i += kDecodeThreads) a.route.prob_sum[i] = block_prob[i];
  sort_block<kDecodeThreads>(a.sort, sort_shared);  // ends with a barrier: the plan and sums are written
  if (tid == 0) {
    *a.flag_out = *reinterpret_cast<volatile unsigned long long *>(a.flag);
    *a.flag = ~0ull;
    *a.counter = 0u;
  }
  __syncthreads();
  // The routing results (the head of the call buffer) to page-locked host memory, 4 bytes a thread.
  const auto *src = reinterpret_cast<const uint32_t *>(a.results);
  auto *dst = reinterpret_cast<uint32_t *>(a.host_results);
  for (int i = tid; i < a.result_words; i += kDecodeThreads) dst[i] = src[i];
}

}  // namespace

void launch_route(const RouteArgs &args, cudaStream_t stream) {
  // Up to 48 KiB of dynamic shared memory (3 x 512 doubles per warp) beside the static 4 KiB: opt in once.
  static const cudaError_t opt_in =
      cudaFuncSetAttribute(route_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(sizeof(double) * 3 * kFusedMaxExperts * kRouteWarps));
  (void)opt_in;  // a failure here shows up as the launch's error, which the caller checks
  cudaMemsetAsync(args.prob_sum, 0, sizeof(double) * static_cast<size_t>(args.experts), stream);
  const int blocks = (args.tokens + kRouteWarps - 1) / kRouteWarps;
  const size_t smem = sizeof(double) * 3 * static_cast<size_t>(args.experts) * kRouteWarps;
  route_kernel<<<blocks, kRouteWarps * 32, smem, stream>>>(args);
}

void launch_sort(const SortArgs &args, cudaStream_t stream) {
  sort_kernel<<<1, kSortThreads, 0, stream>>>(args);
}

void launch_decode_route(const DecodeRouteArgs &args, bool pdl, cudaStream_t stream) {
  static const cudaError_t opt_in =
      cudaFuncSetAttribute(decode_route_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(sizeof(double) * 3 * kFusedMaxExperts * kRouteWarps));
  (void)opt_in;  // a failure here shows up as the launch's error, which the caller checks
  launch_with_pdl(decode_route_kernel, dim3(static_cast<unsigned>(args.route.experts)), dim3(kDecodeThreads),
                  sizeof(double) * 3 * static_cast<size_t>(args.route.experts) * kRouteWarps, pdl, stream, args);
}

}  // namespace pimoe::cuda
