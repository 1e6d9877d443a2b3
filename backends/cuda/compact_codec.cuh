// SPDX-License-Identifier: MIT
// The experts' weight types as the kernels read them (WType, device_types.h): one codec a type, so that the
// streaming GEMV (gemv_stream.cu) and the SIMT GEMM (grouped_gemm.cu) are written once for all of them.
//
// A row of a matrix is read in 16-byte chunks of kElems elements. Compact rows are padded to whole chunks with the
// code of zero (device_row_bytes, device_types.h). A compact chunk has one scale, and for I4Z one zero point, at
// scale_index(row, chunk): every format's scale covers whole chunks (int8: a row; int4: 32, 64 or 128 elements; fp8: 128 x 128; mxfp4: 32).
// The kernels fetch the 4-byte word that holds it (scale_word: scales and zero points are padded to 16 bytes on the
// device, so the word never leaves the buffer) and turn it into the codec's Scale once a chunk (chunk_scale).
//
// decode_quad gives elements 4h .. 4h + 3 of a chunk as fp32 values exactly as compact_matrix.h defines them (the
// code's value times the scale, the product rounded once), so the GEMV computes on the same weights as the CPU
// backend and the oracle. It runs once for every weight the GPU streams, so its instruction count bounds decode:
// int4 costs one logic operation, a subtraction and a multiplication an element (see Int4Codec).
#pragma once

#include <cuda_fp8.h>

#include <cstdint>

#include "cuda_common.cuh"

namespace pimoe::cuda {

// One matrix of a group as a kernel sees it.
struct MatrixRef {
  const uint8_t *values = nullptr;  // row n at values + n * row_bytes
  const uint8_t *scales = nullptr;  // compact types
  const uint8_t *zeros = nullptr;   // I4Z
  int64_t row_bytes = 0;
  int32_t K = 0, N = 0;  // columns (inputs) and rows (outputs)
  int32_t group = 0;     // I4/I4Z: elements a scale
};

namespace codec_detail {

__device__ __forceinline__ uint32_t word_of(const int4 &v, int i) {
  return static_cast<uint32_t>(i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w);
}
// The aligned 4-byte word holding byte `offset` of `base`.
__device__ __forceinline__ const void *aligned_word(const uint8_t *base, int64_t offset) {
  return reinterpret_cast<const void *>(reinterpret_cast<uintptr_t>(base + offset) & ~uintptr_t{3});
}
__device__ __forceinline__ float magic_minus(uint32_t low_bits, float bias) {
  // 2^23 + low_bits (low_bits < 2^23) minus (2^23 + bias): exact for the small integers used here.
  return __uint_as_float(0x4B000000u | low_bits) - (8388608.0f + bias);
}
__device__ __forceinline__ float e2m1_value(uint32_t u) {
  const uint32_t m = u & 7u;
  // 2^(e-1) (1 + mant / 2) for exponent codes 1..3 (float exponent field e + 126); 0 and 0.5 below.
  const float mag = m < 2u ? 0.5f * static_cast<float>(m) : __uint_as_float((m << 22) + (126u << 23));
  return (u & 8u) ? -mag : mag;
}
__device__ __forceinline__ float e8m0_value(uint32_t e) {
  return e == 0u ? __uint_as_float(0x00400000u) : __uint_as_float(e << 23);  // 2^(e - 127)
}
__device__ __forceinline__ float2 e4m3x2_values(uint32_t two) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(two & 0xFFFFu), __NV_E4M3);
  return __half22float2(__half2(h));
}
__device__ __forceinline__ float e4m3_value(uint32_t b) {
  return e4m3x2_values(b & 0xFFu).x;
}

}  // namespace codec_detail

template <WType W>
struct Codec;

// fp32, bf16, fp16: no scales; K is a multiple of kElems wherever the streaming kernel runs them.
template <typename T, WType W>
struct FloatCodec {
  static constexpr bool kCompact = false, kScaled = false, kZeros = false;
  static constexpr WType kType = W;
  static constexpr int kElems = Vec<T>::n;
  __device__ static int64_t scale_index(const MatrixRef &, int64_t, int64_t) { return 0; }
  __device__ static const void *scale_word(const MatrixRef &, int64_t) { return nullptr; }
  __device__ static const void *zero_word(const MatrixRef &, int64_t) { return nullptr; }
  struct Scale {};
  __device__ static Scale chunk_scale(uint32_t, uint32_t, int64_t) { return {}; }
  __device__ static void decode_quad(const int4 &v, int h, const Scale &, float *f) { Vec<T>::convert_quad(v, h, f); }
  __device__ static float element(const MatrixRef &m, int64_t n, int64_t k) {
    return to_float(reinterpret_cast<const T *>(m.values + n * m.row_bytes)[k]);
  }
};
template <>
struct Codec<WType::F32> : FloatCodec<float, WType::F32> {};
template <>
struct Codec<WType::BF16> : FloatCodec<__nv_bfloat16, WType::BF16> {};
template <>
struct Codec<WType::F16> : FloatCodec<__half, WType::F16> {};

// int8: q * s[row], q in [-127, 127].
template <>
struct Codec<WType::I8> {
  static constexpr WType kType = WType::I8;
  static constexpr bool kCompact = true, kScaled = true, kZeros = false;
  static constexpr int kElems = 16;
  __device__ static int64_t scale_index(const MatrixRef &, int64_t n, int64_t) { return n; }
  __device__ static const void *scale_word(const MatrixRef &m, int64_t i) { return m.scales + 4 * i; }
  __device__ static const void *zero_word(const MatrixRef &, int64_t) { return nullptr; }
  struct Scale {
    float s;
  };
  __device__ static Scale chunk_scale(uint32_t w, uint32_t, int64_t) { return {__uint_as_float(w)}; }
  __device__ static void decode_quad(const int4 &v, int h, const Scale &sc, float *f) {
    const uint32_t w = codec_detail::word_of(v, h) ^ 0x80808080u;  // q + 128 in each byte
#pragma unroll
    for (int i = 0; i < 4; ++i) f[i] = codec_detail::magic_minus(__byte_perm(w, 0u, 0x4440u | i), 128.0f) * sc.s;
  }
  __device__ static float element(const MatrixRef &m, int64_t n, int64_t k) {
    const auto q = static_cast<int8_t>(m.values[n * m.row_bytes + k]);
    return static_cast<float>(q) * reinterpret_cast<const float *>(m.scales)[n];
  }
};

// fp8_e4m3: e4m3(b) * s[row / 128][col / 128].
template <>
struct Codec<WType::FP8> {
  static constexpr WType kType = WType::FP8;
  static constexpr bool kCompact = true, kScaled = true, kZeros = false;
  static constexpr int kElems = 16;
  __device__ static int64_t scale_index(const MatrixRef &m, int64_t n, int64_t c) {
    return (n >> 7) * ((m.K + 127) >> 7) + (c >> 3);
  }
  __device__ static const void *scale_word(const MatrixRef &m, int64_t i) { return m.scales + 4 * i; }
  __device__ static const void *zero_word(const MatrixRef &, int64_t) { return nullptr; }
  struct Scale {
    float s;
  };
  __device__ static Scale chunk_scale(uint32_t w, uint32_t, int64_t) { return {__uint_as_float(w)}; }
  __device__ static void decode_quad(const int4 &v, int h, const Scale &sc, float *f) {
    const uint32_t w = codec_detail::word_of(v, h);
    const float2 a = codec_detail::e4m3x2_values(w), b = codec_detail::e4m3x2_values(w >> 16);
    f[0] = a.x * sc.s, f[1] = a.y * sc.s, f[2] = b.x * sc.s, f[3] = b.y * sc.s;
  }
  __device__ static float element(const MatrixRef &m, int64_t n, int64_t k) {
    const float s = reinterpret_cast<const float *>(m.scales)[scale_index(m, n, k / kElems)];
    return codec_detail::e4m3_value(m.values[n * m.row_bytes + k]) * s;
  }
};

// int4: (u - 8) * s, or (u - z) * s with a zero point; one f16 scale (and u8 zero) a group. Byte j of a 32-element
// block holds element 2j in its low nibble.
template <bool ZeroPoint>
struct Int4Codec {
  static constexpr WType kType = ZeroPoint ? WType::I4Z : WType::I4;
  static constexpr bool kCompact = true, kScaled = true, kZeros = ZeroPoint;
  static constexpr int kElems = 32;
  __device__ static int64_t scale_index(const MatrixRef &m, int64_t n, int64_t c) {
    return n * ((m.K + m.group - 1) / m.group) + c * 32 / m.group;
  }
  __device__ static const void *scale_word(const MatrixRef &m, int64_t i) {
    return codec_detail::aligned_word(m.scales, 2 * i);
  }
  __device__ static const void *zero_word(const MatrixRef &m, int64_t i) {
    return codec_detail::aligned_word(m.zeros, i);
  }
  // Nibble j of a quad is taken where it lies, bits 4j .. 4j + 3, into the low mantissa of 2^23: one logic operation
  // gives 2^23 + u 2^(4j), minus m[j] = 2^23 + z 2^(4j) is (u - z) 2^(4j) exactly, times s[j] = s 2^(-4j) is
  // (u - z) s rounded once (s 2^(-12) is a normal float for every f16 scale). No shifts but one a pair of quads.
  struct Scale {
    float s[4], m[4];
  };
  __device__ static Scale chunk_scale(uint32_t w, uint32_t zw, int64_t i) {
    const float s = __half2float(__ushort_as_half(static_cast<unsigned short>((i & 1) ? w >> 16 : w & 0xFFFFu)));
    const float z = ZeroPoint ? static_cast<float>((zw >> (8 * (i & 3))) & 0xFFu) : 8.0f;
    Scale sc;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float p = static_cast<float>(1 << (4 * j));
      sc.s[j] = s / p;  // exact: a power of two
      sc.m[j] = 8388608.0f + z * p;
    }
    return sc;
  }
  __device__ static void decode_quad(const int4 &v, int h, const Scale &sc, float *f) {
    const uint32_t w = codec_detail::word_of(v, h >> 1) >> (16 * (h & 1));
#pragma unroll
    for (int j = 0; j < 4; ++j) f[j] = (__uint_as_float((w & (0xFu << (4 * j))) | 0x4B000000u) - sc.m[j]) * sc.s[j];
  }
  __device__ static float element(const MatrixRef &m, int64_t n, int64_t k) {
    const int64_t i = scale_index(m, n, k / kElems);
    const float s = __half2float(reinterpret_cast<const __half *>(m.scales)[i]);
    const int z = ZeroPoint ? m.zeros[i] : 8;
    const uint8_t b = m.values[n * m.row_bytes + k / 2];
    const int u = (k & 1) ? b >> 4 : b & 0xF;
    return static_cast<float>(u - z) * s;
  }
};
template <>
struct Codec<WType::I4> : Int4Codec<false> {};
template <>
struct Codec<WType::I4Z> : Int4Codec<true> {};

// mxfp4: e2m1(u) * 2^(e - 127), one e8m0 exponent byte e a 32-element block (the nibble order of int4).
template <>
struct Codec<WType::MXFP4> {
  static constexpr WType kType = WType::MXFP4;
  static constexpr bool kCompact = true, kScaled = true, kZeros = false;
  static constexpr int kElems = 32;
  __device__ static int64_t scale_index(const MatrixRef &m, int64_t n, int64_t c) { return n * ((m.K + 31) / 32) + c; }
  __device__ static const void *scale_word(const MatrixRef &m, int64_t i) {
    return codec_detail::aligned_word(m.scales, i);
  }
  __device__ static const void *zero_word(const MatrixRef &, int64_t) { return nullptr; }
  struct Scale {
    float s;
  };
  __device__ static Scale chunk_scale(uint32_t w, uint32_t, int64_t i) {
    return {codec_detail::e8m0_value((w >> (8 * (i & 3))) & 0xFFu)};
  }
  __device__ static void decode_quad(const int4 &v, int h, const Scale &sc, float *f) {
    const uint32_t w = codec_detail::word_of(v, h >> 1) >> (16 * (h & 1));
#pragma unroll
    for (int j = 0; j < 4; ++j) f[j] = codec_detail::e2m1_value((w >> (4 * j)) & 0xFu) * sc.s;
  }
  __device__ static float element(const MatrixRef &m, int64_t n, int64_t k) {
    const float s = codec_detail::e8m0_value(m.scales[scale_index(m, n, k / kElems)]);
    const uint8_t b = m.values[n * m.row_bytes + k / 2];
    return codec_detail::e2m1_value((k & 1) ? b >> 4 : b & 0xF) * s;
  }
};

// The MatrixRef of a matrix of codec C's type with K columns and N rows (both kernels build theirs here).
template <typename C>
__device__ MatrixRef matrix_ref(const void *values, const void *scales, const uint8_t *zeros, int32_t K, int32_t N,
                                int32_t group) {
  MatrixRef m;
  m.values = static_cast<const uint8_t *>(values);
  m.scales = static_cast<const uint8_t *>(scales);
  m.zeros = zeros;
  m.row_bytes = device_row_bytes(C::kType, K);
  m.K = K;
  m.N = N;
  m.group = group;
  return m;
}

// Calls f(Codec<w>{}) for the runtime type w: the one switch over the weight types.
template <typename F>
void with_codec(WType w, F &&f) {
  switch (w) {
    case WType::F32:
      return f(Codec<WType::F32>{});
    case WType::BF16:
      return f(Codec<WType::BF16>{});
    case WType::F16:
      return f(Codec<WType::F16>{});
    case WType::I8:
      return f(Codec<WType::I8>{});
    case WType::I4:
      return f(Codec<WType::I4>{});
    case WType::I4Z:
      return f(Codec<WType::I4Z>{});
    case WType::FP8:
      return f(Codec<WType::FP8>{});
    case WType::MXFP4:
      return f(Codec<WType::MXFP4>{});
  }
}

}  // namespace pimoe::cuda
