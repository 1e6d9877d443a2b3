/* SPDX-License-Identifier: MIT */
// The packed GEMM's micro-kernel (acc[MR rows][16 cols] += A * panel over one depth block), shared by the fp32
// and the compact-weight tile loops. Included once per instruction set (inside packed_gemm_impl.h and
// compact_gemm_impl.h) with PIMOE_ISA naming the namespace; GCC vector extensions compile to AVX2/AVX-512/SSE2 code
// as the file's flags allow. NEON has no 32-byte registers: GCC keeps a 32-byte vector extension type in memory
// there, so the NEON build has its own micro-kernel in 16-byte intrinsics (the same sums in the same order).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__ARM_NEON)
#include <arm_neon.h>
#endif

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

#if defined(__ARM_NEON)
// acc[MR rows][16 cols] (+)= A[MR, k0..k1) * panel[k0..k1, 16]; `first` starts from zero instead of C. Six rows keep
// 24 accumulators and 4 panel registers in NEON's 32; each multiply-add takes A's value as a lane (fmla by element).
template <int MR>
inline void micro_kernel(const float *A, int64_t lda, const float *panel, int64_t kd, bool first, float *C, int64_t ldc,
                         int64_t cols) {
  float32x4_t acc[MR][4];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    float tmp[16] = {};
    const float *src = C + r * ldc;
    if (!first && cols != kPanelWidth) {
      std::memcpy(tmp, C + r * ldc, static_cast<size_t>(cols) * sizeof(float));
      src = tmp;
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[r][j] = first ? vdupq_n_f32(0.0f) : vld1q_f32(src + 4 * j);
  }
  for (int64_t k = 0; k < kd; ++k) {
    const float *b = panel + k * kPanelWidth;
    const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const float a = A[r * lda + k];
      acc[r][0] = vfmaq_n_f32(acc[r][0], b0, a);
      acc[r][1] = vfmaq_n_f32(acc[r][1], b1, a);
      acc[r][2] = vfmaq_n_f32(acc[r][2], b2, a);
      acc[r][3] = vfmaq_n_f32(acc[r][3], b3, a);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    if (cols == kPanelWidth) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) vst1q_f32(C + r * ldc + 4 * j, acc[r][j]);
    } else {
      float tmp[16];
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) vst1q_f32(tmp + 4 * j, acc[r][j]);
      std::memcpy(C + r * ldc, tmp, static_cast<size_t>(cols) * sizeof(float));
    }
  }
}
#else
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
#endif

using MicroKernel = void (*)(const float *, int64_t, const float *, int64_t, bool, float *, int64_t, int64_t);
constexpr int kRowsPerKernel = 6;
constexpr MicroKernel kKernels[kRowsPerKernel + 1] = {
    nullptr, micro_kernel<1>, micro_kernel<2>, micro_kernel<3>, micro_kernel<4>, micro_kernel<5>, micro_kernel<6>};

}  // namespace
}  // namespace pimoe::cpu::PIMOE_ISA
