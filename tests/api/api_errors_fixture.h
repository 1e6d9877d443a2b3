/* SPDX-License-Identifier: MIT */
// The shared part of test_api_errors' files: the failure matcher, a sentinel model pointer and the ModelErrors
// fixture (a small model whose statistics and output every test must leave as they were).
#pragma once

#include <gtest/gtest.h>
#include <pimoe/pimoe.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "api_test_util.h"

namespace pimoe_test {

// Checks that `got` is one of `allowed`, that pimoe_last_error() is non-empty and contains every needle
// (needles starting with '~' are matched case-insensitively).
inline ::testing::AssertionResult failed_with(pimoe_status got, std::initializer_list<pimoe_status> allowed,
                                       std::initializer_list<const char *> needles) {
  const std::string msg = last_error();
  bool ok_code = false;
  std::string want;
  for (pimoe_status a : allowed) {
    ok_code = ok_code || got == a;
    want += std::string(want.empty() ? "" : " or ") + pimoe_status_string(a);
  }
  if (!ok_code)
    return ::testing::AssertionFailure() << "status " << static_cast<int>(got) << " (" << pimoe_status_string(got)
                                         << "), wanted " << want << "; message: \"" << msg << "\"";
  if (msg.empty()) return ::testing::AssertionFailure() << "pimoe_last_error() is empty after a failure";
  for (const char *n : needles) {
    std::string needle(n);
    bool found = needle[0] == '~' ? contains(lower(msg), lower(needle.substr(1))) : contains(msg, needle);
    if (!found)
      return ::testing::AssertionFailure() << "message \"" << msg << "\" does not mention \"" << needle << "\"";
  }
  return ::testing::AssertionSuccess();
}

inline pimoe_model *sentinel_model() {
  static char dummy;
  return reinterpret_cast<pimoe_model *>(&dummy);
}

constexpr int64_t kH = 16, kE = 8, kK = 2, kT = 4;

// A small model plus the result of one reference forward; TearDown checks that nothing a test did changed it.
class ModelErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = small_model();
    ASSERT_NE(model_, nullptr);
    input_ = random_input(kT * kH, 1);
    ref_ = forward(model_.get(), input_, 1, kT, kH, kK, true);
    ASSERT_EQ(ref_.status, PIMOE_OK) << last_error();
    calls_ = 1;
    before_ = get_stats(model_.get());
  }
  void TearDown() override {
    if (!model_) return;
    // Statistics: failures must not have counted.
    pimoe_stats_snapshot s = get_stats(model_.get());
    EXPECT_EQ(s.forward_calls, before_.forward_calls) << "a failed call changed forward_calls";
    EXPECT_EQ(s.tokens, before_.tokens) << "a failed call changed tokens";
    std::vector<uint64_t> loads(kE, 0);
    EXPECT_EQ(pimoe_stats_expert_loads(model_.get(), loads.data(), loads.size()), PIMOE_OK) << last_error();
    uint64_t total = 0;
    for (uint64_t l : loads) total += l;
    EXPECT_EQ(total, static_cast<uint64_t>(kT * kK * calls_));
    // The model still works and gives the same bits as before.
    ForwardResult again = forward(model_.get(), input_, 1, kT, kH, kK, true);
    ASSERT_EQ(again.status, PIMOE_OK) << last_error();
    EXPECT_TRUE(bitwise_equal(again.output, ref_.output)) << "output changed after failed calls";
    EXPECT_EQ(again.ids, ref_.ids);
    EXPECT_TRUE(bitwise_equal(again.weights, ref_.weights));
  }

  pimoe_status fwd(const float *in, size_t in_count, int64_t batch, int64_t seq, float *out, size_t out_count,
                   int32_t *ids, float *w, size_t r_count) {
    return pimoe_forward(model_.get(), in, in_count, batch, seq, out, out_count, ids, w, r_count);
  }

  ModelPtr model_;
  std::vector<float> input_;
  ForwardResult ref_;
  int64_t calls_ = 0;
  pimoe_stats_snapshot before_{};
};

}  // namespace pimoe_test