/* SPDX-License-Identifier: MIT */
// Expert matrices in a storage format (weight_dtype): the formats' table, a matrix held in one of them, and the
// reference quantiser and dequantiser every backend, file and test agrees with.
//
// A CompactMatrix is the interchange form: the nn.Linear weight W [rows, cols] (rows = output features) row-major,
// as files store it and as backends receive it before packing it into their own form. Layouts (pimoe.h documents
// the rules and errors; docs/format.md the tensors in files):
//
//   format    values (per row)                          scales                                  value
//   fp32      cols x f32                                -                                       v
//   bf16      cols x bf16                               -                                       v
//   fp16      cols x f16                                -                                       v
//   int8      cols x int8 in [-127, 127]                f32 [rows]                              q * s[row]
//   int4      ceil(cols/32) blocks of 16 bytes          f16 [rows, ceil(cols/group)]            (u - 8) * s, or
//             (byte j: element 2j in the low nibble,    (+ with a zero point: u8 zeros of the    (u - z) * s
//             element 2j+1 in the high nibble)          same shape)
//   fp8_e4m3  cols x e4m3fn byte                        f32 [ceil(rows/128), ceil(cols/128)]    e4m3(b) * s[blk]
//   mxfp4     ceil(cols/32) blocks of 16 bytes (as      e8m0 u8 [rows, ceil(cols/32)]           e2m1(u) * 2^(e-127)
//             int4)
//
// Past `cols`, a row's last block is padded with the code of zero. The dequantised value is computed in fp32 as
// written (the product rounded once), so every backend that computes with it gets the same value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "option_table.h"

namespace pimoe {

// How a format scales its values: the one place that says it (quantiser, dequantiser, files, backends).
enum class ScaleKind {
  None,              // fp32, bf16, fp16
  F32PerRow,         // int8: one f32 per output row
  F16PerGroup,       // int4: one f16 per `group` elements of a row (and an optional u8 zero point)
  F32Per128Block,    // fp8_e4m3: one f32 per 128 x 128 block (DeepSeek-V3's weight_scale_inv)
  E8M0Per32,         // mxfp4: one power-of-two exponent byte per 32 elements of a row (OCP MX)
};

struct WeightFormatInfo {
  WeightDtype dtype;
  int bits;                       // per stored value
  ScaleKind scale;
  const char *values_dtype;       // safetensors dtype of the values tensor in a native file
};

// The formats' table (one row per WeightDtype but Auto).
const WeightFormatInfo &format_info(WeightDtype dtype);

// A resolved storage format: the dtype and, for int4, the group size and whether groups carry a zero point.
struct WeightFormat {
  WeightDtype dtype = WeightDtype::F32;
  int64_t group = 0;        // int4: 32, 64 or 128 elements per scale; 0 otherwise
  bool zero_point = false;  // int4 only

  bool compact() const { return dtype != WeightDtype::F32; }
  // "int4-g32", "int4-g64-zp", "int8", ... (files store this name: parse_weight_format reads it back)
  std::string name() const;
  bool operator==(const WeightFormat &o) const {
    return dtype == o.dtype && group == o.group && zero_point == o.zero_point;
  }
  bool operator!=(const WeightFormat &o) const { return !(*this == o); }
};

// The format whose name() is `name` ("fp32", "bf16", "fp16", "int8", "int4-g32", "int4-g64-zp", "fp8_e4m3",
// "mxfp4", ...; int4 always with its group); false for any other text.
bool parse_weight_format(const std::string &name, WeightFormat &out);

// Bytes owned by a matrix, or a view of bytes someone else keeps alive (a mapped file): `owner` holds them.
class ByteBuffer {
 public:
  ByteBuffer() = default;
  explicit ByteBuffer(size_t size) : owned_(size, 0) {}
  ByteBuffer(std::shared_ptr<const void> owner, const uint8_t *data, size_t size)
      : owner_(std::move(owner)), view_(data), view_size_(size) {}

  const uint8_t *data() const { return owner_ ? view_ : owned_.data(); }
  uint8_t *mutable_data();  // owned buffers only (pimoe::Error otherwise)
  size_t size() const { return owner_ ? view_size_ : owned_.size(); }
  // Heap bytes this buffer owns (a view owns none).
  size_t owned_bytes() const { return owned_.capacity(); }
  bool empty() const { return size() == 0; }
  // A view of someone else's bytes (the owner form).
  bool is_view() const { return owner_ != nullptr; }
  // Turns a view into an owned copy of its bytes, releasing the owner (a no-op for an owned buffer).
  void detach();

 private:
  std::vector<uint8_t> owned_;
  std::shared_ptr<const void> owner_;
  const uint8_t *view_ = nullptr;
  size_t view_size_ = 0;
};

struct CompactMatrix {
  WeightFormat format;
  int64_t rows = 0, cols = 0;
  ByteBuffer values, scales, zeros;  // zeros: int4 with a zero point only

  // Sizes in bytes of the three buffers for this shape and format (what a file's tensors must hold).
  static size_t values_bytes(const WeightFormat &f, int64_t rows, int64_t cols);
  static size_t scales_bytes(const WeightFormat &f, int64_t rows, int64_t cols);
  static size_t zeros_bytes(const WeightFormat &f, int64_t rows, int64_t cols);
  // The scales tensor's shape in a file ([rows], [rows, groups], [row blocks, col blocks]); empty for none.
  static std::vector<int64_t> scales_shape(const WeightFormat &f, int64_t rows, int64_t cols);

  size_t row_bytes() const;
  size_t bytes() const { return values.size() + scales.size() + zeros.size(); }
  size_t owned_bytes() const { return values.owned_bytes() + scales.owned_bytes() + zeros.owned_bytes(); }
  bool empty() const { return rows == 0; }

  // Rows [r0, r1) dequantised into out [(r1 - r0), cols].
  void dequantize_rows(int64_t r0, int64_t r1, float *out) const;
  // Throws PIMOE_ERR_FORMAT naming `what` when a code is one no quantiser writes (an fp8 NaN, a NaN or Inf scale,
  // an e8m0 scale 0xff, an int8 -128, a zero point past 15, a bf16/fp16 NaN or Inf, a 4-bit row's padding past
  // `cols` other than the code of zero) or when an element's dequantised value is not finite (a huge scale times a
  // large code): what a file must be checked for before its bytes are used. The buffers must have the sizes the
  // shape and format give (values_bytes, scales_bytes, zeros_bytes).
  void check_codes(const std::string &what) const;
};

// W [rows, cols] quantised by the documented rule (round to nearest, deterministic). Throws PIMOE_ERR_INVALID_ARGUMENT
// for a non-finite weight. f.compact() must hold.
CompactMatrix quantize_matrix(const float *w, int64_t rows, int64_t cols, const WeightFormat &f);

// The element codes' values, exposed for the kernels and the tests.
float e4m3_to_float(uint8_t b);
uint8_t float_to_e4m3(float f);   // round to nearest even, saturating at +-448
float e2m1_to_float(uint8_t u);   // u in [0, 16)
uint8_t float_to_e2m1(float f);   // round to nearest even, saturating at +-6

}  // namespace pimoe
