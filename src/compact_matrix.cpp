// SPDX-License-Identifier: MIT
#include "compact_matrix.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "dtype.h"
#include "error.h"

namespace pimoe {
namespace {

constexpr int64_t kBlock = 32;       // int4 / mxfp4 elements per 16-byte block
constexpr int64_t kFp8Block = 128;   // fp8_e4m3 scale blocks are 128 x 128
constexpr float kE4m3Max = 448.0f;

// One row per WeightDtype (Auto has none: it is resolved before a format is used).
constexpr WeightFormatInfo kFormats[] = {
    {WeightDtype::F32, 32, ScaleKind::None, "F32"},
    {WeightDtype::BF16, 16, ScaleKind::None, "BF16"},
    {WeightDtype::F16, 16, ScaleKind::None, "F16"},
    {WeightDtype::Int8, 8, ScaleKind::F32PerRow, "I8"},
    {WeightDtype::Int4, 4, ScaleKind::F16PerGroup, "U8"},
    {WeightDtype::Fp8E4M3, 8, ScaleKind::F32Per128Block, "F8_E4M3"},
    {WeightDtype::Mxfp4, 4, ScaleKind::E8M0Per32, "U8"},
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Elements per scale along a row (fp8's blocks also span 128 rows).
int64_t group_of(const WeightFormat &f, int64_t cols) {
  switch (format_info(f.dtype).scale) {
    case ScaleKind::F32PerRow: return std::max<int64_t>(cols, 1);
    case ScaleKind::F16PerGroup: return f.group;
    case ScaleKind::F32Per128Block: return kFp8Block;
    case ScaleKind::E8M0Per32: return kBlock;
    case ScaleKind::None: break;
  }
  return 0;
}

bool nibbles(WeightDtype d) { return d == WeightDtype::Int4 || d == WeightDtype::Mxfp4; }

float load_f32(const uint8_t *p) {
  float f;
  std::memcpy(&f, p, 4);
  return f;
}
uint16_t load_u16(const uint8_t *p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// The nibble of element c of a row of 16-byte blocks.
uint8_t nibble_at(const uint8_t *row, int64_t c) {
  const uint8_t b = row[(c / kBlock) * 16 + (c % kBlock) / 2];
  return (c & 1) ? static_cast<uint8_t>(b >> 4) : static_cast<uint8_t>(b & 0x0f);
}
void set_nibble(uint8_t *row, int64_t c, uint8_t u) {
  uint8_t &b = row[(c / kBlock) * 16 + (c % kBlock) / 2];
  b = (c & 1) ? static_cast<uint8_t>((b & 0x0f) | (u << 4)) : static_cast<uint8_t>((b & 0xf0) | u);
}

float round_even(float x) { return std::nearbyint(x); }  // the default rounding mode: to nearest, ties to even

void quantize_int8(const float *w, CompactMatrix &m) {
  uint8_t *values = m.values.mutable_data();
  uint8_t *scales = m.scales.mutable_data();
  for (int64_t r = 0; r < m.rows; ++r) {
    const float *row = w + r * m.cols;
    float amax = 0.0f;
    for (int64_t c = 0; c < m.cols; ++c) amax = std::max(amax, std::fabs(row[c]));
    const float s = amax / 127.0f;
    std::memcpy(scales + 4 * r, &s, 4);
    for (int64_t c = 0; c < m.cols; ++c) {
      const float q = s > 0.0f ? std::min(127.0f, std::max(-127.0f, round_even(row[c] / s))) : 0.0f;
      values[r * m.cols + c] = static_cast<uint8_t>(static_cast<int8_t>(q));
    }
  }
}

// fp16's largest finite value: scales saturate there rather than becoming infinite.
uint16_t scale_to_f16(float s) {
  const uint16_t h = float_to_fp16_bits(s);
  return (h & 0x7c00u) == 0x7c00u ? static_cast<uint16_t>(0x7bffu) : h;
}

void quantize_int4(const float *w, CompactMatrix &m) {
  const int64_t g = m.format.group, groups = ceil_div(m.cols, g), rb = static_cast<int64_t>(m.row_bytes());
  uint8_t *values = m.values.mutable_data();
  uint8_t *scales = m.scales.mutable_data();
  uint8_t *zeros = m.format.zero_point ? m.zeros.mutable_data() : nullptr;
  for (int64_t r = 0; r < m.rows; ++r) {
    const float *row = w + r * m.cols;
    uint8_t *out = values + r * rb;
    for (int64_t gi = 0; gi < groups; ++gi) {
      const int64_t c0 = gi * g, c1 = std::min(m.cols, c0 + g);
      float lo = 0.0f, hi = 0.0f;
      for (int64_t c = c0; c < c1; ++c) {
        lo = std::min(lo, row[c]);
        hi = std::max(hi, row[c]);
      }
      uint16_t h;
      int zero = 8;
      if (zeros) {
        h = scale_to_f16((hi - lo) / 15.0f);
        const float s = fp16_bits_to_float(h);
        zero = s > 0.0f ? static_cast<int>(std::min(15.0f, std::max(0.0f, round_even(-lo / s)))) : 0;
        zeros[r * groups + gi] = static_cast<uint8_t>(zero);
      } else {
        h = scale_to_f16(std::max(-lo, hi) / 7.0f);
      }
      std::memcpy(scales + 2 * (r * groups + gi), &h, 2);
      const float s = fp16_bits_to_float(h);
      const float qmin = zeros ? 0.0f : -8.0f, qmax = zeros ? 15.0f : 7.0f;
      // Every element of the group's blocks, the padding past cols included (the code of zero).
      const int64_t end = std::min(ceil_div(m.cols, kBlock) * kBlock, c0 + g);
      for (int64_t c = c0; c < end; ++c) {
        const float offset = zeros ? static_cast<float>(zero) : 0.0f;
        float q = offset;
        if (c < m.cols && s > 0.0f) q = std::min(qmax, std::max(qmin, round_even(row[c] / s) + offset));
        const int u = zeros ? static_cast<int>(q) : static_cast<int>(q) + 8;
        set_nibble(out, c, static_cast<uint8_t>(u));
      }
    }
  }
}

void quantize_fp8(const float *w, CompactMatrix &m) {
  const int64_t rblocks = ceil_div(m.rows, kFp8Block), cblocks = ceil_div(m.cols, kFp8Block);
  uint8_t *values = m.values.mutable_data();
  uint8_t *scales = m.scales.mutable_data();
  for (int64_t br = 0; br < rblocks; ++br) {
    for (int64_t bc = 0; bc < cblocks; ++bc) {
      const int64_t r0 = br * kFp8Block, r1 = std::min(m.rows, r0 + kFp8Block);
      const int64_t c0 = bc * kFp8Block, c1 = std::min(m.cols, c0 + kFp8Block);
      float amax = 0.0f;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(w[r * m.cols + c]));
      }
      const float s = amax > 0.0f ? amax / kE4m3Max : 1.0f;
      std::memcpy(scales + 4 * (br * cblocks + bc), &s, 4);
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) values[r * m.cols + c] = float_to_e4m3(w[r * m.cols + c] / s);
      }
    }
  }
}

void quantize_mxfp4(const float *w, CompactMatrix &m) {
  const int64_t blocks = ceil_div(m.cols, kBlock), rb = static_cast<int64_t>(m.row_bytes());
  uint8_t *values = m.values.mutable_data();
  uint8_t *scales = m.scales.mutable_data();
  for (int64_t r = 0; r < m.rows; ++r) {
    const float *row = w + r * m.cols;
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * kBlock, c1 = std::min(m.cols, c0 + kBlock);
      float amax = 0.0f;
      for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(row[c]));
      // OCP MX: the shared exponent is floor(log2(amax)) minus E2M1's largest exponent (2).
      int x = 0;
      if (amax > 0.0f) {
        int e2;
        std::frexp(amax, &e2);  // amax = f * 2^e2, f in [0.5, 1): floor(log2(amax)) = e2 - 1
        x = std::min(127, std::max(-127, e2 - 1 - 2));
      }
      scales[r * blocks + b] = static_cast<uint8_t>(x + 127);
      for (int64_t c = c0; c < c1; ++c) set_nibble(values + r * rb, c, float_to_e2m1(std::ldexp(row[c], -x)));
    }
  }
}

}  // namespace

const WeightFormatInfo &format_info(WeightDtype dtype) {
  for (const WeightFormatInfo &f : kFormats) {
    if (f.dtype == dtype) return f;
  }
  fail(PIMOE_ERR_INTERNAL, "format_info: weight_dtype '", enum_name(dtype), "' is not a storage format");
}

std::string WeightFormat::name() const {
  std::string n = enum_name(dtype);
  if (dtype == WeightDtype::Int4) n += "-g" + std::to_string(group) + (zero_point ? "-zp" : "");
  return n;
}

bool parse_weight_format(const std::string &name, WeightFormat &out) {
  for (const EnumName<WeightDtype> &item : EnumNames<WeightDtype>::list) {
    if (item.value == WeightDtype::Auto) continue;
    WeightFormat f;
    f.dtype = item.value;
    for (int64_t group : {32, 64, 128}) {
      for (bool zero_point : {false, true}) {
        if (f.dtype == WeightDtype::Int4) {
          f.group = group;
          f.zero_point = zero_point;
        }
        if (f.name() == name) {
          out = f;
          return true;
        }
      }
    }
  }
  return false;
}

uint8_t *ByteBuffer::mutable_data() {
  if (owner_) fail(PIMOE_ERR_INTERNAL, "a mapped weight buffer is read-only");
  return owned_.data();
}

void ByteBuffer::detach() {
  if (!owner_) return;
  owned_.assign(view_, view_ + view_size_);
  owner_.reset();
  view_ = nullptr;
  view_size_ = 0;
}

size_t CompactMatrix::values_bytes(const WeightFormat &f, int64_t rows, int64_t cols) {
  if (nibbles(f.dtype)) return static_cast<size_t>(rows * ceil_div(cols, kBlock) * 16);
  return static_cast<size_t>(rows * cols) * static_cast<size_t>(format_info(f.dtype).bits / 8);
}

std::vector<int64_t> CompactMatrix::scales_shape(const WeightFormat &f, int64_t rows, int64_t cols) {
  switch (format_info(f.dtype).scale) {
    case ScaleKind::None: return {};
    case ScaleKind::F32PerRow: return {rows};
    case ScaleKind::F16PerGroup: return {rows, ceil_div(cols, f.group)};
    case ScaleKind::F32Per128Block: return {ceil_div(rows, kFp8Block), ceil_div(cols, kFp8Block)};
    case ScaleKind::E8M0Per32: return {rows, ceil_div(cols, kBlock)};
  }
  return {};
}

size_t CompactMatrix::scales_bytes(const WeightFormat &f, int64_t rows, int64_t cols) {
  const std::vector<int64_t> shape = scales_shape(f, rows, cols);
  if (shape.empty()) return 0;
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  switch (format_info(f.dtype).scale) {
    case ScaleKind::F16PerGroup: return 2 * n;
    case ScaleKind::E8M0Per32: return n;
    default: return 4 * n;
  }
}

size_t CompactMatrix::zeros_bytes(const WeightFormat &f, int64_t rows, int64_t cols) {
  return f.dtype == WeightDtype::Int4 && f.zero_point ? static_cast<size_t>(rows * ceil_div(cols, f.group)) : 0;
}

size_t CompactMatrix::row_bytes() const { return rows > 0 ? values_bytes(format, 1, cols) : 0; }

void CompactMatrix::dequantize_rows(int64_t r0, int64_t r1, float *out) const {
  const uint8_t *v = values.data(), *s = scales.data(), *z = zeros.data();
  const int64_t rb = static_cast<int64_t>(row_bytes()), g = group_of(format, cols);
  const int64_t groups = g > 0 ? ceil_div(cols, g) : 0;
  for (int64_t r = r0; r < r1; ++r) {
    float *o = out + (r - r0) * cols;
    const uint8_t *row = v + r * rb;
    for (int64_t c = 0; c < cols; ++c) {
      float x = 0.0f;
      switch (format.dtype) {
        case WeightDtype::F32: x = load_f32(row + 4 * c); break;
        case WeightDtype::BF16: x = bf16_bits_to_float(load_u16(row + 2 * c)); break;
        case WeightDtype::F16: x = fp16_bits_to_float(load_u16(row + 2 * c)); break;
        case WeightDtype::Int8: x = static_cast<float>(static_cast<int8_t>(row[c])) * load_f32(s + 4 * r); break;
        case WeightDtype::Int4: {
          const int64_t gi = r * groups + c / g;
          const int zero = z ? z[gi] : 8;
          x = static_cast<float>(static_cast<int>(nibble_at(row, c)) - zero) * fp16_bits_to_float(load_u16(s + 2 * gi));
          break;
        }
        case WeightDtype::Fp8E4M3:
          x = e4m3_to_float(row[c]) * load_f32(s + 4 * ((r / kFp8Block) * groups + c / kFp8Block));
          break;
        case WeightDtype::Mxfp4:
          x = e2m1_to_float(nibble_at(row, c)) * std::ldexp(1.0f, static_cast<int>(s[r * groups + c / kBlock]) - 127);
          break;
        case WeightDtype::Auto: break;
      }
      o[c] = x;
    }
  }
}

void CompactMatrix::check_codes(const std::string &what) const {
  const uint8_t *v = values.data(), *s = scales.data(), *z = zeros.data();
  if (values.size() != values_bytes(format, rows, cols) || scales.size() != scales_bytes(format, rows, cols) ||
      zeros.size() != zeros_bytes(format, rows, cols)) {
    fail(PIMOE_ERR_INTERNAL, what, ": buffer sizes do not match ", format.name(), " [", rows, ", ", cols, "]");
  }
  const size_t nv = values.size(), ns = scales.size();
  auto bad_scale = [&](size_t i, float x) {
    fail(PIMOE_ERR_FORMAT, what, ": scale [", i, "] is ", std::isnan(x) ? "NaN" : "Inf");
  };
  // A finite scale times a finite code can still overflow fp32: such an element is rejected as a non-finite weight.
  auto overflows = [&](int64_t r, int64_t c, float code, float scale) {
    if (std::isfinite(code * scale)) return;
    char text[96];
    std::snprintf(text, sizeof text, "code value %g times scale %g", static_cast<double>(code),
                  static_cast<double>(scale));
    fail(PIMOE_ERR_FORMAT, what, ": element [", r, ", ", c, "] (", text, ") is not finite in fp32");
  };
  switch (format.dtype) {
    case WeightDtype::BF16:
    case WeightDtype::F16:
      for (size_t i = 0; i < nv / 2; ++i) {
        const uint16_t h = load_u16(v + 2 * i);
        const float x = format.dtype == WeightDtype::BF16 ? bf16_bits_to_float(h) : fp16_bits_to_float(h);
        if (!std::isfinite(x)) fail(PIMOE_ERR_FORMAT, what, ": value [", i, "] is ", std::isnan(x) ? "NaN" : "Inf");
      }
      return;
    case WeightDtype::Int8:
      for (size_t i = 0; i < nv; ++i) {
        if (v[i] == 0x80) fail(PIMOE_ERR_FORMAT, what, ": int8 value [", i, "] is -128 (int8 codes are -127..127)");
      }
      for (int64_t r = 0; r < rows; ++r) {
        const float x = load_f32(s + 4 * r);
        if (!std::isfinite(x)) bad_scale(static_cast<size_t>(r), x);
        if (std::isfinite(127.0f * x)) continue;  // no code of the row can overflow
        for (int64_t c = 0; c < cols; ++c) overflows(r, c, static_cast<int8_t>(v[r * cols + c]), x);
      }
      return;
    case WeightDtype::Fp8E4M3: {
      for (size_t i = 0; i < nv; ++i) {
        if ((v[i] & 0x7f) == 0x7f) fail(PIMOE_ERR_FORMAT, what, ": fp8 value [", i, "] is NaN");
      }
      const int64_t cblocks = ceil_div(cols, kFp8Block);
      for (size_t i = 0; i < ns / 4; ++i) {
        const float x = load_f32(s + 4 * i);
        if (!std::isfinite(x)) bad_scale(i, x);
        if (std::isfinite(kE4m3Max * x)) continue;
        const int64_t br = static_cast<int64_t>(i) / cblocks, bc = static_cast<int64_t>(i) % cblocks;
        for (int64_t r = br * kFp8Block; r < std::min(rows, (br + 1) * kFp8Block); ++r) {
          for (int64_t c = bc * kFp8Block; c < std::min(cols, (bc + 1) * kFp8Block); ++c) {
            overflows(r, c, e4m3_to_float(v[r * cols + c]), x);
          }
        }
      }
      return;
    }
    case WeightDtype::Int4:
    case WeightDtype::Mxfp4: {
      const bool int4 = format.dtype == WeightDtype::Int4;
      const int64_t g = group_of(format, cols), groups = ceil_div(cols, g), rb = static_cast<int64_t>(row_bytes());
      for (size_t i = 0; i < zeros.size(); ++i) {
        if (z[i] > 15) fail(PIMOE_ERR_FORMAT, what, ": zero point [", i, "] is ", int(z[i]), " (> 15)");
      }
      for (int64_t r = 0; r < rows; ++r) {
        const uint8_t *row = v + r * rb;
        for (int64_t gi = 0; gi < groups; ++gi) {
          const size_t i = static_cast<size_t>(r * groups + gi);
          float scale;
          if (int4) {
            scale = fp16_bits_to_float(load_u16(s + 2 * i));
            if (!std::isfinite(scale)) bad_scale(i, scale);
            continue;  // at most 15 times fp16's largest finite value: finite
          }
          if (s[i] == 0xff) fail(PIMOE_ERR_FORMAT, what, ": e8m0 scale [", i, "] is NaN (0xff)");
          scale = std::ldexp(1.0f, static_cast<int>(s[i]) - 127);
          if (std::isfinite(6.0f * scale)) continue;
          for (int64_t c = gi * g; c < std::min(cols, (gi + 1) * g); ++c) {
            overflows(r, c, e2m1_to_float(nibble_at(row, c)), scale);
          }
        }
        // Past cols, the last block holds the code of zero: 8 (symmetric int4), the group's zero point, or 0 (mxfp4).
        const int zero = !int4 ? 0 : z ? z[r * groups + groups - 1] : 8;
        for (int64_t c = cols; c < ceil_div(cols, kBlock) * kBlock; ++c) {
          if (nibble_at(row, c) != zero) {
            fail(PIMOE_ERR_FORMAT, what, ": row ", r, " padding element ", c, " (past the ", cols, " columns) is code ",
                 int(nibble_at(row, c)), ", not the code of zero (", zero, ")");
          }
        }
      }
      return;
    }
    case WeightDtype::F32:
    case WeightDtype::Auto: return;
  }
}

CompactMatrix quantize_matrix(const float *w, int64_t rows, int64_t cols, const WeightFormat &f) {
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(w[i])) {
      fail(PIMOE_ERR_INVALID_ARGUMENT, "weight [", i / cols, ", ", i % cols, "] is ", std::isnan(w[i]) ? "NaN" : "Inf",
           ": cannot quantise it to ", f.name());
    }
  }
  CompactMatrix m;
  m.format = f;
  m.rows = rows;
  m.cols = cols;
  m.values = ByteBuffer(CompactMatrix::values_bytes(f, rows, cols));
  m.scales = ByteBuffer(CompactMatrix::scales_bytes(f, rows, cols));
  m.zeros = ByteBuffer(CompactMatrix::zeros_bytes(f, rows, cols));
  uint8_t *v = m.values.mutable_data();
  switch (f.dtype) {
    case WeightDtype::F32: std::memcpy(v, w, m.values.size()); break;
    case WeightDtype::BF16:
    case WeightDtype::F16:
      for (int64_t i = 0; i < rows * cols; ++i) {
        const uint16_t h = f.dtype == WeightDtype::BF16 ? float_to_bf16_bits(w[i]) : float_to_fp16_bits(w[i]);
        std::memcpy(v + 2 * i, &h, 2);
      }
      break;
    case WeightDtype::Int8: quantize_int8(w, m); break;
    case WeightDtype::Int4: quantize_int4(w, m); break;
    case WeightDtype::Fp8E4M3: quantize_fp8(w, m); break;
    case WeightDtype::Mxfp4: quantize_mxfp4(w, m); break;
    case WeightDtype::Auto: fail(PIMOE_ERR_INTERNAL, "quantize_matrix: weight_dtype 'auto' was not resolved");
  }
  return m;
}

float e4m3_to_float(uint8_t b) {
  const int e = (b >> 3) & 15, m = b & 7;
  if (e == 15 && m == 7) return std::nanf("");
  const float mag = e == 0 ? std::ldexp(static_cast<float>(m), -9) : std::ldexp(1.0f + static_cast<float>(m) / 8.0f, e - 7);
  return (b & 0x80) ? -mag : mag;
}

uint8_t float_to_e4m3(float f) {
  const uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  const float a = std::fabs(f);
  uint8_t code;
  if (a >= kE4m3Max) {
    code = 0x7e;
  } else if (a < 0.015625f) {  // below 2^-6: subnormal, in units of 2^-9 (8 rounds up to the smallest normal)
    code = static_cast<uint8_t>(round_even(a * 512.0f));
  } else {
    int e2;
    const float frac = std::frexp(a, &e2);  // a = frac * 2^e2, frac in [0.5, 1)
    const int e = e2 - 1;                   // a = (2 frac) * 2^e, 2 frac in [1, 2)
    int m = static_cast<int>(round_even((2.0f * frac - 1.0f) * 8.0f));
    int be = e + 7;
    if (m == 8) {
      m = 0;
      ++be;
    }
    code = static_cast<uint8_t>(std::min(0x7e, (be << 3) | m));
  }
  return code == 0 ? 0 : static_cast<uint8_t>(sign | code);
}

float e2m1_to_float(uint8_t u) {
  static constexpr float kValues[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  const float mag = kValues[u & 7];
  return (u & 8) ? -mag : mag;
}

uint8_t float_to_e2m1(float f) {
  const float a = std::fabs(f);
  // Nearest of 0, 0.5, 1, 1.5, 2, 3, 4, 6; a tie goes to the even code.
  uint8_t code = a <= 0.25f ? 0 : a < 0.75f ? 1 : a <= 1.25f ? 2 : a < 1.75f ? 3 : a <= 2.5f ? 4 : a < 3.5f ? 5
               : a <= 5.0f ? 6 : 7;
  return code != 0 && std::signbit(f) ? static_cast<uint8_t>(code | 8) : code;
}

}  // namespace pimoe
