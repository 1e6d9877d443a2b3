// SPDX-License-Identifier: MIT
// Resident memory of a compact layer after it is made: shape S (hidden 512, 8 experts of 2048, GELU) must hold at
// most 10 MiB at int4 with groups of 32 and 17 MiB at int8 (its fp32 weights are 64 MiB), measured as the growth of
// the process's resident set across pimoe_create (/proc/self/statm), not only by the statistics. The growth includes
// the layer's non-weight state (its thread pool, about 0.2 MB). Each case runs in its own process
// (tests/api.cmake registers one ctest per case), so no earlier allocation's freed pages hide the growth.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "pimoe/pimoe.h"

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;  // shadow memory and quarantines make the resident set meaningless
#else
constexpr bool kSanitized = false;
#endif

long ResidentBytes() {
  FILE *f = std::fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (!f) return -1;
  if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
  std::fclose(f);
  return resident * 4096;
}

struct Case {
  const char *dtype;
  long most_bytes;
};

class CompactMemory : public ::testing::TestWithParam<Case> {};

TEST_P(CompactMemory, ShapeS) {
  if (kSanitized) GTEST_SKIP() << "resident memory is not measurable under a sanitizer (the Release run checks it)";
  const Case c = GetParam();
  pimoe_options *o = nullptr;
  ASSERT_EQ(pimoe_options_create(&o), PIMOE_OK);
  std::unique_ptr<pimoe_options, void (*)(pimoe_options *)> opts(o, pimoe_options_destroy);
  ASSERT_EQ(pimoe_options_set_string(o, PIMOE_OPT_WEIGHT_DTYPE, c.dtype), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cpu"), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_int(o, PIMOE_OPT_THREADS, 2), PIMOE_OK);
  // A tiny layer first pays the process's one-time costs (the library's first allocations, the first thread pool's
  // arenas), so that the growth measured next is the S layer's own.
  pimoe_model *tiny = nullptr;
  {
    pimoe_options *t = nullptr;
    ASSERT_EQ(pimoe_options_create(&t), PIMOE_OK);
    ASSERT_EQ(pimoe_options_set_int(t, PIMOE_OPT_HIDDEN, 16), PIMOE_OK);
    ASSERT_EQ(pimoe_options_set_int(t, PIMOE_OPT_INTERMEDIATE, 16), PIMOE_OK);
    ASSERT_EQ(pimoe_options_set_string(t, PIMOE_OPT_WEIGHT_DTYPE, c.dtype), PIMOE_OK);
    ASSERT_EQ(pimoe_options_set_string(t, PIMOE_OPT_BACKEND, "cpu"), PIMOE_OK);
    ASSERT_EQ(pimoe_options_set_int(t, PIMOE_OPT_THREADS, 2), PIMOE_OK);
    ASSERT_EQ(pimoe_create(t, &tiny), PIMOE_OK) << pimoe_last_error();
    pimoe_options_destroy(t);
  }
  const long before = ResidentBytes();
  ASSERT_GT(before, 0);
  pimoe_model *m = nullptr;
  ASSERT_EQ(pimoe_create(o, &m), PIMOE_OK) << pimoe_last_error();
  const long grown = ResidentBytes() - before;
  pimoe_stats_snapshot s{};
  s.struct_size = sizeof s;
  ASSERT_EQ(pimoe_stats(m, &s), PIMOE_OK);
  std::printf("%s: resident +%ld bytes, weight_bytes %llu\n", c.dtype, grown,
              static_cast<unsigned long long>(s.weight_bytes));
  EXPECT_LE(grown, c.most_bytes) << c.dtype;
  EXPECT_LE(static_cast<long>(s.weight_bytes), c.most_bytes) << c.dtype;
  // The weights are there: the resident set grew by at least the weights the statistics report, less 5 %.
  EXPECT_GE(grown, static_cast<long>(s.weight_bytes) / 20 * 19) << c.dtype;
  pimoe_destroy(m);
  pimoe_destroy(tiny);
}

INSTANTIATE_TEST_SUITE_P(Formats, CompactMemory,
                         ::testing::Values(Case{"int4", 10L << 20}, Case{"int8", 17L << 20}, Case{"fp32", 65L << 20}),
                         [](const ::testing::TestParamInfo<Case> &p) { return std::string(p.param.dtype); });

}  // namespace
