/* SPDX-License-Identifier: MIT */
// SplitMix64 (Steele, Lea and Flood): the library's one pseudo-random generator, fully specified, so a seed gives the
// same numbers on every platform (the seeded weights, pruning's random baseline).
#pragma once

#include <cstdint>

namespace pimoe {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // 24 random bits: exactly representable in a float, so every platform gets the same values.
  float uniform01() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }

 private:
  uint64_t state_;
};

}  // namespace pimoe
