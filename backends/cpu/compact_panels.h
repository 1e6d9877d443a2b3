/* SPDX-License-Identifier: MIT */
// Expert matrices in a compact storage format (bf16, fp16, int8, int4, fp8_e4m3, mxfp4), repacked once into the
// packed GEMM's panels: 16 output features per panel, depth-major, so a depth block of a panel dequantises into
// exactly the fp32 block packed_gemm.h's micro-kernel reads. Decode streams each panel's compact bytes once;
// nothing of the matrix is ever held in fp32 beyond one 16 x 256 block per thread.
//
// Panel p (output features 16p .. 16p+15; features past the matrix's rows have scale 0, so they read as 0):
//   values  bf16/fp16: [K][16] u16;  fp8_e4m3: [K][16] bytes;
//           int8: [ceil(K/4)][16][4] bytes: four consecutive depths of a feature side by side, the operand of the
//                 integer dot-product instructions (vpmaddubsw, vpdpbusd: four bytes into one 32-bit sum);
//           int4: [ceil(K/8)][16][4] bytes: byte 4c + j of depth chunk k/8 holds feature c's depth 8(k/8) + j in its
//                 low nibble and depth 8(k/8) + 4 + j in its high nibble, so a mask and a shift give two int8-like
//                 [16][4] blocks; padding depths hold code 0;
//           mxfp4: [K][8] bytes, byte j of depth k holding feature j (low nibble) and feature j+8 (high)
//   scales  int8: [16] f32;  int4: [K/group][16] f16 (+ zero points [K/group][16] u8);
//           fp8_e4m3: [ceil(K/128)] f32 (a 128-row scale block holds whole panels);  mxfp4: [ceil(K/32)][16] e8m0
// The value of an element is the reference dequantiser's (compact_matrix.h), bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "packed_gemm.h"
#include "src/compact_matrix.h"

namespace pimoe::cpu {

// Where depth k of panel feature c lives in an int8 or int4 panel's values (layouts above).
inline int64_t int8_value_offset(int64_t k, int64_t c) { return 64 * (k / 4) + 4 * c + k % 4; }
inline int64_t int4_value_offset(int64_t k, int64_t c) { return 64 * (k / 8) + 4 * c + k % 4; }
inline bool int4_high_nibble(int64_t k) { return k % 8 >= 4; }

class CompactPanels {
 public:
  CompactPanels() = default;
  // Repacks m (any compact format; not fp32) into `arena` when one is given (it must outlive this), else the heap.
  explicit CompactPanels(const CompactMatrix &m, WeightArena *arena = nullptr);
  // The arena bytes CompactPanels(m, arena) takes for a matrix of this format and shape.
  static size_t arena_bytes(const WeightFormat &format, int64_t rows, int64_t depth);

  const WeightFormat &format() const { return format_; }
  int64_t rows() const { return n_; }
  int64_t depth() const { return k_; }
  int64_t panels() const { return (n_ + kPanelWidth - 1) / kPanelWidth; }
  size_t bytes() const { return values_.size() + scales_.size() + zeros_.size(); }

  // Values, scales and zero points of panel p (layouts above).
  const uint8_t *values(int64_t p) const { return values_.data() + p * values_per_panel_; }
  const uint8_t *scales(int64_t p) const { return scales_.data() + p * scales_per_panel_; }
  const uint8_t *zeros(int64_t p) const { return zeros_.data() + p * zeros_per_panel_; }
  int64_t group() const { return group_; }  // depth elements per scale (int8: K)

  // The matrix [rows, depth] dequantised (for pimoe_tensor_read).
  void unpack(float *w) const;
  // The matrix in the interchange layout it was packed from, bit for bit (for pimoe_save): the panels hold every
  // code and scale, and a 4-bit row's padding past `depth` is the code of zero, as check_codes requires.
  CompactMatrix to_matrix() const;

 private:
  // Bytes per panel of the three buffers, and the depth elements per scale.
  struct Layout {
    size_t values = 0, scales = 0, zeros = 0;
    int64_t group = 0;
  };
  static Layout layout(const WeightFormat &format, int64_t depth);

  WeightFormat format_;
  int64_t n_ = 0, k_ = 0, group_ = 0;
  size_t values_per_panel_ = 0, scales_per_panel_ = 0, zeros_per_panel_ = 0;
  PanelBytes values_, scales_, zeros_;
};

// out[kd][16] = panel p's depth rows [k0, k0 + kd) dequantised (k0 a multiple of kDepthBlock).
void dequantize_panel_block(const CompactPanels &W, int64_t p, int64_t k0, int64_t kd, float *out);

// packed_gemm_tile's twin for compact weights: C[rows, panels p0..p1) of A * W^T, the same accumulation order (each
// depth block of a panel is dequantised to fp32, then the same micro-kernel runs), so a compact layer's output is
// bitwise the fp32 layer's on its dequantised weights.
void compact_gemm_tile(const float *A, int64_t lda, int64_t rows, const CompactPanels &W, int64_t p0, int64_t p1,
                       float *C, int64_t ldc);

// Rows of activations quantised to int8 for the integer path of int8 and int4 weights (compact_int_gemm_impl.h), in
// blocks of 32 along the row (ggml's Q8_0 granularity: one outlier costs only its block precision): block b's codes
// are round-to-nearest-even(a * 127 / m_b), m_b = max|a| over the block (all 0 for a zero block), so |code| <= 127
// and a ~= code * scale_b with scale_b = m_b / 127, each element off by at most scale_b / 2.
struct QuantizedRows {
  const int8_t *q = nullptr;             // [rows][ld] codes; zero from the depth up to ld
  int64_t ld = 0;                        // a multiple of 32
  const float *scale = nullptr;          // [rows][ld / 32] scale_b
  const float *scaled_sums = nullptr;    // [rows][ld / 32] scale_b * (sum of the block's codes): int4 zero points
};

// The padded row length of depth k.
inline int64_t quantized_ld(int64_t k) { return (k + 31) / 32 * 32; }
// Quantises rows [0, rows) of A (depth k) into q (row stride ld >= quantized_ld(k)), scale and scaled_sums.
void quantize_rows(const float *A, int64_t lda, int64_t rows, int64_t k, int8_t *q, int64_t ld, float *scale,
                   float *scaled_sums);
// Whether W's format has the integer path (int8, int4).
inline bool has_int_path(const WeightFormat &f) { return f.dtype == WeightDtype::Int8 || f.dtype == WeightDtype::Int4; }
// C[rows, panels p0..p1) of A * W^T on the integer path (W int8 or int4): exact integer sums, fp32 scales.
void compact_int_gemm_tile(const QuantizedRows &A, int64_t rows, const CompactPanels &W, int64_t p0, int64_t p1,
                           float *C, int64_t ldc);

}  // namespace pimoe::cpu

namespace pimoe::cpu {

// One projection's weights as the CPU backend holds them: fp32 panels or compact panels, one tile call for both.
class PanelMatrix {
 public:
  PanelMatrix() = default;
  explicit PanelMatrix(PackedWeight w) : fp32_(std::move(w)) {}
  // int_path: int8/int4 weights computed on int8 activations (tile_int) instead of fp32 ones (tile).
  PanelMatrix(CompactPanels w, bool int_path)
      : compact_(true), int_path_(int_path && has_int_path(w.format())), packed_(std::move(w)) {}

  int64_t panels() const { return compact_ ? packed_.panels() : fp32_.panels(); }
  size_t bytes() const { return compact_ ? packed_.bytes() : fp32_.bytes(); }
  void unpack(float *w) const { compact_ ? packed_.unpack(w) : fp32_.unpack(w); }
  bool is_compact() const { return compact_; }
  bool int_path() const { return int_path_; }
  const CompactPanels &compact_panels() const { return packed_; }
  // C[rows, panels p0..p1) of A * W^T (packed_gemm_tile / compact_gemm_tile).
  void tile(const float *A, int64_t lda, int64_t rows, int64_t p0, int64_t p1, float *C, int64_t ldc) const {
    if (compact_) return compact_gemm_tile(A, lda, rows, packed_, p0, p1, C, ldc);
    packed_gemm_tile(A, lda, rows, fp32_, p0, p1, C, ldc);
  }
  // The same from quantised rows (int_path() only).
  void tile_int(const QuantizedRows &A, int64_t rows, int64_t p0, int64_t p1, float *C, int64_t ldc) const {
    compact_int_gemm_tile(A, rows, packed_, p0, p1, C, ldc);
  }

 private:
  bool compact_ = false, int_path_ = false;
  PackedWeight fp32_;
  CompactPanels packed_;
};

}  // namespace pimoe::cpu
