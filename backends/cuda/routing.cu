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

// One warp per token; the same arithmetic as src/router.cpp (doubles), so that near-tie-free tokens pick the same
// experts and weights as the host router and the oracle.
__global__ void __launch_bounds__(kRouteWarps * 32) route_kernel(RouteArgs a) {
  extern __shared__ double smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int E = a.experts, k = a.top_k;
  double *prob = smem + warp * 3 * E;
  double *sel = prob + E;
  double *group_score = sel + E;
  __shared__ double block_prob[kFusedMaxExperts];
  for (int e = threadIdx.x; e < E; e += blockDim.x) block_prob[e] = 0.0;
  __syncthreads();

  const int t = blockIdx.x * kRouteWarps + warp;
  if (t < a.tokens) {
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
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    if (block_prob[e] != 0.0) atomicAdd(&a.prob_sum[e], block_prob[e]);
  }
}

constexpr int kSortThreads = 1024;
constexpr int kMaxGroups = kFusedMaxExperts + 1;

// One block: histogram, offsets, schedules, scatter and the call's loss sums. A single block keeps the whole sort in
// one launch with no inter-block synchronisation; its cost (a few microseconds at 32K assignments) is small beside
// the projections it feeds.
__global__ void __launch_bounds__(kSortThreads) sort_kernel(SortArgs a) {
  __shared__ int32_t count[kMaxGroups];
  __shared__ int32_t cursor[kMaxGroups];
  __shared__ double partial[2][kSortThreads / 32];
  const int E = a.experts, G = E + (a.shared ? 1 : 0);
  const int64_t A = static_cast<int64_t>(a.tokens) * a.top_k;
  for (int g = threadIdx.x; g < G; g += blockDim.x) count[g] = 0;
  __syncthreads();
  for (int64_t i = threadIdx.x; i < A; i += blockDim.x) atomicAdd(&count[a.plan.expert[i]], 1);
  if (threadIdx.x == 0 && a.shared) count[E] = a.tokens;
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t offset = 0, active = 0, tiles = 0;
    for (int g = 0; g < G; ++g) {
      a.plan.offsets[g] = offset;
      cursor[g] = offset;
      const int32_t c = count[g];
      offset += c;
      if (c > 0) a.plan.active[active++] = g;
      for (int32_t r = 0; r < c; r += a.tile_rows) {
        a.plan.tiles[2 * tiles] = g;
        a.plan.tiles[2 * tiles + 1] = r;
        ++tiles;
      }
    }
    a.plan.offsets[G] = offset;
    *a.plan.active_count = active;
    *a.plan.tile_count = tiles;
  }
  for (int e = threadIdx.x; e < E; e += blockDim.x) a.counts[e] = count[e];
  __syncthreads();
  // Rows inside a group in any order: a row's result depends only on its own input, so the output bits do not.
  for (int64_t i = threadIdx.x; i < A; i += blockDim.x) {
    const int32_t e = a.plan.expert[i];
    const int32_t row = atomicAdd(&cursor[e], 1);
    a.plan.position[i] = row;
    a.plan.row_token[row] = static_cast<int32_t>(i / a.top_k);
    a.plan.row_group[row] = e;
  }
  if (a.shared) {
    for (int t = threadIdx.x; t < a.tokens; t += blockDim.x) {
      const int32_t row = cursor[E] + t;  // cursor[E] is untouched by the routed scatter
      a.plan.row_token[row] = t;
      a.plan.row_group[row] = E;
    }
  }
  // The call's loss sums in a fixed order (per thread, then per warp, then warp 0), so repeated calls agree.
  double z = 0.0, top1 = 0.0;
  for (int t = threadIdx.x; t < a.tokens; t += blockDim.x) {
    z += a.token_z[t];
    top1 += a.token_top1[t];
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  z = warp_sum(z);
  top1 = warp_sum(top1);
  if (lane == 0) {
    partial[0][warp] = z;
    partial[1][warp] = top1;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double zs = 0.0, ts = 0.0;
    for (int w = 0; w < kSortThreads / 32; ++w) {
      zs += partial[0][w];
      ts += partial[1][w];
    }
    a.call_stats[0] = zs;
    a.call_stats[1] = ts;
  }
}

}  // namespace

void launch_route(const RouteArgs &args, cudaStream_t stream) {
  // Up to 48 KiB of dynamic shared memory (3 x 512 doubles per warp) beside the static 4 KiB: opt in once.
  static const cudaError_t opt_in = cudaFuncSetAttribute(
      route_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
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

}  // namespace pimoe::cuda
