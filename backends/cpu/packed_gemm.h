/* SPDX-License-Identifier: MIT */
// GEMM against weights packed once at load: C[M, N] = A[M, K] * W^T for W an nn.Linear weight [N, K].
//
// Why not OpenBLAS here: an MoE expert sees few rows per call (64 for the wishlist's layer at 256 tokens), where
// OpenBLAS re-packs the whole weight on every call and reaches about 0.75 of its dense rate (bench/cpu/RESULTS.md), and
// its own spinning threads compete with the model's pool. Packing each weight once into the micro-kernel's panel
// layout and running every expert's tiles on one pool removes both costs. Each output element is accumulated in the
// same order whatever M, the row's position and the thread count, so results are batch-invariant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "weight_arena.h"

namespace pimoe::cpu {

// Output columns per panel, and K per cache block: both fix the accumulation order, so they are constants.
constexpr int64_t kPanelWidth = 16;
constexpr int64_t kDepthBlock = 256;

class PackedWeight {
 public:
  PackedWeight() = default;
  // Packs W [n, k] (row-major): panel p holds columns [16p, 16p+16) as [k][16], zero-padded past n. The panels live
  // in `arena` when one is given (it must outlive this), else on the heap.
  PackedWeight(const float *w, int64_t n, int64_t k, WeightArena *arena = nullptr);
  // The arena bytes PackedWeight(w, n, k, arena) takes.
  static size_t arena_bytes(int64_t n, int64_t k);

  int64_t rows() const { return n_; }   // N: output features
  int64_t depth() const { return k_; }  // K: input features
  int64_t panels() const { return (n_ + kPanelWidth - 1) / kPanelWidth; }
  const float *panel(int64_t p) const { return values() + p * kPanelWidth * k_; }
  size_t bytes() const { return data_.size(); }
  // The original W [n, k] back (for pimoe_tensor_read).
  void unpack(float *w) const;

 private:
  const float *values() const { return reinterpret_cast<const float *>(data_.data()); }
  int64_t n_ = 0, k_ = 0;
  PanelBytes data_;  // [panels][k][16] f32
};

// C[rows, panels p0..p1) of A * W^T, where A has `rows` rows with leading dimension lda and C has leading dimension
// ldc. Columns past W.rows() are not written.
void packed_gemm_tile(const float *A, int64_t lda, int64_t rows, const PackedWeight &W, int64_t p0, int64_t p1,
                      float *C, int64_t ldc);

}  // namespace pimoe::cpu
