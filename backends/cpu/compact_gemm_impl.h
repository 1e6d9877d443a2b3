/* SPDX-License-Identifier: MIT */
// The compact-weight kernels: a panel's depth block dequantised to fp32 (in registers, 16 features at a time) and
// the tile loop that feeds it to the packed GEMM's micro-kernel. Included once per instruction set by
// compact_gemm_<isa>.cpp with PIMOE_ISA naming the namespace. Every value is computed as the reference dequantiser
// (src/compact_matrix.cpp) computes it: the code's exact value, times the scale, rounded once.
#include <cstdint>
#include <cstring>
#include <tuple>

#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif
#if defined(__ARM_NEON)
#include <arm_neon.h>
#endif

#include "compact_panels.h"
#include "micro_kernel_impl.h"
#include "src/dtype.h"

namespace pimoe::cpu::PIMOE_ISA {
namespace {

typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef uint8_t u8x8 __attribute__((vector_size(8)));
typedef int8_t i8x8 __attribute__((vector_size(8)));
typedef uint16_t u16x8 __attribute__((vector_size(16)));

template <typename V>
__attribute__((always_inline)) inline V load_vec(const void *p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
#if defined(__ARM_NEON)
// Two NEON registers as one 8-lane vector (GCC keeps a 32-byte vector in two q registers: no instruction).
template <typename V, typename Q>
__attribute__((always_inline)) inline V join(Q lo, Q hi) {
  V v;
  std::memcpy(&v, &lo, sizeof lo);
  std::memcpy(reinterpret_cast<char *>(&v) + sizeof lo, &hi, sizeof hi);
  return v;
}
__attribute__((always_inline)) inline v8i widen_s16(int16x8_t h) {
  return join<v8i>(vmovl_s16(vget_low_s16(h)), vmovl_high_s16(h));
}
#endif

// Eight bytes (or 16-bit values) widened to 32-bit lanes: vpmovsx/vpmovzx where AVX2 has them, sxtl/uxtl on NEON
// (GCC scalarises the generic conversion of an 8-byte vector).
__attribute__((always_inline)) inline v8i widen_i8(const uint8_t *p) {
#if defined(__AVX2__)
  return (v8i)_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(p)));
#elif defined(__ARM_NEON)
  return widen_s16(vmovl_s8(vld1_s8(reinterpret_cast<const int8_t *>(p))));
#else
  return __builtin_convertvector(load_vec<i8x8>(p), v8i);
#endif
}
__attribute__((always_inline)) inline v8i widen_u8(const uint8_t *p) {
#if defined(__AVX2__)
  return (v8i)_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(p)));
#elif defined(__ARM_NEON)
  return widen_s16(vreinterpretq_s16_u16(vmovl_u8(vld1_u8(p))));  // 0..255: the same bits signed
#else
  return __builtin_convertvector(load_vec<u8x8>(p), v8i);
#endif
}
__attribute__((always_inline)) inline v8u widen_u16(const uint8_t *p) {
#if defined(__AVX2__)
  return (v8u)_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
#elif defined(__ARM_NEON)
  uint16_t h[8];
  std::memcpy(h, p, sizeof h);  // p need not be 2-byte aligned
  const uint16x8_t v = vld1q_u16(h);
  return join<v8u>(vmovl_u16(vget_low_u16(v)), vmovl_high_u16(v));
#else
  return __builtin_convertvector(load_vec<u16x8>(p), v8u);
#endif
}

__attribute__((always_inline)) inline v8 bits_to_float(v8u u) {
  v8 f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
__attribute__((always_inline)) inline v8 splat(float x) { return v8{} + x; }

// Eight fp16 values to fp32.
__attribute__((always_inline)) inline v8 f16x8_to_float(const uint8_t *p) {
#if defined(__F16C__)
  v8 f;
  const __m256 r = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
  std::memcpy(&f, &r, sizeof f);
  return f;
#elif defined(__ARM_NEON)
  // fcvtl: exact, as the portable conversion (subnormals included).
  uint16_t h[8];
  std::memcpy(h, p, sizeof h);
  const float16x8_t v = vreinterpretq_f16_u16(vld1q_u16(h));
  return join<v8>(vcvt_f32_f16(vget_low_f16(v)), vcvt_high_f32_f16(v));
#else
  float tmp[8];
  for (int i = 0; i < 8; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    tmp[i] = fp16_bits_to_float(h);
  }
  return load8(tmp);
#endif
}

// e4m3fn codes to their exact values: the code's low seven bits placed at fp32's exponent/mantissa boundary read as
// a float 2^-120 times the value (subnormals included), the sign moved to bit 31 by the sign extension.
__attribute__((always_inline)) inline v8 e4m3x8_to_float(const uint8_t *p) {
  const v8i x = widen_i8(p);
  const v8u bits = (__builtin_convertvector(x, v8u) << 20) & 0x87f00000u;
  return bits_to_float(bits) * splat(0x1p120f);
}

// The 16 features' e2m1 codes of one depth (8 bytes: feature j in the low nibble of byte j, j+8 in the high) as
// twice their values (0, 1, 2, 3, 4, 6, 8, 12 and negatives, exact small integers), in two groups of eight. A zero
// code of either sign reads as +0.
__attribute__((always_inline)) inline void e2m1x16_doubled(const uint8_t *p, v8 &lo, v8 &hi) {
#if defined(__AVX2__)
  const __m128i lut = _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
  const __m128i raw = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(p));
  const __m128i mask = _mm_set1_epi8(0x0f);
  const __m128i l = _mm_shuffle_epi8(lut, _mm_and_si128(raw, mask));
  const __m128i h = _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(raw, 4), mask));
  lo = __builtin_convertvector((v8i)_mm256_cvtepi8_epi32(l), v8);
  hi = __builtin_convertvector((v8i)_mm256_cvtepi8_epi32(h), v8);
#elif defined(__ARM_NEON)
  static constexpr int8_t kDoubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
  const int8x16_t lut = vld1q_s8(kDoubled);
  const uint8x8_t raw = vld1_u8(p);
  const int8x8_t l = vqtbl1_s8(lut, vand_u8(raw, vdup_n_u8(0x0f)));  // tbl: the nibble indexes the table
  const int8x8_t h = vqtbl1_s8(lut, vshr_n_u8(raw, 4));
  lo = __builtin_convertvector(widen_s16(vmovl_s8(l)), v8);
  hi = __builtin_convertvector(widen_s16(vmovl_s8(h)), v8);
#else
  static constexpr float kDoubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
  float a[8], b[8];
  for (int j = 0; j < 8; ++j) {
    a[j] = kDoubled[p[j] & 15];
    b[j] = kDoubled[p[j] >> 4];
  }
  lo = load8(a);
  hi = load8(b);
#endif
}

// Half of 2^(e - 127) for e8m0 bytes, 2^(e - 128): the scale of doubled e2m1 values (exact for every e).
__attribute__((always_inline)) inline v8 e8m0x8_half(const uint8_t *p) {
  const v8u e = (v8u)widen_u8(p);
  return bits_to_float(e <= 1u ? (v8u{} + 0x00200000u) << e : (e - 1u) << 23);
}

// Decoders of one format: for each chunk of depth that shares scales (setup), the 16 values of a depth k (load),
// each the code's value times its scale, rounded once, as the reference dequantiser computes it.
struct Bf16Decoder {
  static constexpr int64_t bytes_per_k = 32;
  const uint8_t *values;
  static constexpr int64_t chunk = kDepthBlock;
  void setup(int64_t) {}
  void load(int64_t k, v8 &b0, v8 &b1) const {
    b0 = bits_to_float(widen_u16(values + 32 * k) << 16);
    b1 = bits_to_float(widen_u16(values + 32 * k + 16) << 16);
  }
};
struct F16Decoder {
  static constexpr int64_t bytes_per_k = 32;
  const uint8_t *values;
  static constexpr int64_t chunk = kDepthBlock;
  void setup(int64_t) {}
  void load(int64_t k, v8 &b0, v8 &b1) const {
    b0 = f16x8_to_float(values + 32 * k);
    b1 = f16x8_to_float(values + 32 * k + 16);
  }
};
struct Int8Decoder {
  static constexpr int64_t bytes_per_k = 16;
  const uint8_t *values;
  v8 s0, s1;
  Int8Decoder(const uint8_t *v, const uint8_t *scales)
      : values(v), s0(load8(reinterpret_cast<const float *>(scales))),
        s1(load8(reinterpret_cast<const float *>(scales) + 8)) {}
  static constexpr int64_t chunk = kDepthBlock;
  void setup(int64_t) {}
  // Depth k of the 16 features: byte k % 4 of each feature's 32-bit lane in the [16][4] block, sign-extended.
  void load(int64_t k, v8 &b0, v8 &b1) const {
    const uint8_t *block = values + 64 * (k >> 2);
    const int up = 24 - 8 * static_cast<int>(k & 3);
    b0 = __builtin_convertvector((load_vec<v8i>(block) << up) >> 24, v8) * s0;
    b1 = __builtin_convertvector((load_vec<v8i>(block + 32) << up) >> 24, v8) * s1;
  }
};
// (u - z) * s as u * s + (-z * s): both products are exact (4-bit integers times an fp16 scale) and so is their sum,
// which (u - z) * s represents exactly; one multiply-add instead of a subtract and a multiply.
struct Int4Decoder {
  static constexpr int64_t bytes_per_k = 8;
  const uint8_t *values, *scales, *zeros;
  int64_t group;
  int shift;  // log2(group): the group of depth k without a division in the loop
  v8 s0, s1, zs0, zs1;
  Int4Decoder(const uint8_t *v, const uint8_t *s, const uint8_t *z, int64_t g)
      : values(v), scales(s), zeros(z), group(g), shift(__builtin_ctzll(static_cast<unsigned long long>(g))) {}
  int64_t chunk_of() const { return group; }
  void setup(int64_t k) {
    const int64_t gi = k >> shift;
    s0 = f16x8_to_float(scales + 32 * gi);
    s1 = f16x8_to_float(scales + 32 * gi + 16);
    const v8 z0 = zeros ? __builtin_convertvector(widen_u8(zeros + 16 * gi), v8) : splat(8.0f);
    const v8 z1 = zeros ? __builtin_convertvector(widen_u8(zeros + 16 * gi + 8), v8) : splat(8.0f);
    zs0 = -(z0 * s0);
    zs1 = -(z1 * s1);
  }
  // Depth k of the 16 features: the nibble of byte k % 4 (low for k % 8 < 4) of each feature's 32-bit lane.
  void load(int64_t k, v8 &b0, v8 &b1) const {
    const uint8_t *block = values + 64 * (k >> 3);
    const int down = 8 * static_cast<int>(k & 3) + 4 * static_cast<int>((k >> 2) & 1);
    b0 = __builtin_convertvector((load_vec<v8i>(block) >> down) & 15, v8) * s0 + zs0;
    b1 = __builtin_convertvector((load_vec<v8i>(block + 32) >> down) & 15, v8) * s1 + zs1;
  }
};
struct Fp8Decoder {
  static constexpr int64_t bytes_per_k = 16;
  const uint8_t *values;
  const float *scales;
  v8 s;
  static constexpr int64_t chunk = 128;
  void setup(int64_t k) { s = splat(scales[k / 128]); }
  void load(int64_t k, v8 &b0, v8 &b1) const {
    b0 = e4m3x8_to_float(values + 16 * k) * s;
    b1 = e4m3x8_to_float(values + 16 * k + 8) * s;
  }
};
struct Mxfp4Decoder {
  static constexpr int64_t bytes_per_k = 8;
  const uint8_t *values, *scales;
  v8 s0, s1;
  static constexpr int64_t chunk = 32;
  void setup(int64_t k) {
    s0 = e8m0x8_half(scales + 16 * (k / 32));
    s1 = e8m0x8_half(scales + 16 * (k / 32) + 8);
  }
  void load(int64_t k, v8 &b0, v8 &b1) const {
    v8 lo, hi;
    e2m1x16_doubled(values + 8 * k, lo, hi);
    b0 = lo * s0;
    b1 = hi * s1;
  }
};

template <typename D>
int64_t chunk_of(const D &) { return D::chunk; }
template <>
int64_t chunk_of(const Int4Decoder &d) { return d.chunk_of(); }

// Calls fn(decoder of panel p0, ..., of panel p0 + NP - 1) with the format's decoder type.
template <int NP, typename Fn>
void with_decoders(const CompactPanels &W, int64_t p0, Fn fn) {
  const WeightDtype d = W.format().dtype;
  auto make = [&](int64_t p) {
    return std::make_tuple(W.values(p), W.scales(p), W.format().zero_point ? W.zeros(p) : nullptr);
  };
  auto call = [&](auto factory) {
    if constexpr (NP == 1) {
      fn(factory(p0));
    } else {
      fn(factory(p0), factory(p0 + 1));
    }
  };
  switch (d) {
    case WeightDtype::BF16: return call([&](int64_t p) { return Bf16Decoder{std::get<0>(make(p))}; });
    case WeightDtype::F16: return call([&](int64_t p) { return F16Decoder{std::get<0>(make(p))}; });
    case WeightDtype::Int8:
      return call([&](int64_t p) { return Int8Decoder(std::get<0>(make(p)), std::get<1>(make(p))); });
    case WeightDtype::Int4:
      return call([&](int64_t p) {
        const auto t = make(p);
        return Int4Decoder(std::get<0>(t), std::get<1>(t), std::get<2>(t), W.group());
      });
    case WeightDtype::Fp8E4M3:
      return call([&](int64_t p) {
        return Fp8Decoder{std::get<0>(make(p)), reinterpret_cast<const float *>(std::get<1>(make(p))), {}};
      });
    case WeightDtype::Mxfp4:
      return call([&](int64_t p) { return Mxfp4Decoder{std::get<0>(make(p)), std::get<1>(make(p)), {}, {}}; });
    default: return;
  }
}

void dequantize_block(const CompactPanels &W, int64_t p, int64_t k0, int64_t kd, float *out) {
  with_decoders<1>(W, p, [&](auto dec) {
    const int64_t step = chunk_of(dec);
    for (int64_t c0 = k0; c0 < k0 + kd; c0 += step) {
      dec.setup(c0);
      const int64_t c1 = c0 + step < k0 + kd ? c0 + step : k0 + kd;
      for (int64_t k = c0; k < c1; ++k) {
        v8 b0, b1;
        dec.load(k, b0, b1);
        store8(out + (k - k0) * 16, b0);
        store8(out + (k - k0) * 16 + 8, b1);
      }
    }
  });
}

// micro_kernel with the panels' values decoded in registers instead of read from an fp32 block, for NP adjacent
// panels at once (more independent accumulators to hide the multiply-add latency of a one-row call): the same
// accumulation per output (acc += a * w, k in order, C stored at the end of the depth block).
constexpr int64_t kPrefetchDepth = 192;

template <int MR, int NP, typename D>
void fused_kernel(const float *A, int64_t lda, D *dec, int64_t k0, int64_t kd, float *C, int64_t ldc,
                  const int64_t *cols) {
  v8 acc[MR][NP][2];
  for (int r = 0; r < MR; ++r) {
    for (int q = 0; q < NP; ++q) {
      if (k0 == 0) {
        acc[r][q][0] = v8{};
        acc[r][q][1] = v8{};
      } else {
        float tmp[16] = {};
        std::memcpy(tmp, C + r * ldc + q * kPanelWidth, static_cast<size_t>(cols[q]) * sizeof(float));
        acc[r][q][0] = load8(tmp);
        acc[r][q][1] = load8(tmp + 8);
      }
    }
  }
  const int64_t step = chunk_of(dec[0]);
  for (int64_t c0 = k0; c0 < k0 + kd; c0 += step) {
    for (int q = 0; q < NP; ++q) dec[q].setup(c0);
    const int64_t c1 = c0 + step < k0 + kd ? c0 + step : k0 + kd;
    for (int64_t k = c0; k < c1; ++k) {
      // A one-row call reads each byte once and does little with it: ask for the stream ahead of the hardware
      // prefetcher (kPrefetchDepth depths on, the next depth block or the next panels, which follow in memory).
      if ((k & 1) == 0) {
        for (int q = 0; q < NP; ++q) __builtin_prefetch(dec[q].values + D::bytes_per_k * (k + kPrefetchDepth));
      }
      v8 b[NP][2];
      for (int q = 0; q < NP; ++q) dec[q].load(k, b[q][0], b[q][1]);
      for (int r = 0; r < MR; ++r) {
        const v8 a = splat(A[r * lda + k]);
        for (int q = 0; q < NP; ++q) {
          acc[r][q][0] += a * b[q][0];
          acc[r][q][1] += a * b[q][1];
        }
      }
    }
  }
  for (int r = 0; r < MR; ++r) {
    for (int q = 0; q < NP; ++q) {
      float tmp[16];
      store8(tmp, acc[r][q][0]);
      store8(tmp + 8, acc[r][q][1]);
      std::memcpy(C + r * ldc + q * kPanelWidth, tmp, static_cast<size_t>(cols[q]) * sizeof(float));
    }
  }
}

template <int NP, typename D>
void fused_rows(int64_t rows, const float *A, int64_t lda, D *dec, int64_t k0, int64_t kd, float *C, int64_t ldc,
                const int64_t *cols) {
  switch (rows) {
    case 1: return fused_kernel<1, NP>(A, lda, dec, k0, kd, C, ldc, cols);
    case 2: return fused_kernel<2, NP>(A, lda, dec, k0, kd, C, ldc, cols);
    case 3: return fused_kernel<3, 1>(A, lda, dec, k0, kd, C, ldc, cols);
    case 4: return fused_kernel<4, 1>(A, lda, dec, k0, kd, C, ldc, cols);
    case 5: return fused_kernel<5, 1>(A, lda, dec, k0, kd, C, ldc, cols);
    default: return fused_kernel<6, 1>(A, lda, dec, k0, kd, C, ldc, cols);
  }
}

// Panels [p, p + NP) over depth block [k0, k0 + kd), times A's rows (at most six; two panels at once for one or two
// rows), decoded in registers.
template <int NP>
void fused_block(const CompactPanels &W, int64_t p, int64_t rows, const float *A, int64_t lda, int64_t k0, int64_t kd,
                 float *C, int64_t ldc, const int64_t *cols) {
  if constexpr (NP == 1) {
    with_decoders<1>(W, p, [&](auto d0) { fused_rows<1>(rows, A, lda, &d0, k0, kd, C, ldc, cols); });
  } else {
    with_decoders<2>(W, p, [&](auto d0, auto d1) {
      decltype(d0) dec[2] = {d0, d1};
      fused_rows<2>(rows, A, lda, dec, k0, kd, C, ldc, cols);
    });
  }
}

}  // namespace

void dequantize_panel_block(const CompactPanels &W, int64_t p, int64_t k0, int64_t kd, float *out) {
  dequantize_block(W, p, k0, kd, out);
}

void compact_gemm_tile(const float *A, int64_t lda, int64_t rows, const CompactPanels &W, int64_t p0, int64_t p1,
                       float *C, int64_t ldc) {
  const int64_t K = W.depth(), N = W.rows();
  if (rows <= kRowsPerKernel) {
    // Decode: panel by panel (two at a time for one or two rows), each panel's depth blocks in order, so the tile's
    // compact bytes stream from memory in one sequential run (its panels are contiguous). Each output's
    // accumulation order is that of the block path below.
    const int64_t np = rows <= 2 ? 2 : 1;
    for (int64_t p = p0; p < p1; p += np) {
      int64_t cols[2];
      for (int64_t q = 0; q < 2; ++q) {
        const int64_t col = (p + q) * kPanelWidth;
        cols[q] = N - col < kPanelWidth ? (N - col > 0 ? N - col : 0) : kPanelWidth;
      }
      const bool pair = np == 2 && p + 1 < p1;
      for (int64_t k0 = 0; k0 < K; k0 += kDepthBlock) {
        const int64_t kd = K - k0 < kDepthBlock ? K - k0 : kDepthBlock;
        if (pair) {
          fused_block<2>(W, p, rows, A, lda, k0, kd, C + p * kPanelWidth, ldc, cols);
        } else {
          fused_block<1>(W, p, rows, A, lda, k0, kd, C + p * kPanelWidth, ldc, cols);
        }
      }
      if (!pair) p += 1 - np;
    }
    return;
  }
  alignas(64) float block[kDepthBlock * kPanelWidth];
  for (int64_t k0 = 0; k0 < K; k0 += kDepthBlock) {
    const int64_t kd = K - k0 < kDepthBlock ? K - k0 : kDepthBlock;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t col = p * kPanelWidth;
      const int64_t cols = N - col < kPanelWidth ? N - col : kPanelWidth;
      dequantize_block(W, p, k0, kd, block);  // prefill: dequantised once, read by every group of six rows
      for (int64_t r = 0; r < rows; r += kRowsPerKernel) {
        const int64_t mr = rows - r < kRowsPerKernel ? rows - r : kRowsPerKernel;
        kKernels[mr](A + r * lda + k0, lda, block, kd, k0 == 0, C + r * ldc + col, ldc, cols);
      }
    }
  }
}

}  // namespace pimoe::cpu::PIMOE_ISA
