// The compact-weight kernels: a panel's depth block dequantised to fp32 (in registers, 16 features at a time) and
// the tile loop that feeds it to the packed GEMM's micro-kernel. Included once per instruction set by
// compact_gemm_<isa>.cpp with PIMOE_ISA naming the namespace. Every value is computed as the reference dequantiser
// (src/compact_matrix.cpp) computes it: the code's exact value, times the scale, rounded once.
#include <cstdint>
#include <cstring>

#if defined(__F16C__)
#include <immintrin.h>
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
  const v8i x = __builtin_convertvector(load_vec<i8x8>(p), v8i);
  const v8u bits = (__builtin_convertvector(x, v8u) << 20) & 0x87f00000u;
  return bits_to_float(bits) * splat(0x1p120f);
}

// e2m1 codes (sign in bit 3) to their values 0, 0.5, 1, 1.5, 2, 3, 4, 6: from magnitude 2 up, the code's bits are a
// float's exponent and first mantissa bit above 2^-1.
__attribute__((always_inline)) inline v8 e2m1x8_to_float(v8u u) {
  const v8u m = u & 7u;
  const v8 big = bits_to_float((m << 22) + (126u << 23));
  const v8 small = __builtin_convertvector(m, v8) * splat(0.5f);
  const v8 mag = m < 2u ? small : big;
  v8u bits;
  std::memcpy(&bits, &mag, sizeof bits);
  return bits_to_float(bits | ((u & 8u) << 28));
}

// 2^(e - 127) for e8m0 bytes (e = 0: 2^-127, a subnormal).
__attribute__((always_inline)) inline v8 e8m0x8_to_float(const uint8_t *p) {
  const v8u e = __builtin_convertvector(load_vec<u8x8>(p), v8u);
  return bits_to_float(e == 0u ? v8u{} + 0x00400000u : e << 23);
}

void dequantize_block(const CompactPanels &W, int64_t p, int64_t k0, int64_t kd, float *out) {
  const uint8_t *values = W.values(p), *scales = W.scales(p);
  switch (W.format().dtype) {
    case WeightDtype::BF16:
      for (int64_t k = k0; k < k0 + kd; ++k) {
        for (int h = 0; h < 2; ++h) {
          const v8u u = __builtin_convertvector(load_vec<u16x8>(values + 2 * (k * 16 + 8 * h)), v8u) << 16;
          store8(out + (k - k0) * 16 + 8 * h, bits_to_float(u));
        }
      }
      return;
    case WeightDtype::F16:
      for (int64_t k = k0; k < k0 + kd; ++k) {
        store8(out + (k - k0) * 16, f16x8_to_float(values + 2 * k * 16));
        store8(out + (k - k0) * 16 + 8, f16x8_to_float(values + 2 * k * 16 + 16));
      }
      return;
    case WeightDtype::Int8: {
      const v8 s0 = load8(reinterpret_cast<const float *>(scales)), s1 = load8(reinterpret_cast<const float *>(scales) + 8);
      for (int64_t k = k0; k < k0 + kd; ++k) {
        const v8 q0 = __builtin_convertvector(__builtin_convertvector(load_vec<i8x8>(values + k * 16), v8i), v8);
        const v8 q1 = __builtin_convertvector(__builtin_convertvector(load_vec<i8x8>(values + k * 16 + 8), v8i), v8);
        store8(out + (k - k0) * 16, q0 * s0);
        store8(out + (k - k0) * 16 + 8, q1 * s1);
      }
      return;
    }
    case WeightDtype::Int4: {
      const int64_t g = W.group();
      const uint8_t *zeros = W.format().zero_point ? W.zeros(p) : nullptr;
      for (int64_t gk = k0; gk < k0 + kd; gk += g) {
        const int64_t gi = gk / g, end = gk + g < k0 + kd ? gk + g : k0 + kd;
        const v8 s0 = f16x8_to_float(scales + 32 * gi), s1 = f16x8_to_float(scales + 32 * gi + 16);
        const v8i z0 = zeros ? __builtin_convertvector(load_vec<u8x8>(zeros + 16 * gi), v8i) : v8i{} + 8;
        const v8i z1 = zeros ? __builtin_convertvector(load_vec<u8x8>(zeros + 16 * gi + 8), v8i) : v8i{} + 8;
        for (int64_t k = gk; k < end; ++k) {
          const v8i b = __builtin_convertvector(load_vec<u8x8>(values + 8 * k), v8i);
          store8(out + (k - k0) * 16, __builtin_convertvector((b & 15) - z0, v8) * s0);
          store8(out + (k - k0) * 16 + 8, __builtin_convertvector((b >> 4) - z1, v8) * s1);
        }
      }
      return;
    }
    case WeightDtype::Fp8E4M3: {
      const float *s = reinterpret_cast<const float *>(scales);
      for (int64_t k = k0; k < k0 + kd; ++k) {
        const v8 sk = splat(s[k / 128]);
        store8(out + (k - k0) * 16, e4m3x8_to_float(values + k * 16) * sk);
        store8(out + (k - k0) * 16 + 8, e4m3x8_to_float(values + k * 16 + 8) * sk);
      }
      return;
    }
    case WeightDtype::Mxfp4:
      for (int64_t bk = k0; bk < k0 + kd; bk += 32) {
        const int64_t end = bk + 32 < k0 + kd ? bk + 32 : k0 + kd;
        const v8 s0 = e8m0x8_to_float(scales + 16 * (bk / 32)), s1 = e8m0x8_to_float(scales + 16 * (bk / 32) + 8);
        for (int64_t k = bk; k < end; ++k) {
          const v8u b = __builtin_convertvector(load_vec<u8x8>(values + 8 * k), v8u);
          store8(out + (k - k0) * 16, e2m1x8_to_float(b & 15u) * s0);
          store8(out + (k - k0) * 16 + 8, e2m1x8_to_float(b >> 4) * s1);
        }
      }
      return;
    default:
      return;
  }
}

}  // namespace

void dequantize_panel_block(const CompactPanels &W, int64_t p, int64_t k0, int64_t kd, float *out) {
  dequantize_block(W, p, k0, kd, out);
}

void compact_gemm_tile(const float *A, int64_t lda, int64_t rows, const CompactPanels &W, int64_t p0, int64_t p1,
                       float *C, int64_t ldc) {
  const int64_t K = W.depth(), N = W.rows();
  alignas(64) float block[kDepthBlock * kPanelWidth];
  for (int64_t k0 = 0; k0 < K; k0 += kDepthBlock) {
    const int64_t kd = K - k0 < kDepthBlock ? K - k0 : kDepthBlock;
    for (int64_t p = p0; p < p1; ++p) {
      dequantize_block(W, p, k0, kd, block);
      const int64_t col = p * kPanelWidth;
      const int64_t cols = N - col < kPanelWidth ? N - col : kPanelWidth;
      for (int64_t r = 0; r < rows; r += kRowsPerKernel) {
        const int64_t mr = rows - r < kRowsPerKernel ? rows - r : kRowsPerKernel;
        kKernels[mr](A + r * lda + k0, lda, block, kd, k0 == 0, C + r * ldc + col, ldc, cols);
      }
    }
  }
}

}  // namespace pimoe::cpu::PIMOE_ISA
