// SPDX-License-Identifier: MIT
#include "packed_gemm.h"

#include "cpu_isa.h"

namespace pimoe::cpu {

#define PIMOE_DECLARE_PACKED_GEMM(isa)                                                                            \
  namespace isa {                                                                                                 \
  void packed_gemm_tile(const float *A, int64_t lda, int64_t rows, const PackedWeight &W, int64_t p0, int64_t p1, \
                        float *C, int64_t ldc);                                                                   \
  }
PIMOE_DECLARE_PACKED_GEMM(generic)
#if defined(PIMOE_HAVE_X86_ISAS)
PIMOE_DECLARE_PACKED_GEMM(avx2)
PIMOE_DECLARE_PACKED_GEMM(avx512)
#endif
#if defined(PIMOE_HAVE_ARM_ISAS)
PIMOE_DECLARE_PACKED_GEMM(neon)
#endif

size_t PackedWeight::arena_bytes(int64_t n, int64_t k) {
  const int64_t panels = (n + kPanelWidth - 1) / kPanelWidth;
  return WeightArena::slice_bytes(static_cast<size_t>(panels * kPanelWidth * k) * sizeof(float));
}

PackedWeight::PackedWeight(const float *w, int64_t n, int64_t k, WeightArena *arena)
    : n_(n), k_(k), data_(static_cast<size_t>(panels() * kPanelWidth * k) * sizeof(float), arena) {
  float *values = reinterpret_cast<float *>(data_.data());  // zeros: the padding past n stays 0
  for (int64_t row = 0; row < n; ++row) {
    float *dst = values + (row / kPanelWidth) * kPanelWidth * k + row % kPanelWidth;
    for (int64_t d = 0; d < k; ++d) dst[d * kPanelWidth] = w[row * k + d];
  }
}

void PackedWeight::unpack(float *w) const {
  for (int64_t row = 0; row < n_; ++row) {
    const float *src = values() + (row / kPanelWidth) * kPanelWidth * k_ + row % kPanelWidth;
    for (int64_t d = 0; d < k_; ++d) w[row * k_ + d] = src[d * kPanelWidth];
  }
}

void packed_gemm_tile(const float *A, int64_t lda, int64_t rows, const PackedWeight &W, int64_t p0, int64_t p1,
                      float *C, int64_t ldc) {
  switch (isa()) {
#if defined(PIMOE_HAVE_X86_ISAS)
    case Isa::Avx512:
      return avx512::packed_gemm_tile(A, lda, rows, W, p0, p1, C, ldc);
    case Isa::Avx2:
      return avx2::packed_gemm_tile(A, lda, rows, W, p0, p1, C, ldc);
#endif
#if defined(PIMOE_HAVE_ARM_ISAS)
    case Isa::NeonDot:  // the fp32 kernel has no integer dot products to use
    case Isa::Neon:
      return neon::packed_gemm_tile(A, lda, rows, W, p0, p1, C, ldc);
#endif
    default:
      return generic::packed_gemm_tile(A, lda, rows, W, p0, p1, C, ldc);
  }
}

}  // namespace pimoe::cpu
