// SPDX-License-Identifier: MIT
// Hopper (sm_90a) grouped GEMM for the tensor-core path: the same job as mma_kernel in grouped_gemm.cu (every group's
// row tiles of one projection in one launch, SwiGLU fused into the up projection, the tile list built with the plan
// on the device), on wgmma and the bulk tensor copy engine (TMA) instead of mma.sync and cp.async.
//
// Block: 128 rows x 256 B columns (SwiGLU: 128 gate + the same 128 up columns, so the pair of an output lands in one
// thread's accumulators), k-steps of 64 (one 128-byte swizzle row of bf16/fp16). Three warpgroups: warpgroup 0 is
// the producer (one thread issues the TMA copies of a stage: A 128x64, B two boxes of 128x64), warpgroups 1 and 2
// are consumers (64 rows x 256 columns each, m64n256k16, 128 fp32 accumulators a thread). 4 stages of 48 KB; a full
// barrier per stage (TMA bytes) and an empty barrier (one arrival per consumer warp once its wgmmas on the stage are
// done).
//
// Operands: A is the gathered rows (up) or the hidden layer (down), one tensor map per launch over the whole buffer;
// rows past a group's end are other groups' rows (computed, never stored) or the map's zero fill. B is nn.Linear
// [N, K]: K-major like A, so neither operand is transposed. One tensor map per weight matrix, encoded at upload
// (global memory, 3 per group). K tails and N tails come back as zeros from the maps' out-of-bounds fill. When a
// group's I is below the hidden buffer's row stride (groups of different widths), the down projection's last k-step
// reads the columns between them: the up projection writes zeros there, so zero-filled weights never meet garbage
// (0 * NaN would be NaN).
#include "grouped_gemm_sm90.cuh"

#include <cuda.h>  // CUtensorMap and its enums only: the encoder comes through the runtime's driver entry point
#include <cudaTypedefs.h>

#include <cstring>

#include "cuda_common.cuh"

namespace pimoe::cuda {
namespace {

static_assert(sizeof(CUtensorMap) == kSm90MapBytes, "tensor map size");

constexpr int kBM = 128, kBN = 256, kBK = 64, kStages = 4, kThreads = 384;
constexpr int kABytes = kBM * kBK * 2;   // 16 KB
constexpr int kBHalf = 128 * kBK * 2;    // one 128-row box of B, 16 KB
constexpr int kStageBytes = kABytes + 2 * kBHalf;
constexpr size_t kSmem = static_cast<size_t>(kStageBytes) * kStages + 1024 + 2 * kStages * 8;
constexpr int kBand = 8;  // column tiles a band of consecutive blocks covers (L2 reuse of rows and weights)

// ------------------------------------------------------------------------------------------------ PTX wrappers
__device__ __forceinline__ uint32_t smem_u32(const void *p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}\n" ::"r"(bar),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(bar) : "memory");
}
// The spin loop stays inside one asm block: a C loop around try_wait is divergent control flow to the compiler,
// which then serialises every wgmma behind it (ptxas warning C7518).
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred p;\nWAIT:\nmbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n@!p bra WAIT;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// 2-D tiled TMA copy global -> shared, completing on an mbarrier. c0: element along K (inner), c1: row.
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap *map, int32_t c0, int32_t c1,
                                            uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}

// Shared-memory matrix descriptor of a K-major tile in the 128-byte swizzle layout that TMA writes: rows of 128
// bytes, 8-row (1024-byte) swizzle atoms stacked along M/N (stride byte offset 1024); the leading byte offset is not
// used when a k-step stays inside one swizzle row. The k-steps of 16 elements advance the start address by 32 bytes
// (the hardware applies the XOR pattern to the computed addresses, so the tile base must be 1024-byte aligned).
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr) {
  uint64_t d = static_cast<uint64_t>((addr & 0x3FFFF) >> 4);
  d |= static_cast<uint64_t>(1) << 16;            // leading byte offset (unused here)
  d |= static_cast<uint64_t>(1024 >> 4) << 32;    // stride byte offset: one 8-row atom
  d |= static_cast<uint64_t>(1) << 62;            // 128-byte swizzle
  return d;
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accumulator registers across the asynchronous wgmma window.
__device__ __forceinline__ void fence_operand(float &r) { asm volatile("" : "+f"(r)::"memory"); }

template <typename T>
__device__ __forceinline__ void wgmma_m64n256k16(float (&d)[128], uint64_t desc_a, uint64_t desc_b);
// One wgmma instruction: TYPES names the input types (bf16 or f16) in PTX; the rest, 128 accumulator registers and
// two shared-memory descriptors, is the same for both.
#define PIMOE_WGMMA_M64N256K16(TYPES) \
  asm volatile(                                                                                                          \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"                                                                      \
      "wgmma.mma_async.sync.aligned.m64n256k16.f32." TYPES " {"                                                          \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                           \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                                 \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                                 \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "                                 \
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "                                 \
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "                                 \
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "                     \
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"                   \
      "}, %128, %129, p, 1, 1, 0, 0;\n}\n"                                                                               \
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),                  \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),            \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),          \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),          \
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),          \
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),          \
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),          \
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),          \
        "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),          \
        "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),          \
        "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),          \
        "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),          \
        "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),      \
        "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),  \
        "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),  \
        "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])   \
      : "l"(desc_a), "l"(desc_b), "r"(1));

template <>
__device__ __forceinline__ void wgmma_m64n256k16<__nv_bfloat16>(float (&d)[128], uint64_t desc_a, uint64_t desc_b) {
  PIMOE_WGMMA_M64N256K16("bf16.bf16");
}
template <>
__device__ __forceinline__ void wgmma_m64n256k16<__half>(float (&d)[128], uint64_t desc_a, uint64_t desc_b) {
  PIMOE_WGMMA_M64N256K16("f16.f16");
}
#undef PIMOE_WGMMA_M64N256K16

// ------------------------------------------------------------------------------------------------ the kernel
// grid: ntile (a.max_list) x ncol blocks in one dimension, ordered in bands of kBand column tiles: consecutive
// blocks take the same kBand column tiles of consecutive row tiles, so a wave shares rows and weight slices in L2.
template <typename T>
__global__ void __launch_bounds__(kThreads, 1)
    sm90_kernel(const ProjectionArgs a, const __grid_constant__ CUtensorMap amap, const CUtensorMap *wmaps,
                int32_t ncol) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ uint8_t smem_raw[];
  const uint32_t tiles = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const uint32_t bars = tiles + kStages * kStageBytes;  // full[s] at bars + 8s, empty[s] at bars + 8(kStages + s)

  const int ntile = a.max_list;
  const int b = static_cast<int>(blockIdx.x);
  const int band = b / (kBand * ntile);
  const int rem = b - band * kBand * ntile;
  const int width = min(kBand, ncol - band * kBand);
  const int tile = rem / width;
  const int ct = band * kBand + rem % width;
  if (tile >= *a.list_count) return;
  const int g = a.list[2 * tile], row0 = a.list[2 * tile + 1];
  const GroupDesc &d = a.groups[g];
  const int32_t base = a.offsets[g];
  const int count = a.offsets[g + 1] - base;
  const int K = a.up ? a.hidden : d.inter;
  const int N = a.up ? d.inter : a.hidden;
  const int act = a.up ? d.activation : -1;
  const bool gated = act == kSwiglu;
  const int n0 = ct * (gated ? 128 : kBN);
  if (n0 >= N) return;
  const int rows = min(kBM, count - row0);
  const int KT = (K + kBK - 1) / kBK;

  const int tid = static_cast<int>(threadIdx.x), wg = tid / 128;
  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbar_init(bars + 8 * s, 1);
      mbar_init(bars + 8 * (kStages + s), 8);  // the 8 consumer warps
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (wg == 0) {
    // Producer: one thread streams the k-steps; the others have nothing to do.
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
    if (tid == 0) {
      const CUtensorMap *wm = wmaps + 3 * g;
      const CUtensorMap *m1 = wm + (a.up ? 1 : 2);  // up or down
      const CUtensorMap *m0 = gated ? wm : m1;       // gate rows first with SwiGLU
      const int nb0 = n0, nb1 = gated ? n0 : n0 + 128;
      for (int kt = 0; kt < KT; ++kt) {
        const int s = kt % kStages;
        if (kt >= kStages) mbar_wait(bars + 8 * (kStages + s), ((kt / kStages) - 1) & 1);
        const uint32_t full = bars + 8 * s, sa = tiles + s * kStageBytes;
        mbar_expect_tx(full, kStageBytes);
        tma_load_2d(sa, &amap, kt * kBK, base + row0, full);
        tma_load_2d(sa + kABytes, m0, kt * kBK, nb0, full);
        tma_load_2d(sa + kABytes + kBHalf, m1, kt * kBK, nb1, full);
      }
    }
    return;
  }

  asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");
  const int cw = wg - 1;                  // rows cw*64 .. cw*64+63 of the tile
  const bool active = cw * 64 < rows;     // a half-empty tile skips its empty half's MMAs
  const int lane = tid & 31, warp = (tid >> 5) & 3;
  float acc[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) acc[i] = 0.0f;

  if (!active) {  // only the barrier protocol
    for (int kt = 0; kt < KT; ++kt) {
      mbar_wait(bars + 8 * (kt % kStages), (kt / kStages) & 1);
      if (lane == 0) mbar_arrive(bars + 8 * (kStages + kt % kStages));
    }
    return;
  }
  for (int kt = 0; kt < KT; ++kt) {
    const int s = kt % kStages;
    mbar_wait(bars + 8 * s, (kt / kStages) & 1);
    const uint32_t sa = tiles + s * kStageBytes + cw * 64 * 128, sb = tiles + s * kStageBytes + kABytes;
#pragma unroll
    for (int i = 0; i < 128; ++i) fence_operand(acc[i]);
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < kBK / 16; ++k) wgmma_m64n256k16<T>(acc, smem_desc(sa + 32 * k), smem_desc(sb + 32 * k));
    wgmma_commit();
    wgmma_wait<1>();  // the previous k-step's group is done: its stage may be refilled
#pragma unroll
    for (int i = 0; i < 128; ++i) fence_operand(acc[i]);
    if (kt > 0 && lane == 0) mbar_arrive(bars + 8 * (kStages + (kt - 1) % kStages));
  }
  wgmma_wait<0>();
#pragma unroll
  for (int i = 0; i < 128; ++i) fence_operand(acc[i]);

  // Epilogue. Accumulator 4j+q of a thread: row warp*16 + lane/4 (+8 for q >= 2), column 8j + 2(lane%4) + (q&1).
  const int quad = (lane & 3) * 2;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = cw * 64 + warp * 16 + (lane >> 2) + half * 8;
    if (r >= rows) continue;
    const int64_t row = static_cast<int64_t>(base) + row0 + r;
    if (gated) {
      T *dst = static_cast<T *>(a.out) + row * a.out_stride;
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        const int col = n0 + 8 * j + quad;
        float v0 = 0.0f, v1 = 0.0f;
        if (col < N) {
          v0 = silu(acc[4 * j + 2 * half]) * acc[4 * (j + 16) + 2 * half];
          v1 = silu(acc[4 * j + 2 * half + 1]) * acc[4 * (j + 16) + 2 * half + 1];
        } else if (col >= a.out_stride) {
          continue;
        }
        *reinterpret_cast<typename Pair<T>::type *>(dst + col) = Pair<T>::make(v0, v1);
      }
    } else if (a.up) {
      T *dst = static_cast<T *>(a.out) + row * a.out_stride;
      const float *bias = d.up_bias;
#pragma unroll
      for (int j = 0; j < 32; ++j) {
        const int col = n0 + 8 * j + quad;
        float v0 = 0.0f, v1 = 0.0f;
        if (col < N) {
          v0 = acc[4 * j + 2 * half];
          v1 = acc[4 * j + 2 * half + 1];
          if (bias) {
            v0 += bias[col];
            v1 += bias[col + 1];
          }
          v0 = activate(act, v0);
          v1 = activate(act, v1);
        } else if (col >= a.out_stride) {
          continue;
        }
        *reinterpret_cast<typename Pair<T>::type *>(dst + col) = Pair<T>::make(v0, v1);
      }
    } else {
      float *dst = static_cast<float *>(a.out) + row * a.out_stride;
#pragma unroll
      for (int j = 0; j < 32; ++j) {
        const int col = n0 + 8 * j + quad;
        if (col < N) *reinterpret_cast<float2 *>(dst + col) = make_float2(acc[4 * j + 2 * half], acc[4 * j + 2 * half + 1]);
      }
    }
  }
#else
  __trap();  // built for sm_90a only; the host never launches it elsewhere
#endif
}

// ------------------------------------------------------------------------------------------------ host side
PFN_cuTensorMapEncodeTiled_v12000 encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void *p = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      p = nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

// A [outer, inner] row-major matrix with rows `stride` elements apart, read in boxes of 128 rows x 64 elements.
bool encode(CUtensorMap *map, const void *ptr, WType w, int64_t inner, int64_t outer, int64_t stride) {
  const PFN_cuTensorMapEncodeTiled_v12000 fn = encoder();
  if (!fn || !ptr || inner <= 0 || outer <= 0) return false;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(inner), static_cast<cuuint64_t>(outer)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(stride) * 2};
  const cuuint32_t box[2] = {kBK, 128};
  const cuuint32_t elem[2] = {1, 1};
  const CUtensorMapDataType type =
      w == WType::BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  return fn(map, type, 2, const_cast<void *>(ptr), dims, strides, box, elem, CU_TENSOR_MAP_INTERLEAVE_NONE,
            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <typename T>
bool launch_typed(const ProjectionArgs &args, const void *weight_maps, int64_t in_rows, WType w, cudaStream_t stream) {
  static const cudaError_t opt_in =
      cudaFuncSetAttribute(sm90_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem));
  if (opt_in != cudaSuccess) return false;
  alignas(64) CUtensorMap amap;
  const int64_t inner = args.up ? args.hidden : args.in_stride;
  if (!encode(&amap, args.in, w, inner, in_rows, args.in_stride)) return false;
  // Up projections may mix SwiGLU groups (128 columns a block) and others (256): the grid covers the finer split.
  const int cols = args.up ? 128 : kBN;
  const int64_t ncol = (args.max_n + cols - 1) / cols;
  const int64_t blocks = ncol * args.max_list;
  if (blocks == 0) return true;
  sm90_kernel<T><<<static_cast<unsigned>(blocks), kThreads, kSmem, stream>>>(
      args, amap, static_cast<const CUtensorMap *>(weight_maps), static_cast<int32_t>(ncol));
  return true;
}

}  // namespace

bool sm90_gemm_supported() {
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  // sm_90a machine code runs on compute capability 9.0 only (not on later GPUs, not through PTX).
  return major == 9 && minor == 0 && encoder() != nullptr;
}

bool sm90_weight_maps(const GroupDesc *groups, int32_t count, int32_t hidden, WType w, void *maps) {
  if (w != WType::BF16 && w != WType::F16) return false;
  auto *out = static_cast<unsigned char *>(maps);
  std::memset(out, 0, kSm90MapBytes * 3 * static_cast<size_t>(count));
  for (int32_t g = 0; g < count; ++g) {
    const GroupDesc &d = groups[g];
    if (!d.up || !d.down) continue;  // no weights on the device (no rows ever)
    alignas(64) CUtensorMap m[3];
    std::memset(m, 0, sizeof m);
    if (d.gate && !encode(&m[0], d.gate, w, hidden, d.inter, hidden)) return false;
    if (!encode(&m[1], d.up, w, hidden, d.inter, hidden)) return false;
    if (!encode(&m[2], d.down, w, d.inter, hidden, d.inter)) return false;
    std::memcpy(out + kSm90MapBytes * 3 * static_cast<size_t>(g), m, sizeof m);
  }
  return true;
}

bool launch_sm90_gemm(const ProjectionArgs &args, const void *weight_maps, int64_t in_rows, WType w,
                      cudaStream_t stream) {
  if (args.dense_rows > 0 || in_rows <= 0) return false;
  return w == WType::BF16 ? launch_typed<__nv_bfloat16>(args, weight_maps, in_rows, w, stream)
                          : launch_typed<__half>(args, weight_maps, in_rows, w, stream);
}

}  // namespace pimoe::cuda
