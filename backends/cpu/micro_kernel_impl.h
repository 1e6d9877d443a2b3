/* SPDX-License-Identifier: MIT */
// The packed GEMM's micro-kernel (acc[MR rows][16 cols] += A * panel over one depth block), shared by the fp32
// and the compact-weight tile loops. Included once per instruction set (inside packed_gemm_impl.h and
// compact_gemm_impl.h) with PIMOE_ISA naming the namespace; GCC vector extensions compile to AVX2/AVX-512/SSE2 code
// as the file's flags allow.
#pragma once

#include <cstdint>
#include <cstring>

#include "packed_gemm.h"

namespace pimoe::cpu::PIMOE_ISA {
namespace {

typedef float v8 __attribute__((vector_size(32)));

__attribute__((always_inline)) inline v8 load8(const float *p) {
  v8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
__attribute__((always_inline)) inline void store8(float *p, v8 v) {
  std::memcpy(p, &v, sizeof v);
}

// acc[MR rows][16 cols] (+)= A[MR, k0..k1) * panel[k0..k1, 16]; `first` starts from zero instead of C.
template <int MR>
inline void micro_kernel(const float *A, int64_t lda, const float *panel, int64_t kd, bool first, float *C, int64_t ldc,
                         int64_t cols) {
  v8 acc[MR][2];
  for (int r = 0; r < MR; ++r) {
    if (first) {
      acc[r][0] = v8{};
      acc[r][1] = v8{};
    } else if (cols == kPanelWidth) {
      acc[r][0] = load8(C + r * ldc);
      acc[r][1] = load8(C + r * ldc + 8);
    } else {
      float tmp[16] = {};
      std::memcpy(tmp, C + r * ldc, static_cast<size_t>(cols) * sizeof(float));
      acc[r][0] = load8(tmp);
      acc[r][1] = load8(tmp + 8);
    }
  }
  for (int64_t k = 0; k < kd; ++k) {
    const v8 b0 = load8(panel + k * kPanelWidth);
    const v8 b1 = load8(panel + k * kPanelWidth + 8);
    for (int r = 0; r < MR; ++r) {
      const float a = A[r * lda + k];
      acc[r][0] += a * b0;
      acc[r][1] += a * b1;
    }
  }
  for (int r = 0; r < MR; ++r) {
    if (cols == kPanelWidth) {
      store8(C + r * ldc, acc[r][0]);
      store8(C + r * ldc + 8, acc[r][1]);
    } else {
      float tmp[16];
      store8(tmp, acc[r][0]);
      store8(tmp + 8, acc[r][1]);
      std::memcpy(C + r * ldc, tmp, static_cast<size_t>(cols) * sizeof(float));
    }
  }
}

using MicroKernel = void (*)(const float *, int64_t, const float *, int64_t, bool, float *, int64_t, int64_t);
constexpr int kRowsPerKernel = 6;
constexpr MicroKernel kKernels[kRowsPerKernel + 1] = {
    nullptr, micro_kernel<1>, micro_kernel<2>, micro_kernel<3>, micro_kernel<4>, micro_kernel<5>, micro_kernel<6>};

}  // namespace
}  // namespace pimoe::cpu::PIMOE_ISA
