// SPDX-License-Identifier: MIT
#include "layer_config.h"
#include "options.h"

#include "error.h"

namespace pimoe {
namespace {

constexpr int64_t kMaxIntermediate = 262144;

// The preset table documented in pimoe.h. GENERIC keeps the layer's own defaults.
void apply_preset(pimoe_expert_preset preset, const ExpertSpec &layer_default, ExpertSpec &spec) {
  const int64_t base_width = layer_default.intermediate;
  switch (preset) {
    case PIMOE_PRESET_GENERIC: {
      const WeightFormat format = spec.format;
      spec = layer_default;
      spec.format = format;
      return;
    }
    case PIMOE_PRESET_REASONING:
      spec = {PIMOE_ACT_GELU, base_width, true, spec.bias, false, spec.format};
      return;
    case PIMOE_PRESET_COMPUTATION:
      spec = {PIMOE_ACT_GELU, 2 * base_width, false, spec.bias, false, spec.format};
      return;
    case PIMOE_PRESET_MATHEMATICAL:
      spec = {PIMOE_ACT_SILU, base_width, false, spec.bias, false, spec.format};
      return;
    case PIMOE_PRESET_LOGICAL:
      spec = {PIMOE_ACT_TANH, base_width, false, spec.bias, false, spec.format};
      return;
    case PIMOE_PRESET_LANGUAGE:
      spec = {PIMOE_ACT_SWIGLU, base_width, false, spec.bias, false, spec.format};
      return;
    case PIMOE_PRESET_CREATIVE:
      spec = {PIMOE_ACT_GELU_TANH, base_width, true, spec.bias, false, spec.format};
      return;
    case PIMOE_PRESET_ANALYTICAL:
      spec = {PIMOE_ACT_RELU, base_width, true, spec.bias, false, spec.format};
      return;
  }
}

void apply_override(const ExpertOverride &o, const ExpertSpec &layer_default, ExpertSpec &spec) {
  if (o.preset) apply_preset(*o.preset, layer_default, spec);  // shape only: the storage format stays
  if (o.activation) spec.activation = *o.activation;
  if (o.width) spec.intermediate = *o.width;
  if (o.pre_norm) spec.pre_norm = *o.pre_norm;
  if (o.weight_dtype) spec.format.dtype = *o.weight_dtype;
}

}  // namespace

WeightFormat weight_format_of(WeightDtype dtype, const Options &options) {
  if (options.weight_group_size != 32 && options.weight_group_size != 64 && options.weight_group_size != 128) {
    fail(PIMOE_ERR_INVALID_OPTION, "weight_group_size (", options.weight_group_size, ") must be 32, 64 or 128");
  }
  WeightFormat f;
  f.dtype = dtype == WeightDtype::Auto ? WeightDtype::F32 : dtype;
  if (f.dtype == WeightDtype::Int4) {
    f.group = options.weight_group_size;
    f.zero_point = options.weight_zero_point;
  }
  return f;
}

LayerConfig resolve_layer_config(const Options &options) {
  if (options.top_k > options.num_experts) {
    fail(PIMOE_ERR_INVALID_OPTION, "top_k (", options.top_k, ") exceeds num_experts (", options.num_experts, ")");
  }
  if (options.num_experts % options.num_groups != 0) {
    fail(PIMOE_ERR_INVALID_OPTION, "num_experts (", options.num_experts, ") is not a multiple of num_groups (",
         options.num_groups, ")");
  }
  if (options.topk_groups < 1 || options.topk_groups > options.num_groups) {
    fail(PIMOE_ERR_INVALID_OPTION, "topk_groups (", options.topk_groups, ") is not in [1, num_groups (",
         options.num_groups, ")]");
  }
  int64_t num_groups = options.num_groups, topk_groups = options.topk_groups;
  std::vector<std::pair<int64_t, int64_t>> levels = parse_group_levels(options.group_levels);
  if (!levels.empty() && (num_groups != 1 || topk_groups != 1)) {
    fail(PIMOE_ERR_INVALID_OPTION, "group_levels ('", options.group_levels, "') and num_groups/topk_groups (",
         num_groups, "/", topk_groups, ") both set: use one of them");
  }
  if (levels.size() == 1) {  // one level is plain group-limited routing
    num_groups = levels[0].first;
    topk_groups = levels[0].second;
    levels.clear();
    if (options.num_experts % num_groups != 0 || topk_groups > num_groups) {
      fail(PIMOE_ERR_INVALID_OPTION, "group_levels '", options.group_levels, "' needs num_experts (",
           options.num_experts, ") to be a multiple of G and K <= G");
    }
  }
  int64_t eligible = options.num_experts / num_groups * topk_groups;
  if (!levels.empty()) {
    int64_t product = 1, kept_before = 1;
    for (size_t l = 0; l < levels.size(); ++l) {
      const int64_t g = levels[l].first, k = levels[l].second;
      product *= g;
      if (product > options.num_experts || options.num_experts % product != 0) {
        fail(PIMOE_ERR_INVALID_OPTION, "group_levels '", options.group_levels, "': num_experts (", options.num_experts,
             ") is not a multiple of the groups' product up to level ", l + 1, " (", product, ")");
      }
      if (k > kept_before * g) {
        fail(PIMOE_ERR_INVALID_OPTION, "group_levels '", options.group_levels, "': level ", l + 1, " keeps ", k,
             " of only ", kept_before * g, " candidate groups");
      }
      kept_before = k;
    }
    eligible = kept_before * (options.num_experts / product);
  }
  if (options.top_k > eligible) {
    if (levels.empty()) {
      fail(PIMOE_ERR_INVALID_OPTION, "top_k (", options.top_k, ") exceeds the experts of the kept groups (topk_groups (",
           topk_groups, ") * num_experts/num_groups (", options.num_experts / num_groups, ") = ", eligible, ")");
    }
    fail(PIMOE_ERR_INVALID_OPTION, "top_k (", options.top_k, ") exceeds the experts of the kept groups of group_levels '",
         options.group_levels, "' (", eligible, ")");
  }
  if (options.shared_width < 0 || options.shared_width > kMaxIntermediate) {
    fail(PIMOE_ERR_INVALID_OPTION, "shared_width (", options.shared_width, ") is out of range [0, ", kMaxIntermediate,
         "]");
  }
  if (options.shared_gate && options.shared_width == 0) {
    fail(PIMOE_ERR_INVALID_OPTION, "shared_gate (1) needs a shared expert (shared_width > 0)");
  }
  const bool expert_choice = options.routing_mode == RoutingMode::ExpertChoice;
  if (expert_choice) {
    const char *conflict = options.router_bias                ? "router_bias"
                           : num_groups > 1 || !levels.empty() ? "group-limited routing"
                           : options.adaptive_bias_rate > 0.0  ? "adaptive_bias_rate"
                           : options.dynamic_capacity          ? "dynamic_capacity"
                                                               : nullptr;
    if (conflict) fail(PIMOE_ERR_INVALID_OPTION, "routing_mode 'expert_choice' cannot be combined with ", conflict);
  }
  if (options.dynamic_capacity && options.capacity_factor <= 0.0) {
    fail(PIMOE_ERR_INVALID_OPTION, "dynamic_capacity (1) needs a capacity_factor > 0 (it re-budgets that capacity)");
  }
  if (options.deterministic && (options.adaptive_bias_rate > 0.0 || options.dynamic_capacity)) {
    fail(PIMOE_ERR_INVALID_OPTION, "deterministic (1) cannot be promised with ",
         options.adaptive_bias_rate > 0.0 ? "adaptive_bias_rate > 0" : "dynamic_capacity (1)",
         ": outputs depend on earlier calls");
  }
  if (options.sparsemixer_eps > 0.0) {
    const char *conflict = options.top_k != 2                                       ? "top_k other than 2"
                           : options.router_scoring != RouterScoring::Softmax       ? "router_scoring 'sigmoid'"
                           : options.router_bias || options.adaptive_bias_rate > 0.0 ? "a selection bias"
                           : num_groups > 1 || !levels.empty()                      ? "group-limited routing"
                           : expert_choice                                          ? "routing_mode 'expert_choice'"
                                                                                    : nullptr;
    if (conflict) fail(PIMOE_ERR_INVALID_OPTION, "sparsemixer_eps (> 0) cannot be combined with ", conflict);
  }
  if (options.expert_input_scaling && (options.combine_attention_dim > 0 || !options.callbacks.empty())) {
    fail(PIMOE_ERR_INVALID_OPTION, "expert_input_scaling (1) cannot be combined with ",
         options.combine_attention_dim > 0 ? "combine_attention_dim > 0" : "callback experts",
         ": those weigh experts' outputs, and its outputs are unweighted");
  }
  if (!options.callbacks.empty() && options.callbacks.rbegin()->first >= options.num_experts) {
    fail(PIMOE_ERR_INVALID_OPTION, "expert callback for expert ", options.callbacks.rbegin()->first,
         " but num_experts is ", options.num_experts);
  }
  LayerConfig config;
  config.hidden = options.hidden;
  config.router.scoring = options.router_scoring;
  config.router.selection_bias = options.router_bias;
  config.router.routed_scaling_factor = options.routed_scaling_factor;
  config.router.num_groups = num_groups;
  config.router.topk_groups = topk_groups;
  config.router.group_levels = levels;
  config.router.expert_choice = expert_choice;
  config.router.attention_heads = options.attention_heads;
  config.router.attention_head_dim = options.attention_head_dim;
  config.router.attention_causal = options.attention_causal;
  config.router.adaptive_bias_rate = options.adaptive_bias_rate;
  if (options.adaptive_bias_rate > 0.0) config.router.selection_bias = true;
  config.router.dynamic_capacity = options.dynamic_capacity;
  config.router.capacity_momentum = options.capacity_momentum;
  config.router.combine_attention_dim = options.combine_attention_dim;
  config.router.group_score = options.group_score;
  config.shared.width = options.shared_width;
  config.shared.gated = options.shared_gate;
  config.router.num_experts = options.num_experts;
  config.router.top_k = options.top_k;
  config.router.temperature = options.temperature;
  config.router.renormalize = options.renormalize;
  config.router.capacity_factor = options.capacity_factor;
  config.router.aux_loss_coef = options.aux_loss_coef;
  config.layer_norm_eps = options.layer_norm_eps;
  config.swiglu_alpha = options.swiglu_alpha;
  config.swiglu_limit = options.swiglu_limit;
  config.router.logit_bias = options.router_logit_bias;
  config.router.scale_input = options.expert_input_scaling;
  config.router.sparsemixer_eps = options.sparsemixer_eps;
  config.seed = options.seed;
  config.threads = options.threads;
  config.deterministic = options.deterministic;
  config.cpu_gemm = options.cpu_gemm;
  config.weight_format = weight_format_of(options.weight_dtype, options);
  config.activation_dtype =
      options.activation_dtype == ActivationDtype::F32 ? ActivationDtype::F32 : ActivationDtype::Int8;
  config.backend = options.backend;
  config.tuning = apply_tuning_environment(options.tuning);

  if (!options.per_expert.empty()) {
    int32_t highest = options.per_expert.rbegin()->first;
    if (highest >= options.num_experts) {
      fail(PIMOE_ERR_INVALID_OPTION, "expert override for expert ", highest, " but num_experts is ",
           options.num_experts);
    }
  }
  const ExpertSpec layer_default{options.activation, options.intermediate, options.pre_norm, options.expert_bias,
                                 false, config.weight_format};
  config.experts.assign(static_cast<size_t>(options.num_experts), layer_default);
  for (int64_t e = 0; e < options.num_experts; ++e) {
    ExpertSpec &spec = config.experts[static_cast<size_t>(e)];
    apply_override(options.every_expert, layer_default, spec);
    auto it = options.per_expert.find(static_cast<int32_t>(e));
    if (it != options.per_expert.end()) apply_override(it->second, layer_default, spec);
    if (options.callbacks.count(static_cast<int32_t>(e))) {
      spec = ExpertSpec{};
      spec.callback = true;
      continue;
    }
    spec.format = weight_format_of(spec.format.dtype, options);
    if (spec.intermediate < 1 || spec.intermediate > kMaxIntermediate) {
      fail(PIMOE_ERR_INVALID_OPTION, "expert ", e, ": width ", spec.intermediate, " is out of range [1, ",
           kMaxIntermediate, "]");
    }
  }
  config.callbacks.assign(static_cast<size_t>(options.num_experts), ExpertCallback{});
  for (const auto &[e, cb] : options.callbacks) config.callbacks[static_cast<size_t>(e)] = cb;
  config.router.has_callback_experts = !options.callbacks.empty();
  config.router.callback_expert.assign(static_cast<size_t>(options.num_experts), 0);
  for (const auto &item : options.callbacks) config.router.callback_expert[static_cast<size_t>(item.first)] = 1;
  return config;
}

void refuse_cpu_only_expert_features(const LayerConfig &config, const char *backend) {
  for (size_t e = 0; e < config.experts.size(); ++e) {
    const ExpertSpec &spec = config.experts[e];
    if (spec.callback) continue;
    if (spec.activation == PIMOE_ACT_SWIGLU_OAI) {
      fail(PIMOE_ERR_UNSUPPORTED, "backend '", backend, "' does not implement the swiglu_oai activation (expert ", e,
           "); it runs on the cpu backend");
    }
    if (spec.gated() && spec.bias) {
      fail(PIMOE_ERR_UNSUPPORTED, "backend '", backend, "' does not implement biases on a gated expert's gate and up ",
           "projections (expert ", e, ": swiglu with expert_bias); it runs on the cpu backend");
    }
  }
}

}  // namespace pimoe
