// Layer options as set through the C API, and their validation.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pimoe/pimoe.h"

namespace pimoe {

// What one pimoe_options_set_expert_* call sequence said about an expert (or about every expert).
struct ExpertOverride {
  std::optional<pimoe_expert_preset> preset;
  std::optional<pimoe_activation> activation;
  std::optional<int64_t> width;
  std::optional<bool> pre_norm;
};

// A host function computing one expert (pimoe_expert_fn), with its user data.
struct ExpertCallback {
  pimoe_expert_fn fn = nullptr;
  void *user_data = nullptr;
};

struct Options {
  int64_t hidden = 512;
  int64_t num_experts = 8;
  int64_t top_k = 2;
  int64_t intermediate = 2048;
  pimoe_activation activation = PIMOE_ACT_GELU;
  bool pre_norm = false;
  bool expert_bias = false;
  double temperature = 1.0;
  bool renormalize = true;
  double capacity_factor = 0.0;
  double aux_loss_coef = 1.0;
  double layer_norm_eps = 1e-5;
  uint64_t seed = 0;
  int64_t threads = 0;
  std::string backend = "auto";
  bool deterministic = false;
  std::string cpu_gemm = "packed";
  std::string router_scoring = "softmax";
  bool router_bias = false;
  double routed_scaling_factor = 1.0;
  int64_t num_groups = 1;
  int64_t topk_groups = 1;
  std::string group_score = "top2_sum";
  int64_t shared_width = 0;
  bool shared_gate = false;
  std::string weight_dtype = "fp32";
  std::string routing_mode = "token_choice";
  std::string group_levels;  // "G1:K1,G2:K2,..." as given; parsed by resolve_layer_config
  int64_t attention_heads = 0;
  int64_t attention_head_dim = 16;
  bool attention_causal = false;
  double adaptive_bias_rate = 0.0;
  bool dynamic_capacity = false;
  double capacity_momentum = 0.9;
  int64_t combine_attention_dim = 0;
  std::map<int32_t, ExpertCallback> callbacks;  // callback experts by index

  ExpertOverride every_expert;
  std::map<int32_t, ExpertOverride> per_expert;

  // Keys arrive as plain ints: a C caller may pass any value, and an out-of-range enum is undefined in C++.
  void set_int(int key, int64_t value);
  void set_float(int key, double value);
  void set_string(int key, const char *value);
  void set_by_name(const char *key, const char *value);

  ExpertOverride &expert_override(int32_t expert);
};

// Parses an activation name ("gelu", "swiglu", ...); throws PIMOE_ERR_INVALID_OPTION naming `what`.
// Parses "G1:K1,G2:K2,..." (the group_levels option); "" gives no levels. Throws PIMOE_ERR_INVALID_OPTION.
std::vector<std::pair<int64_t, int64_t>> parse_group_levels(const std::string &text);

pimoe_activation parse_activation(const std::string &name, const char *what);
const char *activation_name(pimoe_activation activation);
bool is_valid_activation(int64_t value);

}  // namespace pimoe

// The opaque C handle is the C++ options object itself.
struct pimoe_options {
  pimoe::Options options;
};
