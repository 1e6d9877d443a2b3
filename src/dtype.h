/* SPDX-License-Identifier: MIT */
// fp32 <-> bf16 / fp16 conversions (round to nearest even), shared by the compact formats (compact_matrix.cpp) and
// by the GPU backends that store weights in those types.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>


namespace pimoe {

inline uint16_t float_to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // NaN stays a quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_bits_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t float_to_fp16_bits(float f);
float fp16_bits_to_float(uint16_t h);

}  // namespace pimoe
