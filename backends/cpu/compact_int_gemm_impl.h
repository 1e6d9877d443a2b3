/* SPDX-License-Identifier: MIT */
// The integer path of int8 and int4 weights: activations quantised to int8 in blocks of 32 (quantize_rows), products
// summed exactly in 32-bit integers per block (AVX2 vpmaddubsw + vpmaddwd; NEON sdot, or smull and pair adds; the
// portable path in plain loops), the block's activation scale and the weight scales applied in fp32. Included once per instruction set by
// compact_gemm_<isa>.cpp after compact_gemm_impl.h, with PIMOE_ISA naming the namespace.
//
// For output feature f of a row (weight codes q or u, activation codes a, block scales t_b, compact_panels.h):
//   int8:  C = s_f * sum_b t_b * float(sum_{k in b} a_k q_fk)
//   int4:  C = sum_g s_fg * (sum_{b in g} t_b * float(sum_{k in b} a_k u_fk) - z_fg * sum_{b in g} t_b * sum_{k in b} a_k)
//          (u the 4-bit code, z its zero point: 8 if symmetric)
// The integer sums are exact, so every instruction set computes the same sums; the fp32 steps may round differently
// (an instruction set with FMA fuses multiplies and adds).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__ARM_NEON)
#include <arm_neon.h>
#endif

#include "compact_panels.h"

namespace pimoe::cpu::PIMOE_ISA {
namespace {

// Rows per register block: each row keeps 4 accumulators (the block's integer sums and fp32 totals, 16 features).
// NEON's registers are half as wide, 8 per row: with int8's 4 weight registers three rows fit its 32, with int4's
// 8 codes and 8 scales two.
#if defined(__ARM_NEON)
constexpr int64_t kInt8Rows = 3;
constexpr int64_t kInt4Rows = 2;
#else
constexpr int64_t kInt8Rows = 4;
constexpr int64_t kInt4Rows = 4;
#endif
// Depth chunks (64 bytes each) the decode loop prefetches ahead: 3 KB, one line per chunk.
constexpr int64_t kIntPrefetchChunks = 48;

#if defined(__AVX2__)

__attribute__((always_inline)) inline __m256i load256(const uint8_t *p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p));
}
__attribute__((always_inline)) inline __m256i broadcast4(const int8_t *p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// MR rows times one int8 panel (16 features), all of the depth. The weights are signed, vpmaddubsw wants its first
// operand unsigned: |w| times a carrying w's sign (vpsignb), whose pair sums (at most 2 * 127 * 127) fit int16.
template <int MR>
void int8_block(const QuantizedRows &A, int64_t r0, const uint8_t *values, const float *wscale, int64_t K, float *C,
                int64_t ldc, int64_t cols, bool prefetch) {
  __m256 acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  const int64_t chunks = (K + 3) / 4, blocks = (K + 31) / 32, sld = A.ld / 32;
  for (int64_t b = 0; b < blocks; ++b) {
    __m256i part[MR][2];
    for (int r = 0; r < MR; ++r) part[r][0] = part[r][1] = _mm256_setzero_si256();
    const int64_t c1 = 8 * b + 8 < chunks ? 8 * b + 8 : chunks;
    for (int64_t c = 8 * b; c < c1; ++c) {
      if (prefetch) __builtin_prefetch(values + 64 * (c + kIntPrefetchChunks));
      const __m256i w0 = load256(values + 64 * c), w1 = load256(values + 64 * c + 32);
      const __m256i u0 = _mm256_sign_epi8(w0, w0), u1 = _mm256_sign_epi8(w1, w1);
      for (int r = 0; r < MR; ++r) {
        const __m256i a = broadcast4(A.q + (r0 + r) * A.ld + 4 * c);
        part[r][0] = _mm256_add_epi32(part[r][0],
                                      _mm256_madd_epi16(_mm256_maddubs_epi16(u0, _mm256_sign_epi8(a, w0)), ones));
        part[r][1] = _mm256_add_epi32(part[r][1],
                                      _mm256_madd_epi16(_mm256_maddubs_epi16(u1, _mm256_sign_epi8(a, w1)), ones));
      }
    }
    for (int r = 0; r < MR; ++r) {
      const __m256 t = _mm256_set1_ps(A.scale[(r0 + r) * sld + b]);
      acc[r][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(part[r][0]), t, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(part[r][1]), t, acc[r][1]);
    }
  }
  const __m256 s0 = _mm256_loadu_ps(wscale), s1 = _mm256_loadu_ps(wscale + 8);
  for (int r = 0; r < MR; ++r) {
    alignas(32) float out[16];
    _mm256_store_ps(out, _mm256_mul_ps(acc[r][0], s0));
    _mm256_store_ps(out + 8, _mm256_mul_ps(acc[r][1], s1));
    std::memcpy(C + r * ldc, out, static_cast<size_t>(cols) * sizeof(float));
  }
}

// MR rows times one int4 panel. The 4-bit codes are unsigned (0..15) and so directly vpmaddubsw's first operand;
// its int16 pair sums (at most 2 * 15 * 127 in size) are added over one 32-depth block (8 of them: at most 30480,
// inside int16) before vpmaddwd widens them; the zero point comes off once per group through the activation sums.
template <int MR>
void int4_block(const QuantizedRows &A, int64_t r0, const CompactPanels &W, int64_t p, float *C, int64_t ldc,
                int64_t cols, bool prefetch) {
  const uint8_t *values = W.values(p), *scales = W.scales(p);
  const uint8_t *zeros = W.format().zero_point ? W.zeros(p) : nullptr;
  const int64_t K = W.depth(), group = W.group(), chunks = (K + 7) / 8;
  const int64_t sld = A.ld / 32;
  __m256 acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1), low = _mm256_set1_epi8(0x0f);
  for (int64_t g0 = 0, gi = 0; g0 < K; g0 += group, ++gi) {
    const __m256 s0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(scales + 32 * gi)));
    const __m256 s1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(scales + 32 * gi + 16)));
    const __m256 z0 = zeros ? _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
                                  reinterpret_cast<const __m128i *>(zeros + 16 * gi))))
                            : _mm256_set1_ps(8.0f);
    const __m256 z1 = zeros ? _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
                                  reinterpret_cast<const __m128i *>(zeros + 16 * gi + 8))))
                            : _mm256_set1_ps(8.0f);
    const __m256 zs0 = _mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(z0, s0));
    const __m256 zs1 = _mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(z1, s1));
    const int64_t g1 = g0 + group < K ? g0 + group : K;
    for (int64_t b0 = g0; b0 < g1; b0 += 32) {
      __m256i part[MR][2];
      for (int r = 0; r < MR; ++r) part[r][0] = part[r][1] = _mm256_setzero_si256();
      const int64_t c1 = (b0 + 32 < g1 ? b0 + 32 : g1 + 7) / 8;
      for (int64_t c = b0 / 8; c < c1 && c < chunks; ++c) {
        if (prefetch) __builtin_prefetch(values + 64 * (c + kIntPrefetchChunks));
        const __m256i v0 = load256(values + 64 * c), v1 = load256(values + 64 * c + 32);
        const __m256i lo0 = _mm256_and_si256(v0, low), hi0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), low);
        const __m256i lo1 = _mm256_and_si256(v1, low), hi1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), low);
        for (int r = 0; r < MR; ++r) {
          const int8_t *a = A.q + (r0 + r) * A.ld + 8 * c;
          const __m256i al = broadcast4(a), ah = broadcast4(a + 4);
          part[r][0] = _mm256_add_epi16(
              part[r][0], _mm256_add_epi16(_mm256_maddubs_epi16(lo0, al), _mm256_maddubs_epi16(hi0, ah)));
          part[r][1] = _mm256_add_epi16(
              part[r][1], _mm256_add_epi16(_mm256_maddubs_epi16(lo1, al), _mm256_maddubs_epi16(hi1, ah)));
        }
      }
      // One pass over the accumulators per block: this block's sums, and its share of the zero point's term
      // (t_b * sum of the block's codes, times -z * s).
      for (int r = 0; r < MR; ++r) {
        const __m256 t = _mm256_set1_ps(A.scale[(r0 + r) * sld + b0 / 32]);
        const __m256 as = _mm256_set1_ps(A.scaled_sums[(r0 + r) * sld + b0 / 32]);
        const __m256 t0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(part[r][0], ones)), t);
        const __m256 t1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(part[r][1], ones)), t);
        acc[r][0] = _mm256_fmadd_ps(t0, s0, _mm256_fmadd_ps(zs0, as, acc[r][0]));
        acc[r][1] = _mm256_fmadd_ps(t1, s1, _mm256_fmadd_ps(zs1, as, acc[r][1]));
      }
    }
  }
  for (int r = 0; r < MR; ++r) {
    alignas(32) float out[16];
    _mm256_store_ps(out, acc[r][0]);
    _mm256_store_ps(out + 8, acc[r][1]);
    std::memcpy(C + r * ldc, out, static_cast<size_t>(cols) * sizeof(float));
  }
}

#elif defined(__ARM_NEON)  // NEON: sdot where the file is built with the dot-product extension, else smull + pair adds

__attribute__((always_inline)) inline int8x16_t broadcast4(const int8_t *p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

// part += for each of the 4 features of w (4 consecutive int8 codes each), the dot product with a's 4 codes.
__attribute__((always_inline)) inline int32x4_t dot4(int32x4_t part, int8x16_t w, int8x16_t a) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(part, w, a);
#else
  // Products fit int16 (|a| <= 127); pairwise widening adds, then the pairs of pairs.
  const int16x8_t lo = vmull_s8(vget_low_s8(w), vget_low_s8(a));
  const int16x8_t hi = vmull_high_s8(w, a);
  return vaddq_s32(part, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)));
#endif
}

// MR rows times one int8 panel (16 features, 4 registers of [4 features][4 depths]), all of the depth.
template <int MR>
void int8_block(const QuantizedRows &A, int64_t r0, const uint8_t *values, const float *wscale, int64_t K, float *C,
                int64_t ldc, int64_t cols, bool prefetch) {
  float32x4_t acc[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < 4; ++j) acc[r][j] = vdupq_n_f32(0.0f);
  const int64_t chunks = (K + 3) / 4, blocks = (K + 31) / 32, sld = A.ld / 32;
  const int8_t *w8 = reinterpret_cast<const int8_t *>(values);
  for (int64_t b = 0; b < blocks; ++b) {
    int32x4_t part[MR][4];
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < 4; ++j) part[r][j] = vdupq_n_s32(0);
    const int64_t c1 = 8 * b + 8 < chunks ? 8 * b + 8 : chunks;
    for (int64_t c = 8 * b; c < c1; ++c) {
      if (prefetch) __builtin_prefetch(values + 64 * (c + kIntPrefetchChunks));
      int8x16_t w[4];
      for (int j = 0; j < 4; ++j) w[j] = vld1q_s8(w8 + 64 * c + 16 * j);
      for (int r = 0; r < MR; ++r) {
        const int8x16_t a = broadcast4(A.q + (r0 + r) * A.ld + 4 * c);
        for (int j = 0; j < 4; ++j) part[r][j] = dot4(part[r][j], w[j], a);
      }
    }
    for (int r = 0; r < MR; ++r) {
      const float t = A.scale[(r0 + r) * sld + b];
      for (int j = 0; j < 4; ++j) acc[r][j] = vfmaq_n_f32(acc[r][j], vcvtq_f32_s32(part[r][j]), t);
    }
  }
  for (int r = 0; r < MR; ++r) {
    float out[16];
    for (int j = 0; j < 4; ++j) vst1q_f32(out + 4 * j, vmulq_f32(acc[r][j], vld1q_f32(wscale + 4 * j)));
    std::memcpy(C + r * ldc, out, static_cast<size_t>(cols) * sizeof(float));
  }
}

// MR rows times one int4 panel. The 4-bit codes (0..15) are non-negative int8 values, so the signed dot product
// takes them as they are; the zero point comes off once per group through the activation sums, as on AVX2.
template <int MR>
void int4_block(const QuantizedRows &A, int64_t r0, const CompactPanels &W, int64_t p, float *C, int64_t ldc,
                int64_t cols, bool prefetch) {
  const uint8_t *values = W.values(p), *scales = W.scales(p);
  const uint8_t *zeros = W.format().zero_point ? W.zeros(p) : nullptr;
  const int64_t K = W.depth(), group = W.group(), chunks = (K + 7) / 8;
  const int64_t sld = A.ld / 32;
  float32x4_t acc[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < 4; ++j) acc[r][j] = vdupq_n_f32(0.0f);
  const uint8x16_t low = vdupq_n_u8(0x0f);
  for (int64_t g0 = 0, gi = 0; g0 < K; g0 += group, ++gi) {
    float32x4_t s[4], zs[4];
    uint16_t h[16];
    std::memcpy(h, scales + 32 * gi, sizeof h);
    for (int j = 0; j < 4; ++j) s[j] = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h + 4 * j)));
    for (int j = 0; j < 4; ++j) {
      float32x4_t z = vdupq_n_f32(8.0f);
      if (zeros) {
        const uint16x8_t z16 = vmovl_u8(vld1_u8(zeros + 16 * gi + 8 * (j / 2)));
        z = vcvtq_f32_u32(j % 2 ? vmovl_high_u16(z16) : vmovl_u16(vget_low_u16(z16)));
      }
      zs[j] = vnegq_f32(vmulq_f32(z, s[j]));
    }
    const int64_t g1 = g0 + group < K ? g0 + group : K;
    for (int64_t b0 = g0; b0 < g1; b0 += 32) {
      int32x4_t part[MR][4];
      for (int r = 0; r < MR; ++r)
        for (int j = 0; j < 4; ++j) part[r][j] = vdupq_n_s32(0);
      const int64_t c1 = (b0 + 32 < g1 ? b0 + 32 : g1 + 7) / 8;
      for (int64_t c = b0 / 8; c < c1 && c < chunks; ++c) {
        if (prefetch) __builtin_prefetch(values + 64 * (c + kIntPrefetchChunks));
        int8x16_t lo[4], hi[4];
        for (int j = 0; j < 4; ++j) {
          const uint8x16_t v = vld1q_u8(values + 64 * c + 16 * j);
          lo[j] = vreinterpretq_s8_u8(vandq_u8(v, low));
          hi[j] = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
        }
        for (int r = 0; r < MR; ++r) {
          const int8_t *a = A.q + (r0 + r) * A.ld + 8 * c;
          const int8x16_t al = broadcast4(a), ah = broadcast4(a + 4);
          for (int j = 0; j < 4; ++j) part[r][j] = dot4(dot4(part[r][j], lo[j], al), hi[j], ah);
        }
      }
      // One pass over the accumulators per block: this block's sums, and its share of the zero point's term.
      for (int r = 0; r < MR; ++r) {
        const float t = A.scale[(r0 + r) * sld + b0 / 32];
        const float as = A.scaled_sums[(r0 + r) * sld + b0 / 32];
        for (int j = 0; j < 4; ++j) {
          const float32x4_t tj = vmulq_n_f32(vcvtq_f32_s32(part[r][j]), t);
          acc[r][j] = vfmaq_f32(vfmaq_n_f32(acc[r][j], zs[j], as), tj, s[j]);
        }
      }
    }
  }
  for (int r = 0; r < MR; ++r) {
    float out[16];
    for (int j = 0; j < 4; ++j) vst1q_f32(out + 4 * j, acc[r][j]);
    std::memcpy(C + r * ldc, out, static_cast<size_t>(cols) * sizeof(float));
  }
}

#else  // the portable path: the same integer sums in plain loops

float f16_at(const uint8_t *p, int64_t i) {
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return fp16_bits_to_float(h);
}

template <int MR>
void int8_block(const QuantizedRows &A, int64_t r0, const uint8_t *values, const float *wscale, int64_t K, float *C,
                int64_t ldc, int64_t cols, bool) {
  const int64_t sld = A.ld / 32;
  for (int r = 0; r < MR; ++r) {
    const int8_t *a = A.q + (r0 + r) * A.ld;
    for (int64_t f = 0; f < cols; ++f) {
      float acc = 0.0f;
      for (int64_t b0 = 0; b0 < K; b0 += 32) {
        int32_t part = 0;
        for (int64_t k = b0; k < b0 + 32 && k < K; ++k) part += a[k] * static_cast<int8_t>(values[int8_value_offset(k, f)]);
        acc += static_cast<float>(part) * A.scale[(r0 + r) * sld + b0 / 32];
      }
      C[r * ldc + f] = acc * wscale[f];
    }
  }
}

template <int MR>
void int4_block(const QuantizedRows &A, int64_t r0, const CompactPanels &W, int64_t p, float *C, int64_t ldc,
                int64_t cols, bool) {
  const uint8_t *values = W.values(p), *scales = W.scales(p);
  const uint8_t *zeros = W.format().zero_point ? W.zeros(p) : nullptr;
  const int64_t K = W.depth(), group = W.group(), sld = A.ld / 32;
  for (int r = 0; r < MR; ++r) {
    const int8_t *a = A.q + (r0 + r) * A.ld;
    for (int64_t f = 0; f < cols; ++f) {
      float acc = 0.0f;
      for (int64_t g0 = 0, gi = 0; g0 < K; g0 += group, ++gi) {
        const float s = f16_at(scales, gi * kPanelWidth + f);
        const float z = zeros ? static_cast<float>(zeros[gi * kPanelWidth + f]) : 8.0f;
        const int64_t g1 = g0 + group < K ? g0 + group : K;
        float asum = 0.0f;
        for (int64_t b = g0 / 32; b < (g1 + 31) / 32; ++b) asum += A.scaled_sums[(r0 + r) * sld + b];
        acc += (-(z * s)) * asum;
        for (int64_t b0 = g0; b0 < g1; b0 += 32) {
          int32_t part = 0;
          for (int64_t k = b0; k < b0 + 32 && k < g1; ++k) {
            const uint8_t byte = values[int4_value_offset(k, f)];
            part += a[k] * (int4_high_nibble(k) ? byte >> 4 : byte & 15);
          }
          acc += static_cast<float>(part) * A.scale[(r0 + r) * sld + b0 / 32] * s;
        }
      }
      C[r * ldc + f] = acc;
    }
  }
}

#endif

template <int MR>
void int_block(const QuantizedRows &A, int64_t r0, const CompactPanels &W, int64_t p, float *C, int64_t ldc,
               int64_t cols, bool prefetch) {
  if (W.format().dtype == WeightDtype::Int8) {
    return int8_block<MR>(A, r0, W.values(p), reinterpret_cast<const float *>(W.scales(p)), W.depth(), C, ldc, cols,
                          prefetch);
  }
  int4_block<MR>(A, r0, W, p, C, ldc, cols, prefetch);
}

// Rows [0, rows) in blocks of MR, then of 2, then one by one.
template <int MR>
void int_rows(const QuantizedRows &A, int64_t rows, const CompactPanels &W, int64_t p, float *C, int64_t ldc,
              int64_t cols) {
  const bool prefetch = rows <= 2;  // decode streams the panel once; prefill rereads it from cache
  int64_t r = 0;
  for (; r + MR <= rows; r += MR) int_block<MR>(A, r, W, p, C + r * ldc, ldc, cols, prefetch);
  if constexpr (MR > 2) {
    for (; r + 2 <= rows; r += 2) int_block<2>(A, r, W, p, C + r * ldc, ldc, cols, prefetch);
  }
  for (; r < rows; ++r) int_block<1>(A, r, W, p, C + r * ldc, ldc, cols, prefetch);
}

// One block of quantize_rows (compact_panels.h): n <= 32 elements of src into dst[0, 32), its scale and scaled sum.
void quantize_block_portable(const float *src, int64_t n, int8_t *dst, float *scale, float *scaled_sum) {
  float amax = 0.0f, probe = 0.0f;  // probe: NaN when some element is NaN or infinite (x * 0)
  for (int64_t i = 0; i < n; ++i) {
    amax = std::max(amax, std::fabs(src[i]));
    probe += src[i] * 0.0f;
  }
  // A block with a NaN or an infinity gets codes 0 and a NaN scale: its outputs are NaN, as fp32 arithmetic's.
  if (probe != 0.0f) amax = std::numeric_limits<float>::quiet_NaN();
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  int32_t sum = 0;
  if (inv > 0.0f) {  // never for a NaN scale: a NaN element must not reach the integer conversion
    for (int64_t i = 0; i < n; ++i) {
      // The product rounded to fp32, then to the nearest integer, ties to even (the default rounding mode); no add
      // for -ffp-contract=fast to fuse the product into.
      dst[i] = static_cast<int8_t>(std::nearbyint(src[i] * inv));
      sum += dst[i];
    }
  } else {
    std::fill(dst, dst + n, int8_t{0});
  }
  std::fill(dst + n, dst + 32, int8_t{0});
  *scale = amax / 127.0f;
  *scaled_sum = amax / 127.0f * static_cast<float>(sum);
}

#if defined(__AVX2__)
// A whole block of 32 with the same arithmetic as quantize_block_portable: the same maximum, the same product
// x * (127 / m) rounded once to fp32, then to the nearest integer, ties to even (vcvtps2dq in the default rounding
// mode), so every instruction set gives the same codes.
void quantize_block32(const float *src, int8_t *dst, float *scale, float *scaled_sum) {
  const __m256 sign = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
  __m256 x[4];
  for (int i = 0; i < 4; ++i) x[i] = _mm256_loadu_ps(src + 8 * i);
  const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, x[0]), _mm256_andnot_ps(sign, x[1])),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, x[2]), _mm256_andnot_ps(sign, x[3])));
  const __m256 probe = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(x[0], zero), _mm256_mul_ps(x[1], zero)),
                                     _mm256_add_ps(_mm256_mul_ps(x[2], zero), _mm256_mul_ps(x[3], zero)));
  if (_mm256_movemask_ps(_mm256_cmp_ps(probe, probe, _CMP_UNORD_Q)) != 0) {
    return quantize_block_portable(src, 32, dst, scale, scaled_sum);  // a NaN or an infinity
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
  const float amax = _mm_cvtss_f32(m4);
  if (!(amax > 0.0f)) return quantize_block_portable(src, 32, dst, scale, scaled_sum);  // all zeros
  const __m256 inv = _mm256_set1_ps(127.0f / amax);
  __m256i y[4];
  for (int i = 0; i < 4; ++i) y[i] = _mm256_cvtps_epi32(_mm256_mul_ps(x[i], inv));
  // packs work within 128-bit lanes: dwords come out as y0[0:4] y1[0:4] y2[0:4] y3[0:4] y0[4:8] ..., put back.
  const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(y[0], y[1]), _mm256_packs_epi32(y[2], y[3]));
  _mm256_storeu_si256(reinterpret_cast<__m256i *>(dst),
                      _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  const __m256i s = _mm256_add_epi32(_mm256_add_epi32(y[0], y[1]), _mm256_add_epi32(y[2], y[3]));
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
  *scale = amax / 127.0f;
  *scaled_sum = amax / 127.0f * static_cast<float>(_mm_cvtsi128_si32(s4));
}
#elif defined(__ARM_NEON)
// The same arithmetic on NEON: fcvtns rounds to the nearest integer, ties to even, as nearbyint does by default.
void quantize_block32(const float *src, int8_t *dst, float *scale, float *scaled_sum) {
  float32x4_t x[8];
  for (int i = 0; i < 8; ++i) x[i] = vld1q_f32(src + 4 * i);
  float32x4_t m = vabsq_f32(x[0]), probe = vmulq_n_f32(x[0], 0.0f);
  for (int i = 1; i < 8; ++i) {
    m = vmaxq_f32(m, vabsq_f32(x[i]));
    probe = vaddq_f32(probe, vmulq_n_f32(x[i], 0.0f));
  }
  if (vmaxvq_u32(vmvnq_u32(vceqq_f32(probe, probe))) != 0) {
    return quantize_block_portable(src, 32, dst, scale, scaled_sum);  // a NaN or an infinity
  }
  const float amax = vmaxvq_f32(m);
  if (!(amax > 0.0f)) return quantize_block_portable(src, 32, dst, scale, scaled_sum);  // all zeros
  const float inv = 127.0f / amax;
  int32x4_t sum = vdupq_n_s32(0);
  int16x8_t h[4];
  for (int i = 0; i < 4; ++i) {
    const int32x4_t y0 = vcvtnq_s32_f32(vmulq_n_f32(x[2 * i], inv));
    const int32x4_t y1 = vcvtnq_s32_f32(vmulq_n_f32(x[2 * i + 1], inv));
    sum = vaddq_s32(sum, vaddq_s32(y0, y1));
    h[i] = vcombine_s16(vmovn_s32(y0), vmovn_s32(y1));  // |y| <= 127: narrowing keeps the value
  }
  vst1q_s8(dst, vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1])));
  vst1q_s8(dst + 16, vcombine_s8(vmovn_s16(h[2]), vmovn_s16(h[3])));
  *scale = amax / 127.0f;
  *scaled_sum = amax / 127.0f * static_cast<float>(vaddvq_s32(sum));
}
#endif

}  // namespace

void compact_int_gemm_tile(const QuantizedRows &A, int64_t rows, const CompactPanels &W, int64_t p0, int64_t p1,
                           float *C, int64_t ldc) {
  const int64_t N = W.rows();
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t col = p * kPanelWidth;
    const int64_t cols = N - col < kPanelWidth ? N - col : kPanelWidth;
    if (W.format().dtype == WeightDtype::Int8) {
      int_rows<kInt8Rows>(A, rows, W, p, C + col, ldc, cols);
    } else {
      int_rows<kInt4Rows>(A, rows, W, p, C + col, ldc, cols);
    }
  }
}

void quantize_rows(const float *A, int64_t lda, int64_t rows, int64_t k, int8_t *q, int64_t ld, float *scale,
                   float *scaled_sums) {
  const int64_t blocks = ld / 32;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t n = std::max<int64_t>(0, std::min<int64_t>(32, k - 32 * b));
      const float *src = A + r * lda + 32 * b;
      int8_t *dst = q + r * ld + 32 * b;
      float *s = scale + r * blocks + b, *ss = scaled_sums + r * blocks + b;
#if defined(__AVX2__) || defined(__ARM_NEON)
      if (n == 32) {
        quantize_block32(src, dst, s, ss);
        continue;
      }
#endif
      quantize_block_portable(src, n, dst, s, ss);
    }
  }
}

}  // namespace pimoe::cpu::PIMOE_ISA
