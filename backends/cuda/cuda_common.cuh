// SPDX-License-Identifier: MIT
// Device helpers shared by the CUDA backend's kernels: weight-type conversions, activations, warp reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "device_types.h"

namespace pimoe::cuda {

// pimoe_activation values (include/pimoe/pimoe.h); repeated here so that kernels need not include the C header.
enum : int32_t { kGelu = 0, kGeluTanh = 1, kSilu = 2, kRelu = 3, kTanh = 4, kSwiglu = 5 };

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }

// Two floats packed into the 2-vector of a 16-bit type (bf16x2 / fp16x2), rounded to nearest: the tensor-core
// kernels' epilogues store pairs of outputs at once.
template <typename T>
struct Pair;
template <>
struct Pair<__nv_bfloat16> {
  using type = __nv_bfloat162;
  __device__ static type make(float x, float y) { return __floats2bfloat162_rn(x, y); }
};
template <>
struct Pair<__half> {
  using type = __half2;
  __device__ static type make(float x, float y) { return __floats2half2_rn(x, y); }
};

// Accurate library functions (expf, erff, tanhf: within 2 ulp), not the fast intrinsics: the backend must match the
// double-precision oracle to 1e-5 of the output RMS.
__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

__device__ __forceinline__ float activate(int32_t act, float x) {
  switch (act) {
    case kGelu:
      return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case kGeluTanh:
      return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case kSilu:
      return silu(x);
    case kRelu:
      return x > 0.0f ? x : 0.0f;
    case kTanh:
      return tanhf(x);
    default:
      return x;
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ double warp_max(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Programmatic dependent launch (sm_90): a kernel launched with the attribute may start while the previous kernel on
// its stream is still finishing; it must wait before touching anything that kernel (or earlier work) writes or reads.
// launch_dependents lets the next such kernel start launching. Both are no-ops below sm_90 and without the attribute.
__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void grid_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Row r of the grouped buffers belongs to group g = row_group[r]; K and N of a projection of that group.
__device__ __forceinline__ int32_t group_rows(const int32_t *offsets, int32_t g) { return offsets[g + 1] - offsets[g]; }

// Launches kernel(arg) on `stream`; with pdl, as a programmatic dependent launch (the kernel may start while the
// stream's previous kernel finishes, and waits for it with cudaGridDependencySynchronize). The launch's error shows
// up in cudaGetLastError / the stream, which the callers check.
template <typename Arg>
void launch_with_pdl(void (*kernel)(Arg), dim3 grid, dim3 block, size_t smem, bool pdl, cudaStream_t stream,
                     const Arg &arg) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attr;
  config.numAttrs = pdl ? 1 : 0;
  cudaLaunchKernelEx(&config, kernel, arg);
}

// 16 bytes of weights (the GEMV kernels' unit): loaded raw (4 registers, so that many can be in flight), converted
// to floats at use.
template <typename WT>
struct Vec;
template <>
struct Vec<float> {
  static constexpr int n = 4;
  __device__ static int4 load(const float *p) { return __ldcs(reinterpret_cast<const int4 *>(p)); }
  __device__ static void convert(const int4 &v, float *w) {
    w[0] = __int_as_float(v.x), w[1] = __int_as_float(v.y), w[2] = __int_as_float(v.z), w[3] = __int_as_float(v.w);
  }
  __device__ static void convert_quad(const int4 &v, int, float *w) { convert(v, w); }  // elements 4h .. 4h + 3
};
template <typename T, typename H2, float2 (*ToFloat2)(H2)>
struct Vec16 {
  static constexpr int n = 8;
  __device__ static int4 load(const T *p) { return __ldcs(reinterpret_cast<const int4 *>(p)); }
  __device__ static void convert(const int4 &v, float *w) {
    const H2 *h = reinterpret_cast<const H2 *>(&v);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = ToFloat2(h[i]);
      w[2 * i] = f.x;
      w[2 * i + 1] = f.y;
    }
  }
  __device__ static void convert_quad(const int4 &v, int h, float *w) {  // elements 4h .. 4h + 3
    const H2 *q = reinterpret_cast<const H2 *>(&v) + 2 * h;
    const float2 a = ToFloat2(q[0]), b = ToFloat2(q[1]);
    w[0] = a.x, w[1] = a.y, w[2] = b.x, w[3] = b.y;
  }
};
__device__ __forceinline__ float2 bf2_to_f2(__nv_bfloat162 v) { return __bfloat1622float2(v); }
__device__ __forceinline__ float2 h2_to_f2(__half2 v) { return __half22float2(v); }
template <>
struct Vec<__nv_bfloat16> : Vec16<__nv_bfloat16, __nv_bfloat162, bf2_to_f2> {};
template <>
struct Vec<__half> : Vec16<__half, __half2, h2_to_f2> {};

}  // namespace pimoe::cuda
