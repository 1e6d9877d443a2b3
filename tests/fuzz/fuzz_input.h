// SPDX-License-Identifier: MIT
// A fuzz input read as a stream of small decisions, for the targets that drive the C API (fuzz_api_sequence,
// fuzz_options). It plays the part of libFuzzer's FuzzedDataProvider, written out here so that the targets also build
// with g++ (the corpus replay of the normal build, fuzz_replay_main.cpp) and so that a committed corpus keeps its
// meaning whatever clang version fuzzes it. Reading past the end gives zeros: every input is a complete program.
// Read one value a statement: the order in which a call's arguments are evaluated is unspecified (clang goes left to
// right, g++ right to left), and an input must mean the same program in the fuzz build and in the replay.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace pimoe_fuzz {

class FuzzInput {
 public:
  FuzzInput(const uint8_t *data, size_t size) : data_(data), size_(size) {}

  size_t remaining() const { return size_ - pos_; }
  bool empty() const { return pos_ == size_; }

  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  bool flag() { return (byte() & 1) != 0; }

  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(byte()) << (8 * i);
    return v;
  }

  // An integer in [lo, hi] (inclusive, lo <= hi) from as few bytes as the span needs.
  int64_t in_range(int64_t lo, int64_t hi) {
    const uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
    uint64_t raw = 0;
    for (uint64_t left = span; left > 0; left >>= 8) raw = (raw << 8) | byte();
    return static_cast<int64_t>(static_cast<uint64_t>(lo) + (span == UINT64_MAX ? raw : raw % (span + 1)));
  }

  // One of the n entries of a table.
  template <typename T, size_t N>
  const T &pick(const T (&table)[N]) {
    return table[in_range(0, static_cast<int64_t>(N) - 1)];
  }

  // Any float bit pattern (NaN and Inf included), for buffers whose values the library must check.
  float any_float() {
    const uint32_t bits = u32();
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }

  // Text up to (not including) `end` or the end of the input, at most max_len bytes.
  std::string text(char end, size_t max_len) {
    std::string out;
    while (pos_ < size_ && out.size() < max_len) {
      const char c = static_cast<char>(data_[pos_++]);
      if (c == end) break;
      out.push_back(c);
    }
    return out;
  }

 private:
  const uint8_t *data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace pimoe_fuzz
