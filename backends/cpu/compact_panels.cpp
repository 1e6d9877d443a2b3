// SPDX-License-Identifier: MIT
#include "compact_panels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu_isa.h"
#include "src/error.h"

namespace pimoe::cpu {

#define PIMOE_DECLARE_COMPACT_GEMM(isa)                                                                             \
  namespace isa {                                                                                                   \
  void dequantize_panel_block(const CompactPanels &W, int64_t p, int64_t k0, int64_t kd, float *out);              \
  void compact_gemm_tile(const float *A, int64_t lda, int64_t rows, const CompactPanels &W, int64_t p0, int64_t p1, \
                         float *C, int64_t ldc);                                                                    \
  void compact_int_gemm_tile(const QuantizedRows &A, int64_t rows, const CompactPanels &W, int64_t p0, int64_t p1,  \
                             float *C, int64_t ldc);                                                                \
  void quantize_rows(const float *A, int64_t lda, int64_t rows, int64_t k, int8_t *q, int64_t ld, float *scale,      \
                     float *scaled_sums);                                                                           \
  }
PIMOE_DECLARE_COMPACT_GEMM(generic)
#if defined(PIMOE_HAVE_X86_ISAS)
PIMOE_DECLARE_COMPACT_GEMM(avx2)
PIMOE_DECLARE_COMPACT_GEMM(avx512)
#endif
#if defined(PIMOE_HAVE_ARM_ISAS)
PIMOE_DECLARE_COMPACT_GEMM(neon)
PIMOE_DECLARE_COMPACT_GEMM(neon_dot)  // only its integer tile differs from neon's (sdot): the rest is not called
#endif

namespace {

constexpr int64_t kW = kPanelWidth;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The nibble of element c of a row in the interchange layout (compact_matrix.h: 16-byte blocks of 32 elements,
// element 2j in the low nibble of byte j).
uint8_t source_nibble(const uint8_t *row, int64_t c) {
  const uint8_t b = row[(c / 32) * 16 + (c % 32) / 2];
  return (c & 1) ? static_cast<uint8_t>(b >> 4) : static_cast<uint8_t>(b & 0x0f);
}

}  // namespace

CompactPanels::Layout CompactPanels::layout(const WeightFormat &format, int64_t K) {
  const WeightDtype d = format.dtype;
  Layout l;
  switch (d) {
    case WeightDtype::BF16:
    case WeightDtype::F16: l.values = static_cast<size_t>(K * kW * 2); break;
    case WeightDtype::Int8: l.values = static_cast<size_t>(ceil_div(K, 4) * 64); break;
    case WeightDtype::Fp8E4M3: l.values = static_cast<size_t>(K * kW); break;
    case WeightDtype::Int4: l.values = static_cast<size_t>(ceil_div(K, 8) * 64); break;
    case WeightDtype::Mxfp4: l.values = static_cast<size_t>(K * kW / 2); break;
    default: fail(PIMOE_ERR_INTERNAL, "CompactPanels: format ", format.name(), " is not compact");
  }
  l.group = d == WeightDtype::Int4 ? format.group : d == WeightDtype::Mxfp4 ? 32 : d == WeightDtype::Fp8E4M3 ? 128 : K;
  const int64_t groups = ceil_div(K, l.group);
  switch (d) {
    case WeightDtype::Int8: l.scales = kW * 4; break;
    case WeightDtype::Int4: l.scales = static_cast<size_t>(groups * kW * 2); break;
    case WeightDtype::Fp8E4M3: l.scales = static_cast<size_t>(groups * 4); break;
    case WeightDtype::Mxfp4: l.scales = static_cast<size_t>(groups * kW); break;
    default: break;
  }
  if (d == WeightDtype::Int4 && format.zero_point) l.zeros = static_cast<size_t>(groups * kW);
  return l;
}

size_t CompactPanels::arena_bytes(const WeightFormat &format, int64_t rows, int64_t depth) {
  const Layout l = layout(format, depth);
  const auto P = static_cast<size_t>(ceil_div(rows, kW));
  return WeightArena::slice_bytes(l.values * P) + WeightArena::slice_bytes(l.scales * P) +
         WeightArena::slice_bytes(l.zeros * P);
}

CompactPanels::CompactPanels(const CompactMatrix &m, WeightArena *arena) : format_(m.format), n_(m.rows), k_(m.cols) {
  const WeightDtype d = format_.dtype;
  const int64_t P = panels(), K = k_;
  const uint8_t *src = m.values.data(), *ssrc = m.scales.data(), *zsrc = m.zeros.data();
  const size_t rb = m.row_bytes();
  const Layout l = layout(format_, K);
  values_per_panel_ = l.values;
  scales_per_panel_ = l.scales;
  zeros_per_panel_ = l.zeros;
  group_ = l.group;
  const int64_t groups = ceil_div(K, group_);
  // Padding features read as 0: zero codes where the code alone gives the value, zero scales elsewhere (the buffers
  // start as zeros).
  values_ = PanelBytes(values_per_panel_ * static_cast<size_t>(P), arena);
  scales_ = PanelBytes(scales_per_panel_ * static_cast<size_t>(P), arena);
  zeros_ = PanelBytes(zeros_per_panel_ * static_cast<size_t>(P), arena);

  for (int64_t n = 0; n < n_; ++n) {
    const int64_t p = n / kW, c = n % kW;
    const uint8_t *row = src + static_cast<size_t>(n) * rb;
    uint8_t *v = values_.data() + p * values_per_panel_;
    uint8_t *s = scales_.data() + p * scales_per_panel_;
    switch (d) {
      case WeightDtype::BF16:
      case WeightDtype::F16:
        for (int64_t k = 0; k < K; ++k) std::memcpy(v + 2 * (k * kW + c), row + 2 * k, 2);
        break;
      case WeightDtype::Int8:
        std::memcpy(s + 4 * c, ssrc + 4 * n, 4);
        for (int64_t k = 0; k < K; ++k) v[int8_value_offset(k, c)] = row[k];
        break;
      case WeightDtype::Fp8E4M3:
        for (int64_t k = 0; k < K; ++k) v[k * kW + c] = row[k];
        if (c == 0) {  // a 128-row scale block covers whole panels
          for (int64_t g = 0; g < groups; ++g) std::memcpy(s + 4 * g, ssrc + 4 * ((n / 128) * groups + g), 4);
        }
        break;
      case WeightDtype::Int4:
      case WeightDtype::Mxfp4: {
        for (int64_t k = 0; k < K; ++k) {
          const uint8_t u = source_nibble(row, k);
          if (d == WeightDtype::Int4) {
            uint8_t &b = v[int4_value_offset(k, c)];
            b = int4_high_nibble(k) ? static_cast<uint8_t>((b & 0x0f) | (u << 4)) : static_cast<uint8_t>((b & 0xf0) | u);
            continue;
          }
          uint8_t &b = v[k * (kW / 2) + c % 8];
          b = c < 8 ? static_cast<uint8_t>((b & 0xf0) | u) : static_cast<uint8_t>((b & 0x0f) | (u << 4));
        }
        const size_t scale_bytes = d == WeightDtype::Int4 ? 2 : 1;
        for (int64_t g = 0; g < groups; ++g) {
          std::memcpy(s + scale_bytes * (g * kW + c), ssrc + scale_bytes * (n * groups + g), scale_bytes);
          if (zeros_per_panel_) zeros_.data()[p * zeros_per_panel_ + g * kW + c] = zsrc[n * groups + g];
        }
        break;
      }
      default: break;
    }
  }
  // The padding features of a 4-bit panel: code 8 of symmetric int4 is 0 already times a 0 scale; nothing to do.
}

CompactMatrix CompactPanels::to_matrix() const {
  const WeightDtype d = format_.dtype;
  const int64_t K = k_, groups = ceil_div(K, group_);
  CompactMatrix m;
  m.format = format_;
  m.rows = n_;
  m.cols = k_;
  m.values = ByteBuffer(CompactMatrix::values_bytes(format_, n_, k_));
  m.scales = ByteBuffer(CompactMatrix::scales_bytes(format_, n_, k_));
  m.zeros = ByteBuffer(CompactMatrix::zeros_bytes(format_, n_, k_));
  uint8_t *dst = m.values.mutable_data(), *sdst = m.scales.mutable_data(), *zdst = m.zeros.mutable_data();
  const size_t rb = m.row_bytes();
  for (int64_t n = 0; n < n_; ++n) {
    const int64_t p = n / kW, c = n % kW;
    uint8_t *row = dst + static_cast<size_t>(n) * rb;
    const uint8_t *v = values(p), *s = scales(p);
    switch (d) {
      case WeightDtype::BF16:
      case WeightDtype::F16:
        for (int64_t k = 0; k < K; ++k) std::memcpy(row + 2 * k, v + 2 * (k * kW + c), 2);
        break;
      case WeightDtype::Int8:
        std::memcpy(sdst + 4 * n, s + 4 * c, 4);
        for (int64_t k = 0; k < K; ++k) row[k] = v[int8_value_offset(k, c)];
        break;
      case WeightDtype::Fp8E4M3:
        for (int64_t k = 0; k < K; ++k) row[k] = v[k * kW + c];
        if (n % 128 == 0) {  // the panel starting a 128-row block holds its scales
          for (int64_t g = 0; g < groups; ++g) std::memcpy(sdst + 4 * ((n / 128) * groups + g), s + 4 * g, 4);
        }
        break;
      case WeightDtype::Int4:
      case WeightDtype::Mxfp4: {
        const size_t scale_bytes = d == WeightDtype::Int4 ? 2 : 1;
        for (int64_t g = 0; g < groups; ++g) {
          std::memcpy(sdst + scale_bytes * (n * groups + g), s + scale_bytes * (g * kW + c), scale_bytes);
          if (zeros_per_panel_) zdst[n * groups + g] = zeros(p)[g * kW + c];
        }
        // Every nibble of the row's blocks: the codes, then the padding with the code of zero (the quantiser's).
        const uint8_t zero = d == WeightDtype::Mxfp4 ? 0 : zeros_per_panel_ ? zdst[n * groups + groups - 1] : 8;
        for (int64_t k = 0; k < static_cast<int64_t>(rb) * 2; ++k) {
          uint8_t u = zero;
          if (k < K && d == WeightDtype::Int4) {
            const uint8_t b = v[int4_value_offset(k, c)];
            u = int4_high_nibble(k) ? static_cast<uint8_t>(b >> 4) : static_cast<uint8_t>(b & 0x0f);
          } else if (k < K) {
            const uint8_t b = v[k * (kW / 2) + c % 8];
            u = c < 8 ? static_cast<uint8_t>(b & 0x0f) : static_cast<uint8_t>(b >> 4);
          }
          uint8_t &out = row[(k / 32) * 16 + (k % 32) / 2];
          out = (k & 1) ? static_cast<uint8_t>((out & 0x0f) | (u << 4)) : static_cast<uint8_t>((out & 0xf0) | u);
        }
        break;
      }
      default: break;
    }
  }
  return m;
}

void CompactPanels::unpack(float *w) const {
  alignas(64) float block[kDepthBlock * kW];
  for (int64_t p = 0; p < panels(); ++p) {
    for (int64_t k0 = 0; k0 < k_; k0 += kDepthBlock) {
      const int64_t kd = std::min(kDepthBlock, k_ - k0);
      dequantize_panel_block(*this, p, k0, kd, block);
      for (int64_t c = 0; c < kW && p * kW + c < n_; ++c) {
        for (int64_t k = 0; k < kd; ++k) w[(p * kW + c) * k_ + k0 + k] = block[k * kW + c];
      }
    }
  }
}

void dequantize_panel_block(const CompactPanels &W, int64_t p, int64_t k0, int64_t kd, float *out) {
  switch (isa()) {
#if defined(PIMOE_HAVE_X86_ISAS)
    case Isa::Avx512: return avx512::dequantize_panel_block(W, p, k0, kd, out);
    case Isa::Avx2: return avx2::dequantize_panel_block(W, p, k0, kd, out);
#endif
#if defined(PIMOE_HAVE_ARM_ISAS)
    case Isa::NeonDot:
    case Isa::Neon: return neon::dequantize_panel_block(W, p, k0, kd, out);
#endif
    default: return generic::dequantize_panel_block(W, p, k0, kd, out);
  }
}

void compact_gemm_tile(const float *A, int64_t lda, int64_t rows, const CompactPanels &W, int64_t p0, int64_t p1,
                       float *C, int64_t ldc) {
  switch (isa()) {
#if defined(PIMOE_HAVE_X86_ISAS)
    case Isa::Avx512: return avx512::compact_gemm_tile(A, lda, rows, W, p0, p1, C, ldc);
    case Isa::Avx2: return avx2::compact_gemm_tile(A, lda, rows, W, p0, p1, C, ldc);
#endif
#if defined(PIMOE_HAVE_ARM_ISAS)
    case Isa::NeonDot:
    case Isa::Neon: return neon::compact_gemm_tile(A, lda, rows, W, p0, p1, C, ldc);
#endif
    default: return generic::compact_gemm_tile(A, lda, rows, W, p0, p1, C, ldc);
  }
}

}  // namespace pimoe::cpu

namespace pimoe::cpu {

void compact_int_gemm_tile(const QuantizedRows &A, int64_t rows, const CompactPanels &W, int64_t p0, int64_t p1,
                           float *C, int64_t ldc) {
  switch (isa()) {
#if defined(PIMOE_HAVE_X86_ISAS)
    case Isa::Avx512: return avx512::compact_int_gemm_tile(A, rows, W, p0, p1, C, ldc);
    case Isa::Avx2: return avx2::compact_int_gemm_tile(A, rows, W, p0, p1, C, ldc);
#endif
#if defined(PIMOE_HAVE_ARM_ISAS)
    case Isa::NeonDot: return neon_dot::compact_int_gemm_tile(A, rows, W, p0, p1, C, ldc);
    case Isa::Neon: return neon::compact_int_gemm_tile(A, rows, W, p0, p1, C, ldc);
#endif
    default: return generic::compact_int_gemm_tile(A, rows, W, p0, p1, C, ldc);
  }
}

void quantize_rows(const float *A, int64_t lda, int64_t rows, int64_t k, int8_t *q, int64_t ld, float *scale,
                   float *scaled_sums) {
  switch (isa()) {
#if defined(PIMOE_HAVE_X86_ISAS)
    case Isa::Avx512: return avx512::quantize_rows(A, lda, rows, k, q, ld, scale, scaled_sums);
    case Isa::Avx2: return avx2::quantize_rows(A, lda, rows, k, q, ld, scale, scaled_sums);
#endif
#if defined(PIMOE_HAVE_ARM_ISAS)
    case Isa::NeonDot:
    case Isa::Neon: return neon::quantize_rows(A, lda, rows, k, q, ld, scale, scaled_sums);
#endif
    default: return generic::quantize_rows(A, lda, rows, k, q, ld, scale, scaled_sums);
  }
}

}  // namespace pimoe::cpu
