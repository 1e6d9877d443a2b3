// SPDX-License-Identifier: MIT
#include "gemv_stream.cuh"

#include <algorithm>

#include "compact_codec.cuh"
#include "cuda_common.cuh"
#include "gemv.cuh"

namespace pimoe::cuda {
namespace {

// The decode kernel when every row is whole 16-byte chunks (all the standard shapes). Why not gemv.cu's kernel: a
// block of it streams 16 rows in a few round trips of register loads, then exits; with small experts (K = 768) its
// prologue, the grid's partial last wave and the burst-wait-compute rhythm of each warp cost more than the bytes.
// Here the weights stream through shared memory with cp.async (no registers held by loads in flight, so a lane keeps
// 32 chunks in flight and refills a slot as soon as it is read), and the grid is sized to the GPU: each warp takes an
// equal contiguous share of the call's tasks (a task: kTaskRows weight rows of one group, every token of the group in
// one pass of up to kPassRows tokens), so every warp streams for the whole kernel and all finish together.
// One kernel for every weight type (compact_codec.cuh): a compact chunk's scale (and zero point) word streams into a
// ring of its own beside the chunk, and the chunk is decoded to fp32 in registers; compact rows may end in a partial
// chunk (any K), whose inputs past K read as zeros.
constexpr int kStreamWarps = 8;
constexpr int kTaskRows = 4;                          // weight rows per task: 2 outputs x (gate, up), or 4 outputs
constexpr int kRingChunks = 32;                       // 16-byte chunks in flight per lane
constexpr int kPositions = kRingChunks / kTaskRows;  // ring slots per lane, each one chunk of every task row
constexpr int kPassRows = 8;                          // tokens per pass over a task's weights
constexpr int kRingBytes = kStreamWarps * 32 * kRingChunks * 16;  // 128 KiB a block
constexpr int kWordRingBytes = kStreamWarps * 32 * kRingChunks * 4;  // a scale or zero-point word per chunk: 32 KiB

constexpr int kWarpWords = kPositions * kTaskRows * 32;  // a warp's ring of scale (or zero-point) words

template <typename C>
constexpr int ring_bytes() {
  return kRingBytes + (C::kScaled ? kWordRingBytes : 0) + (C::kZeros ? kWordRingBytes : 0);
}

__device__ __forceinline__ uint64_t evict_first_policy() {
  uint64_t p;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(p));
  return p;
}
// 16 bytes global -> shared, L2 only (weights are read once; evict them first so the inputs stay in L2).
__device__ __forceinline__ void cp_async16(int4 *dst, const void *src, uint64_t policy) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "l"(policy)
               : "memory");
}
// 4 bytes global -> shared (a scale or zero-point word; .cg takes 16 bytes only).
__device__ __forceinline__ void cp_async4(uint32_t *dst, const void *src) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// One group as a task sees it.
struct StreamGroup {
  MatrixRef w, g;  // up or down rows; gate rows (g.values null: not gated)
  const float *bias = nullptr;
  int32_t K = 0, N = 0, act = -1, row0 = 0, count = 0;
  int32_t chunks = 0, steps = 0, passes = 0;  // 16-byte chunks per row, ring positions per pass, passes over rows
};

// The plan is read through L2 (__ldcg): a down projection reads it before its dependency wait (see the kernel).
template <typename C>
__device__ StreamGroup stream_group(const ProjectionArgs &a, int32_t i) {
  StreamGroup s;
  if (a.dense_rows > 0) {
    s.K = a.dense_k;
    s.N = a.dense_n;
    s.w = matrix_ref<C>(a.dense_weight, nullptr, nullptr, s.K, s.N, 0);
    s.count = a.dense_rows;
  } else {
    const int32_t g = __ldcg(a.list + i);
    const GroupDesc &d = a.groups[g];
    s.row0 = __ldcg(a.offsets + g);
    s.count = __ldcg(a.offsets + g + 1) - s.row0;
    if (a.up) {
      s.K = a.hidden;
      s.N = d.inter;
      s.w = matrix_ref<C>(d.up, d.up_scales, d.up_zeros, s.K, s.N, a.quant_group);
      s.act = d.activation;
      if (s.act == kSwiglu) s.g = matrix_ref<C>(d.gate, d.gate_scales, d.gate_zeros, s.K, s.N, a.quant_group);
      s.bias = d.up_bias;
    } else {
      s.K = d.inter;
      s.N = a.hidden;
      s.w = matrix_ref<C>(d.down, d.down_scales, d.down_zeros, s.K, s.N, a.quant_group);
    }
  }
  s.chunks = (s.K + C::kElems - 1) / C::kElems;
  s.steps = max(1, (s.chunks + 31) / 32);
  s.passes = (s.count + kPassRows - 1) / kPassRows;
  return s;
}

// Where a warp is in its stream of tasks: task t (group t / per_group, rows (t % per_group) * R ..), pass, step.
template <typename C>
struct StreamCursor {
  int64_t t;
  int32_t pass = 0, step = 0, group = -1;
  StreamGroup s;
  __device__ void seek(const ProjectionArgs &a, int64_t task, int32_t per_group) {
    t = task;
    pass = step = 0;
    const int32_t i = static_cast<int32_t>(t / per_group);
    if (i != group) {
      group = i;
      s = stream_group<C>(a, i);
    }
  }
  // From task t on, to the first task before `end` with positions (a group without rows has none), else to end.
  __device__ void first_with_rows(const ProjectionArgs &a, int64_t task, int64_t end, int32_t per_group) {
    for (t = task; t < end; ++t) {
      seek(a, t, per_group);
      if (s.passes > 0) return;
    }
  }
};

// The fused combine of one column slice [n_begin, n_end) by one warp (the one whose tasks completed the slice). The
// loads of up to 8 slots are issued together (position, weight, expert, then the rows): the slices complete at the
// end of the kernel, so this chain's latency is the kernel's tail. The sum runs in slot order, as in combine_slice
// (gemv.cu).
__device__ void combine_slice_warp(const ProjectionArgs &a, int n_begin, int n_end) {
  const FusedCombine &c = a.combine;
  const int lane = threadIdx.x & 31;
  const float *out = static_cast<const float *>(a.out);
  const int H = a.hidden, width = n_end - n_begin, k = c.top_k;
  const int64_t shared0 = c.shared ? __ldcg(a.offsets + c.experts) : -1;
  for (int idx = lane; idx < c.tokens * width; idx += 32) {
    const int t = idx / width, n = n_begin + idx % width;
    float acc = 0.0f;
    for (int j0 = 0; j0 < k; j0 += 8) {
      int32_t p[8];
      float w[8], v[8];
      const float *bias[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int64_t slot = static_cast<int64_t>(t) * k + j0 + j;
        p[j] = j0 + j < k ? c.position[slot] : -1;
        w[j] = j0 + j < k ? c.weight[slot] : 0.0f;
        bias[j] = p[j] >= 0 ? a.groups[c.expert[slot]].down_bias : nullptr;
        v[j] = p[j] >= 0 ? __ldcg(out + static_cast<int64_t>(p[j]) * H + n) : 0.0f;
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        if (p[j] >= 0) acc += bias[j] ? w[j] * (v[j] + bias[j][n]) : w[j] * v[j];
      }
    }
    if (shared0 >= 0) acc += 1.0f * __ldcg(out + (shared0 + t) * H + n);
    c.y[static_cast<int64_t>(t) * H + n] = acc;
  }
}

// After a warp of a down projection with the fused combine has written all its outputs: one fence, then one count
// per column slice its tasks touched (a lane per slice), and the warp whose count completes a slice combines it.
// (Counting per task instead put a fence and a round trip to L2 after every task, which stalls the stream.)
__device__ void finish_slices(const ProjectionArgs &a, int64_t begin, int64_t end, int32_t per_group,
                              int32_t slice_tasks, int32_t groups) {
  const int lane = threadIdx.x & 31;
  __threadfence();
  __syncwarp();
  const int32_t slices = (per_group + slice_tasks - 1) / slice_tasks;  // per group
  const int64_t first = (begin / per_group) * slices + (begin % per_group) / slice_tasks;
  const int64_t last = ((end - 1) / per_group) * slices + ((end - 1) % per_group) / slice_tasks;
  for (int64_t base = first; base <= last; base += 32) {
    const int64_t s = base + lane;
    int32_t y = 0;
    bool completes = false;
    if (s <= last) {
      const int64_t u = s / slices;
      y = static_cast<int32_t>(s % slices);
      const int64_t lo = max(begin, u * per_group + int64_t{y} * slice_tasks);
      const int64_t hi = min(end, u * per_group + min(per_group, (y + 1) * slice_tasks));
      const auto count = static_cast<unsigned int>(hi - lo);
      const auto target = static_cast<unsigned int>(groups * min(slice_tasks, per_group - y * slice_tasks));
      completes = atomicAdd(&a.combine.counters[y], count) + count == target;
    }
    unsigned int ready = __ballot_sync(0xffffffffu, completes);
    if (ready) __threadfence();
    while (ready) {
      const int from = __ffs(ready) - 1;
      ready &= ready - 1;
      const int32_t ys = __shfl_sync(0xffffffffu, y, from);
      const int n_begin = ys * kGemvSliceColumns;
      combine_slice_warp(a, n_begin, min(a.hidden, n_begin + kGemvSliceColumns));
      if (lane == 0) a.combine.counters[ys] = 0u;
    }
  }
}

// M = 2: up projection with gate rows (R = 2 outputs a task); M = 1: R = 4 outputs a task.
template <typename C, int M>
struct StreamWarp {
  static constexpr int R = kTaskRows / M;
  static constexpr int E = C::kElems;
  const ProjectionArgs &a;
  int4 *ring;       // this warp's [kPositions][kTaskRows][32] chunks
  uint32_t *scale;  // the same shape of scale words (compact types), then of zero-point words (I4Z)
  int lane;
  int32_t per_group;
  int64_t end;
  uint64_t policy;
  StreamCursor<C> p;  // the producer: the next position to load
  uint32_t issued = 0, consumed = 0;

  __device__ uint32_t *scale_slot(uint32_t position, int q) {
    return scale + (position % kPositions) * kTaskRows * 32 + q * 32 + lane;
  }
  __device__ uint32_t *zero_slot(uint32_t position, int q) { return scale_slot(position, q) + kWarpWords; }

  // Loads the producer's position into the ring slot after the last one issued (one commit group, maybe empty),
  // then moves the producer on.
  __device__ void issue() {
    if (p.t < end) {
      const int c = lane + 32 * p.step;
      if (c < p.s.chunks) {
        int4 *slot = ring + (issued % kPositions) * kTaskRows * 32 + lane;
        const int32_t n0 = static_cast<int32_t>(p.t % per_group) * R;
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const int32_t n = n0 + r;
          if (n < p.s.N) {
            const int64_t at = static_cast<int64_t>(n) * p.s.w.row_bytes + static_cast<int64_t>(c) * 16;
            cp_async16(slot + (r * M) * 32, p.s.w.values + at, policy);
            if (M == 2 && p.s.g.values) cp_async16(slot + (r * M + 1) * 32, p.s.g.values + at, policy);
            if constexpr (C::kScaled) {
              const int64_t i = C::scale_index(p.s.w, n, c);
              cp_async4(scale_slot(issued, r * M), C::scale_word(p.s.w, i));
              if (C::kZeros) cp_async4(zero_slot(issued, r * M), C::zero_word(p.s.w, i));
              if (M == 2 && p.s.g.values) {
                cp_async4(scale_slot(issued, r * M + 1), C::scale_word(p.s.g, i));
                if (C::kZeros) cp_async4(zero_slot(issued, r * M + 1), C::zero_word(p.s.g, i));
              }
            }
          }
        }
      }
      if (++p.step == p.s.steps) {
        p.step = 0;
        if (++p.pass >= p.s.passes) {
          p.pass = 0;
          p.first_with_rows(a, p.t + 1, end, per_group);
        }
      }
    }
    cp_async_commit();
    ++issued;
  }

  // Inputs k .. k + 3 of a token row: one 16-byte load where the quad is inside K and aligned, else element by
  // element with zeros past K (a compact row's last chunk).
  __device__ float4 input_quad(const float *x, int64_t k, int32_t K, bool vector_in) const {
    if (!C::kCompact || (vector_in && k + 4 <= K)) return __ldg(reinterpret_cast<const float4 *>(x + k));
    float4 v;
    v.x = k < K ? __ldg(x + k) : 0.0f;
    v.y = k + 1 < K ? __ldg(x + k + 1) : 0.0f;
    v.z = k + 2 < K ? __ldg(x + k + 2) : 0.0f;
    v.w = k + 3 < K ? __ldg(x + k + 3) : 0.0f;
    return v;
  }

  // One pass over a task's rows for tokens m0 .. m0 + mc - 1 (mc <= MC): acc[r * M + q][m] is the dot product of
  // weight row q of output n0 + r with token m; each lane sums its chunks in order, then the warp sums the lanes (the
  // same order whatever MC, the ring depth or the grid).
  template <int MC>
  __device__ void pass(const StreamGroup &s, int32_t n0, int32_t rc, int32_t m0, int32_t mc, bool vector_in) {
    const float *in = static_cast<const float *>(a.in);
    const float *xs[MC];
#pragma unroll
    for (int m = 0; m < MC; ++m) {
      const int32_t r = s.row0 + m0 + min(m, mc - 1);
      xs[m] = in + static_cast<int64_t>(a.in_rows ? a.in_rows[r] : r) * a.in_stride;
    }
    float acc[kTaskRows][MC];
#pragma unroll
    for (int q = 0; q < kTaskRows; ++q)
#pragma unroll
      for (int m = 0; m < MC; ++m) acc[q][m] = 0.0f;
    for (int32_t step = 0; step < s.steps; ++step) {
      cp_async_wait<kPositions - 1>();  // this lane's chunks of the oldest position have landed
      const int c = lane + 32 * step;
      if (c < s.chunks) {
        const int4 *slot = ring + (consumed % kPositions) * kTaskRows * 32 + lane;
        // The chunk's scale (and zero point) per row (rows past N or without a gate: never used).
        typename C::Scale sc[kTaskRows];
#pragma unroll
        for (int q = 0; q < kTaskRows; ++q) {
          if constexpr (C::kScaled) {
            const int64_t i = C::scale_index(s.w, min(n0 + q / M, s.N - 1), c);
            sc[q] = C::chunk_scale(*scale_slot(consumed, q), C::kZeros ? *zero_slot(consumed, q) : 0u, i);
          }
        }
        // Four elements of the chunk at a time (fewer registers than all of them: no spills at MC = 8), each weight
        // converted once and each input quad loaded once for all kTaskRows rows.
#pragma unroll
        for (int h = 0; h < E / 4; ++h) {
          float f[kTaskRows][4];
#pragma unroll
          for (int q = 0; q < kTaskRows; ++q) C::decode_quad(slot[q * 32], h, sc[q], f[q]);
          const int64_t k = static_cast<int64_t>(c) * E + 4 * h;
#pragma unroll
          for (int m = 0; m < MC; ++m) {
            if (m < mc) {
              const float4 v = input_quad(xs[m], k, s.K, vector_in);
#pragma unroll
              for (int q = 0; q < kTaskRows; ++q) {
                acc[q][m] = fmaf(f[q][0], v.x, acc[q][m]);
                acc[q][m] = fmaf(f[q][1], v.y, acc[q][m]);
                acc[q][m] = fmaf(f[q][2], v.z, acc[q][m]);
                acc[q][m] = fmaf(f[q][3], v.w, acc[q][m]);
              }
            }
          }
        }
      }
      ++consumed;
      issue();  // into the slot just read
    }
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int q = 0; q < M; ++q)
#pragma unroll
        for (int m = 0; m < MC; ++m)
          if (r < rc && m < mc && (q == 0 || s.g.values)) acc[r * M + q][m] = warp_sum(acc[r * M + q][m]);
    float *out = static_cast<float *>(a.out);
#pragma unroll
    for (int m = 0; m < MC; ++m) {
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (lane == (m * R + r) % 32 && m < mc && r < rc) {
          const int32_t n = n0 + r;
          float v = acc[r * M][m];
          if (M == 2 && s.act == kSwiglu) {
            v = silu(acc[r * M + 1][m]) * v;
          } else if (s.act >= 0) {
            v = activate(s.act, s.bias ? v + s.bias[n] : v);
          }
          out[static_cast<int64_t>(s.row0 + m0 + m) * a.out_stride + n] = v;
        }
      }
    }
  }
};

template <typename C, int M>
// One block per SM, with up to 255 registers a thread: the accumulators of 8 tokens x 4 rows, the producer's and the
// consumer's cursors and the weights of a position do not fit in the 128 of two blocks per SM without spills.
__global__ void __launch_bounds__(kStreamWarps * 32, 1) gemv_stream_kernel(const __grid_constant__ ProjectionArgs a) {
  extern __shared__ int4 ring_smem[];
  constexpr int R = kTaskRows / M;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  // A down projection reads only the plan (written by the routing, which finished before the up projection that
  // this launch depends on started its work) and its weights before the wait: its first loads overlap the up
  // projection's tail. An up projection's plan comes from the kernel just before it: wait first.
  const bool early = !a.up || a.dense_rows > 0;
  if (!early) grid_dependency_wait();
  grid_launch_dependents();
  const int32_t n_max = a.dense_rows > 0 ? a.dense_n : a.max_n;
  const int32_t per_group = (n_max + R - 1) / R;
  const int32_t groups = a.dense_rows > 0 ? 1 : __ldcg(a.list_count);
  const int64_t tasks = static_cast<int64_t>(groups) * per_group;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kStreamWarps;
  const int64_t gw = static_cast<int64_t>(blockIdx.x) * kStreamWarps + warp;
  const int64_t begin = gw * tasks / warps, end = (gw + 1) * tasks / warps;
  const bool vector_in = a.in_stride % 4 == 0 && (reinterpret_cast<uintptr_t>(a.in) & 15) == 0;

  uint32_t *words = reinterpret_cast<uint32_t *>(ring_smem + kStreamWarps * kPositions * kTaskRows * 32);
  StreamWarp<C, M> sw{a,
                      ring_smem + warp * kPositions * kTaskRows * 32,
                      words + warp * kWarpWords * (C::kZeros ? 2 : 1),
                      lane,
                      per_group,
                      end,
                      evict_first_policy()};
  sw.p.first_with_rows(a, begin, end, per_group);
#pragma unroll 1
  for (int i = 0; i < kPositions; ++i) sw.issue();
  if (early) grid_dependency_wait();

  StreamCursor<C> c;
  c.group = -1;
  for (int64_t t = begin; t < end; ++t) {
    c.seek(a, t, per_group);
    const StreamGroup &s = c.s;
    const int32_t n0 = static_cast<int32_t>(t % per_group) * R;
    const int32_t rc = min(R, s.N - n0);
    for (int32_t m0 = 0; m0 < s.count; m0 += kPassRows) {
      const int32_t mc = min(kPassRows, s.count - m0);
      if (mc == 1) {
        sw.template pass<1>(s, n0, rc, m0, mc, vector_in);
      } else if (mc <= 4) {
        sw.template pass<4>(s, n0, rc, m0, mc, vector_in);
      } else {
        sw.template pass<kPassRows>(s, n0, rc, m0, mc, vector_in);
      }
    }
  }
  // Down projections only (N = H for every group, R outputs a task, kGemvSliceColumns outputs a slice).
  if (a.combine.y && begin < end) finish_slices(a, begin, end, per_group, kGemvSliceColumns / R, groups);
  cp_async_wait<0>();  // nothing may land in shared memory after the block has gone
}

template <typename C, int M>
void launch_stream(const ProjectionArgs &args, bool pdl, cudaStream_t stream) {
  constexpr int smem = ring_bytes<C>();
  // Blocks the GPU holds at once: the grid never exceeds it, so every warp streams from the start to the end.
  static const int resident = [] {
    cudaFuncSetAttribute(gemv_stream_kernel<C, M>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    int device = 0, sms = 0, per_sm = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, gemv_stream_kernel<C, M>, kStreamWarps * 32, smem);
    return std::max(1, sms) * std::max(1, per_sm);
  }();
  constexpr int R = kTaskRows / M;
  const bool dense = args.dense_rows > 0;
  const int64_t per_group = ((dense ? args.dense_n : args.max_n) + R - 1) / R;
  const int64_t tasks = (dense ? 1 : args.max_list) * per_group;  // at most: the list may be shorter
  if (tasks <= 0) return;
  // The fewest tasks per warp that the resident warps allow, then just enough warps for them.
  const int64_t per_warp = (tasks + int64_t{resident} * kStreamWarps - 1) / (int64_t{resident} * kStreamWarps);
  const int64_t warps = (tasks + per_warp - 1) / per_warp;
  launch_with_pdl(gemv_stream_kernel<C, M>, dim3(static_cast<unsigned>((warps + kStreamWarps - 1) / kStreamWarps)),
                  dim3(kStreamWarps * 32), smem, pdl, stream, args);
}

}  // namespace

void launch_gemv_stream(const ProjectionArgs &args, WType w, bool gated_up, bool pdl, cudaStream_t stream) {
  with_codec(w, [&](auto codec) {
    using C = decltype(codec);
    if (gated_up) {
      launch_stream<C, 2>(args, pdl, stream);
    } else {
      launch_stream<C, 1>(args, pdl, stream);
    }
  });
}

}  // namespace pimoe::cuda
