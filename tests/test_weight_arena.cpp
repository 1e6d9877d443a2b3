// SPDX-License-Identifier: MIT
// The CPU backend's weight arena (backends/cpu/weight_arena.h): slices aligned, disjoint and zero; a full arena hands
// out heap bytes instead; moves keep the bytes in place; the mapping starts on a 2 MiB boundary and, where the kernel
// offers transparent huge pages on request, is eligible for them.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "backends/cpu/weight_arena.h"

namespace pimoe::cpu {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;

bool all_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

TEST(WeightArena, SlicesAreAlignedDisjointAndZero) {
  const std::vector<size_t> sizes = {1, 63, 64, 65, 4096, 100000, 3};
  size_t total = 0;
  for (size_t s : sizes) total += WeightArena::slice_bytes(s);
  WeightArena arena(total);
  EXPECT_EQ(arena.size(), total);
  std::vector<PanelBytes> slices;
  const uint8_t *previous_end = nullptr;
  for (size_t s : sizes) {
    slices.emplace_back(s, &arena);
    const PanelBytes &b = slices.back();
    ASSERT_EQ(b.size(), s);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % WeightArena::kAlignment, 0u) << s;
    if (previous_end != nullptr) {
      EXPECT_GE(b.data(), previous_end) << s;
    }
    previous_end = b.data() + s;
    EXPECT_TRUE(all_zero(b.data(), s)) << s;
  }
  EXPECT_EQ(arena.used(), total);
  // Each slice is writable over its whole length without touching its neighbours.
  for (size_t i = 0; i < slices.size(); ++i) std::memset(slices[i].data(), static_cast<int>(i + 1), slices[i].size());
  for (size_t i = 0; i < slices.size(); ++i) {
    for (size_t j = 0; j < slices[i].size(); ++j) ASSERT_EQ(slices[i].data()[j], i + 1) << i << " " << j;
  }
}

TEST(WeightArena, AFullArenaFallsBackToTheHeap) {
  WeightArena arena(128);
  PanelBytes a(100, &arena);
  EXPECT_EQ(arena.used(), 128u);
  PanelBytes b(10, &arena);  // no room left
  ASSERT_NE(b.data(), nullptr);
  EXPECT_EQ(b.size(), 10u);
  EXPECT_TRUE(b.data() < a.data() || b.data() >= a.data() + 128);
  EXPECT_TRUE(all_zero(b.data(), 10));
  PanelBytes heap_only(77, nullptr);
  EXPECT_TRUE(all_zero(heap_only.data(), 77));
  WeightArena empty(0);
  PanelBytes c(5, &empty);
  EXPECT_TRUE(all_zero(c.data(), 5));
}

TEST(WeightArena, MovesKeepTheBytesInPlace) {
  WeightArena arena(256);
  for (WeightArena *from : {&arena, static_cast<WeightArena *>(nullptr)}) {
    PanelBytes a(200, from);
    a.data()[7] = 42;
    const uint8_t *where = a.data();
    PanelBytes b(std::move(a));
    EXPECT_EQ(b.data(), where);
    EXPECT_EQ(b.data()[7], 42);
    EXPECT_EQ(a.size(), 0u);
    PanelBytes c;
    c = std::move(b);
    EXPECT_EQ(c.data(), where);
    EXPECT_EQ(c.size(), 200u);
  }
}

// "[madvise]" or "[always]" in the kernel's setting: a region advised with MADV_HUGEPAGE may get huge pages.
bool huge_pages_on_request() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return s.find("[madvise]") != std::string::npos || s.find("[always]") != std::string::npos;
}

// The THPeligible field of the /proc/self/smaps entry holding address p (-1 when not found).
int thp_eligible(const void *p) {
  std::ifstream f("/proc/self/smaps");
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::string line;
  bool inside = false;
  while (std::getline(f, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      inside = a >= lo && a < hi;
      continue;
    }
    int v = 0;
    if (inside && std::sscanf(line.c_str(), "THPeligible: %d", &v) == 1) return v;
  }
  return -1;
}

TEST(WeightArena, StartsOnAHugePageAndIsAdvised) {
  WeightArena arena(3 * kHugePage + 12345);
  PanelBytes first(kHugePage, &arena);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(first.data()) % kHugePage, 0u);
  if (!huge_pages_on_request()) GTEST_SKIP() << "this kernel offers no transparent huge pages on request";
  const int eligible = thp_eligible(first.data());
  if (eligible < 0) GTEST_SKIP() << "this kernel's smaps has no THPeligible field";
  EXPECT_EQ(eligible, 1);
}

}  // namespace
}  // namespace pimoe::cpu
