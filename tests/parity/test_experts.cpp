// SPDX-License-Identifier: MIT
// test_parity: experts: every activation with and without bias and pre-norm, input scales, every preset, mixed
// layers, and the override rules of the header (one instance a scenario). See parity.h.
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

// ================================================================================================ experts

class EveryActivationWithAndWithoutBiasAndPreNorm
    : public ::testing::TestWithParam<std::tuple<pimoe_activation, bool, bool>> {};

TEST_P(EveryActivationWithAndWithoutBiasAndPreNorm, Case) {
  const pimoe_activation act = std::get<0>(GetParam());
  const bool bias = std::get<1>(GetParam());
  const bool norm = std::get<2>(GetParam());
  Layer l;
  l.hidden = 13;
  l.intermediate = 29;
  l.experts = 4;
  l.top_k = 2;
  l.activation = act;
  l.expert_bias = bias;
  l.pre_norm = norm;
  l.seed = 50 + act;
  l.layer_norm_eps = norm && bias ? 1e-3 : 1e-5;  // eps is honoured
  CheckLayer(l, 3, 7, 600 + static_cast<uint64_t>(act));
}

INSTANTIATE_TEST_SUITE_P(ParityExperts, EveryActivationWithAndWithoutBiasAndPreNorm,
                         ::testing::Combine(::testing::ValuesIn(kAllActivations), ::testing::Bool(), ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<pimoe_activation, bool, bool>> &p) {
                           return ActivationName(std::get<0>(p.param)) + (std::get<1>(p.param) ? "_bias" : "") +
                                  (std::get<2>(p.param) ? "_norm" : "");
                         });

// Large inputs drive tanh/GELU into saturation and SiLU/ReLU far from 0; small ones the linear region.
class InputScaleStressesActivations : public ::testing::TestWithParam<std::tuple<pimoe_activation, double>> {};

TEST_P(InputScaleStressesActivations, Case) {
  const pimoe_activation act = std::get<0>(GetParam());
  const double scale = std::get<1>(GetParam());
  Layer l;
  l.activation = act;
  l.expert_bias = true;
  l.seed = 60 + act;
  SCOPED_TRACE(l.Describe() + " input scale " + std::to_string(scale));
  if (RefusedByBackend(l)) return;
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  const std::vector<float> x = RandomInput(static_cast<size_t>(5 * l.hidden), 700, scale);
  CheckSummary s;
  ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, l.Hyper(), 1, 5, x, &s));
}

INSTANTIATE_TEST_SUITE_P(ParityExperts, InputScaleStressesActivations,
                         ::testing::Combine(::testing::ValuesIn(kAllActivations), ::testing::Values(0.01, 8.0)),
                         [](const ::testing::TestParamInfo<std::tuple<pimoe_activation, double>> &p) {
                           std::ostringstream s;
                           s << ActivationName(std::get<0>(p.param)) << "_scale" << std::get<1>(p.param);
                           return ParamName(s.str());
                         });

class EveryPresetForAllExperts : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(EveryPresetForAllExperts, Case) {
  const int preset = std::get<0>(GetParam());
  const bool bias = std::get<1>(GetParam());
  Layer l;
  l.experts = 4;
  l.hidden = 12;
  l.intermediate = 10;
  l.activation = PIMOE_ACT_SILU;  // what GENERIC experts follow
  l.pre_norm = true;
  l.expert_bias = bias;
  l.seed = 70 + preset;
  l.overrides.SetPreset(-1, static_cast<pimoe_expert_preset>(preset));
  CheckLayer(l, 3, 7, 800 + static_cast<uint64_t>(preset));
}

INSTANTIATE_TEST_SUITE_P(ParityExperts, EveryPresetForAllExperts,
                         ::testing::Combine(::testing::Range(0, 8), ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<int, bool>> &p) {
                           return "preset" + std::to_string(std::get<0>(p.param)) +
                                  (std::get<1>(p.param) ? "_bias" : "");
                         });

TEST(ParityExperts, MixedLayerOfAllPresetsAndWidths) {
  for (bool bias : {false, true}) {
    Layer l;
    l.experts = 8;
    l.top_k = 3;
    l.hidden = 24;
    l.intermediate = 16;
    l.activation = PIMOE_ACT_RELU;
    l.expert_bias = bias;
    l.seed = 80;
    for (int32_t e = 0; e < 8; ++e) l.overrides.SetPreset(e, static_cast<pimoe_expert_preset>(e));
    l.overrides.SetWidth(3, 37);                   // after the preset
    l.overrides.SetActivation(6, PIMOE_ACT_TANH);  // CREATIVE with tanh
    l.overrides.SetPreNorm(2, 1);                  // COMPUTATION (2x, no norm) with a norm
    l.overrides.SetWidth(0, 5);                    // GENERIC, narrow
    l.temperature = 2.5;                           // flatter routing: every expert gets tokens
    if (RefusedByBackend(l)) continue;             // a GPU backend: LANGUAGE (SwiGLU) experts with biases
    CheckSummary s;
    CheckLayer(l, 4, 64, 900, &s);
    for (size_t e = 0; e < 8; ++e) EXPECT_GT(s.oracle.loads[e], 0u) << "expert " << e << " got no token";
  }
}

struct OverrideScenario {
  const char *what;
  void (*build)(po::SpecResolver *);
};

const OverrideScenario kOverrideScenarios[] = {
    {"preset for all, then one expert's preset",
     [](po::SpecResolver *r) {
       r->SetPreset(-1, PIMOE_PRESET_LANGUAGE);
       r->SetPreset(2, PIMOE_PRESET_COMPUTATION);
     }},
    {"activation before the preset still wins",
     [](po::SpecResolver *r) {
       r->SetActivation(1, PIMOE_ACT_RELU);
       r->SetPreset(1, PIMOE_PRESET_REASONING);
     }},
    {"activation after the preset wins",
     [](po::SpecResolver *r) {
       r->SetPreset(1, PIMOE_PRESET_REASONING);
       r->SetActivation(1, PIMOE_ACT_RELU);
     }},
    {"absolute width before a 2x preset wins",
     [](po::SpecResolver *r) {
       r->SetWidth(0, 7);
       r->SetPreset(0, PIMOE_PRESET_COMPUTATION);
     }},
    {"norm flag off after a norm preset",
     [](po::SpecResolver *r) {
       r->SetPreset(3, PIMOE_PRESET_ANALYTICAL);
       r->SetPreNorm(3, false);
     }},
    {"norm flag on before a no-norm preset",
     [](po::SpecResolver *r) {
       r->SetPreNorm(2, true);
       r->SetPreset(2, PIMOE_PRESET_LANGUAGE);
     }},
    {"later call wins for the same field",
     [](po::SpecResolver *r) {
       r->SetActivation(2, PIMOE_ACT_TANH);
       r->SetActivation(2, PIMOE_ACT_SILU);
       r->SetPreset(3, PIMOE_PRESET_LOGICAL);
       r->SetPreset(3, PIMOE_PRESET_COMPUTATION);
       r->SetWidth(1, 9);
       r->SetWidth(1, 3);
     }},
    {"GENERIC preset after another restores the layer defaults",
     [](po::SpecResolver *r) {
       r->SetPreset(0, PIMOE_PRESET_LANGUAGE);
       r->SetPreset(0, PIMOE_PRESET_GENERIC);
     }},
    {"explicit values without any preset",
     [](po::SpecResolver *r) {
       r->SetActivation(-1, PIMOE_ACT_SWIGLU);
       r->SetWidth(3, 40);
       r->SetPreNorm(1, true);
     }},
};

void PrintTo(const OverrideScenario &sc, std::ostream *os) {
  *os << sc.what;
}

class OverrideRulesOfTheHeader : public ::testing::TestWithParam<OverrideScenario> {};

TEST_P(OverrideRulesOfTheHeader, Case) {
  const OverrideScenario &sc = GetParam();
  // Per-expert calls are made before the layer options (intermediate, activation, pre_norm) are set, so presets
  // must scale the final intermediate size and GENERIC must follow the final layer defaults.
  SCOPED_TRACE(sc.what);
  Layer l;
  l.experts = 4;
  l.top_k = 2;
  l.hidden = 10;
  l.intermediate = 12;
  l.activation = PIMOE_ACT_GELU_TANH;
  l.pre_norm = false;
  l.expert_bias = true;
  l.seed = 90;
  sc.build(&l.overrides);
  l.temperature = 2.5;
  CheckLayer(l, 2, 9, 1000);
}

INSTANTIATE_TEST_SUITE_P(ParityExperts, OverrideRulesOfTheHeader, ::testing::ValuesIn(kOverrideScenarios),
                         [](const ::testing::TestParamInfo<OverrideScenario> &p) { return ParamName(p.param.what); });

// Calls for expert -1. The header: "expert is an index ... or -1 for every expert", "Later calls win over earlier
// ones for the same expert and field" and "an explicit activation, width or norm flag given for that expert overrides
// the preset's value whatever the call order". Read literally, a call for -1 is a call for each expert: a later -1
// call overrides an earlier per-expert one, and an explicit value given through -1 beats a per-expert preset.
TEST(ParityExperts, CallsForEveryExpertFollowTheSameRules) {
  {
    SCOPED_TRACE("calls for one expert are applied after the calls for every expert, whatever the order");
    Layer l;
    l.experts = 3;
    l.hidden = 8;
    l.intermediate = 6;
    l.seed = 92;
    l.overrides.SetPreset(-1, PIMOE_PRESET_MATHEMATICAL);
    l.overrides.SetPreset(1, PIMOE_PRESET_CREATIVE);
    l.overrides.SetPreset(-1, PIMOE_PRESET_LOGICAL);  // -> LOGICAL for experts 0 and 2, CREATIVE for expert 1
    CheckLayer(l, 1, 6, 1101);
  }
  {
    SCOPED_TRACE("a per-expert preset replaces what was set for every expert");
    Layer l;
    l.experts = 3;
    l.hidden = 8;
    l.intermediate = 6;
    l.seed = 91;
    l.overrides.SetWidth(-1, 11);
    l.overrides.SetActivation(-1, PIMOE_ACT_SILU);
    l.overrides.SetPreset(1, PIMOE_PRESET_COMPUTATION);  // -> GELU, width 12, no norm (expert 0: SiLU, width 11)
    l.overrides.SetPreset(2, PIMOE_PRESET_ANALYTICAL);   // -> ReLU, width 6, norm
    CheckLayer(l, 1, 6, 1100);
  }
}

}  // namespace
