// SPDX-License-Identifier: MIT
// Self-tests of the reference oracle's routing features (tests/oracle/oracle_routing.cpp) on tiny hand-computed cases.
// They build pimoe_oracle::Weights directly: no library model is involved, the oracle itself is under test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "oracle/oracle.h"

namespace po = pimoe_oracle;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double Sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

// A layer of E experts, all callback experts, with the identity as router (H == E) unless told otherwise.
po::Weights MakeWeights(int64_t hidden, int32_t num_experts, int32_t top_k) {
  po::Weights w;
  w.hidden = hidden;
  w.num_experts = num_experts;
  w.top_k = top_k;
  w.router.assign(static_cast<size_t>(hidden * num_experts), 0.0f);
  for (int32_t e = 0; e < num_experts && e < hidden; ++e) w.router[static_cast<size_t>(e * hidden + e)] = 1.0f;
  w.experts.resize(static_cast<size_t>(num_experts));
  for (po::Expert &x : w.experts) x.callback = true;
  return w;
}

// A callback whose output rows are the constant (expert + 1), counting its calls.
struct ConstantCallback {
  int calls = 0;
  po::Hyper::ExpertCallback Fn() {
    return [this](int32_t expert, const float *, int64_t rows, int64_t hidden, float *out) {
      ++calls;
      for (int64_t i = 0; i < rows * hidden; ++i) out[i] = static_cast<float>(expert + 1);
      return 0;
    };
  }
};

// ------------------------------------------------------------------------------------------------ expert choice

TEST(OracleRouting, ExpertChoiceCapacity) {
  EXPECT_EQ(po::ExpertChoiceCapacity(4, 3, 1, 0.0), 2);    // cf = k = 1: ceil(4/3)
  EXPECT_EQ(po::ExpertChoiceCapacity(4, 3, 2, 0.0), 3);    // cf = k = 2: ceil(8/3)
  EXPECT_EQ(po::ExpertChoiceCapacity(4, 3, 1, 5.0), 4);    // ceil(20/3) = 7, at most T
  EXPECT_EQ(po::ExpertChoiceCapacity(10, 4, 2, 1.25), 4);  // ceil(3.125)
  EXPECT_EQ(po::ExpertChoiceCapacity(8, 4, 2, 0.0), 4);    // exactly 4
}

TEST(OracleRouting, ExpertChoiceOnHandMadeScores) {
  // T = 4 tokens x E = 3 experts, C = 2.
  const std::vector<double> c = {
      0.5, 0.3, 0.2,  // t0
      0.4, 0.6, 0.3,  // t1
      0.4, 0.4, 0.2,  // t2
      0.2, 0.2, 0.6,  // t3
  };
  // Expert 0 column .5 .4 .4 .2: t0, then t1 (tie with t2 -> lower token). Expert 1: .6 (t1), .4 (t2).
  // Expert 2: .6 (t3), .3 (t1). Per token by descending weight, then unused slots.
  std::vector<int32_t> ids;
  std::vector<double> weights;
  po::ExpertChoiceRoute(c, 4, 3, 2, 2.0, &ids, &weights);
  const std::vector<int32_t> want_ids = {0, -1, -1, 1, 0, 2, 1, -1, -1, 2, -1, -1};
  const std::vector<double> want_w = {1.0, 0, 0, 1.2, 0.8, 0.6, 0.8, 0, 0, 1.2, 0, 0};
  EXPECT_EQ(ids, want_ids);
  ASSERT_EQ(weights.size(), want_w.size());
  for (size_t i = 0; i < want_w.size(); ++i) EXPECT_DOUBLE_EQ(weights[i], want_w[i]) << i;

  // A token with two equal weights: ties to the lower expert.
  const std::vector<double> tie = {0.5, 0.5, 0.1, 0.1};  // T = 2, E = 2, C = 1
  po::ExpertChoiceRoute(tie, 2, 2, 1, 1.0, &ids, &weights);
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 1, -1, -1}));
}

TEST(OracleRouting, ExpertChoiceForwardWithSigmoidAndCallbacks) {
  po::Weights w = MakeWeights(3, 3, 1);
  po::Hyper hp;
  hp.top_k = 1;
  hp.expert_choice = true;
  hp.sigmoid = true;
  hp.routed_scaling = 0.5;
  ConstantCallback cb;
  hp.callback = cb.Fn();
  // Router = identity, so z = x; sigmoid is monotonic: the same assignment as above.
  const std::vector<float> x = {2, 0, -1, 1, 3, 0, 1, 1, -1, -1, -1, 3};
  const po::Result r = po::Forward(w, hp, x.data(), 4);
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(r.slots, 3);
  EXPECT_EQ(r.capacity, 2);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{0, -1, -1, 1, 0, 2, 1, -1, -1, 2, -1, -1}));
  EXPECT_EQ(r.loads, (std::vector<uint64_t>{2, 2, 2}));
  EXPECT_EQ(r.choices, (std::vector<uint64_t>{2, 2, 2}));
  EXPECT_EQ(r.dropped_count, 0u);
  for (uint8_t d : r.dropped) EXPECT_EQ(d, 0);
  EXPECT_EQ(cb.calls, 3);
  const double w00 = 0.5 * Sigmoid(2);
  const double w11 = 0.5 * Sigmoid(3), w10 = 0.5 * Sigmoid(1), w12 = 0.5 * Sigmoid(0);
  const double w21 = 0.5 * Sigmoid(1), w32 = 0.5 * Sigmoid(3);
  const std::vector<double> want_w = {w00, 0, 0, w11, w10, w12, w21, 0, 0, w32, 0, 0};
  for (size_t i = 0; i < want_w.size(); ++i) EXPECT_NEAR(r.weights[i], want_w[i], 1e-12) << i;
  // Callback e outputs the constant e + 1.
  const std::vector<double> want_y = {w00 * 1, w11 * 2 + w10 * 1 + w12 * 3, w21 * 2, w32 * 3};
  for (size_t t = 0; t < 4; ++t) {
    for (size_t h = 0; h < 3; ++h) EXPECT_NEAR(r.output[t * 3 + h], want_y[t], 1e-12) << t;
  }
  // Scores are reported unscaled, before any mask.
  EXPECT_NEAR(r.probs[1 * 3 + 1], Sigmoid(3), 1e-12);
  EXPECT_NEAR(r.routing_confidence, (Sigmoid(2) + Sigmoid(3) + Sigmoid(1) + Sigmoid(3)) / 4, 1e-12);
}

// ------------------------------------------------------------------------------------------------ group tree

TEST(OracleRouting, GroupTreeOnHandMadeSelection) {
  // Pairs: [0,1] = 1.0, [2,3] = 0.625, [4,5] = 0.8125, [6,7] = 1.0; quads (top-2 sums): 1.25 and 1.25.
  const std::vector<double> q = {0.125, 0.875, 0.375, 0.25, 0.75, 0.0625, 0.5, 0.5};
  using L = po::Hyper::GroupLevel;
  double gap = -1;
  int32_t eligible = -1;

  // "2:1,2:1": quads tie -> the lower first expert (0..3); then [0,1] (1.0) over [2,3] (0.625).
  std::vector<double> m = po::GroupTreeMask(q, {L{2, 1}, L{2, 1}}, false, &gap, &eligible);
  EXPECT_EQ(m, (std::vector<double>{0.125, 0.875, -kInf, -kInf, -kInf, -kInf, -kInf, -kInf}));
  EXPECT_EQ(gap, 0.0);
  EXPECT_EQ(eligible, 2);

  // "4:2,2:2": pairs [0,1] and [6,7] (1.0 each; next 0.8125); then of the singletons .125 .875 .5 .5: {1}, and {6}
  // over {7} by the lower index.
  m = po::GroupTreeMask(q, {L{4, 2}, L{2, 2}}, false, &gap, &eligible);
  EXPECT_EQ(m, (std::vector<double>{-kInf, 0.875, -kInf, -kInf, -kInf, -kInf, 0.5, -kInf}));
  EXPECT_EQ(gap, 0.0);
  EXPECT_EQ(eligible, 2);

  // "4:3,2:1" keeps [0,1], [6,7], [4,5] (order of score); then the best singleton of those 6: expert 1.
  m = po::GroupTreeMask(q, {L{4, 3}, L{2, 1}}, false, &gap, &eligible);
  EXPECT_EQ(m, (std::vector<double>{-kInf, 0.875, -kInf, -kInf, -kInf, -kInf, -kInf, -kInf}));
  EXPECT_DOUBLE_EQ(gap, std::min(0.8125 - 0.625, 0.875 - 0.75));
  EXPECT_EQ(eligible, 1);

  // Group score "max": quads .875 vs .75 -> 0..3; pairs .875 vs .375 -> [0,1].
  m = po::GroupTreeMask(q, {L{2, 1}, L{2, 1}}, true, &gap, &eligible);
  EXPECT_EQ(m, (std::vector<double>{0.125, 0.875, -kInf, -kInf, -kInf, -kInf, -kInf, -kInf}));
  EXPECT_DOUBLE_EQ(gap, 0.125);

  // No levels: unchanged.
  m = po::GroupTreeMask(q, {}, false, &gap, &eligible);
  EXPECT_EQ(m, q);
  EXPECT_EQ(gap, kInf);
  EXPECT_EQ(eligible, 8);
}

TEST(OracleRouting, SingleLevelEqualsNumGroups) {
  po::Hyper a;
  a.num_groups = 4;
  a.topk_groups = 2;
  po::Hyper b;
  b.group_levels = {po::Hyper::GroupLevel{4, 2}};
  EXPECT_EQ(a.EffectiveGroupLevels().size(), 1u);
  po::Weights w = MakeWeights(8, 8, 2);
  for (size_t i = 0; i < w.router.size(); ++i) w.router[i] = static_cast<float>(std::sin(0.7 * static_cast<double>(i)));
  const std::vector<float> x = {0.3f, -1.2f, 0.8f, 0.1f, 2.0f, -0.4f, 0.9f, -0.7f};
  const po::TokenRoute ra = po::RouteToken(w, a, x.data()), rb = po::RouteToken(w, b, x.data());
  EXPECT_EQ(ra.order, rb.order);
  EXPECT_EQ(ra.selection, rb.selection);
  EXPECT_EQ(ra.eligible, 4);
}

// ------------------------------------------------------------------------------------------------ capacity

TEST(OracleRouting, DynamicCapacities) {
  // Shares 5, 2.5, 1.25, 1.25 -> 5 2 1 1, one left: largest fraction (0.5) is expert 1.
  EXPECT_EQ(po::DynamicCapacities(10, {0.5f, 0.25f, 0.125f, 0.125f}), (std::vector<int64_t>{5, 3, 1, 1}));
  // Shares 1.75 each -> 1 each, three left: equal fractions, lower indices first.
  EXPECT_EQ(po::DynamicCapacities(7, {0.25f, 0.25f, 0.25f, 0.25f}), (std::vector<int64_t>{2, 2, 2, 1}));
  // m need not sum to 1: shares 8*1/4 = 2, 8*3/4 = 6.
  EXPECT_EQ(po::DynamicCapacities(8, {1.0f, 3.0f}), (std::vector<int64_t>{2, 6}));
  // Shares 3.6, 2.4 (fp32 of .6 and .4) -> 3 2, the remainder to expert 0.
  EXPECT_EQ(po::DynamicCapacities(6, {0.6f, 0.4f}), (std::vector<int64_t>{4, 2}));
}

TEST(OracleRouting, DynamicCapacityForwardAndEmaChain) {
  // E = 2, k = 1, T = 4, cf = 1: C = 2, S = 4. Every token chooses expert 1 (z = x = (0, 1)).
  po::Weights w = MakeWeights(2, 2, 1);
  po::Hyper hp;
  hp.top_k = 1;
  hp.capacity_factor = 1.0;
  hp.dynamic_capacity = true;
  ConstantCallback cb;
  hp.callback = cb.Fn();
  w.load_ema = {0.75f, 0.25f};
  const std::vector<float> x = {0, 1, 0, 1, 0, 1, 0, 1};
  po::Result r = po::Forward(w, hp, x.data(), 4);
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(r.capacity, 2);
  EXPECT_EQ(r.capacities, (std::vector<int64_t>{3, 1}));  // shares 3, 1
  EXPECT_EQ(r.dropped, (std::vector<uint8_t>{0, 1, 1, 1}));
  EXPECT_EQ(r.dropped_count, 3u);
  EXPECT_EQ(r.loads, (std::vector<uint64_t>{0, 1}));
  EXPECT_EQ(r.choices, (std::vector<uint64_t>{0, 4}));
  EXPECT_EQ(r.weights[1], 0.0);
  EXPECT_EQ(r.output[0 * 2], 2.0);  // kept: weight 1 x constant 2
  EXPECT_EQ(r.output[1 * 2], 0.0);  // dropped

  // m = 0.9 m + 0.1 d, d = choices / (T k) = (0, 1).
  w.load_ema = po::LoadEmaStep(w.load_ema, r.choices, 4, hp.capacity_momentum);
  EXPECT_EQ(w.load_ema, (std::vector<float>{static_cast<float>(0.9 * 0.75f), static_cast<float>(0.9 * 0.25f + (1.0 - 0.9) * 1.0)}));
  r = po::Forward(w, hp, x.data(), 4);
  EXPECT_EQ(r.capacities, (std::vector<int64_t>{3, 1}));  // shares 2.7, 1.3
  w.load_ema = po::LoadEmaStep(w.load_ema, r.choices, 4, hp.capacity_momentum);
  r = po::Forward(w, hp, x.data(), 4);
  EXPECT_EQ(r.capacities, (std::vector<int64_t>{2, 2}));  // shares 2.43, 1.57: the remainder to expert 1
  EXPECT_EQ(r.loads, (std::vector<uint64_t>{0, 2}));
  // Static capacity for comparison: C = 2 each.
  hp.dynamic_capacity = false;
  EXPECT_EQ(po::Forward(w, hp, x.data(), 4).capacities, (std::vector<int64_t>{2, 2}));
  // No update without assignments.
  EXPECT_EQ(po::LoadEmaStep({0.5f, 0.5f}, {0, 0}, 0, 0.9), (std::vector<float>{0.5f, 0.5f}));
}

// ------------------------------------------------------------------------------------------------ adaptive bias

TEST(OracleRouting, AdaptiveBiasStep) {
  // mean(c) = 2: sign(2-3) = -1, sign(2-1) = +1, sign(0) = 0.
  EXPECT_EQ(po::AdaptiveBiasStep({0.0f, 0.5f, -0.25f}, {3, 1, 2}, 0.125),
            (std::vector<float>{-0.125f, 0.625f, -0.25f}));
}

TEST(OracleRouting, AdaptiveBiasSelectsByBiasWeighsByScore) {
  po::Weights w = MakeWeights(2, 2, 1);
  po::Hyper hp;
  hp.top_k = 1;
  hp.renormalize = false;
  hp.adaptive_bias_rate = 0.25;
  ConstantCallback cb;
  hp.callback = cb.Fn();
  w.selection_bias = {0.0f, 0.0f};
  const std::vector<float> x = {0.0f, 0.5f};  // p = softmax(0, 0.5) = (0.3775, 0.6225)
  const double p0 = 1.0 / (1.0 + std::exp(0.5)), p1 = 1.0 - p0;
  po::Result r = po::Forward(w, hp, x.data(), 1);
  EXPECT_EQ(r.ids[0], 1);
  EXPECT_NEAR(r.weights[0], p1, 1e-12);
  w.selection_bias = po::AdaptiveBiasStep(w.selection_bias, r.loads, hp.adaptive_bias_rate);
  EXPECT_EQ(w.selection_bias, (std::vector<float>{0.25f, -0.25f}));
  // q = (p0 + .25, p1 - .25) = (.6275, .3725): expert 0, weighted by its unbiased score.
  r = po::Forward(w, hp, x.data(), 1);
  EXPECT_EQ(r.ids[0], 0);
  EXPECT_NEAR(r.weights[0], p0, 1e-12);
  EXPECT_NEAR(r.output[0], p0 * 1.0, 1e-12);
}

// ------------------------------------------------------------------------------------------------ attention router

TEST(OracleRouting, AttentionRouterOneHeadTwoTokens) {
  // H = E = 2, one head of width 1. x0 = (1, 0), x1 = (0, 1). q = W_q x = (1, 0); k = W_k x = (ln 2, 0);
  // v = W_v x = (0, 3); W_o = (1, 2)^T.
  po::Weights w = MakeWeights(2, 2, 1);
  const float ln2 = static_cast<float>(std::log(2.0));
  w.attention_q = {1, 0};
  w.attention_k = {ln2, 0};
  w.attention_v = {0, 3};
  w.attention_o = {1, 2};
  po::Hyper hp;
  hp.top_k = 1;
  hp.attention_heads = 1;
  hp.attention_head_dim = 1;
  ConstantCallback cb;
  hp.callback = cb.Fn();
  const std::vector<float> x = {1, 0, 0, 1};
  const double l2 = static_cast<double>(ln2);
  // t0: scores (1*ln2, 1*0) -> a = (2/3, 1/3), ctx = 1/3 * 3 = 1, u0 = (1, 2).
  // t1: scores (0, 0) -> a = (1/2, 1/2), ctx = 1.5, u1 = (1.5, 3).
  const double a00 = std::exp(l2) / (std::exp(l2) + 1.0);
  const double ctx0 = (1.0 - a00) * 3.0, ctx1 = 1.5;
  po::Result r = po::Forward(w, hp, x.data(), 1, 2);
  ASSERT_EQ(r.error, "");
  ASSERT_EQ(r.context.size(), 4u);
  EXPECT_NEAR(ctx0, 1.0, 1e-7);
  EXPECT_NEAR(r.context[0], ctx0, 1e-12);
  EXPECT_NEAR(r.context[1], 2 * ctx0, 1e-12);
  EXPECT_NEAR(r.context[2], ctx1, 1e-12);
  EXPECT_NEAR(r.context[3], 2 * ctx1, 1e-12);
  // z = W_g (x + u) = x + u.
  EXPECT_NEAR(r.logits[0], 1 + ctx0, 1e-12);
  EXPECT_NEAR(r.logits[1], 2 * ctx0, 1e-12);
  EXPECT_NEAR(r.logits[2], 1.5, 1e-12);
  EXPECT_NEAR(r.logits[3], 4.0, 1e-12);
  EXPECT_EQ(r.ids[1], 1);
  EXPECT_NEAR(r.probs[3], 1.0 / (1.0 + std::exp(-2.5)), 1e-12);

  // Causal: t0 sees only itself (v0 = 0): u0 = 0; t1 unchanged.
  hp.attention_causal = true;
  r = po::Forward(w, hp, x.data(), 1, 2);
  EXPECT_EQ(r.context[0], 0.0);
  EXPECT_EQ(r.context[1], 0.0);
  EXPECT_NEAR(r.context[2], 1.5, 1e-12);
  EXPECT_NEAR(r.context[3], 3.0, 1e-12);

  // Two sequences of one token each: every token attends to itself only: u0 = 0, u1 = W_o v1 = (3, 6).
  hp.attention_causal = false;
  r = po::Forward(w, hp, x.data(), 2, 1);
  EXPECT_EQ(r.context, (std::vector<double>{0, 0, 3, 6}));
  EXPECT_NEAR(r.logits[2], 3.0, 1e-12);
  EXPECT_NEAR(r.logits[3], 7.0, 1e-12);
}

// ------------------------------------------------------------------------------------------------ attention combine

TEST(OracleRouting, CombineWeightsTwoSlots) {
  po::Weights w = MakeWeights(2, 3, 2);
  w.combine_q = {1, 0};  // q = x[0]
  w.combine_k = {0, 1};  // k_j = o_j[1]
  po::Hyper hp;
  hp.combine_dim = 1;
  const std::vector<float> x = {2, 0};
  // logits: 2 * o_j[1] + log w_j: log .75 and ln 3 + log .25 = log .75 -> equal.
  const std::vector<std::vector<double>> o = {{1, 0}, {0, std::log(3.0) / 2}, {}};
  std::vector<double> wp = po::CombineWeights(w, hp, x.data(), o, {0.75, 0.25, 0.0});
  ASSERT_EQ(wp.size(), 3u);
  EXPECT_NEAR(wp[0], 0.5, 1e-12);
  EXPECT_NEAR(wp[1], 0.5, 1e-12);
  EXPECT_EQ(wp[2], 0.0);  // w_j = 0 is outside the softmax
  // Equal keys: w' = w / sum(w), so any routed scaling cancels.
  wp = po::CombineWeights(w, hp, x.data(), {{1, 0}, {5, 0}, {}}, {0.6, 0.2, 0.0});
  EXPECT_NEAR(wp[0], 0.75, 1e-12);
  EXPECT_NEAR(wp[1], 0.25, 1e-12);
}

TEST(OracleRouting, CombineInForwardWithCallbackExperts) {
  po::Weights w = MakeWeights(2, 2, 2);
  w.combine_q = {1, 0};
  w.combine_k = {0, 1};
  po::Hyper hp;
  hp.top_k = 2;
  hp.combine_dim = 1;
  const float half_ln3 = static_cast<float>(std::log(3.0) / 2);
  hp.callback = [&](int32_t expert, const float *, int64_t rows, int64_t hidden, float *out) {
    for (int64_t i = 0; i < rows; ++i) {
      out[i * hidden + 0] = expert == 0 ? 1.0f : 0.0f;
      out[i * hidden + 1] = expert == 0 ? 0.0f : half_ln3;
    }
    return 0;
  };
  const std::vector<float> x = {2, 0};  // p = (e^2, 1) / (e^2 + 1); q = 2
  const po::Result r = po::Forward(w, hp, x.data(), 1);
  ASSERT_EQ(r.error, "");
  const double e2 = std::exp(2.0);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{0, 1}));
  EXPECT_NEAR(r.routed_weights[0], e2 / (e2 + 1), 1e-12);
  EXPECT_NEAR(r.routed_weights[1], 1 / (e2 + 1), 1e-12);
  // w' proportional to (p0 * e^0, p1 * e^(2 * ln3/2)) = (e^2, 3).
  EXPECT_NEAR(r.weights[0], e2 / (e2 + 3), 1e-7);
  EXPECT_NEAR(r.weights[1], 3 / (e2 + 3), 1e-7);
  EXPECT_NEAR(r.output[0], r.weights[0] * 1.0, 1e-12);
  EXPECT_NEAR(r.output[1], r.weights[1] * static_cast<double>(half_ln3), 1e-12);
}

// ------------------------------------------------------------------------------------------------ callback experts

TEST(OracleRouting, CallbackExpertOutputAppearsExactly) {
  // E = 2, k = 1, H = 3. Expert 0 is a callback, expert 1 a neural ReLU FFN of width 2.
  po::Weights w = MakeWeights(3, 2, 1);
  w.router = {1, 0, 0, 0, 1, 0};  // z = (x0, x1)
  w.experts[1].callback = false;
  w.experts[1].spec = po::ExpertSpec{PIMOE_ACT_RELU, 2, false};
  w.experts[1].up_weight = {1, 0, 0, 0, 1, 1};
  w.experts[1].down_weight = {1, 0, 0, 1, 2, -1};
  po::Hyper hp;
  hp.top_k = 1;
  std::vector<std::vector<float>> seen;
  int calls = 0;
  hp.callback = [&](int32_t expert, const float *in, int64_t rows, int64_t hidden, float *out) {
    ++calls;
    EXPECT_EQ(expert, 0);
    EXPECT_EQ(hidden, 3);
    for (int64_t i = 0; i < rows * hidden; ++i) EXPECT_EQ(out[i], 0.0f);  // zero-filled
    for (int64_t r = 0; r < rows; ++r) seen.emplace_back(in + r * hidden, in + (r + 1) * hidden);
    for (int64_t i = 0; i < rows * hidden; ++i) out[i] = 2.0f * in[i] + 1.0f;
    return 0;
  };
  // t0 -> 0, t1 -> 1, t2 -> 0 (k = 1 and renormalised: weight 1).
  const std::vector<float> x = {3, 1, 0.25f, 0, 2, 1, 5, -1, -0.5f};
  const po::Result r = po::Forward(w, hp, x.data(), 3);
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(r.ids, (std::vector<int32_t>{0, 1, 0}));
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(seen.size(), 2u);  // rows gathered in token order
  EXPECT_EQ(seen[0], (std::vector<float>{3, 1, 0.25f}));
  EXPECT_EQ(seen[1], (std::vector<float>{5, -1, -0.5f}));
  EXPECT_EQ(r.output[0], 7.0);
  EXPECT_EQ(r.output[1], 3.0);
  EXPECT_EQ(r.output[2], 1.5);
  EXPECT_EQ(r.output[6], 11.0);
  EXPECT_EQ(r.output[7], -1.0);
  EXPECT_EQ(r.output[8], 0.0);
  // Token 1 through the neural expert: h = relu(x0, x1 + x2) = (0, 3); y = (0, 3, -3).
  EXPECT_EQ(r.output[3], 0.0);
  EXPECT_EQ(r.output[4], 3.0);
  EXPECT_EQ(r.output[5], -3.0);

  // Not called when it receives no token.
  calls = 0;
  const po::Result only1 = po::Forward(w, hp, x.data() + 3, 1);
  EXPECT_EQ(only1.error, "");
  EXPECT_EQ(calls, 0);

  // A failing callback, or none, fails the call.
  hp.callback = [](int32_t, const float *, int64_t, int64_t, float *) { return 7; };
  EXPECT_NE(po::Forward(w, hp, x.data(), 3).error.find("returned 7"), std::string::npos);
  hp.callback = nullptr;
  EXPECT_NE(po::Forward(w, hp, x.data(), 3).error, "");
}

TEST(OracleRouting, CallbackExpertDroppedRowsAreNotPassed) {
  // E = 2, k = 1, T = 4, cf = 0.5: C = ceil(4*0.5/2) = 1. All tokens -> expert 0: only t0 is kept.
  po::Weights w = MakeWeights(2, 2, 1);
  po::Hyper hp;
  hp.top_k = 1;
  hp.capacity_factor = 0.5;
  int64_t rows_seen = -1;
  hp.callback = [&](int32_t, const float *, int64_t rows, int64_t hidden, float *out) {
    rows_seen = rows;
    for (int64_t i = 0; i < rows * hidden; ++i) out[i] = 1.0f;
    return 0;
  };
  const std::vector<float> x = {1, 0, 2, 0, 3, 0, 4, 0};
  const po::Result r = po::Forward(w, hp, x.data(), 4);
  EXPECT_EQ(rows_seen, 1);
  EXPECT_EQ(r.dropped, (std::vector<uint8_t>{0, 1, 1, 1}));
}

// ------------------------------------------------------------------------------------------------ tensors

TEST(OracleRouting, ExpectedTensorsWithEveryFeature) {
  po::Hyper hp;
  hp.adaptive_bias_rate = 0.01;
  hp.dynamic_capacity = true;
  hp.capacity_factor = 1.0;
  hp.attention_heads = 2;
  hp.attention_head_dim = 3;
  hp.shared_width = 5;
  hp.combine_dim = 2;
  hp.callback_experts = {1};
  const std::vector<po::ExpertSpec> specs = {po::ExpertSpec{PIMOE_ACT_GELU, 8, false},
                                             po::ExpertSpec{PIMOE_ACT_GELU, 0, false},
                                             po::ExpertSpec{PIMOE_ACT_SWIGLU, 8, false}};
  const std::vector<po::TensorInfo> t = po::ExpectedTensors(4, specs, hp);
  std::vector<std::string> names;
  for (const po::TensorInfo &i : t) names.push_back(i.name);
  const std::vector<std::string> want = {
      "router.weight",          "router.selection_bias",     "router.load_ema",
      "router.attention.q.weight", "router.attention.k.weight", "router.attention.v.weight",
      "router.attention.o.weight", "experts.0.up.weight",       "experts.0.down.weight",
      "experts.2.gate.weight",  "experts.2.up.weight",       "experts.2.down.weight",
      "shared.gate.weight",     "shared.up.weight",          "shared.down.weight",
      "combine.q.weight",       "combine.k.weight"};
  EXPECT_EQ(names, want);
  EXPECT_EQ(t[2].shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(t[3].shape, (std::vector<int64_t>{6, 4}));
  EXPECT_EQ(t[6].shape, (std::vector<int64_t>{4, 6}));
  EXPECT_EQ(t[15].shape, (std::vector<int64_t>{2, 4}));

  const std::vector<std::vector<float>> init = po::InitAllTensors(42, 4, specs, hp);
  ASSERT_EQ(init.size(), want.size());
  EXPECT_EQ(init[2], (std::vector<float>(3, static_cast<float>(1.0 / 3.0))));  // load_ema: 1/E, not seeded
  EXPECT_EQ(init[1], po::InitTensor(42, "router.selection_bias", 3, po::InitKind::kLinear, 4));
  EXPECT_EQ(init[3], po::InitTensor(42, "router.attention.q.weight", 24, po::InitKind::kLinear, 4));
  EXPECT_EQ(init[6], po::InitTensor(42, "router.attention.o.weight", 24, po::InitKind::kLinear, 6));
  EXPECT_EQ(init[16], po::InitTensor(42, "combine.k.weight", 8, po::InitKind::kLinear, 4));
}

TEST(OracleRouting, OldForwardIsOneSequence) {
  po::Weights w = MakeWeights(2, 2, 1);
  w.attention_q = {1, 0};
  w.attention_k = {1, 0};
  w.attention_v = {0, 3};
  w.attention_o = {1, 2};
  po::Hyper hp;
  hp.top_k = 1;
  hp.attention_heads = 1;
  hp.attention_head_dim = 1;
  ConstantCallback cb;
  hp.callback = cb.Fn();
  const std::vector<float> x = {1, 0, 0, 1, 0.5f, 0.5f};
  const po::Result a = po::Forward(w, hp, x.data(), 3), b = po::Forward(w, hp, x.data(), 1, 3);
  EXPECT_EQ(a.logits, b.logits);
  EXPECT_EQ(a.output, b.output);
  EXPECT_NE(a.logits, po::Forward(w, hp, x.data(), 3, 1).logits);
}

}  // namespace
