// SPDX-License-Identifier: MIT
// test_parity: the statistics over calls (one instance a router setting), and the router extensions of pimoe.h:
// sigmoid scoring, selection bias, routed scaling, group-limited routing, the shared expert, DeepSeek-V3- and
// Qwen2-MoE-like layers, capacity, statistics and determinism with them. See parity.h.
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

// ================================================================================================ statistics

struct StatsCase {
  double cf, tau, alpha;
  bool renorm;
};

void PrintTo(const StatsCase &c, std::ostream *os) {
  *os << "cf=" << c.cf << " tau=" << c.tau << " alpha=" << c.alpha << " renorm=" << c.renorm;
}

const StatsCase kStatsCases[] = {StatsCase{0.0, 1.0, 1.0, true}, StatsCase{1.0, 2.5, 0.01, false},
                                 StatsCase{0.5, 0.5, 1.0, true}};

class LoadsDropsLossesAndConfidenceOverCalls : public ::testing::TestWithParam<StatsCase> {};

TEST_P(LoadsDropsLossesAndConfidenceOverCalls, Case) {
  const StatsCase &c = GetParam();
  Layer l;
  l.experts = 6;
  l.top_k = 2;
  l.capacity_factor = c.cf;
  l.temperature = c.tau;
  l.aux_loss_coef = c.alpha;
  l.renormalize = c.renorm;
  l.seed = 150;
  l.threads = 2;
  SCOPED_TRACE(l.Describe());
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  const po::Hyper hp = l.Hyper();
  StatsExpectation ex;
  ex.loads.assign(static_cast<size_t>(l.experts), 0);
  uint64_t seed = 1900;
  ASSERT_NO_FATAL_FAILURE(CheckStatsOverCalls(model.get(), w, hp, &seed, &ex));
  if (c.cf == 0.5) {
    EXPECT_GT(ex.dropped, 0u);
  }
  // A reset clears everything; the next call starts the counts afresh.
  PIMOE_ASSERT_OK(pimoe_stats_reset(model.get()));
  std::vector<uint64_t> loads(static_cast<size_t>(l.experts), 1);
  PIMOE_ASSERT_OK(pimoe_stats_expert_loads(model.get(), loads.data(), loads.size()));
  EXPECT_EQ(loads, std::vector<uint64_t>(static_cast<size_t>(l.experts), 0));
  StatsExpectation fresh;
  fresh.loads.assign(static_cast<size_t>(l.experts), 0);
  const std::vector<float> x = TieFreeInput(w, hp, 10, seed++);
  CheckSummary s;
  ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, hp, 2, 5, x, &s));
  fresh.Add(s.oracle);
  CheckStats(model.get(), fresh);
}

INSTANTIATE_TEST_SUITE_P(ParityStats, LoadsDropsLossesAndConfidenceOverCalls, ::testing::ValuesIn(kStatsCases),
                         [](const ::testing::TestParamInfo<StatsCase> &p) {
                           std::ostringstream s;
                           s << "cf" << p.param.cf << "_tau" << p.param.tau << "_alpha" << p.param.alpha
                             << (p.param.renorm ? "_renorm" : "_plain");
                           return ParamName(s.str());
                         });

// ================================================================================================ router extensions
// Sigmoid scoring, selection bias, routed scaling, group-limited routing and the shared expert (pimoe.h).

class SigmoidScoringWithAndWithoutSelectionBias : public ::testing::TestWithParam<std::tuple<bool, bool, double>> {};

TEST_P(SigmoidScoringWithAndWithoutSelectionBias, Case) {
  const bool bias = std::get<0>(GetParam());
  const bool renorm = std::get<1>(GetParam());
  const double tau = std::get<2>(GetParam());
  Layer l;
  l.experts = 8;
  l.top_k = 3;
  l.sigmoid = true;
  l.router_bias = bias;
  l.renormalize = renorm;
  l.temperature = tau;
  l.threads = 2;
  l.seed = 300 + (bias ? 1 : 0);
  CheckLayer(l, 3, 11, 3001);
  CheckLayer(l, 1, 1, 3002);
}

INSTANTIATE_TEST_SUITE_P(ParityRouterExt, SigmoidScoringWithAndWithoutSelectionBias,
                         ::testing::Combine(::testing::Bool(), ::testing::Values(true, false),
                                            ::testing::Values(1.0, 0.7)),
                         [](const ::testing::TestParamInfo<std::tuple<bool, bool, double>> &p) {
                           std::ostringstream s;
                           s << (std::get<0>(p.param) ? "bias" : "nobias")
                             << (std::get<1>(p.param) ? "_renorm" : "_plain") << "_tau" << std::get<2>(p.param);
                           return ParamName(s.str());
                         });

TEST(ParityRouterExt, SelectionBiasChangesTheChosenExperts) {
  // The selection bias must change which experts are chosen (weights from the unbiased scores), else the test is void.
  Layer l;
  l.experts = 8;
  l.top_k = 3;
  l.sigmoid = true;
  l.router_bias = true;
  l.seed = 301;
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  po::Hyper unbiased = l.Hyper();
  unbiased.router_bias = false;
  const std::vector<float> x = RandomInput(static_cast<size_t>(64 * l.hidden), 3003);
  EXPECT_GT(RoutingDifferences(w, l.Hyper(), unbiased, x, 64), 4);
}

class RoutedScalingFactor : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(RoutedScalingFactor, Case) {
  const bool sigmoid = std::get<0>(GetParam());
  const bool renorm = std::get<1>(GetParam());
  Layer l;
  l.experts = 6;
  l.top_k = 2;
  l.sigmoid = sigmoid;
  l.renormalize = renorm;
  l.routed_scaling = 2.5;
  l.seed = 310;
  CheckSummary s;
  CheckLayer(l, 2, 9, 3101, &s);
  // The reported weights carry the factor: renormalised ones sum to it.
  if (renorm) {
    for (int64_t t = 0; t < s.tokens; ++t) {
      EXPECT_NEAR(s.oracle.weights[static_cast<size_t>(2 * t)] + s.oracle.weights[static_cast<size_t>(2 * t + 1)], 2.5,
                  1e-9);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ParityRouterExt, RoutedScalingFactor,
                         ::testing::Combine(::testing::Bool(), ::testing::Values(true, false)),
                         [](const ::testing::TestParamInfo<std::tuple<bool, bool>> &p) {
                           return std::string(std::get<0>(p.param) ? "sigmoid" : "softmax") +
                                  (std::get<1>(p.param) ? "_renorm" : "_plain");
                         });

struct GroupCase {
  int32_t experts, groups, kept, top_k;
  bool group_max, sigmoid, bias;
};
const GroupCase kGroupCases[] = {
    {16, 1, 1, 4, false, false, false}, {16, 1, 1, 4, false, true, true},  {16, 2, 1, 4, false, false, false},
    {16, 4, 2, 4, false, true, true},   {16, 4, 2, 8, true, true, false},  {16, 8, 3, 5, false, true, true},
    {16, 8, 3, 6, true, false, false},  {16, 16, 4, 4, false, true, true}, {16, 16, 5, 3, true, true, true},
    {12, 3, 3, 4, false, true, true},   {32, 8, 4, 8, false, true, true},  {32, 8, 4, 16, true, false, true},
};

void PrintTo(const GroupCase &c, std::ostream *os) {
  *os << "E=" << c.experts << " groups " << c.groups << "/" << c.kept << " k=" << c.top_k << (c.group_max ? " max" : "")
      << (c.sigmoid ? " sigmoid" : "") << (c.bias ? " bias" : "");
}

class GroupLimitedRouting : public ::testing::TestWithParam<GroupCase> {};

TEST_P(GroupLimitedRouting, Case) {
  const GroupCase &c = GetParam();
  Layer l;
  l.experts = c.experts;
  l.num_groups = c.groups;
  l.topk_groups = c.kept;
  l.top_k = c.top_k;
  l.group_max = c.group_max;
  l.sigmoid = c.sigmoid;
  l.router_bias = c.bias;
  l.threads = 2;
  l.seed = 320 + c.groups;
  CheckLayer(l, 4, 8, 3201);
  CheckLayer(l, 1, 1, 3202);
}

INSTANTIATE_TEST_SUITE_P(ParityRouterExt, GroupLimitedRouting, ::testing::ValuesIn(kGroupCases),
                         [](const ::testing::TestParamInfo<GroupCase> &p) {
                           const GroupCase &c = p.param;
                           return "E" + std::to_string(c.experts) + "_groups" + std::to_string(c.groups) + "_keep" +
                                  std::to_string(c.kept) + "_k" + std::to_string(c.top_k) +
                                  (c.group_max ? "_max" : "") + (c.sigmoid ? "_sigmoid" : "") +
                                  (c.bias ? "_bias" : "") + "_" + std::to_string(p.index);
                         });

// Group limiting must change the routing of some tokens (with both group scores).
class GroupLimitingChangesTheRouting : public ::testing::TestWithParam<bool> {};

TEST_P(GroupLimitingChangesTheRouting, Case) {
  const bool group_max = GetParam();
  Layer l;
  l.experts = 16;
  l.num_groups = 4;
  l.topk_groups = 1;
  l.top_k = 4;
  l.group_max = group_max;
  l.sigmoid = true;
  l.seed = 324;
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  po::Hyper flat = l.Hyper();
  flat.num_groups = 1;
  const std::vector<float> x = RandomInput(static_cast<size_t>(64 * l.hidden), 3203);
  EXPECT_GT(RoutingDifferences(w, l.Hyper(), flat, x, 64), 8);
  CheckLayer(l, 8, 8, 3204);
}

INSTANTIATE_TEST_SUITE_P(ParityRouterExt, GroupLimitingChangesTheRouting, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool> &p) {
                           return std::string(p.param ? "max" : "top2_sum");
                         });

// top2_sum and max rank groups differently on some tokens.
TEST(ParityRouterExt, Top2SumAndMaxRankGroupsDifferently) {
  Layer l;
  l.experts = 16;
  l.num_groups = 4;
  l.topk_groups = 2;
  l.top_k = 2;
  l.seed = 325;
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  po::Hyper by_max = l.Hyper();
  by_max.group_max = true;
  const std::vector<float> x = RandomInput(static_cast<size_t>(256 * l.hidden), 3205);
  EXPECT_GT(RoutingDifferences(w, l.Hyper(), by_max, x, 256), 0);
}

class SharedExpertWithAndWithoutGate : public ::testing::TestWithParam<std::tuple<bool, pimoe_activation, int>> {};

TEST_P(SharedExpertWithAndWithoutGate, Case) {
  const bool gate = std::get<0>(GetParam());
  const pimoe_activation act = std::get<1>(GetParam());
  const int threads = std::get<2>(GetParam());
  Layer l;
  l.activation = act;
  l.shared_width = 40;
  l.shared_gate = gate;
  l.expert_bias = act == PIMOE_ACT_GELU;
  l.pre_norm = act == PIMOE_ACT_GELU;
  l.threads = threads;
  l.seed = 330;
  CheckLayer(l, 3, 13, 3301);
  CheckLayer(l, 1, 1, 3302);
  CheckLayer(l, 2, 50, 3303);  // several row tiles of the shared expert
}

INSTANTIATE_TEST_SUITE_P(ParityRouterExt, SharedExpertWithAndWithoutGate,
                         ::testing::Combine(::testing::Bool(), ::testing::Values(PIMOE_ACT_GELU, PIMOE_ACT_SWIGLU),
                                            ::testing::Values(1, 2)),
                         [](const ::testing::TestParamInfo<std::tuple<bool, pimoe_activation, int>> &p) {
                           return std::string(std::get<0>(p.param) ? "gate" : "nogate") + "_" +
                                  ActivationName(std::get<1>(p.param)) + "_threads" +
                                  std::to_string(std::get<2>(p.param));
                         });

// Wide shared expert and odd widths (partial panels).
class SharedExpertWidths : public ::testing::TestWithParam<int64_t> {};

TEST_P(SharedExpertWidths, Case) {
  const int64_t width = GetParam();
  Layer l;
  l.shared_width = width;
  l.shared_gate = true;
  l.seed = 331;
  CheckLayer(l, 2, 5, 3304);
}

INSTANTIATE_TEST_SUITE_P(ParityRouterExt, SharedExpertWidths, ::testing::Values(int64_t{1}, int64_t{17}, int64_t{300}),
                         [](const ::testing::TestParamInfo<int64_t> &p) { return "width" + std::to_string(p.param); });

// The shared expert contributes: the output with it differs from the output without it.
TEST(ParityRouterExt, SharedExpertContributes) {
  Layer l;
  l.shared_width = 32;
  l.shared_gate = true;
  l.seed = 332;
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  po::Hyper none = l.Hyper();
  none.shared_width = 0;
  const std::vector<float> x = RandomInput(static_cast<size_t>(4 * l.hidden), 3305);
  const po::Result with = po::Forward(w, l.Hyper(), x.data(), 4), without = po::Forward(w, none, x.data(), 4);
  double diff = 0.0;
  for (size_t i = 0; i < with.output.size(); ++i) diff = std::max(diff, std::fabs(with.output[i] - without.output[i]));
  EXPECT_GT(diff, 1e-3);
}

class EveryFeatureOnBothCpuGemms : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryFeatureOnBothCpuGemms, Case) {
  const std::string &gemm = GetParam();
  Layer l;
  l.experts = 16;
  l.top_k = 4;
  l.activation = PIMOE_ACT_SWIGLU;
  l.sigmoid = true;
  l.router_bias = true;
  l.num_groups = 4;
  l.topk_groups = 2;
  l.routed_scaling = 1.5;
  l.shared_width = 48;
  l.shared_gate = true;
  l.cpu_gemm = gemm;
  l.threads = 2;
  l.seed = 340;
  CheckLayer(l, 2, 21, 3401);
  CheckLayer(l, 1, 1, 3402);
}

INSTANTIATE_TEST_SUITE_P(ParityRouterExt, EveryFeatureOnBothCpuGemms, ::testing::ValuesIn(CpuGemms()),
                         [](const ::testing::TestParamInfo<std::string> &p) { return p.param; });

TEST(ParityRouterExt, DeepSeekV3LikeLayer) {
  Layer l = DeepSeekV3Like();
  CheckLayer(l, 4, 16, 3501);
  CheckLayer(l, 1, 1, 3502);
  CheckLayer(l, 1, 37, 3503);
  l.threads = 1;
  CheckLayer(l, 2, 9, 3504);
}

TEST(ParityRouterExt, Qwen2MoeLikeLayer) {
  Layer l = Qwen2MoeLike();
  CheckLayer(l, 4, 16, 3601);
  CheckLayer(l, 1, 1, 3602);
  l.threads = 1;
  CheckLayer(l, 3, 7, 3603);
}

class CapacityWithTheNewFeatures : public ::testing::TestWithParam<double> {};

TEST_P(CapacityWithTheNewFeatures, Case) {
  const double cf = GetParam();
  Layer l = DeepSeekV3Like();
  l.capacity_factor = cf;
  CheckSummary s;
  CheckLayer(l, 2, 24, 3701, &s);
  if (cf == 0.5) {
    EXPECT_GT(s.oracle.dropped_count, 0u);
  }
  Layer q = Qwen2MoeLike();
  q.capacity_factor = cf;
  CheckLayer(q, 2, 24, 3702, &s);
  if (cf == 0.5) {
    EXPECT_GT(s.oracle.dropped_count, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(ParityRouterExt, CapacityWithTheNewFeatures, ::testing::Values(0.5, 1.0, 1.25),
                         [](const ::testing::TestParamInfo<double> &p) {
                           std::ostringstream s;
                           s << "cf" << p.param;
                           return ParamName(s.str());
                         });

class StatsWithSigmoidScoresAndGroups : public ::testing::TestWithParam<bool> {};

TEST_P(StatsWithSigmoidScoresAndGroups, Case) {
  const bool sigmoid = GetParam();
  Layer l;
  l.experts = 8;
  l.top_k = 2;
  l.sigmoid = sigmoid;
  l.router_bias = true;
  l.num_groups = 4;
  l.topk_groups = 2;
  l.routed_scaling = 3.0;
  l.capacity_factor = 1.0;
  l.aux_loss_coef = 0.01;
  l.shared_width = 16;
  l.seed = 380;
  l.threads = 2;
  SCOPED_TRACE(l.Describe());
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  const po::Hyper hp = l.Hyper();
  StatsExpectation ex;
  ex.loads.assign(static_cast<size_t>(l.experts), 0);
  uint64_t seed = 3800;
  ASSERT_NO_FATAL_FAILURE(CheckStatsOverCalls(model.get(), w, hp, &seed, &ex));
}

INSTANTIATE_TEST_SUITE_P(ParityRouterExt, StatsWithSigmoidScoresAndGroups, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool> &p) {
                           return std::string(p.param ? "sigmoid" : "softmax");
                         });

TEST(ParityRouterExt, DeterministicModeWithTheNewFeatures) {
  Layer l = DeepSeekV3Like();
  l.shared_gate = true;
  l.deterministic = true;
  ModelPtr one, two;
  l.threads = 1;
  ASSERT_NO_FATAL_FAILURE(Create(l, &one));
  l.threads = 2;
  ASSERT_NO_FATAL_FAILURE(Create(l, &two));
  const int64_t tokens = 40;
  const std::vector<float> x = RandomInput(static_cast<size_t>(tokens * l.hidden), 3901);
  LibOutput batch1, batch2;
  ASSERT_NO_FATAL_FAILURE(LibForward(one.get(), x, 1, tokens, l.hidden, l.top_k, &batch1));
  ASSERT_NO_FATAL_FAILURE(LibForward(two.get(), x, 1, tokens, l.hidden, l.top_k, &batch2));
  ExpectSameBits(batch1.output.data(), batch2.output.data(), batch1.output.size(), "1 vs 2 threads");
  for (int64_t t : {0, 17, 39}) {
    const std::vector<float> row(x.begin() + t * l.hidden, x.begin() + (t + 1) * l.hidden);
    LibOutput alone;
    ASSERT_NO_FATAL_FAILURE(LibForward(two.get(), row, 1, 1, l.hidden, l.top_k, &alone));
    ExpectSameBits(alone.output.data(), batch2.output.data() + t * l.hidden, static_cast<size_t>(l.hidden),
                   "token " + std::to_string(t) + " alone vs in the batch");
  }
}

}  // namespace
