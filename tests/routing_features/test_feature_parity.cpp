// SPDX-License-Identifier: MIT
// test_routing_features, parity per feature: each routing feature (expert choice, group trees, the attention router,
// adaptive bias, dynamic capacity, the attention combine, callback experts), alone and in combination, against the
// reference oracle over chained calls (RoutingParity/FeatureParity: one instance a feature, its table of layers
// below), plus the initialisation of the new tensors and the introspection outputs. See routing_features.h for the
// tolerances and the near-tie rule.
#include <cmath>
#include <cstring>
#include <vector>

#include "routing_features.h"

namespace {

using namespace pimoe_rf;

// One CheckAll: every layer of `configs` x shapes x seeds x threads 1 and 2, `calls` chained calls each.
struct ParityRun {
  std::vector<Cfg> configs;
  std::vector<std::pair<int64_t, int64_t>> shapes;
  int calls;
  std::vector<uint64_t> seeds;
  bool summarised;  // its ChainSummary is what the feature's expectations read
};

// ================================================================================================ the layers per
// feature
std::vector<ParityRun> ExpertChoiceRuns() {
  std::vector<ParityRun> runs;
  std::vector<Cfg> configs;
  Cfg c;
  c.expert_choice = true;
  configs.push_back(c);  // capacity_factor 0: C = ceil(T*top_k/E)
  c.capacity_factor = 1.25;
  configs.push_back(c);
  c.capacity_factor = 3.0;
  c.sigmoid = true;
  c.routed_scaling = 2.5;
  configs.push_back(c);
  c = Cfg();
  c.expert_choice = true;
  c.temperature = 0.7;
  c.shared_width = 24;
  c.shared_gate = true;
  configs.push_back(c);
  c = Cfg();
  c.expert_choice = true;
  c.hidden = 16;
  c.experts = 4;
  c.top_k = 1;
  c.capacity_factor = 0.5;
  c.renormalize = false;  // does not apply to expert choice
  configs.push_back(c);
  c = Cfg();
  c.expert_choice = true;
  c.hidden = 48;
  c.experts = 16;
  c.capacity_factor = 2.0;
  c.activation = PIMOE_ACT_SWIGLU;
  c.expert_bias = true;
  configs.push_back(c);
  // Combined: the attention router, callback experts, the attention combine and the shared expert.
  c = Cfg();
  c.expert_choice = true;
  c.attention_heads = 2;
  c.attention_head_dim = 8;
  c.callback_experts = {1, 6};
  c.combine_dim = 8;
  c.shared_width = 16;
  configs.push_back(c);
  runs.push_back({configs, {{1, 37}, {3, 16}}, 1, {1, 2}, true});
  // Tiny calls: C = min(T, ceil(T*cf/E)) reaches T (every token gets every expert).
  c = Cfg();
  c.expert_choice = true;
  c.capacity_factor = 8.0;
  runs.push_back({{c}, {{1, 3}, {1, 1}}, 1, {3}, false});
  return runs;
}

std::vector<ParityRun> GroupTreeRuns() {
  std::vector<ParityRun> runs;
  std::vector<Cfg> configs;
  Cfg c;
  c.experts = 16;
  c.intermediate = 24;
  c.group_levels = "2:1,2:1";  // 2 levels, eligible 4
  configs.push_back(c);
  c.group_levels = "2:2,2:1";
  c.top_k = 4;
  c.group_max = true;
  configs.push_back(c);
  c.group_levels = "4:2,2:3";  // level 2 keeps 3 of the 4 subgroups
  c.top_k = 3;
  c.group_max = false;
  c.sigmoid = true;
  c.router_bias = true;
  configs.push_back(c);
  c.group_levels = "2:1,2:2,2:1";  // 3 levels, eligible 2
  c.top_k = 2;
  c.routed_scaling = 2.5;
  configs.push_back(c);
  c.group_levels = "2:2,2:2,2:3";  // 3 levels, eligible 6
  c.top_k = 4;
  c.group_max = true;
  c.routed_scaling = 1.0;
  c.sigmoid = false;
  c.router_bias = false;
  configs.push_back(c);
  c = Cfg();
  c.group_levels = "2:1,4:2";  // E = 8: level-2 groups of one expert (top2_sum of one expert is that expert)
  configs.push_back(c);
  c = Cfg();
  c.experts = 16;
  c.group_levels = "4:2";  // a single level: NUM_GROUPS = 4, TOPK_GROUPS = 2
  c.top_k = 3;
  c.sigmoid = true;
  c.router_bias = true;
  configs.push_back(c);
  // Combined with the attention router, capacity and the shared expert.
  c = Cfg();
  c.experts = 16;
  c.group_levels = "2:2,2:1";
  c.attention_heads = 3;
  c.attention_head_dim = 8;
  c.capacity_factor = 1.0;
  c.shared_width = 16;
  configs.push_back(c);
  // Combined with callback experts and the attention combine.
  c = Cfg();
  c.experts = 16;
  c.group_levels = "2:1,2:2";
  c.top_k = 3;
  c.callback_experts = {0, 5, 9};
  c.combine_dim = 4;
  c.sigmoid = true;
  c.router_bias = true;
  configs.push_back(c);
  runs.push_back({configs, {{1, 40}, {2, 9}}, 1, {1, 2}, false});
  // Combined with adaptive bias and dynamic capacity (chained calls).
  c = Cfg();
  c.experts = 16;
  c.group_levels = "2:1,2:2";
  c.adaptive_bias_rate = 0.01;
  c.capacity_factor = 1.0;
  c.dynamic_capacity = true;
  runs.push_back({{c}, {{2, 24}}, 3, {5}, false});
  return runs;
}

std::vector<ParityRun> AttentionRouterRuns() {
  std::vector<ParityRun> runs;
  std::vector<Cfg> configs;
  Cfg c;
  c.attention_heads = 1;
  configs.push_back(c);
  c.attention_heads = 3;
  c.attention_head_dim = 8;
  c.attention_causal = true;
  configs.push_back(c);
  c.attention_causal = false;
  c.temperature = 0.5;
  configs.push_back(c);
  c = Cfg();
  c.attention_heads = 1;
  c.attention_head_dim = 4;
  c.attention_causal = true;
  c.sigmoid = true;
  c.router_bias = true;
  c.num_groups = 4;
  c.topk_groups = 2;
  configs.push_back(c);
  c = Cfg();
  c.attention_heads = 3;
  c.attention_head_dim = 8;
  c.capacity_factor = 1.0;
  c.shared_width = 16;
  c.shared_gate = true;
  configs.push_back(c);
  c = Cfg();
  c.attention_heads = 2;
  c.attention_head_dim = 8;
  c.attention_causal = true;
  c.callback_experts = {3};
  c.combine_dim = 8;
  configs.push_back(c);
  // Attention is within each sequence: batch > 1 with seq > 1, plus one long sequence and single-token sequences.
  runs.push_back({configs, {{3, 7}, {1, 20}, {5, 1}}, 1, {1, 2}, false});
  return runs;
}

std::vector<ParityRun> AdaptiveBiasRuns() {
  std::vector<ParityRun> runs;
  std::vector<Cfg> configs;
  Cfg c;
  c.adaptive_bias_rate = 0.01;
  configs.push_back(c);
  c.adaptive_bias_rate = 0.05;
  c.sigmoid = true;
  c.top_k = 3;
  c.router_bias = true;  // explicit ROUTER_BIAS too: the same layer
  configs.push_back(c);
  c = Cfg();
  c.experts = 16;
  c.adaptive_bias_rate = 0.02;
  c.group_levels = "2:1,2:2";
  configs.push_back(c);
  c = Cfg();
  c.adaptive_bias_rate = 0.02;
  c.capacity_factor = 1.0;
  c.shared_width = 16;
  configs.push_back(c);
  c = Cfg();
  c.adaptive_bias_rate = 0.01;
  c.attention_heads = 2;
  c.attention_head_dim = 8;
  c.attention_causal = true;
  configs.push_back(c);
  c = Cfg();
  c.adaptive_bias_rate = 0.03;
  c.callback_experts = {2};
  c.combine_dim = 8;
  configs.push_back(c);
  runs.push_back({configs, {{2, 24}}, 4, {1, 2}, true});
  return runs;
}

std::vector<ParityRun> DynamicCapacityRuns() {
  std::vector<ParityRun> runs;
  std::vector<Cfg> configs;
  Cfg c;
  c.capacity_factor = 1.0;
  c.dynamic_capacity = true;
  configs.push_back(c);
  c.capacity_factor = 0.75;
  c.capacity_momentum = 0.5;
  configs.push_back(c);
  c.capacity_factor = 1.25;
  c.capacity_momentum = 0.0;  // m = the last call's demand
  c.sigmoid = true;
  c.top_k = 3;
  configs.push_back(c);
  c = Cfg();
  c.capacity_factor = 1.0;
  c.dynamic_capacity = true;
  c.adaptive_bias_rate = 0.02;
  configs.push_back(c);
  c = Cfg();
  c.experts = 16;
  c.capacity_factor = 1.0;
  c.dynamic_capacity = true;
  c.num_groups = 4;
  c.topk_groups = 2;
  c.attention_heads = 1;
  configs.push_back(c);
  c = Cfg();
  c.capacity_factor = 0.75;
  c.dynamic_capacity = true;
  c.capacity_momentum = 0.6;
  c.callback_experts = {1, 4};
  c.combine_dim = 8;
  c.shared_width = 16;
  configs.push_back(c);
  runs.push_back({configs, {{2, 24}}, 4, {1, 2}, true});
  return runs;
}

std::vector<ParityRun> AttentionCombineRuns() {
  std::vector<ParityRun> runs;
  std::vector<Cfg> configs;
  Cfg c;
  c.combine_dim = 8;
  configs.push_back(c);
  c.combine_dim = 4;
  c.top_k = 3;
  c.capacity_factor = 0.75;  // with capacity drops
  configs.push_back(c);
  c = Cfg();
  c.combine_dim = 16;
  c.shared_width = 24;  // with the shared expert
  c.shared_gate = true;
  configs.push_back(c);
  c = Cfg();
  c.combine_dim = 8;
  c.top_k = 1;  // a single kept slot: w' = 1
  c.capacity_factor = 1.0;
  configs.push_back(c);
  c = Cfg();
  c.combine_dim = 8;
  c.expert_bias = true;  // o_j includes the expert's biases
  c.pre_norm = true;
  c.renormalize = false;
  c.routed_scaling = 2.0;
  configs.push_back(c);
  c = Cfg();
  c.combine_dim = 8;
  c.expert_choice = true;
  c.capacity_factor = 1.5;
  configs.push_back(c);
  c = Cfg();
  c.combine_dim = 6;
  c.experts = 16;
  c.top_k = 4;
  c.callback_experts = {0, 7};
  c.capacity_factor = 1.0;
  c.shared_width = 16;
  configs.push_back(c);
  runs.push_back({configs, {{1, 33}, {4, 8}}, 1, {1, 2}, true});
  return runs;
}

std::vector<ParityRun> CallbackExpertsRuns() {
  std::vector<ParityRun> runs;
  std::vector<Cfg> configs;
  Cfg c;
  c.callback_experts = {0};
  configs.push_back(c);
  c.callback_experts = {1, 3, 5};
  c.top_k = 3;
  c.capacity_factor = 1.0;  // with capacity
  configs.push_back(c);
  c = Cfg();
  c.hidden = 16;
  c.experts = 4;
  c.callback_experts = {0, 1, 2, 3};  // every expert a callback
  configs.push_back(c);
  c = Cfg();
  c.callback_experts = {2, 7};
  c.combine_dim = 8;  // with the attention combine
  configs.push_back(c);
  c = Cfg();
  c.callback_experts = {6};
  c.shared_width = 16;
  c.sigmoid = true;
  c.router_bias = true;
  c.num_groups = 2;
  c.topk_groups = 1;
  c.pre_norm = true;  // LayerNorm is not applied to a callback's input
  configs.push_back(c);
  runs.push_back({configs, {{1, 29}, {2, 16}}, 1, {1, 2}, true});
  return runs;
}
// Expert input scaling (Llama 4: sigmoid top-1, the expert takes x * score, a shared expert beside).
std::vector<ParityRun> ExpertInputScalingRuns() {
  std::vector<Cfg> configs;
  Cfg c;
  c.expert_input_scaling = true;
  c.sigmoid = true;
  c.top_k = 1;
  c.renormalize = false;
  c.activation = PIMOE_ACT_SWIGLU;
  c.shared_width = 24;
  configs.push_back(c);
  c.top_k = 2;
  c.capacity_factor = 1.0;  // with drops
  c.shared_gate = true;
  configs.push_back(c);
  c = Cfg();
  c.expert_input_scaling = true;
  c.activation = PIMOE_ACT_GELU;  // softmax top-2, renormalised, biases and LayerNorm on the scaled input
  c.expert_bias = true;
  c.pre_norm = true;
  configs.push_back(c);
  c = Cfg();
  c.expert_input_scaling = true;
  c.experts = 16;
  c.top_k = 3;
  c.sigmoid = true;
  c.router_bias = true;
  c.num_groups = 4;
  c.topk_groups = 2;
  c.routed_scaling = 2.5;
  configs.push_back(c);
  c = Cfg();
  c.expert_input_scaling = true;
  c.expert_choice = true;
  configs.push_back(c);
  return {{configs, {{1, 29}, {2, 16}, {1, 1}}, 1, {1, 2}, false}};
}

// Sparsemixer routing (Phi-3.5-MoE): eps 0.01 as Phi-3.5-MoE ships, a wide one so that the masks keep several
// experts, with temperature, capacity drops, scaling and the router's logit bias.
std::vector<ParityRun> SparsemixerRuns() {
  std::vector<Cfg> configs;
  Cfg c;
  c.sparsemixer_eps = 0.01;
  c.activation = PIMOE_ACT_SWIGLU;
  configs.push_back(c);
  c.sparsemixer_eps = 0.5;
  c.experts = 16;
  c.shared_width = 16;
  configs.push_back(c);
  c = Cfg();
  c.sparsemixer_eps = 0.2;
  c.temperature = 0.7;
  c.capacity_factor = 1.0;
  c.routed_scaling = 1.5;
  c.router_logit_bias = true;
  configs.push_back(c);
  return {{configs, {{1, 29}, {2, 16}, {1, 1}}, 1, {1, 2}, false}};
}

// ================================================================================================ what they must
// exercise

void NoExpectations(const ChainSummary &) {}

void ExpertChoiceExercised(const ChainSummary &summary) {
  EXPECT_GT(summary.tokens_without_expert, 0) << "no token went without an expert: the test would not show 0..E";
  EXPECT_GT(summary.callback_rows, 0);
}

void AdaptiveBiasExercised(const ChainSummary &summary) {
  EXPECT_TRUE(summary.bias_moved) << "the bias never moved: the chained checks were vacuous";
}

void DynamicCapacityExercised(const ChainSummary &summary) {
  EXPECT_TRUE(summary.ema_moved);
  EXPECT_TRUE(summary.capacities_uneven) << "the dynamic capacities never differed from the static ones";
  EXPECT_GT(summary.dropped, 0u);
}

void AttentionCombineExercised(const ChainSummary &summary) {
  EXPECT_GT(summary.dropped, 0u) << "no capacity drop happened: the combine was not tested with drops";
}

// g_callbacks is cleared before every instance.
void CallbackExpertsExercised(const ChainSummary &summary) {
  EXPECT_GT(summary.callback_rows, 0);
  EXPECT_GT(g_callbacks.calls.load(), 0);
  EXPECT_EQ(g_callbacks.wrong_thread.load(), 0) << "a callback ran outside the calling thread's pimoe_forward";
  EXPECT_EQ(g_callbacks.bad_args.load(), 0) << "a callback got no rows, a bad width or a non-zeroed output";
}

// ================================================================================================ parity

struct FeatureCase {
  const char *name;
  std::vector<ParityRun> (*runs)();
  void (*exercised)(const ChainSummary &);  // on the summary of the summarised runs, after them
};

void PrintTo(const FeatureCase &f, std::ostream *os) {
  *os << f.name;
}

const FeatureCase kFeatures[] = {
    {"ExpertChoice", ExpertChoiceRuns, ExpertChoiceExercised},
    {"GroupTree", GroupTreeRuns, NoExpectations},
    {"AttentionRouter", AttentionRouterRuns, NoExpectations},
    {"AdaptiveBias", AdaptiveBiasRuns, AdaptiveBiasExercised},
    {"DynamicCapacity", DynamicCapacityRuns, DynamicCapacityExercised},
    {"AttentionCombine", AttentionCombineRuns, AttentionCombineExercised},
    {"CallbackExperts", CallbackExpertsRuns, CallbackExpertsExercised},
    {"ExpertInputScaling", ExpertInputScalingRuns, NoExpectations},
    {"Sparsemixer", SparsemixerRuns, NoExpectations},
};

class FeatureParity : public ::testing::TestWithParam<FeatureCase> {};

TEST_P(FeatureParity, MatchesTheOracle) {
  g_callbacks.Clear();
  ChainSummary summary;
  for (const ParityRun &run : GetParam().runs()) {
    ASSERT_NO_FATAL_FAILURE(
        CheckAll(run.configs, run.shapes, run.calls, run.seeds, run.summarised ? &summary : nullptr));
  }
  GetParam().exercised(summary);
}

INSTANTIATE_TEST_SUITE_P(RoutingParity, FeatureParity, ::testing::ValuesIn(kFeatures),
                         [](const ::testing::TestParamInfo<FeatureCase> &p) { return std::string(p.param.name); });

TEST(RoutingParity, GroupLevelsOfOneLevelEqualNumGroups) {
  for (bool group_max : {false, true}) {
    Cfg a;
    a.experts = 16;
    a.top_k = 3;
    a.group_max = group_max;
    a.sigmoid = true;
    a.router_bias = true;
    a.group_levels = "4:2";
    Cfg b = a;
    b.group_levels = "";
    b.num_groups = 4;
    b.topk_groups = 2;
    ModelPtr ma, mb;
    ASSERT_NO_FATAL_FAILURE(Create(a, &ma));
    ASSERT_NO_FATAL_FAILURE(Create(b, &mb));
    const std::vector<float> x = RandomInput(static_cast<size_t>(40 * a.hidden), 17);
    CallResult ra, rb;
    PIMOE_ASSERT_OK(LibRun(ma.get(), x, 1, 40, &ra));
    PIMOE_ASSERT_OK(LibRun(mb.get(), x, 1, 40, &rb));
    EXPECT_TRUE(SameRun(ra, rb)) << "group_levels \"4:2\" must equal num_groups 4 / topk_groups 2";
  }
}

// Every tensor of a layer with the routing features starts from the header's initialisation (SEED): the attention
// router's and the combine's weights as linear weights (fan_in H, nh*dh for router.attention.o.weight), the selection
// bias seeded, router.load_ema at 1/E (exactly: CheckChain); callback experts have no tensors.
TEST(RoutingParity, NewTensorsFollowTheHeadersInitialisation) {
  std::vector<Cfg> configs;
  Cfg c;
  c.attention_heads = 3;
  c.attention_head_dim = 8;
  c.adaptive_bias_rate = 0.01;
  c.capacity_factor = 1.0;
  c.dynamic_capacity = true;
  c.combine_dim = 6;
  c.callback_experts = {2, 5};
  c.shared_width = 16;
  c.shared_gate = true;
  c.seed = 1234;
  configs.push_back(c);
  c = Cfg();
  c.expert_choice = true;
  c.attention_heads = 1;
  c.combine_dim = 4;
  c.expert_bias = true;
  c.pre_norm = true;
  c.seed = 77;
  configs.push_back(c);
  for (const Cfg &cfg : configs) {
    SCOPED_TRACE(cfg.Describe());
    ModelPtr m;
    po::Weights w;
    ASSERT_NO_FATAL_FAILURE(CreateAndLoad(cfg, &m, &w));
    std::vector<po::ExpertSpec> specs(static_cast<size_t>(cfg.experts),
                                      po::ExpertSpec{cfg.activation, cfg.intermediate, cfg.pre_norm});
    const po::Hyper hp = cfg.Hyper();
    const std::vector<po::TensorInfo> names = po::ExpectedTensors(cfg.hidden, specs, hp);
    const std::vector<std::vector<float>> expected =
        po::InitAllTensors(static_cast<uint64_t>(cfg.seed), cfg.hidden, specs, hp);
    ASSERT_EQ(names.size(), expected.size());
    ASSERT_EQ(pimoe_tensor_count(m.get()), static_cast<int64_t>(names.size()));
    for (size_t i = 0; i < names.size(); ++i) {
      EXPECT_STREQ(pimoe_tensor_name(m.get(), static_cast<int64_t>(i)), names[i].name.c_str());
      // Within 1e-6 (as test_parity): the header fixes the generator and the range, not the last bit of the map
      // to U(-b, b).
      const std::vector<float> got = ReadTensor(m.get(), names[i].name.c_str());
      ASSERT_EQ(got.size(), expected[i].size()) << names[i].name;
      size_t bad = 0;
      while (bad < got.size() && std::fabs(got[bad] - expected[i][bad]) <= 1e-6f) ++bad;
      EXPECT_EQ(bad, got.size()) << "tensor " << names[i].name << " differs from its initialisation at element " << bad;
    }
  }
}

// pimoe_forward's expert_ids / expert_weights and pimoe_forward_routing report the same routing; every part of
// pimoe_routing is optional; probabilities are the scores before any bias or group mask.
TEST(RoutingParity, IntrospectionMatchesForwardAndOracle) {
  std::vector<Cfg> configs;
  Cfg c;
  configs.push_back(c);  // the plain softmax top-k fast path
  c.capacity_factor = 0.75;
  configs.push_back(c);
  c = Cfg();
  c.sigmoid = true;
  c.adaptive_bias_rate = 0.1;
  c.num_groups = 4;
  c.topk_groups = 2;
  configs.push_back(c);
  c = Cfg();
  c.expert_choice = true;
  configs.push_back(c);
  c = Cfg();
  c.combine_dim = 8;
  c.capacity_factor = 1.0;
  configs.push_back(c);
  for (const Cfg &cfg : configs) {
    SCOPED_TRACE(cfg.Describe());
    ModelPtr a, b;
    po::Weights w;
    ASSERT_NO_FATAL_FAILURE(CreateAndLoad(cfg, &a, &w));
    ASSERT_NO_FATAL_FAILURE(Create(cfg, &b));
    const int64_t T = 24, S = pimoe_model_routing_slots(a.get());
    po::Result r;
    const std::vector<float> x = DrawInput(w, cfg.Hyper(), 2, 12, 5, &r);
    CallResult full;
    PIMOE_ASSERT_OK(LibRun(a.get(), x, 2, 12, &full));
    EXPECT_EQ(Compare(full, r, cfg.hidden, cfg.experts), "");
    for (int64_t t = 0; t < T; ++t) {
      double sum = 0.0;
      for (int32_t e = 0; e < cfg.experts; ++e) {
        const float p = full.probs[static_cast<size_t>(t * cfg.experts + e)];
        EXPECT_TRUE(p >= 0.0f && p <= 1.0f) << "token " << t << " expert " << e << ": " << p;
        sum += p;
      }
      if (!cfg.sigmoid) {
        EXPECT_NEAR(sum, 1.0, 1e-5) << "softmax probabilities of token " << t;
      }
    }
    // pimoe_forward on an identical model (same weights, same state): the same output, ids and weights.
    std::vector<float> y(x.size(), std::nanf(""));
    std::vector<int32_t> ids(static_cast<size_t>(T * S), -7);
    std::vector<float> wt(ids.size(), std::nanf(""));
    SetInForward(true);
    PIMOE_ASSERT_OK(
        pimoe_forward(b.get(), x.data(), x.size(), 2, 12, y.data(), y.size(), ids.data(), wt.data(), ids.size()));
    SetInForward(false);
    EXPECT_TRUE(SameOrParity(y, full.output));
    EXPECT_EQ(ids, full.ids);
    EXPECT_TRUE(SameOrParity(wt, full.weights));
    // Dropped flags agree with the weights: a dropped slot reports its expert and weight 0.
    for (size_t i = 0; i < full.ids.size(); ++i) {
      ASSERT_TRUE(full.dropped[i] == 0 || full.dropped[i] == 1) << "slot " << i;
      if (full.dropped[i]) {
        EXPECT_GE(full.ids[i], 0);
        EXPECT_EQ(full.weights[i], 0.0f);
      }
    }
    // Optional parts, on fresh models (the stateful layers would otherwise have moved on).
    ModelPtr m1, m2, m3;
    ASSERT_NO_FATAL_FAILURE(Create(cfg, &m1));
    ASSERT_NO_FATAL_FAILURE(Create(cfg, &m2));
    ASSERT_NO_FATAL_FAILURE(Create(cfg, &m3));
    std::vector<float> y1(x.size()), probs(static_cast<size_t>(T * cfg.experts), std::nanf(""));
    PIMOE_ASSERT_OK(pimoe_forward_routing(m1.get(), x.data(), x.size(), 2, 12, y1.data(), y1.size(), nullptr));
    EXPECT_TRUE(SameOrParity(y1, full.output)) << "routing == NULL";
    pimoe_routing only_probs;
    std::memset(&only_probs, 0, sizeof only_probs);
    only_probs.struct_size = sizeof only_probs;
    only_probs.slot_count = 12345;  // ignored: no slot output wanted
    only_probs.probabilities = probs.data();
    only_probs.probability_count = probs.size();
    PIMOE_ASSERT_OK(pimoe_forward_routing(m2.get(), x.data(), x.size(), 2, 12, y1.data(), y1.size(), &only_probs));
    EXPECT_TRUE(SameBits(probs, full.probs));
    EXPECT_TRUE(SameBits(y1, full.output));
    std::vector<uint8_t> dropped(full.ids.size(), 0xab);
    pimoe_routing only_dropped;
    std::memset(&only_dropped, 0, sizeof only_dropped);
    only_dropped.struct_size = sizeof only_dropped;
    only_dropped.dropped = dropped.data();
    only_dropped.slot_count = dropped.size();
    only_dropped.probability_count = 999;  // ignored: no probabilities wanted
    PIMOE_ASSERT_OK(pimoe_forward_routing(m3.get(), x.data(), x.size(), 2, 12, y1.data(), y1.size(), &only_dropped));
    EXPECT_EQ(dropped, full.dropped);
  }
}

}  // namespace
