// SPDX-License-Identifier: MIT
// test_parity: the features of gpt-oss's MoE block, each against the oracle: the clamped SwiGLU (SWIGLU_OAI, its
// alpha and limit), biases on gated experts' gate, up and down projections (EXPERT_BIAS), the router's logit bias
// (ROUTER_LOGIT_BIAS) alone and with every other router option, and the whole block (threads 1 and 2, tokens 1, 7
// and 256, compact storage). See parity.h. The GPU backends refuse the expert features (checked, not skipped).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "parity.h"

namespace {

using namespace pimoe_parity;

// How many of the oracle's gate and up values of the layer's routed experts, on input x, the limit clamps: a test of
// the clamp is meaningful only if it clamps.
struct ClampCount {
  int64_t gate = 0, up = 0, total = 0;
};
ClampCount CountClamped(const po::Weights &w, const po::Hyper &hp, const std::vector<float> &x, int64_t tokens) {
  ClampCount c;
  const size_t H = static_cast<size_t>(w.hidden);
  for (int64_t t = 0; t < tokens; ++t) {
    const float *xt = x.data() + static_cast<size_t>(t) * H;
    for (const po::Expert &e : w.experts) {
      if (e.spec.activation != PIMOE_ACT_SWIGLU_OAI) continue;
      for (int64_t i = 0; i < e.spec.intermediate; ++i) {
        double g = e.gate_bias.empty() ? 0.0 : e.gate_bias[static_cast<size_t>(i)];
        double u = e.up_bias.empty() ? 0.0 : e.up_bias[static_cast<size_t>(i)];
        for (size_t h = 0; h < H; ++h) {
          g += static_cast<double>(e.gate_weight[static_cast<size_t>(i) * H + h]) * xt[h];
          u += static_cast<double>(e.up_weight[static_cast<size_t>(i) * H + h]) * xt[h];
        }
        c.gate += g > hp.swiglu_limit;
        c.up += std::fabs(u) > hp.swiglu_limit;
        ++c.total;
      }
    }
  }
  return c;
}

// ================================================================================================ the activation

TEST(ParityGptOss, GluFormulas) {
  // The oracle's gated activations, by hand: SwiGLU silu(g) * u; SWIGLU_OAI with its min, clamp and +1.
  EXPECT_DOUBLE_EQ(po::Glu(PIMOE_ACT_SWIGLU, 2.0, 3.0, 1.702, 7.0), po::Silu(2.0) * 3.0);
  EXPECT_DOUBLE_EQ(po::Glu(PIMOE_ACT_SWIGLU_OAI, 2.0, 3.0, 1.702, 7.0), 4.0 * 2.0 / (1.0 + std::exp(-1.702 * 2.0)));
  EXPECT_DOUBLE_EQ(po::Glu(PIMOE_ACT_SWIGLU_OAI, 9.0, 3.0, 1.702, 7.0), 4.0 * 7.0 / (1.0 + std::exp(-1.702 * 7.0)));
  EXPECT_DOUBLE_EQ(po::Glu(PIMOE_ACT_SWIGLU_OAI, -9.0, 3.0, 1.702, 7.0),
                   4.0 * -9.0 / (1.0 + std::exp(1.702 * 9.0)));  // no lower clamp on the gate
  EXPECT_DOUBLE_EQ(po::Glu(PIMOE_ACT_SWIGLU_OAI, 1.0, -9.0, 1.702, 7.0), -6.0 / (1.0 + std::exp(-1.702)));
  EXPECT_DOUBLE_EQ(po::Glu(PIMOE_ACT_SWIGLU_OAI, 1.0, 9.0, 0.5, 2.0), 3.0 / (1.0 + std::exp(-0.5)));
}

struct OaiCase {
  double alpha, limit, scale;
  bool bias, pre_norm;
};

class SwigluOaiAgainstTheOracle : public ::testing::TestWithParam<OaiCase> {};

TEST_P(SwigluOaiAgainstTheOracle, Case) {
  const OaiCase c = GetParam();
  Layer l;
  l.hidden = 24;
  l.intermediate = 40;
  l.experts = 6;
  l.top_k = 2;
  l.activation = PIMOE_ACT_SWIGLU_OAI;
  l.swiglu_alpha = c.alpha;
  l.swiglu_limit = c.limit;
  l.expert_bias = c.bias;
  l.pre_norm = c.pre_norm;
  l.seed = 2000 + static_cast<int64_t>(10 * c.alpha + c.scale);
  SCOPED_TRACE(l.Describe() + " input scale " + std::to_string(c.scale));
  if (RefusedByBackend(l)) return;
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  const int64_t tokens = 21;
  const std::vector<float> x = RandomInput(static_cast<size_t>(tokens * l.hidden), 2100, c.scale);
  const ClampCount clamped = CountClamped(w, l.Hyper(), x, tokens);
  if (c.limit >= 1e6) {
    EXPECT_EQ(clamped.gate + clamped.up, 0);
  } else if (c.limit < 1.0 || c.scale > 1.0) {  // these cases are there to clamp: both clamps must bite
    EXPECT_GT(clamped.gate, 0) << "the gate limit never applies";
    EXPECT_GT(clamped.up, 0) << "the up clamp never applies";
    EXPECT_LT(clamped.gate + clamped.up, clamped.total) << "everything clamped";
  }
  CheckSummary s;
  ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, l.Hyper(), 3, 7, x, &s));
}

INSTANTIATE_TEST_SUITE_P(ParityGptOss, SwigluOaiAgainstTheOracle,
                         ::testing::Values(OaiCase{1.702, 7.0, 1.0, true, false},  // gpt-oss's constants
                                           OaiCase{1.702, 7.0, 1.0, false, false},
                                           OaiCase{1.702, 7.0, 12.0, true, false},  // large inputs: clamped
                                           OaiCase{1.702, 0.3, 1.0, true, true},    // a small limit: clamped
                                           OaiCase{0.25, 0.3, 1.0, false, true},
                                           OaiCase{4.0, 1e6, 3.0, true, false}),  // no clamp at all
                         [](const ::testing::TestParamInfo<OaiCase> &p) {
                           std::ostringstream s;
                           s << "a" << p.param.alpha << "_L" << p.param.limit << "_x" << p.param.scale
                             << (p.param.bias ? "_bias" : "") << (p.param.pre_norm ? "_norm" : "");
                           return ParamName(s.str());
                         });

// ================================================================================================ gated biases

// SwiGLU and SWIGLU_OAI experts with gate, up and down biases, in every thread count and call size, with a shared
// expert (which has none) and on each CPU GEMM.
class GatedExpertBiases : public ::testing::TestWithParam<std::tuple<pimoe_activation, int, int64_t, std::string>> {};

TEST_P(GatedExpertBiases, Case) {
  Layer l;
  l.hidden = 20;
  l.intermediate = 36;
  l.experts = 5;
  l.top_k = 2;
  l.activation = std::get<0>(GetParam());
  l.threads = std::get<1>(GetParam());
  l.cpu_gemm = std::get<3>(GetParam());
  l.expert_bias = true;
  l.shared_width = std::get<2>(GetParam()) == 7 ? 12 : 0;
  l.seed = 2200 + l.activation;
  const int64_t tokens = std::get<2>(GetParam());
  if (RefusedByBackend(l)) return;
  SCOPED_TRACE(l.Describe());
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  for (const po::Expert &e : w.experts) {  // the three biases are there and not zero
    ASSERT_EQ(e.gate_bias.size(), static_cast<size_t>(l.intermediate));
    ASSERT_EQ(e.up_bias.size(), static_cast<size_t>(l.intermediate));
    ASSERT_EQ(e.down_bias.size(), static_cast<size_t>(l.hidden));
  }
  const std::vector<float> x =
      RandomInput(static_cast<size_t>(tokens * l.hidden), 2300 + static_cast<uint64_t>(tokens));
  CheckSummary s;
  ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, l.Hyper(), 1, tokens, x, &s));
  // The gate and up biases matter: the oracle without them gives another output.
  po::Weights unbiased = w;
  for (po::Expert &e : unbiased.experts) {
    e.gate_bias.clear();
    e.up_bias.clear();
  }
  const po::Result a = po::Forward(w, l.Hyper(), x.data(), tokens);
  const po::Result b = po::Forward(unbiased, l.Hyper(), x.data(), tokens);
  double diff = 0.0;
  for (size_t i = 0; i < a.output.size(); ++i) diff = std::max(diff, std::fabs(a.output[i] - b.output[i]));
  EXPECT_GT(diff, 1e-3) << "the gate and up biases change nothing: the test would not see them ignored";
}

std::vector<std::string> AllCpuGemms() {
  return std::string(Backend()) == "cpu" ? CpuGemms() : std::vector<std::string>{"packed"};
}

INSTANTIATE_TEST_SUITE_P(
    ParityGptOss, GatedExpertBiases,
    ::testing::Combine(::testing::Values(PIMOE_ACT_SWIGLU, PIMOE_ACT_SWIGLU_OAI), ::testing::Values(1, 2),
                       ::testing::Values<int64_t>(1, 7, 256), ::testing::ValuesIn(AllCpuGemms())),
    [](const ::testing::TestParamInfo<std::tuple<pimoe_activation, int, int64_t, std::string>> &p) {
      return ActivationName(std::get<0>(p.param)) + "_t" + std::to_string(std::get<1>(p.param)) + "_T" +
             std::to_string(std::get<2>(p.param)) + "_" + std::get<3>(p.param);
    });

// ================================================================================================ router logit bias

struct RouterCase {
  const char *name;
  void (*apply)(Layer *);
};

const RouterCase kRouterCases[] = {
    {"softmax_renormalized", [](Layer *) {}},
    {"softmax_raw", [](Layer *l) { l->renormalize = false; }},
    {"temperature", [](Layer *l) { l->temperature = 0.4; }},
    {"sigmoid_selection_bias_groups",
     [](Layer *l) {
       l->sigmoid = true;
       l->router_bias = true;  // the selection bias on top of the logit bias
       l->experts = 8;
       l->num_groups = 4;
       l->topk_groups = 2;
       l->routed_scaling = 2.5;
     }},
    {"capacity", [](Layer *l) { l->capacity_factor = 0.75; }},
    {"top1", [](Layer *l) { l->top_k = 1; }},
    {"shared_expert",
     [](Layer *l) {
       l->shared_width = 16;
       l->shared_gate = true;
     }},
};

class RouterLogitBias : public ::testing::TestWithParam<RouterCase> {};

TEST_P(RouterLogitBias, Case) {
  Layer l;
  l.hidden = 16;
  l.experts = 6;
  l.top_k = 2;
  l.intermediate = 20;
  l.activation = PIMOE_ACT_SILU;
  l.router_logit_bias = true;
  l.seed = 2400;
  GetParam().apply(&l);
  SCOPED_TRACE(l.Describe());
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  ASSERT_EQ(w.router_logit_bias.size(), static_cast<size_t>(l.experts));
  // The seeded bias is U(-1/sqrt(H), 1/sqrt(H)); a larger one makes it decide more tokens. Not expressible through
  // options, so the test reads the bias the model has and checks that it moves the routing as it is.
  const po::Hyper hp = l.Hyper();
  const int64_t tokens = 64;
  const std::vector<float> x = l.capacity_factor > 0.0 ? TieFreeInput(w, hp, tokens, 2401)
                                                       : RandomInput(static_cast<size_t>(tokens * l.hidden), 2401);
  po::Hyper without = hp;
  without.router_logit_bias = false;
  EXPECT_GT(RoutingDifferences(w, hp, without, x, tokens), 0) << "the logit bias changes no token's experts";
  CheckSummary s;
  ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, hp, 4, 16, x, &s));
  // z_loss is computed on the biased logits.
  pimoe_stats_snapshot stats{};
  stats.struct_size = sizeof stats;
  PIMOE_ASSERT_OK(pimoe_stats(model.get(), &stats));
  ExpectRel(stats.z_loss, s.oracle.z_loss, 1e-5, 1e-9, "z_loss");
}

INSTANTIATE_TEST_SUITE_P(ParityGptOss, RouterLogitBias, ::testing::ValuesIn(kRouterCases),
                         [](const ::testing::TestParamInfo<RouterCase> &p) { return std::string(p.param.name); });

// ================================================================================================ the whole block

// gpt-oss's MoE block, scaled down: softmax over the top-k of the biased logits (renormalised softmax), clamped SwiGLU
// experts with gate, up and down biases.
Layer GptOssLike() {
  Layer l;
  l.hidden = 64;
  l.intermediate = 48;
  l.experts = 8;
  l.top_k = 2;
  l.activation = PIMOE_ACT_SWIGLU_OAI;
  l.expert_bias = true;
  l.router_logit_bias = true;
  l.renormalize = true;
  l.seed = 2500;
  return l;
}

class GptOssBlock : public ::testing::TestWithParam<std::tuple<std::string, int, int64_t>> {};

TEST_P(GptOssBlock, Case) {
  Layer l = GptOssLike();
  l.weight_dtype = std::get<0>(GetParam());
  l.threads = std::get<1>(GetParam());
  const int64_t tokens = std::get<2>(GetParam());
  SCOPED_TRACE(l.Describe());
  if (RefusedByBackend(l)) return;
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));  // the oracle reads the values as stored
  const std::vector<float> x =
      RandomInput(static_cast<size_t>(tokens * l.hidden), 2600 + static_cast<uint64_t>(tokens), 3.0);
  CheckSummary s;
  ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, l.Hyper(), 1, tokens, x, &s));
  if (tokens == 256) {
    const ClampCount c = CountClamped(w, l.Hyper(), x, tokens);
    EXPECT_GT(c.gate + c.up, 0) << "input scale 3 should reach the limit 7 somewhere";
  }
}

INSTANTIATE_TEST_SUITE_P(ParityGptOss, GptOssBlock,
                         ::testing::Combine(::testing::Values("fp32", "mxfp4", "bf16"), ::testing::Values(1, 2),
                                            ::testing::Values<int64_t>(1, 7, 256)),
                         [](const ::testing::TestParamInfo<std::tuple<std::string, int, int64_t>> &p) {
                           return std::get<0>(p.param) + "_t" + std::to_string(std::get<1>(p.param)) + "_T" +
                                  std::to_string(std::get<2>(p.param));
                         });

// pimoe_save / pimoe_load keep the block: the new options in the metadata, the new tensors, identical outputs.
TEST(ParityGptOss, SaveAndLoadKeepTheBlock) {
  Layer l = GptOssLike();
  l.swiglu_alpha = 1.5;
  l.swiglu_limit = 5.0;
  if (RefusedByBackend(l)) return;
  ModelPtr model;
  ASSERT_NO_FATAL_FAILURE(Create(l, &model));
  const std::string path = ::testing::TempDir() + "pimoe_gpt_oss_like_" + std::to_string(l.seed) + ".safetensors";
  PIMOE_ASSERT_OK(pimoe_save(model.get(), path.c_str()));
  pimoe_options *raw = nullptr;
  PIMOE_ASSERT_OK(pimoe_options_create(&raw));
  OptionsPtr o(raw);
  PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, Backend()));
  pimoe_model *loaded_raw = nullptr;
  PIMOE_ASSERT_OK(pimoe_load(path.c_str(), o.get(), &loaded_raw));
  ModelPtr loaded(loaded_raw);
  std::remove(path.c_str());
  po::Weights a, b;
  ASSERT_EQ(po::LoadWeights(model.get(), l.Hyper(), &a), "");
  ASSERT_EQ(po::LoadWeights(loaded.get(), l.Hyper(), &b), "");  // the same tensor list, alpha and limit below
  const std::vector<float> x = RandomInput(static_cast<size_t>(9 * l.hidden), 2700, 3.0);
  LibOutput ya, yb;
  ASSERT_NO_FATAL_FAILURE(LibForward(model.get(), x, 1, 9, l.hidden, l.top_k, &ya));
  ASSERT_NO_FATAL_FAILURE(LibForward(loaded.get(), x, 1, 9, l.hidden, l.top_k, &yb));
  ExpectSameBits(ya.output.data(), yb.output.data(), ya.output.size(), "output after save and load");
  CheckSummary s;
  ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(loaded.get(), b, l.Hyper(), 1, 9, x, &s));  // alpha 1.5, limit 5
}

}  // namespace
