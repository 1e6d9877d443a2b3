// SPDX-License-Identifier: MIT
// test_routing_features, errors: invalid option combinations at pimoe_create (one instance a combination), the
// group_levels syntax (one instance a rejected text), failing and misregistered callbacks, routing buffers, loading a
// stateful layer as deterministic, expert choice's slot count. See routing_features.h.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "routing_features.h"

namespace {

using namespace pimoe_rf;

// Invalid combinations fail at pimoe_create with PIMOE_ERR_INVALID_OPTION naming the culprit; the options stay usable
// (fixing the culprit makes pimoe_create succeed).
struct InvalidCombination {
  const char *what;
  std::function<void(Cfg &)> bad;
  std::function<void(Cfg &)> fix;
  std::vector<std::string> culprits;
};

void PrintTo(const InvalidCombination &k, std::ostream *os) {
  *os << k.what;
}

std::vector<InvalidCombination> InvalidCombinations() {
  return {
      {"expert_choice + router_bias",
       [](Cfg &c) {
         c.expert_choice = true;
         c.router_bias = true;
       },
       [](Cfg &c) { c.router_bias = false; },
       {"expert_choice", "router_bias"}},
      {"expert_choice + num_groups",
       [](Cfg &c) {
         c.expert_choice = true;
         c.num_groups = 2;
       },
       [](Cfg &c) { c.num_groups = 1; },
       {"expert_choice", "group"}},
      {"expert_choice + group_levels",
       [](Cfg &c) {
         c.expert_choice = true;
         c.group_levels = "2:1,2:1";
       },
       [](Cfg &c) { c.group_levels = ""; },
       {"expert_choice", "group"}},
      {"expert_choice + adaptive",
       [](Cfg &c) {
         c.expert_choice = true;
         c.adaptive_bias_rate = 0.01;
       },
       [](Cfg &c) { c.adaptive_bias_rate = 0.0; },
       {"expert_choice", "adaptive_bias_rate"}},
      {"expert_choice + dynamic",
       [](Cfg &c) {
         c.expert_choice = true;
         c.capacity_factor = 1.0;
         c.dynamic_capacity = true;
       },
       [](Cfg &c) { c.dynamic_capacity = false; },
       {"expert_choice", "dynamic_capacity"}},
      {"dynamic without capacity",
       [](Cfg &c) { c.dynamic_capacity = true; },
       [](Cfg &c) { c.capacity_factor = 1.0; },
       {"dynamic_capacity", "capacity_factor"}},
      {"deterministic + adaptive",
       [](Cfg &c) {
         c.deterministic = true;
         c.adaptive_bias_rate = 0.01;
       },
       [](Cfg &c) { c.deterministic = false; },
       {"deterministic", "adaptive_bias_rate"}},
      {"deterministic + dynamic",
       [](Cfg &c) {
         c.deterministic = true;
         c.capacity_factor = 1.0;
         c.dynamic_capacity = true;
       },
       [](Cfg &c) { c.deterministic = false; },
       {"deterministic", "dynamic_capacity"}},
      {"group product does not divide E",
       [](Cfg &c) { c.group_levels = "3:1"; },
       [](Cfg &c) { c.group_levels = "4:1"; },
       {"group_levels", "3:1"}},
      {"group product does not divide E (tree)",
       [](Cfg &c) {
         c.experts = 12;
         c.group_levels = "2:1,4:1";
       },
       [](Cfg &c) { c.group_levels = "2:1,3:1"; },
       {"group_levels", "2:1,4:1"}},
      {"group product exceeds E",
       [](Cfg &c) { c.group_levels = "2:1,4:1,2:1"; },
       [](Cfg &c) {
         c.group_levels = "2:1,4:1";
         c.top_k = 1;
       },
       {"group_levels"}},
      {"K1 > G1",
       [](Cfg &c) { c.group_levels = "2:3"; },
       [](Cfg &c) { c.group_levels = "2:2"; },
       {"group_levels", "2:3"}},
      {"K2 > K1*G2",
       [](Cfg &c) {
         c.experts = 16;
         c.group_levels = "2:1,2:3";
       },
       [](Cfg &c) { c.group_levels = "2:1,2:2"; },
       {"group_levels", "2:1,2:3"}},
      {"top_k too large for the tree",
       [](Cfg &c) {
         c.experts = 16;
         c.group_levels = "2:1,2:1";
         c.top_k = 5;
       },
       [](Cfg &c) { c.top_k = 4; },
       {"top_k", "5"}},
      {"top_k too large for a 3-level tree",
       [](Cfg &c) {
         c.experts = 16;
         c.group_levels = "2:1,2:2,2:1";
         c.top_k = 3;
       },
       [](Cfg &c) { c.top_k = 2; },
       {"top_k", "3"}},
      {"group_levels with num_groups",
       [](Cfg &c) {
         c.experts = 16;
         c.group_levels = "2:1,2:1";
         c.num_groups = 2;
       },
       [](Cfg &c) { c.num_groups = 1; },
       {"group_levels", "num_groups"}},
      {"callback index >= num_experts",
       [](Cfg &c) { c.callback_experts = {8}; },
       [](Cfg &c) { c.experts = 9; },
       {"callback", "8"}},
  };
}

class InvalidCombinationsFailAtCreate : public ::testing::TestWithParam<InvalidCombination> {};

TEST_P(InvalidCombinationsFailAtCreate, Create) {
  const InvalidCombination &k = GetParam();
  SCOPED_TRACE(k.what);
  Cfg c;
  k.bad(c);
  OptionsPtr o;
  ASSERT_NO_FATAL_FAILURE(MakeOptions(c, &o));
  pimoe_model *m = reinterpret_cast<pimoe_model *>(0x1);
  EXPECT_TRUE(FailedWith(pimoe_create(o.get(), &m), PIMOE_ERR_INVALID_OPTION, k.culprits));
  EXPECT_EQ(m, reinterpret_cast<pimoe_model *>(0x1)) << "*out set on failure";
  // Fixed, it creates and runs.
  k.fix(c);
  ModelPtr fixed;
  ASSERT_NO_FATAL_FAILURE(Create(c, &fixed));
  std::vector<float> y;
  PIMOE_EXPECT_OK(Forward(fixed.get(), RandomInput(static_cast<size_t>(8 * c.hidden), 1), 1, 8, &y));
}

INSTANTIATE_TEST_SUITE_P(RoutingErrors, InvalidCombinationsFailAtCreate, ::testing::ValuesIn(InvalidCombinations()),
                         [](const ::testing::TestParamInfo<InvalidCombination> &p) { return ParamName(p.param.what); });

// group_levels syntax is checked by the setter (PIMOE_ERR_INVALID_OPTION naming the option and the text); the
// options keep their previous value and stay usable.
const char *const kBadGroupLevels[] = {"3",    "2:0", "a:b",   "2:",   ":1",       "2:1,",
                                       ",2:1", "0:1", "2:1:1", "-2:1", "2:1,,2:1", "2;1"};

class GroupLevelsSyntax : public ::testing::TestWithParam<const char *> {};

TEST_P(GroupLevelsSyntax, Rejected) {
  const char *text = GetParam();
  SCOPED_TRACE(text);
  Cfg c;
  c.experts = 16;
  c.group_levels = "2:1,2:1";
  OptionsPtr o;
  ASSERT_NO_FATAL_FAILURE(MakeOptions(c, &o));
  EXPECT_TRUE(FailedWith(pimoe_options_set_string(o.get(), PIMOE_OPT_GROUP_LEVELS, text), PIMOE_ERR_INVALID_OPTION,
                         {"group_levels", text}));
  EXPECT_TRUE(
      FailedWith(pimoe_options_set_by_name(o.get(), "group_levels", text), PIMOE_ERR_INVALID_OPTION, {"group_levels"}));
  pimoe_model *raw = nullptr;
  PIMOE_ASSERT_OK(pimoe_create(o.get(), &raw));
  ModelPtr m(raw);
  EXPECT_EQ(pimoe_model_last_error(m.get()), std::string(""));
}

INSTANTIATE_TEST_SUITE_P(RoutingErrors, GroupLevelsSyntax, ::testing::ValuesIn(kBadGroupLevels),
                         [](const ::testing::TestParamInfo<const char *> &p) {
                           return std::to_string(p.index) + "_" + ParamName(p.param);
                         });

// The wrong typed setter is an invalid option too; so are bad values of the other routing options.
TEST(RoutingErrors, RoutingOptionSetters) {
  OptionsPtr o;
  ASSERT_NO_FATAL_FAILURE(MakeOptions(Cfg(), &o));
  EXPECT_TRUE(FailedWith(pimoe_options_set_int(o.get(), PIMOE_OPT_GROUP_LEVELS, 2), PIMOE_ERR_INVALID_OPTION, {}));
  EXPECT_TRUE(FailedWith(pimoe_options_set_string(o.get(), PIMOE_OPT_ROUTING_MODE, "experts_choice"),
                         PIMOE_ERR_INVALID_OPTION, {"routing_mode"}));
  EXPECT_TRUE(FailedWith(pimoe_options_set_float(o.get(), PIMOE_OPT_CAPACITY_MOMENTUM, 1.0), PIMOE_ERR_INVALID_OPTION,
                         {"capacity_momentum"}));
  EXPECT_TRUE(FailedWith(pimoe_options_set_float(o.get(), PIMOE_OPT_ADAPTIVE_BIAS_RATE, -0.1), PIMOE_ERR_INVALID_OPTION,
                         {"adaptive_bias_rate"}));
}

// A callback returning non-zero fails the call with PIMOE_ERR_CALLBACK naming the expert and the value; the model's
// statistics and adaptive state are unchanged; the model stays usable and then matches the oracle.
TEST(RoutingErrors, FailingCallback) {
  for (int combine : {0, 8}) {
    CallbackState state;
    Cfg c;
    c.hidden = 16;
    c.experts = 4;
    c.callback_experts = {2};
    c.callbacks = &state;
    c.combine_dim = combine;
    c.adaptive_bias_rate = 0.05;
    c.capacity_factor = 1.0;
    c.dynamic_capacity = true;
    SCOPED_TRACE(c.Describe());
    ModelPtr m;
    po::Weights w;
    ASSERT_NO_FATAL_FAILURE(CreateAndLoad(c, &m, &w));
    const po::Hyper hp = c.Hyper();
    // One successful call first, so that there are statistics and a moved state to preserve.
    po::Result r0;
    const std::vector<float> x0 = DrawInput(w, hp, 2, 16, 1, &r0);
    CallResult ok0;
    PIMOE_ASSERT_OK(LibRun(m.get(), x0, 2, 16, &ok0));
    EXPECT_EQ(Compare(ok0, r0, c.hidden, c.experts), "");
    w.selection_bias = po::AdaptiveBiasStep(w.selection_bias, r0.loads, hp.adaptive_bias_rate);
    w.load_ema = po::LoadEmaStep(w.load_ema, r0.choices, static_cast<uint64_t>(32 * hp.top_k), hp.capacity_momentum);
    const pimoe_stats_snapshot s0 = Stats(m.get());
    const std::vector<uint64_t> loads0 = Loads(m.get(), 4);
    const std::vector<float> bias0 = ReadTensor(m.get(), "router.selection_bias");
    const std::vector<float> ema0 = ReadTensor(m.get(), "router.load_ema");

    po::Result r1;
    const std::vector<float> x1 = DrawInput(w, hp, 2, 16, 2, &r1);
    ASSERT_GT(r1.loads[2], 0u) << "expert 2 must receive tokens for the callback to run";
    state.fail_expert = 2;
    state.fail_value = -7;
    CallResult failed;
    EXPECT_TRUE(FailedWith(LibRun(m.get(), x1, 2, 16, &failed), PIMOE_ERR_CALLBACK, {"expert 2", "-7"}));
    EXPECT_TRUE(Contains(pimoe_model_last_error(m.get()), "-7")) << pimoe_model_last_error(m.get());
    const pimoe_stats_snapshot s1 = Stats(m.get());
    EXPECT_EQ(s1.forward_calls, s0.forward_calls) << "the failed call is not counted";
    EXPECT_EQ(s1.tokens, s0.tokens);
    EXPECT_EQ(s1.dropped_tokens, s0.dropped_tokens);
    EXPECT_EQ(s1.aux_loss, s0.aux_loss);
    EXPECT_EQ(Loads(m.get(), 4), loads0);
    EXPECT_TRUE(SameBits(ReadTensor(m.get(), "router.selection_bias"), bias0)) << "the failed call moved the bias";
    EXPECT_TRUE(SameBits(ReadTensor(m.get(), "router.load_ema"), ema0)) << "the failed call moved the load average";
    // Another value, through pimoe_forward.
    state.fail_value = 12345;
    std::vector<float> y;
    EXPECT_TRUE(FailedWith(Forward(m.get(), x1, 2, 16, &y), PIMOE_ERR_CALLBACK, {"expert 2", "12345"}));
    // Usable again: the same call now succeeds and matches the oracle with the state of before the failures.
    state.fail_expert = -1;
    CallResult ok1;
    PIMOE_ASSERT_OK(LibRun(m.get(), x1, 2, 16, &ok1));
    EXPECT_EQ(Compare(ok1, r1, c.hidden, c.experts), "");
    EXPECT_EQ(Stats(m.get()).forward_calls, s0.forward_calls + 1);
    EXPECT_EQ(std::string(pimoe_last_error()), "");
  }
}

TEST(RoutingErrors, CallbackRegistration) {
  OptionsPtr o;
  ASSERT_NO_FATAL_FAILURE(MakeOptions(Cfg(), &o));
  EXPECT_TRUE(
      FailedWith(pimoe_options_set_expert_callback(o.get(), 1, nullptr, nullptr), PIMOE_ERR_NULL_POINTER, {"fn"}));
  EXPECT_TRUE(FailedWith(pimoe_options_set_expert_callback(o.get(), -3, TestCallback, &g_callbacks),
                         PIMOE_ERR_INVALID_ARGUMENT, {"-3"}));
  EXPECT_TRUE(FailedWith(pimoe_options_set_expert_callback(o.get(), -1, TestCallback, &g_callbacks),
                         PIMOE_ERR_INVALID_ARGUMENT, {"-1"}));
  EXPECT_EQ(pimoe_options_set_expert_callback(nullptr, 1, TestCallback, &g_callbacks), PIMOE_ERR_NULL_POINTER);
  // The options are still usable: no callback expert was registered by the failed calls.
  {
    pimoe_model *raw = nullptr;
    PIMOE_ASSERT_OK(pimoe_create(o.get(), &raw));
    ModelPtr m(raw);
    int64_t width = 0;
    PIMOE_ASSERT_OK(pimoe_model_expert(m.get(), 1, nullptr, &width, nullptr));
    EXPECT_EQ(width, 32) << "expert 1 must not have become a callback expert";
  }
  PIMOE_ASSERT_OK(pimoe_options_set_expert_callback(o.get(), 1, TestCallback, &g_callbacks));
  pimoe_model *raw = nullptr;
  PIMOE_ASSERT_OK(pimoe_create(o.get(), &raw));
  ModelPtr m(raw);
  int64_t width = -1;
  int32_t pre_norm = -1;
  PIMOE_ASSERT_OK(pimoe_model_expert(m.get(), 1, nullptr, &width, &pre_norm));
  EXPECT_EQ(width, 0) << "a callback expert reports width 0";
  EXPECT_EQ(pre_norm, 0);
  // pimoe_model_set_expert_callback: only on callback experts of the model, fn not NULL.
  EXPECT_TRUE(FailedWith(pimoe_model_set_expert_callback(m.get(), 0, TestCallback, &g_callbacks),
                         PIMOE_ERR_INVALID_ARGUMENT, {"expert 0"}));
  EXPECT_TRUE(FailedWith(pimoe_model_set_expert_callback(m.get(), 8, TestCallback, &g_callbacks),
                         PIMOE_ERR_INVALID_ARGUMENT, {"expert 8"}));
  EXPECT_TRUE(FailedWith(pimoe_model_set_expert_callback(m.get(), -1, TestCallback, &g_callbacks),
                         PIMOE_ERR_INVALID_ARGUMENT, {"expert -1"}));
  EXPECT_TRUE(
      FailedWith(pimoe_model_set_expert_callback(m.get(), 1, nullptr, nullptr), PIMOE_ERR_NULL_POINTER, {"fn"}));
  EXPECT_EQ(pimoe_model_set_expert_callback(nullptr, 1, TestCallback, &g_callbacks), PIMOE_ERR_NULL_POINTER);
  // Replacing the callback of a callback expert works; the model is usable and matches the oracle.
  PIMOE_ASSERT_OK(pimoe_model_set_expert_callback(m.get(), 1, TestCallback, &g_callbacks));
  Cfg c;
  c.callback_experts = {1};
  po::Weights w;
  ASSERT_EQ(po::LoadWeights(m.get(), c.Hyper(), &w), "");
  po::Result r;
  const std::vector<float> x = DrawInput(w, c.Hyper(), 1, 32, 4, &r);
  CallResult run;
  PIMOE_ASSERT_OK(LibRun(m.get(), x, 1, 32, &run));
  EXPECT_EQ(Compare(run, r, c.hidden, c.experts), "");
}

TEST(RoutingErrors, RoutingBuffers) {
  Cfg c;
  c.capacity_factor = 1.0;
  ModelPtr m;
  ASSERT_NO_FATAL_FAILURE(Create(c, &m));
  constexpr int64_t kT = 12;
  const std::vector<float> x = RandomInput(static_cast<size_t>(kT * c.hidden), 3);
  std::vector<float> y(x.size()), w(kT * 2), p(kT * 8);
  std::vector<int32_t> ids(kT * 2);
  std::vector<uint8_t> d(kT * 2);
  auto routing = [&]() {
    pimoe_routing r;
    std::memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.expert_ids = ids.data();
    r.weights = w.data();
    r.dropped = d.data();
    r.slot_count = ids.size();
    r.probabilities = p.data();
    r.probability_count = p.size();
    return r;
  };
  pimoe_routing r = routing();
  r.slot_count = kT * 2 + 1;
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), x.data(), x.size(), 1, kT, y.data(), y.size(), &r),
                         PIMOE_ERR_SIZE_MISMATCH, {"slot_count"}));
  r = routing();
  r.slot_count = kT * 8;  // E slots: only for expert choice
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), x.data(), x.size(), 1, kT, y.data(), y.size(), &r),
                         PIMOE_ERR_SIZE_MISMATCH, {"slot_count"}));
  r = routing();
  r.expert_ids = nullptr;  // dropped alone still needs the right slot_count
  r.weights = nullptr;
  r.slot_count = 5;
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), x.data(), x.size(), 1, kT, y.data(), y.size(), &r),
                         PIMOE_ERR_SIZE_MISMATCH, {"slot_count"}));
  r = routing();
  r.probability_count = kT * 2;
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), x.data(), x.size(), 1, kT, y.data(), y.size(), &r),
                         PIMOE_ERR_SIZE_MISMATCH, {"probability_count"}));
  for (size_t size : {size_t{0}, sizeof(size_t), sizeof(pimoe_routing) - sizeof(size_t)}) {
    r = routing();
    r.struct_size = size;
    EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), x.data(), x.size(), 1, kT, y.data(), y.size(), &r),
                           PIMOE_ERR_INVALID_ARGUMENT, {"struct_size"}))
        << "struct_size " << size;
  }
  r = routing();
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(nullptr, x.data(), x.size(), 1, kT, y.data(), y.size(), &r),
                         PIMOE_ERR_NULL_POINTER, {}));
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), x.data(), x.size() - 1, 1, kT, y.data(), y.size(), &r),
                         PIMOE_ERR_SIZE_MISMATCH, {"input_count"}));
  std::vector<float> bad = x;
  bad[5] = std::nanf("");
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), bad.data(), bad.size(), 1, kT, y.data(), y.size(), &r),
                         PIMOE_ERR_NON_FINITE_INPUT, {}));
  EXPECT_EQ(Stats(m.get()).forward_calls, 0u) << "failed calls are not counted";
  // Still usable.
  r = routing();
  PIMOE_EXPECT_OK(pimoe_forward_routing(m.get(), x.data(), x.size(), 1, kT, y.data(), y.size(), &r));
  EXPECT_EQ(Stats(m.get()).forward_calls, 1u);
  EXPECT_EQ(pimoe_model_routing_slots(nullptr), 0);
}

// pimoe_load applies pimoe_create's checks to the runtime options: deterministic cannot be promised for a file whose
// layer has adaptive state (PIMOE_ERR_INVALID_OPTION, as pimoe_create); the same file loads without it.
TEST(RoutingErrors, LoadingAStatefulLayerWithDeterministicFails) {
  for (bool dynamic : {false, true}) {
    Cfg c;
    if (dynamic) {
      c.capacity_factor = 1.0;
      c.dynamic_capacity = true;
    } else {
      c.adaptive_bias_rate = 0.01;
    }
    SCOPED_TRACE(c.Describe());
    ModelPtr m;
    ASSERT_NO_FATAL_FAILURE(Create(c, &m));
    const std::string path = TempPath("deterministic");
    PIMOE_ASSERT_OK(pimoe_save(m.get(), path.c_str()));
    pimoe_options *raw = nullptr;
    PIMOE_ASSERT_OK(pimoe_options_create(&raw));
    OptionsPtr o(raw);
    PIMOE_ASSERT_OK(pimoe_options_set_string(raw, PIMOE_OPT_BACKEND, Backend()));
    PIMOE_ASSERT_OK(pimoe_options_set_int(raw, PIMOE_OPT_DETERMINISTIC, 1));
    pimoe_model *loaded = reinterpret_cast<pimoe_model *>(0x1);
    EXPECT_TRUE(FailedWith(pimoe_load(path.c_str(), raw, &loaded), PIMOE_ERR_INVALID_OPTION,
                           {"deterministic", dynamic ? "dynamic_capacity" : "adaptive_bias_rate"}));
    EXPECT_EQ(loaded, reinterpret_cast<pimoe_model *>(0x1));
    PIMOE_ASSERT_OK(pimoe_options_set_int(raw, PIMOE_OPT_DETERMINISTIC, 0));
    PIMOE_ASSERT_OK(pimoe_load(path.c_str(), raw, &loaded));
    pimoe_destroy(loaded);
    std::remove(path.c_str());
  }
}

// With expert choice the routing outputs have E slots per token: routing_count must be T*E, not T*k.
TEST(RoutingErrors, ExpertChoiceRoutingCountIsTokensTimesExperts) {
  Cfg c;
  c.expert_choice = true;
  ModelPtr m;
  ASSERT_NO_FATAL_FAILURE(Create(c, &m));
  EXPECT_EQ(pimoe_model_routing_slots(m.get()), 8);
  constexpr int64_t kT = 10;
  const std::vector<float> x = RandomInput(static_cast<size_t>(kT * c.hidden), 8);
  std::vector<float> y(x.size());
  std::vector<int32_t> ids(kT * 8, -7);
  std::vector<float> w(kT * 8);
  EXPECT_TRUE(FailedWith(
      pimoe_forward(m.get(), x.data(), x.size(), 2, kT / 2, y.data(), y.size(), ids.data(), w.data(), kT * 2),
      PIMOE_ERR_SIZE_MISMATCH, {"routing_count"}));
  pimoe_routing r;
  std::memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.expert_ids = ids.data();
  r.slot_count = kT * 2;
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), x.data(), x.size(), 2, kT / 2, y.data(), y.size(), &r),
                         PIMOE_ERR_SIZE_MISMATCH, {"slot_count"}));
  PIMOE_EXPECT_OK(
      pimoe_forward(m.get(), x.data(), x.size(), 2, kT / 2, y.data(), y.size(), ids.data(), w.data(), ids.size()));
  int64_t used = 0;
  for (int32_t id : ids) used += id >= 0;
  EXPECT_EQ(used, 8 * static_cast<int64_t>(std::ceil(kT * 2.0 / 8)));  // E * C, C = ceil(T*top_k/E)
}

}  // namespace
