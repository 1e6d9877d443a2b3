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

namespace pimoe::cpu {

// Output columns per panel, and K per cache block: both fix the accumulation order, so they are constants.
constexpr int64_t kPanelWidth = 16;
constexpr int64_t kDepthBlock = 256;

class PackedWeight {
 public:
  PackedWeight() = default;
  // Packs W [n, k] (row-major): panel p holds columns [16p, 16p+16) as [k][16], zero-padded past n.
  PackedWeight(const float *w, int64_t n, int64_t k);

  int64_t rows() const { return n_; }   // N: output features
  int64_t depth() const { return k_; }  // K: input features
  int64_t panels() const { return (n_ + kPanelWidth - 1) / kPanelWidth; }
  const float *panel(int64_t p) const { return data_.data() + p * kPanelWidth * k_; }
  size_t bytes() const { return data_.size() * sizeof(float); }
  // The original W [n, k] back (for pimoe_tensor_read).
  void unpack(float *w) const;

 private:
  int64_t n_ = 0, k_ = 0;
  std::vector<float> data_;
};

// C[rows, panels p0..p1) of A * W^T, where A has `rows` rows with leading dimension lda and C has leading dimension
// ldc. Columns past W.rows() are not written.
void packed_gemm_tile(const float *A, int64_t lda, int64_t rows, const PackedWeight &W, int64_t p0, int64_t p1,
                      float *C, int64_t ldc);

}  // namespace pimoe::cpu
