// SPDX-License-Identifier: MIT
#include "oracle_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "half_type.h"

namespace pimoe_oracle {
namespace {

// The nearest of `values` (code order, non-negative, ascending) to |x|, ties to the even code, with x's sign.
float NearestCode(float x, const std::vector<float> &values) {
  const double a = std::fabs(static_cast<double>(x));
  size_t best = 0;
  for (size_t i = 1; i < values.size(); ++i) {
    const double d = std::fabs(values[i] - a), db = std::fabs(values[best] - a);
    if (d < db || (d == db && i % 2 == 0)) best = i;
  }
  return std::signbit(x) ? -values[best] : values[best];
}

// Every non-negative finite e4m3fn value, in code order (codes 0x00 .. 0x7e).
std::vector<float> E4m3Values() {
  std::vector<float> v;
  for (int code = 0; code <= 0x7e; ++code) {
    const int e = code >> 3, m = code & 7;
    v.push_back(e == 0 ? static_cast<float>(std::ldexp(m / 8.0, -6)) : static_cast<float>(std::ldexp(1.0 + m / 8.0, e - 7)));
  }
  return v;
}

float ToBf16(float f) {  // round to nearest even on the 16 dropped bits
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t lower = u & 0xffffu, keep = u >> 16;
  uint32_t r = keep;
  if (lower > 0x8000u || (lower == 0x8000u && (keep & 1u))) ++r;
  r <<= 16;
  float out;
  std::memcpy(&out, &r, 4);
  return out;
}

float ToF16(float f) { return static_cast<float>(static_cast<pimoe_test::Half>(f)); }  // the compiler's RNE conversion

float Clamp(float x, float lo, float hi) { return std::min(hi, std::max(lo, x)); }

}  // namespace

std::vector<float> StoredValues(const std::vector<float> &w, int64_t rows, int64_t cols, const StorageFormat &f) {
  std::vector<float> out(w.size());
  auto at = [&](int64_t r, int64_t c) { return w[static_cast<size_t>(r * cols + c)]; };
  auto put = [&](int64_t r, int64_t c, float v) { out[static_cast<size_t>(r * cols + c)] = v; };
  if (f.dtype == "fp32") return w;
  if (f.dtype == "bf16" || f.dtype == "fp16") {
    for (size_t i = 0; i < w.size(); ++i) out[i] = f.dtype == "bf16" ? ToBf16(w[i]) : ToF16(w[i]);
    return out;
  }
  if (f.dtype == "int8") {
    for (int64_t r = 0; r < rows; ++r) {
      float amax = 0.0f;
      for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(at(r, c)));
      const float s = amax / 127.0f;
      for (int64_t c = 0; c < cols; ++c) put(r, c, s > 0.0f ? Clamp(std::nearbyint(at(r, c) / s), -127, 127) * s : 0.0f);
    }
    return out;
  }
  if (f.dtype == "int4") {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c0 = 0; c0 < cols; c0 += f.group) {
        const int64_t c1 = std::min(cols, c0 + f.group);
        float lo = 0.0f, hi = 0.0f;
        for (int64_t c = c0; c < c1; ++c) {
          lo = std::min(lo, at(r, c));
          hi = std::max(hi, at(r, c));
        }
        const float s = std::min(65504.0f, ToF16(f.zero_point ? (hi - lo) / 15.0f : std::max(-lo, hi) / 7.0f));
        float z = 0.0f;
        if (f.zero_point && s > 0.0f) z = Clamp(std::nearbyint(-lo / s), 0, 15);
        for (int64_t c = c0; c < c1; ++c) {
          if (s == 0.0f) {
            put(r, c, 0.0f);
          } else if (f.zero_point) {
            put(r, c, (Clamp(std::nearbyint(at(r, c) / s) + z, 0, 15) - z) * s);
          } else {
            put(r, c, Clamp(std::nearbyint(at(r, c) / s), -8, 7) * s);
          }
        }
      }
    }
    return out;
  }
  if (f.dtype == "fp8_e4m3") {
    static const std::vector<float> values = E4m3Values();
    for (int64_t r0 = 0; r0 < rows; r0 += 128) {
      for (int64_t c0 = 0; c0 < cols; c0 += 128) {
        const int64_t r1 = std::min(rows, r0 + 128), c1 = std::min(cols, c0 + 128);
        float amax = 0.0f;
        for (int64_t r = r0; r < r1; ++r) {
          for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(at(r, c)));
        }
        const float s = amax > 0.0f ? amax / 448.0f : 1.0f;
        for (int64_t r = r0; r < r1; ++r) {
          for (int64_t c = c0; c < c1; ++c) put(r, c, NearestCode(at(r, c) / s, values) * s);
        }
      }
    }
    return out;
  }
  if (f.dtype == "mxfp4") {
    static const std::vector<float> values = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c0 = 0; c0 < cols; c0 += 32) {
        const int64_t c1 = std::min(cols, c0 + 32);
        float amax = 0.0f;
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(at(r, c)));
        const int x = amax > 0.0f ? static_cast<int>(std::floor(std::log2(static_cast<double>(amax)))) - 2 : 0;
        const float scale = static_cast<float>(std::ldexp(1.0, x));
        for (int64_t c = c0; c < c1; ++c) put(r, c, NearestCode(static_cast<float>(at(r, c) / static_cast<double>(scale)), values) * scale);
      }
    }
    return out;
  }
  throw std::invalid_argument("StoredValues: unknown weight_dtype " + f.dtype);
}

}  // namespace pimoe_oracle
