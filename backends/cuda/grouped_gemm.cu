// SPDX-License-Identifier: MIT
#include "grouped_gemm.cuh"

#include <type_traits>

#include "compact_codec.cuh"
#include "cuda_common.cuh"

namespace pimoe::cuda {
namespace {

// Which rows and which matrix a block of a grouped projection works on (matrices of the weight type of codec C).
template <typename C>
struct BlockJob {
  int64_t base = 0;       // first row of the group in the grouped buffers
  int32_t row0 = 0;       // first row of the tile inside the group
  int32_t count = 0;      // rows of the group
  int32_t K = 0, N = 0;
  MatrixRef W;   // up (up projection), down, or the dense weight
  MatrixRef Wg;  // gate (SwiGLU up projection only; values null otherwise)
  const float *bias = nullptr;
  int32_t act = -1;  // -1: no activation (down projection, dense)

  // False when the block has no work (a tile slot past the list's end).
  __device__ bool init(const ProjectionArgs &a, int tile_rows) {
    if (a.dense_rows > 0) {
      base = 0;
      row0 = static_cast<int32_t>(blockIdx.x) * tile_rows;
      count = a.dense_rows;
      K = a.dense_k;
      N = a.dense_n;
      W = matrix(a.dense_weight, nullptr, nullptr, 0);
      return row0 < count;
    }
    if (static_cast<int32_t>(blockIdx.x) >= *a.list_count) return false;
    const int32_t g = a.list[2 * blockIdx.x];
    row0 = a.list[2 * blockIdx.x + 1];
    const GroupDesc &d = a.groups[g];
    base = a.offsets[g];
    count = a.offsets[g + 1] - a.offsets[g];
    K = a.up ? a.hidden : d.inter;
    N = a.up ? d.inter : a.hidden;
    W = a.up ? matrix(d.up, d.up_scales, d.up_zeros, a.quant_group)
             : matrix(d.down, d.down_scales, d.down_zeros, a.quant_group);
    if (a.up) {
      act = d.activation;
      if (act == kSwiglu) Wg = matrix(d.gate, d.gate_scales, d.gate_zeros, a.quant_group);
      bias = d.up_bias;
    }
    return true;
  }

  __device__ MatrixRef matrix(const void *values, const void *scales, const uint8_t *zeros, int32_t group) const {
    return matrix_ref<C>(values, scales, zeros, K, N, group);
  }

  __device__ float epilogue(float acc, float gate_acc, int n) const {
    if (act == kSwiglu) return silu(gate_acc) * acc;
    if (act >= 0) return activate(act, bias ? acc + bias[n] : acc);
    return acc;
  }
};

// ------------------------------------------------------------------------------------------------ fp32 SIMT
constexpr int kSimtBM = kSimtTileRows, kSimtBN = 64, kSimtBK = 16, kSimtThreads = 256;

// 64 x 64 outputs (per matrix: gate and up for SwiGLU) per block, 4 x 4 per thread. Each output accumulates over k
// in order with fmaf, so a row's result does not depend on the other rows of the call (batch invariance). Weights of
// any type are decoded element by element (C::element) into the fp32 tile.
template <typename C>
__global__ void __launch_bounds__(kSimtThreads) simt_kernel(ProjectionArgs a) {
  __shared__ __align__(16) float As[kSimtBK][kSimtBM + 4];
  __shared__ __align__(16) float Bs[2][kSimtBK][kSimtBN + 4];
  BlockJob<C> job;
  if (!job.init(a, kSimtBM)) return;
  const int n0 = blockIdx.y * kSimtBN;
  if (n0 >= job.N) return;
  const bool gated = job.Wg.values != nullptr;
  const float *in = static_cast<const float *>(a.in);
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int rows = min(kSimtBM, job.count - job.row0);
  float acc[4][4] = {}, accg[4][4] = {};
  for (int k0 = 0; k0 < job.K; k0 += kSimtBK) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int e = tid + kSimtThreads * i;
      const int r = e / kSimtBK, kk = e % kSimtBK, k = k0 + kk;
      As[kk][r] = (r < rows && k < job.K) ? in[(job.base + job.row0 + r) * a.in_stride + k] : 0.0f;
      const int n = n0 + r;
      const bool ok = n < job.N && k < job.K;
      Bs[0][kk][r] = ok ? C::element(job.W, n, k) : 0.0f;
      if (gated) Bs[1][kk][r] = ok ? C::element(job.Wg, n, k) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kSimtBK; ++kk) {
      const float4 av = *reinterpret_cast<const float4 *>(&As[kk][ty * 4]);
      const float4 bv = *reinterpret_cast<const float4 *>(&Bs[0][kk][tx * 4]);
      const float ar[4] = {av.x, av.y, av.z, av.w}, br[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
      if (gated) {
        const float4 gv = *reinterpret_cast<const float4 *>(&Bs[1][kk][tx * 4]);
        const float gr[4] = {gv.x, gv.y, gv.z, gv.w};
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) accg[i][j] = fmaf(ar[i], gr[j], accg[i][j]);
      }
    }
    __syncthreads();
  }
  float *out = static_cast<float *>(a.out);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = ty * 4 + i;
    if (r >= rows) continue;
    float *dst = out + (job.base + job.row0 + r) * a.out_stride;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + tx * 4 + j;
      if (n < job.N) dst[n] = job.epilogue(acc[i][j], accg[i][j], n);
    }
  }
}

// ------------------------------------------------------------------------------------------------ tensor cores
constexpr int kBM = kMmaTileRows, kBK = 32, kStages = 4, kLds = kBK + 8;  // +8 halves: conflict-free ldmatrix
constexpr int kMmaThreads = 256;
constexpr int kStageHalves = (kBM + 128) * kLds;  // A tile + 128 rows of B (128 of up/down, or 64 gate + 64 up)
constexpr size_t kMmaSmem = sizeof(uint16_t) * kStageHalves * kStages;

__device__ __forceinline__ uint32_t smem_addr(const void *p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

template <typename T>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                                        uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 128 rows x (128 columns, or 64 columns of gate and up each) per block; 8 warps as 2 (rows) x 4 (columns), each
// 64 x 32 accumulators; a 4-stage cp.async pipeline over k. Rows past the group's end and columns past N load zeros.
template <typename T>
__global__ void __launch_bounds__(kMmaThreads) mma_kernel(ProjectionArgs a) {
  extern __shared__ __align__(16) uint16_t smem[];
  BlockJob<Codec<std::is_same<T, __half>::value ? WType::F16 : WType::BF16>> job;
  if (!job.init(a, kBM)) return;
  const T *W_up = reinterpret_cast<const T *>(job.W.values), *W_gate = reinterpret_cast<const T *>(job.Wg.values);
  const bool gated = W_gate != nullptr;
  const int cols = gated ? 64 : 128;  // output columns per block
  const int n0 = blockIdx.y * cols;
  if (n0 >= job.N) return;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, warp_m = warp >> 2, warp_n = warp & 3;
  const int rows = min(kBM, job.count - job.row0);
  const T *in = static_cast<const T *>(a.in) + (job.base + job.row0) * a.in_stride;
  const int KT = (job.K + kBK - 1) / kBK;

  auto load_stage = [&](int stage, int k0) {
    uint16_t *As = smem + stage * kStageHalves;
    uint16_t *Bs = As + kBM * kLds;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int c = tid + kMmaThreads * i, r = c >> 2, kc = (c & 3) * 8, k = k0 + kc;
      const bool ok = r < rows && k < job.K;
      cp_async16(smem_addr(As + r * kLds + kc), ok ? in + r * a.in_stride + k : static_cast<const T *>(a.in), ok);
      const T *W = W_up;
      int n = n0 + r;
      if (gated) {
        W = r < 64 ? W_gate : W_up;
        n = n0 + (r & 63);
      }
      const bool okb = n < job.N && k < job.K;
      cp_async16(smem_addr(Bs + r * kLds + kc), okb ? W + static_cast<int64_t>(n) * job.K + k : W_up, okb);
    }
  };

  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < KT) load_stage(s, s * kBK);
    cp_async_commit();
  }
  // The B rows of this warp's two 16-row fragment pairs: 32 consecutive columns, or 16 of gate and the same 16 of up.
  const int brow0 = gated ? warp_n * 16 : warp_n * 32;
  const int brow1 = gated ? 64 + warp_n * 16 : warp_n * 32 + 16;
  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();
    const int next = kt + kStages - 1;
    if (next < KT) load_stage(next % kStages, next * kBK);
    cp_async_commit();
    const uint16_t *As = smem + (kt % kStages) * kStageHalves;
    const uint16_t *Bs = As + kBM * kLds;
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ++ks) {
      uint32_t af[4][4], bf[2][4];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        const int r = warp_m * 64 + mi * 16 + (lane & 15);
        ldmatrix_x4(smem_addr(As + r * kLds + ks * 16 + (lane >> 4) * 8), af[mi]);
      }
#pragma unroll
      for (int p = 0; p < 2; ++p) {
        const int r = (p == 0 ? brow0 : brow1) + (lane & 7) + ((lane >> 4) << 3);
        ldmatrix_x4(smem_addr(Bs + r * kLds + ks * 16 + ((lane >> 3) & 1) * 8), bf[p]);
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int f = 0; f < 4; ++f) mma16816<T>(acc[mi][f], af[mi], bf[f >> 1][(f & 1) * 2], bf[f >> 1][(f & 1) * 2 + 1]);
    }
  }
  cp_async_wait<0>();

  // Epilogue: fragment f covers 8 columns; with SwiGLU fragments 0-1 are gate and 2-3 the up columns they pair with.
  const int nf = gated ? 2 : 4;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = warp_m * 64 + mi * 16 + (lane >> 2) + half * 8;
      if (r >= rows) continue;
      const int64_t row = job.base + job.row0 + r;
#pragma unroll
      for (int f = 0; f < 4; ++f) {
        if (f >= nf) continue;
        const int col = n0 + (gated ? warp_n * 16 : warp_n * 32) + f * 8 + (lane & 3) * 2;
        if (col >= job.N) continue;
        const float *c = acc[mi][f] + half * 2;
        float v0, v1;
        if (gated) {
          const float *u = acc[mi][f + 2] + half * 2;
          v0 = silu(c[0]) * u[0];
          v1 = silu(c[1]) * u[1];
        } else {
          v0 = job.epilogue(c[0], 0.0f, col);
          v1 = job.epilogue(c[1], 0.0f, col + 1);
        }
        if (a.up) {
          T *dst = static_cast<T *>(a.out) + row * a.out_stride + col;
          *reinterpret_cast<typename Pair<T>::type *>(dst) = Pair<T>::make(v0, v1);
        } else {
          float *dst = static_cast<float *>(a.out) + row * a.out_stride + col;
          *reinterpret_cast<float2 *>(dst) = make_float2(v0, v1);
        }
      }
    }
  }
}

template <typename T>
void launch_mma_typed(const ProjectionArgs &args, cudaStream_t stream) {
  static const cudaError_t opt_in =
      cudaFuncSetAttribute(mma_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kMmaSmem));
  (void)opt_in;  // a failure shows up as the launch's error, which the caller checks
  // Up projections may mix SwiGLU groups (64 columns a block) and others (128): the grid covers the finer split.
  const int cols = args.up ? 64 : 128;
  const dim3 grid(static_cast<unsigned>(args.max_list), static_cast<unsigned>((args.max_n + cols - 1) / cols));
  if (grid.x == 0 || grid.y == 0) return;
  mma_kernel<T><<<grid, kMmaThreads, kMmaSmem, stream>>>(args);
}

}  // namespace

void launch_simt_gemm(const ProjectionArgs &args, WType w, cudaStream_t stream) {
  const int32_t n = args.dense_rows > 0 ? args.dense_n : args.max_n;
  const unsigned gx = args.dense_rows > 0 ? static_cast<unsigned>((args.dense_rows + kSimtBM - 1) / kSimtBM)
                                          : static_cast<unsigned>(args.max_list);
  const dim3 grid(gx, static_cast<unsigned>((n + kSimtBN - 1) / kSimtBN));
  if (grid.x == 0 || grid.y == 0) return;
  with_codec(w, [&](auto codec) { simt_kernel<decltype(codec)><<<grid, kSimtThreads, 0, stream>>>(args); });
}

void launch_mma_gemm(const ProjectionArgs &args, WType w, cudaStream_t stream) {
  if (w == WType::BF16) {
    launch_mma_typed<__nv_bfloat16>(args, stream);
  } else {
    launch_mma_typed<__half>(args, stream);
  }
}

}  // namespace pimoe::cuda
