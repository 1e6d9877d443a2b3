/* SPDX-License-Identifier: MIT */
// Plain structs shared by the CUDA backend's host code (cuda_*.cpp, compiled by the C++ compiler) and its
// kernels (*.cu): the per-expert descriptors and the device form of a route plan.
#pragma once

#include <cstdint>

namespace pimoe::cuda {

// The weight types of the experts' matrices on the device: the float types (also the activations' types of the
// tensor-core path), and the compact formats (compact_codec.cuh decodes them; compact_matrix.h has their layouts).
enum class WType : int32_t {
  F32 = 0,
  BF16 = 1,
  F16 = 2,
  I8 = 3,     // int8, one f32 scale a row
  I4 = 4,     // int4, one f16 scale a group of a row (implicit zero point 8)
  I4Z = 5,    // int4 with a u8 zero point a group
  FP8 = 6,    // fp8_e4m3, one f32 scale a 128 x 128 block
  MXFP4 = 7,  // OCP MX e2m1, one e8m0 exponent a 32 elements of a row
};

constexpr bool is_compact(WType t) { return static_cast<int32_t>(t) >= static_cast<int32_t>(WType::I8); }

#if defined(__CUDACC__)
#define PIMOE_HOST_DEVICE __host__ __device__
#else
#define PIMOE_HOST_DEVICE
#endif

// Bytes of a row of K elements of type w on the device: compact rows are padded to whole 16-byte chunks (the
// kernels' unit) with the code of zero; the float types' rows are their elements.
PIMOE_HOST_DEVICE inline int64_t device_row_bytes(WType w, int64_t K) {
  switch (w) {
    case WType::F32:
      return 4 * K;
    case WType::BF16:
    case WType::F16:
      return 2 * K;
    case WType::I8:
    case WType::FP8:
      return (K + 15) / 16 * 16;
    case WType::I4:
    case WType::I4Z:
    case WType::MXFP4:
      return (K + 31) / 32 * 16;
  }
  return 0;
}

// One group of the grouped projections: a routed expert, or (index E) the shared expert, which sees every token.
// Matrices are in nn.Linear layout ([out, in], row-major) and in the layer's weight type; vectors are fp32. A compact
// matrix's rows are padded to whole 16-byte chunks (compact_codec.cuh: row_bytes), and its scales (and zero points)
// are in the layout of compact_matrix.h, padded to 16 bytes.
struct GroupDesc {
  const void *gate = nullptr;  // [I, H], SwiGLU only
  const void *up = nullptr;    // [I, H]
  const void *down = nullptr;  // [H, I]
  const void *gate_scales = nullptr, *up_scales = nullptr, *down_scales = nullptr;  // compact types only
  const uint8_t *gate_zeros = nullptr, *up_zeros = nullptr, *down_zeros = nullptr;  // I4Z only
  const float *up_bias = nullptr;    // [I] or null
  const float *down_bias = nullptr;  // [H] or null
  const float *norm_weight = nullptr;  // [H], pre-LayerNorm only (null: no norm)
  const float *norm_bias = nullptr;    // [H]
  int32_t inter = 0;       // I
  int32_t activation = 0;  // pimoe_activation
};

// Rows of the grouped buffers: group g owns rows [offsets[g], offsets[g+1]). Rows of the routed experts are kept
// (token, slot) assignments; the shared expert's rows (group E, when the layer has one and the call includes it) are
// the call's tokens in order. Built on the host from a RoutePlan, or on the device by the fused routing kernels.
struct DevicePlan {
  int32_t *expert = nullptr;    // [A] chosen expert of assignment a = t*k + j
  float *weight = nullptr;      // [A] combine weight (0 when dropped)
  int32_t *position = nullptr;  // [A] row of the assignment, -1 when dropped
  int32_t *row_token = nullptr;  // [rows] token of each row
  int32_t *row_group = nullptr;  // [rows] group of each row
  int32_t *offsets = nullptr;    // [G+1]
  int32_t *active = nullptr;     // [G] groups with at least one row, ascending; *active_count of them
  int32_t *active_count = nullptr;
  int32_t *tiles = nullptr;      // [2 * max_tiles] (group, first row inside the group) of each row tile
  int32_t *tile_count = nullptr;
};

}  // namespace pimoe::cuda

namespace pimoe::cuda {

// The weighted combine fused into a decode down projection (gemv.cu, gemv_stream.cu): the last block to finish a
// column slice of the outputs writes y[t, slice] = sum_j weight(t, j) * (out[position(t, j), slice] + down_bias) in
// slot order, plus the shared expert's row (ungated). counters[gridDim.y] hold 0 between launches; y null: no fused
// combine.
struct FusedCombine {
  float *y = nullptr;
  unsigned int *counters = nullptr;
  const int32_t *position = nullptr;
  const float *weight = nullptr;
  const int32_t *expert = nullptr;
  int32_t tokens = 0, top_k = 0, experts = 0;
  bool shared = false;
};

// One projection of every group in one launch (gemv.cu, grouped_gemm.cu).
//   up:   rows [.., H] x gate/up^T -> activation -> hidden [.., I_g]   (K = H,   N = I_g)
//   down: hidden [.., I_g] x down^T -> out [.., H]                     (K = I_g, N = H)
// or, with dense_rows > 0, one plain product in[dense_rows, dense_k] x dense_weight[dense_n, dense_k]^T (the router).
struct ProjectionArgs {
  const GroupDesc *groups = nullptr;  // device
  const int32_t *offsets = nullptr;   // device [G+1]
  const int32_t *list = nullptr;      // GEMV: active groups; tiled: (group, row) tiles
  const int32_t *list_count = nullptr;
  int32_t max_list = 0;  // bound of *list_count known on the host (the grid size)
  bool up = true;
  int32_t hidden = 0;
  int32_t max_n = 0;  // largest N over the groups (grid)
  const void *in = nullptr;
  int64_t in_stride = 0;
  const int32_t *in_rows = nullptr;  // GEMV: row r's input is in[in_rows[r]] (the call's tokens, no gather); null: in[r]
  FusedCombine combine;              // GEMV down projection only
  void *out = nullptr;
  int64_t out_stride = 0;
  const float *dense_weight = nullptr;
  int32_t dense_rows = 0, dense_k = 0, dense_n = 0;
  // GEMV only, what the host knows of the groups: every intermediate size is a multiple of inter_align (the streaming
  // kernel takes rows in whole 16-byte chunks), and whether some group of an up projection is gated (SwiGLU: its gate
  // rows stream beside its up rows).
  int32_t inter_align = 1;
  bool gated = true;
  bool streaming = true;  // may take the streaming kernel (gemv_stream.cu); false: the kernel of a block per 16 rows
  int32_t quant_group = 0;  // I4/I4Z: elements a scale (32, 64 or 128)
};

}  // namespace pimoe::cuda
