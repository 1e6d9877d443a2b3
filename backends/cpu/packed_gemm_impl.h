/* SPDX-License-Identifier: MIT */
// The packed GEMM's tile loop. Included once per instruction set by packed_gemm_<isa>.cpp with PIMOE_ISA naming
// the namespace.
#include "micro_kernel_impl.h"

namespace pimoe::cpu::PIMOE_ISA {

void packed_gemm_tile(const float *A, int64_t lda, int64_t rows, const PackedWeight &W, int64_t p0, int64_t p1,
                      float *C, int64_t ldc) {
  const int64_t K = W.depth(), N = W.rows();
  for (int64_t k0 = 0; k0 < K; k0 += kDepthBlock) {
    const int64_t kd = K - k0 < kDepthBlock ? K - k0 : kDepthBlock;
    for (int64_t p = p0; p < p1; ++p) {
      const float *panel = W.panel(p) + k0 * kPanelWidth;
      const int64_t col = p * kPanelWidth;
      const int64_t cols = N - col < kPanelWidth ? N - col : kPanelWidth;
      for (int64_t r = 0; r < rows; r += kRowsPerKernel) {
        const int64_t mr = rows - r < kRowsPerKernel ? rows - r : kRowsPerKernel;
        kKernels[mr](A + r * lda + k0, lda, panel, kd, k0 == 0, C + r * ldc + col, ldc, cols);
      }
    }
  }
}

}  // namespace pimoe::cpu::PIMOE_ISA
