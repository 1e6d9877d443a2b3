// SPDX-License-Identifier: MIT
// test_routing_features, save / load: every feature's layer round-trips through pimoe_save / pimoe_load (one instance
// a feature: metadata, dims, expert specs, every tensor, the same next calls, callbacks re-registered, reset to the
// loaded state), and the adaptive state round-trips exactly. See routing_features.h.
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "routing_features.h"

namespace {

using namespace pimoe_rf;

struct SaveCase {
  const char *name;
  Cfg cfg;
  int calls_before_save;
  std::vector<std::pair<std::string, std::string>> meta;  // key, expected value ("" = any)
};

void PrintTo(const SaveCase &sc, std::ostream *os) {
  *os << sc.name << ": " << sc.cfg.Describe();
}

std::vector<SaveCase> SaveCases() {
  std::vector<SaveCase> cases;
  {
    Cfg c;
    c.expert_choice = true;
    c.capacity_factor = 1.5;
    c.sigmoid = true;
    c.routed_scaling = 2.0;
    cases.push_back({"expert_choice", c, 0, {{"pimoe.routing_mode", "expert_choice"}}});
  }
  {
    Cfg c;
    c.experts = 16;
    c.group_levels = "2:2,2:1";
    c.sigmoid = true;
    c.router_bias = true;
    c.group_max = true;
    cases.push_back({"group_tree", c, 0, {{"pimoe.group_levels", "2:2,2:1"}, {"pimoe.group_score", "max"}}});
  }
  {
    Cfg c;
    c.attention_heads = 3;
    c.attention_head_dim = 8;
    c.attention_causal = true;
    cases.push_back({"attention_router",
                     c,
                     0,
                     {{"pimoe.router_attention_heads", "3"},
                      {"pimoe.router_attention_head_dim", "8"},
                      {"pimoe.router_attention_causal", "1"}}});
  }
  {
    Cfg c;
    c.adaptive_bias_rate = 0.03;
    cases.push_back({"adaptive_bias", c, 3, {{"pimoe.adaptive_bias_rate", ""}}});
  }
  {
    Cfg c;
    c.capacity_factor = 1.0;
    c.dynamic_capacity = true;
    c.capacity_momentum = 0.7;
    cases.push_back({"dynamic_capacity", c, 3, {{"pimoe.dynamic_capacity", "1"}, {"pimoe.capacity_momentum", ""}}});
  }
  {
    Cfg c;
    c.combine_dim = 8;
    c.shared_width = 16;
    c.shared_gate = true;
    cases.push_back({"combine", c, 0, {{"pimoe.combine_attention_dim", "8"}, {"pimoe.shared_width", "16"}}});
  }
  {
    Cfg c;
    c.callback_experts = {1, 4};
    cases.push_back({"callbacks", c, 0, {{"pimoe.experts.1.kind", "callback"}, {"pimoe.experts.4.kind", "callback"}}});
  }
  {
    Cfg c;  // everything that combines with token choice
    c.experts = 16;
    c.top_k = 3;
    c.group_levels = "2:2,2:1";
    c.attention_heads = 2;
    c.attention_head_dim = 8;
    c.adaptive_bias_rate = 0.02;
    c.capacity_factor = 1.25;
    c.dynamic_capacity = true;
    c.combine_dim = 4;
    c.callback_experts = {3};
    c.shared_width = 16;
    cases.push_back({"all",
                     c,
                     2,
                     {{"pimoe.group_levels", "2:2,2:1"},
                      {"pimoe.router_attention_heads", "2"},
                      {"pimoe.adaptive_bias_rate", ""},
                      {"pimoe.dynamic_capacity", "1"},
                      {"pimoe.combine_attention_dim", "4"},
                      {"pimoe.experts.3.kind", "callback"}}});
  }
  return cases;
}

class EveryFeatureRoundTrips : public ::testing::TestWithParam<SaveCase> {};

TEST_P(EveryFeatureRoundTrips, SaveAndLoad) {
  const SaveCase &sc = GetParam();
  const Cfg &c = sc.cfg;
  SCOPED_TRACE(std::string(sc.name) + ": " + c.Describe());
  ModelPtr m;
  ASSERT_NO_FATAL_FAILURE(Create(c, &m));
  std::vector<float> y;
  for (int call = 0; call < sc.calls_before_save; ++call) {
    PIMOE_ASSERT_OK(
        Forward(m.get(), RandomInput(static_cast<size_t>(32 * c.hidden), 70 + static_cast<uint64_t>(call)), 2, 16, &y));
  }
  const std::string path = TempPath(sc.name);
  PIMOE_ASSERT_OK(pimoe_save(m.get(), path.c_str()));
  std::map<std::string, std::vector<float>> saved_state;  // the adaptive state as saved
  for (const char *state : {"router.selection_bias", "router.load_ema"}) {
    int32_t nd = 0;
    int64_t dims[4];
    if (pimoe_tensor_shape(m.get(), state, &nd, dims) == PIMOE_OK) saved_state[state] = ReadTensor(m.get(), state);
  }
  const std::string header = FileHeader(path);
  ASSERT_FALSE(header.empty());
  for (const auto &kv : sc.meta) {
    const std::string v = MetaValue(header, kv.first);
    EXPECT_NE(v, "<missing>") << "metadata key " << kv.first;
    if (!kv.second.empty()) {
      EXPECT_EQ(v, kv.second) << "metadata key " << kv.first;
    }
  }
  OptionsPtr rt;
  {
    pimoe_options *raw = nullptr;
    PIMOE_ASSERT_OK(pimoe_options_create(&raw));
    rt.reset(raw);
    PIMOE_ASSERT_OK(pimoe_options_set_int(raw, PIMOE_OPT_THREADS, c.threads));
    PIMOE_ASSERT_OK(pimoe_options_set_string(raw, PIMOE_OPT_BACKEND, Backend()));
  }
  pimoe_model *raw_loaded = nullptr;
  PIMOE_ASSERT_OK(pimoe_load(path.c_str(), rt.get(), &raw_loaded));
  ModelPtr loaded(raw_loaded);
  std::remove(path.c_str());
  // Dims, routing slots, expert specs and every tensor (the adaptive state included) identical.
  int64_t h1 = 0, h2 = 0;
  int32_t e1 = 0, e2 = 0, k1 = 0, k2 = 0;
  PIMOE_ASSERT_OK(pimoe_model_dims(m.get(), &h1, &e1, &k1));
  PIMOE_ASSERT_OK(pimoe_model_dims(loaded.get(), &h2, &e2, &k2));
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(e1, e2);
  EXPECT_EQ(k1, k2);
  EXPECT_EQ(pimoe_model_routing_slots(m.get()), pimoe_model_routing_slots(loaded.get()));
  for (int32_t e = 0; e < e1; ++e) {
    pimoe_activation a1, a2;
    int64_t i1 = -1, i2 = -2;
    int32_t n1 = -1, n2 = -2;
    PIMOE_ASSERT_OK(pimoe_model_expert(m.get(), e, &a1, &i1, &n1));
    PIMOE_ASSERT_OK(pimoe_model_expert(loaded.get(), e, &a2, &i2, &n2));
    EXPECT_EQ(i1, i2) << "expert " << e;
    EXPECT_EQ(n1, n2) << "expert " << e;
    if (i1 > 0) {
      EXPECT_EQ(a1, a2) << "expert " << e;
    }
  }
  const int64_t count = pimoe_tensor_count(m.get());
  ASSERT_EQ(count, pimoe_tensor_count(loaded.get()));
  for (int64_t i = 0; i < count; ++i) {
    const char *name = pimoe_tensor_name(m.get(), i);
    ASSERT_NE(name, nullptr);
    ASSERT_STREQ(name, pimoe_tensor_name(loaded.get(), i));
    EXPECT_TRUE(SameBits(ReadTensor(m.get(), name), ReadTensor(loaded.get(), name))) << "tensor " << name;
  }
  const std::vector<float> x = RandomInput(static_cast<size_t>(40 * c.hidden), 80);
  CallResult before_callbacks;
  if (!c.callback_experts.empty()) {
    // A loaded callback expert has no function yet: forward fails with PIMOE_ERR_CALLBACK naming it.
    const pimoe_status st = LibRun(loaded.get(), x, 2, 20, &before_callbacks);
    EXPECT_EQ(st, PIMOE_ERR_CALLBACK) << pimoe_last_error();
    EXPECT_TRUE(Contains(pimoe_last_error(), "expert " + std::to_string(c.callback_experts[0])) ||
                Contains(pimoe_last_error(), "expert " + std::to_string(c.callback_experts.back())))
        << pimoe_last_error();
    EXPECT_EQ(Stats(loaded.get()).forward_calls, 0u) << "a failed call is not counted";
    for (int32_t e : c.callback_experts) {
      PIMOE_ASSERT_OK(pimoe_model_set_expert_callback(loaded.get(), e, TestCallback, &g_callbacks));
    }
  }
  // The same next calls: identical outputs, routing, probabilities, and the state moves identically.
  for (int call = 0; call < 2; ++call) {
    const std::vector<float> xc = RandomInput(static_cast<size_t>(40 * c.hidden), 80 + static_cast<uint64_t>(call));
    CallResult a, b;
    PIMOE_ASSERT_OK(LibRun(m.get(), xc, 2, 20, &a));
    PIMOE_ASSERT_OK(LibRun(loaded.get(), xc, 2, 20, &b));
    EXPECT_TRUE(SameRun(a, b)) << "call " << call << " after load";
  }
  for (const char *state : {"router.selection_bias", "router.load_ema"}) {
    int32_t nd = 0;
    int64_t dims[4];
    if (pimoe_tensor_shape(m.get(), state, &nd, dims) != PIMOE_OK) continue;
    EXPECT_TRUE(SameBits(ReadTensor(m.get(), state), ReadTensor(loaded.get(), state))) << state;
  }
  // The loaded model's reset goes back to the state as loaded (its value at load), not to the creation value.
  if (c.adaptive_bias_rate > 0.0 || c.dynamic_capacity) {
    PIMOE_ASSERT_OK(pimoe_model_reset_adaptive_state(loaded.get()));
    for (const auto &kv : saved_state) {
      EXPECT_TRUE(SameBits(ReadTensor(loaded.get(), kv.first.c_str()), kv.second))
          << kv.first << " after a reset of the loaded model: not the value it was loaded with";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(RoutingSaveLoad, EveryFeatureRoundTrips, ::testing::ValuesIn(SaveCases()),
                         [](const ::testing::TestParamInfo<SaveCase> &p) { return ParamName(p.param.name); });

// The state round-trips exactly: the bias and load average after some calls are the loaded model's; a reset of the
// loaded model restores exactly the value it was loaded with.
TEST(RoutingSaveLoad, AdaptiveStateRoundTripsAndResetGoesBackToTheLoadedValue) {
  Cfg c;
  c.adaptive_bias_rate = 0.02;
  c.capacity_factor = 1.0;
  c.dynamic_capacity = true;
  c.seed = 6;
  ModelPtr m;
  ASSERT_NO_FATAL_FAILURE(Create(c, &m));
  const std::vector<float> router = ReadTensor(m.get(), "router.weight");
  std::vector<float> y;
  for (int call = 0; call < 6; ++call) {
    PIMOE_ASSERT_OK(Forward(m.get(), SkewedInput(router, c.hidden, 128, 90 + static_cast<uint64_t>(call)), 1, 128, &y));
  }
  const std::vector<float> bias = ReadTensor(m.get(), "router.selection_bias");
  const std::vector<float> ema = ReadTensor(m.get(), "router.load_ema");
  const std::string path = TempPath("state");
  PIMOE_ASSERT_OK(pimoe_save(m.get(), path.c_str()));
  pimoe_model *raw = nullptr;
  PIMOE_ASSERT_OK(pimoe_load(path.c_str(), nullptr, &raw));
  ModelPtr loaded(raw);
  std::remove(path.c_str());
  EXPECT_TRUE(SameBits(ReadTensor(loaded.get(), "router.selection_bias"), bias));
  EXPECT_TRUE(SameBits(ReadTensor(loaded.get(), "router.load_ema"), ema));
  for (int call = 0; call < 3; ++call) {
    PIMOE_ASSERT_OK(
        Forward(loaded.get(), SkewedInput(router, c.hidden, 128, 95 + static_cast<uint64_t>(call)), 1, 128, &y));
  }
  EXPECT_FALSE(SameBits(ReadTensor(loaded.get(), "router.selection_bias"), bias));
  PIMOE_ASSERT_OK(pimoe_model_reset_adaptive_state(loaded.get()));
  EXPECT_TRUE(SameBits(ReadTensor(loaded.get(), "router.selection_bias"), bias)) << "reset restores the loaded bias";
  EXPECT_TRUE(SameBits(ReadTensor(loaded.get(), "router.load_ema"), ema)) << "reset restores the loaded load average";
}
}  // namespace
