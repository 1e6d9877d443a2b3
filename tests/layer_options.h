/* SPDX-License-Identifier: MIT */
// Shared by the two oracle suites (test_parity: tests/parity, test_routing_features: tests/routing_features): the
// router and expert options both layer descriptions have (Layer, Cfg), set on a pimoe_options and copied into the
// oracle's Hyper the same way, and the SplitMix64 inputs both draw (each suite with its own salt, so that their inputs
// stay what they were).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "backend_under_test.h"
#include "oracle.h"
#include "pimoe/pimoe.h"

// The layer options common to Layer (test_parity) and Cfg (test_routing_features): shapes, experts (and SWIGLU_OAI's
// alpha and limit), the router (scoring, biases, scaling, groups, capacity) and the shared expert.
template <class L>
void SetLayerOptions(pimoe_options *o, const L &l) {
  PIMOE_ASSERT_OK(pimoe_options_set_int(o, PIMOE_OPT_HIDDEN, l.hidden));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o, PIMOE_OPT_NUM_EXPERTS, l.experts));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o, PIMOE_OPT_TOP_K, l.top_k));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o, PIMOE_OPT_INTERMEDIATE, l.intermediate));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o, PIMOE_OPT_ACTIVATION, l.activation));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o, PIMOE_OPT_PRE_NORM, l.pre_norm ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o, PIMOE_OPT_EXPERT_BIAS, l.expert_bias ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_float(o, PIMOE_OPT_TEMPERATURE, l.temperature));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o, PIMOE_OPT_RENORMALIZE, l.renormalize ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_float(o, PIMOE_OPT_CAPACITY_FACTOR, l.capacity_factor));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o, PIMOE_OPT_SEED, l.seed));
  PIMOE_ASSERT_OK(pimoe_options_set_string(o, PIMOE_OPT_ROUTER_SCORING, l.sigmoid ? "sigmoid" : "softmax"));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o, PIMOE_OPT_ROUTER_BIAS, l.router_bias ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_float(o, PIMOE_OPT_ROUTED_SCALING, l.routed_scaling));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o, PIMOE_OPT_NUM_GROUPS, l.num_groups));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o, PIMOE_OPT_TOPK_GROUPS, l.topk_groups));
  PIMOE_ASSERT_OK(pimoe_options_set_string(o, PIMOE_OPT_GROUP_SCORE, l.group_max ? "max" : "top2_sum"));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o, PIMOE_OPT_SHARED_WIDTH, l.shared_width));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o, PIMOE_OPT_SHARED_GATE, l.shared_gate ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o, PIMOE_OPT_ROUTER_LOGIT_BIAS, l.router_logit_bias ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_float(o, PIMOE_OPT_SWIGLU_ALPHA, l.swiglu_alpha));
  PIMOE_ASSERT_OK(pimoe_options_set_float(o, PIMOE_OPT_SWIGLU_LIMIT, l.swiglu_limit));
}

// The same options as the oracle's hyperparameters.
template <class L>
pimoe_oracle::Hyper LayerHyper(const L &l) {
  pimoe_oracle::Hyper h;
  h.temperature = l.temperature;
  h.renormalize = l.renormalize;
  h.capacity_factor = l.capacity_factor;
  h.top_k = l.top_k;
  h.expert_bias = l.expert_bias;
  h.sigmoid = l.sigmoid;
  h.router_bias = l.router_bias;
  h.routed_scaling = l.routed_scaling;
  h.num_groups = l.num_groups;
  h.topk_groups = l.topk_groups;
  h.group_max = l.group_max;
  h.shared_width = l.shared_width;
  h.shared_gate = l.shared_gate;
  h.router_logit_bias = l.router_logit_bias;
  h.swiglu_alpha = l.swiglu_alpha;
  h.swiglu_limit = l.swiglu_limit;
  return h;
}

// The GPU backends implement neither SWIGLU_OAI experts nor gated experts with biases (pimoe.h, EXPERT_BIAS): true
// when the backend under test is one of them and one of `specs` is such an expert.
inline bool BackendRefusesExperts(const std::vector<pimoe_oracle::ExpertSpec> &specs, bool expert_bias) {
  if (std::string(Backend()) == "cpu") return false;
  for (const pimoe_oracle::ExpertSpec &s : specs) {
    if (s.activation == PIMOE_ACT_SWIGLU_OAI || (pimoe_oracle::IsGated(s.activation) && expert_bias)) return true;
  }
  return false;
}

// Such a layer's creation fails as pimoe.h says: PIMOE_ERR_UNSUPPORTED, pointing at the cpu backend.
inline void ExpectBackendRefuses(const pimoe_options *o) {
  pimoe_model *m = nullptr;
  EXPECT_EQ(pimoe_create(o, &m), PIMOE_ERR_UNSUPPORTED) << Backend();
  EXPECT_NE(std::string(pimoe_last_error()).find("cpu backend"), std::string::npos) << pimoe_last_error();
  pimoe_destroy(m);
}

// Uniform values of unit variance (times scale), from SplitMix64: portable, independent of the library's generator.
// `salt` keeps each suite's inputs its own.
inline std::vector<float> SplitMixInput(size_t n, uint64_t seed, uint64_t salt, double scale) {
  uint64_t state = seed * 0x2545f4914f6cdd1dULL + salt;
  std::vector<float> v(n);
  for (float &f : v) {
    const double u = static_cast<double>(pimoe_oracle::SplitMix64Next(&state) >> 11) * (1.0 / 9007199254740992.0);
    f = static_cast<float>((2.0 * u - 1.0) * std::sqrt(3.0) * scale);
  }
  return v;
}
