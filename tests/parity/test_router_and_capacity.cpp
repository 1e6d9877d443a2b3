// SPDX-License-Identifier: MIT
// test_parity: the softmax router (temperature and renormalisation, top k from 1 to E, exact ties) and capacity
// (factors, drops, admission order, capacity per call). See parity.h.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "parity.h"

namespace {

using namespace pimoe_parity;

// ================================================================================================ router

class TemperatureAndRenormalisation : public ::testing::TestWithParam<std::tuple<double, bool>> {};

TEST_P(TemperatureAndRenormalisation, Case) {
  const double tau = std::get<0>(GetParam());
  const bool renorm = std::get<1>(GetParam());
  Layer l;
  l.experts = 6;
  l.top_k = 2;
  l.temperature = tau;
  l.renormalize = renorm;
  l.seed = 11;
  CheckLayer(l, 3, 7, 100);
  l.top_k = 3;
  l.hidden = 13;
  l.intermediate = 29;
  CheckLayer(l, 4, 16, 101);
}

INSTANTIATE_TEST_SUITE_P(ParityRouter, TemperatureAndRenormalisation,
                         ::testing::Combine(::testing::Values(0.5, 1.0, 2.5), ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<double, bool>> &p) {
                           std::ostringstream s;
                           s << "tau" << std::get<0>(p.param) << (std::get<1>(p.param) ? "_renorm" : "_plain");
                           return ParamName(s.str());
                         });

class TopKFromOneToAllExperts : public ::testing::TestWithParam<std::tuple<int32_t, bool>> {};

TEST_P(TopKFromOneToAllExperts, Case) {
  const int32_t k = std::get<0>(GetParam());
  const bool renorm = std::get<1>(GetParam());
  Layer l;
  l.experts = 6;
  l.top_k = k;
  l.renormalize = renorm;
  l.temperature = k % 2 ? 0.5 : 1.0;
  l.seed = 20 + k;
  CheckLayer(l, 3, 7, 200 + static_cast<uint64_t>(k));
}

INSTANTIATE_TEST_SUITE_P(ParityRouter, TopKFromOneToAllExperts,
                         ::testing::Combine(::testing::Range(1, 7), ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<int32_t, bool>> &p) {
                           return "k" + std::to_string(std::get<0>(p.param)) +
                                  (std::get<1>(p.param) ? "_renorm" : "_plain");
                         });

TEST(ParityRouter, SingleExpert) {
  Layer single;  // E = k = 1: everything goes to the one expert with weight 1 (or p = 1 without renormalisation)
  single.experts = 1;
  single.top_k = 1;
  single.renormalize = false;
  CheckLayer(single, 2, 5, 299);
}

TEST(ParityRouter, ExactTiesGoToTheLowerIndex) {
  // A zero input gives all-zero logits: every probability is exactly 1/E, so the top k must be experts 0 .. k-1.
  for (bool renorm : {false, true}) {
    Layer l;
    l.experts = 5;
    l.top_k = 3;
    l.renormalize = renorm;
    l.expert_bias = true;  // so that the zero token has a non-zero output
    l.pre_norm = true;
    SCOPED_TRACE(l.Describe());
    ModelPtr model;
    po::Weights w;
    ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
    const int64_t tokens = 6;
    std::vector<float> x = RandomInput(static_cast<size_t>(tokens * l.hidden), 300);
    for (int64_t t : {0, 3, 5}) std::fill_n(x.begin() + t * l.hidden, l.hidden, 0.0f);
    LibOutput lib;
    ASSERT_NO_FATAL_FAILURE(LibForward(model.get(), x, 1, tokens, l.hidden, l.top_k, &lib));
    const po::Result r = po::Forward(w, l.Hyper(), x.data(), tokens);
    for (int64_t t : {0, 3, 5}) {
      for (int32_t j = 0; j < l.top_k; ++j) {
        const size_t i = static_cast<size_t>(t * l.top_k + j);
        EXPECT_EQ(r.ids[i], j);
        EXPECT_EQ(lib.ids[i], j) << "token " << t << " slot " << j << ": ties must go to the lower expert index";
        const double expect_w = renorm ? 1.0 / l.top_k : 1.0 / l.experts;
        EXPECT_NEAR(lib.weights[i], expect_w, 1e-6);
      }
    }
    // Output of the tied tokens: within 1e-5 of their RMS.
    double sum_sq = 0.0;
    for (int64_t t : {0, 3, 5}) {
      for (int64_t h = 0; h < l.hidden; ++h) sum_sq += std::pow(r.output[static_cast<size_t>(t * l.hidden + h)], 2);
    }
    const double tol = kOutputTol * std::sqrt(sum_sq / static_cast<double>(3 * l.hidden));
    ASSERT_GT(tol, 0.0);
    for (int64_t t : {0, 3, 5}) {
      for (int64_t h = 0; h < l.hidden; ++h) {
        const size_t i = static_cast<size_t>(t * l.hidden + h);
        EXPECT_NEAR(lib.output[i], r.output[i], tol) << "token " << t << " h " << h;
      }
    }
  }
}

// ================================================================================================ capacity

// The admission order a naive implementation might use (token-major): which (token, slot) pairs it would drop.
std::vector<uint8_t> TokenMajorDrops(const po::Result &r, int32_t num_experts) {
  std::vector<uint8_t> dropped(r.ids.size(), 0);
  std::vector<int64_t> load(static_cast<size_t>(num_experts), 0);
  for (size_t i = 0; i < r.ids.size(); ++i) {
    int64_t &l = load[static_cast<size_t>(r.ids[i])];
    if (l >= r.capacity) {
      dropped[i] = 1;
    } else {
      ++l;
    }
  }
  return dropped;
}

TEST(ParityCapacity, FactorsDropsAndAdmissionOrder) {
  struct Case {
    int32_t experts, top_k;
    double cf;
    int64_t batch, seq;
  };
  const Case cases[] = {
      {4, 1, 0.0, 4, 16},  {4, 1, 0.5, 4, 16}, {4, 1, 1.0, 4, 16}, {4, 1, 1.25, 4, 16}, {6, 2, 0.0, 3, 7},
      {6, 2, 0.5, 3, 7},   {6, 2, 1.0, 3, 7},  {6, 2, 1.25, 3, 7}, {8, 2, 0.5, 4, 64},  {8, 2, 1.0, 4, 64},
      {8, 2, 1.25, 4, 64}, {5, 3, 0.5, 2, 9},  {5, 5, 0.5, 2, 9},  {5, 5, 1.0, 1, 1},   {8, 2, 0.5, 1, 1},
  };
  bool order_sensitive_case_seen = false;
  for (const Case &c : cases) {
    for (bool renorm : {false, true}) {
      Layer l;
      l.experts = c.experts;
      l.top_k = c.top_k;
      l.capacity_factor = c.cf;
      l.renormalize = renorm;
      l.seed = 31 + c.experts;
      l.temperature = 0.5;  // sharper routing: less balanced, more drops
      CheckSummary s;
      CheckLayer(l, c.batch, c.seq, 400 + static_cast<uint64_t>(c.experts * 10 + c.top_k), &s);
      if (HasFatalFailure() || s.tokens == 0) return;
      const po::Result &r = s.oracle;
      const int64_t tokens = c.batch * c.seq;
      EXPECT_EQ(r.capacity, po::Capacity(tokens, c.top_k, c.cf, c.experts));
      if (c.cf == 0.5 && tokens * c.top_k > c.experts) {
        EXPECT_GT(r.dropped_count, 0u) << "cf 0.5 must drop: the test would not exercise drops";
      }
      if (c.cf > 0.0 && TokenMajorDrops(r, c.experts) != r.dropped) order_sensitive_case_seen = true;
    }
  }
  EXPECT_TRUE(order_sensitive_case_seen) << "no case distinguishes first-choice-first from token-major admission";
}

TEST(ParityCapacity, CapacityIsPerCall) {
  // The same tokens in one call of T and in T calls of one: C depends on the call's T.
  Layer l;
  l.experts = 4;
  l.top_k = 2;
  l.capacity_factor = 0.5;
  l.temperature = 0.5;
  l.seed = 77;
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  const po::Hyper hp = l.Hyper();
  const std::vector<float> x = TieFreeInput(w, hp, 24, 500);
  StatsExpectation ex;
  PIMOE_ASSERT_OK(pimoe_stats_reset(model.get()));
  CheckSummary s;
  ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, hp, 4, 6, x, &s));
  ex.Add(s.oracle);
  EXPECT_GT(s.oracle.dropped_count, 0u);
  for (int64_t t = 0; t < 24; ++t) {
    const std::vector<float> one(x.begin() + t * l.hidden, x.begin() + (t + 1) * l.hidden);
    ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, hp, 1, 1, one, &s));
    EXPECT_EQ(s.oracle.dropped_count, 0u);  // C = ceil(2 * 0.5 / 4) = 1 and the two slots differ
    ex.Add(s.oracle);
  }
  CheckStats(model.get(), ex);
}

}  // namespace
