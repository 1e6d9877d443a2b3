#include "expert_spec.h"

#include "error.h"

namespace pimoe {
namespace {

constexpr int64_t kMaxIntermediate = 262144;

// The preset table documented in pimoe.h. GENERIC keeps the layer's own defaults.
void apply_preset(pimoe_expert_preset preset, const ExpertSpec &layer_default, ExpertSpec &spec) {
  const int64_t base_width = layer_default.intermediate;
  switch (preset) {
    case PIMOE_PRESET_GENERIC:
      spec = layer_default;
      return;
    case PIMOE_PRESET_REASONING:
      spec = {PIMOE_ACT_GELU, base_width, true, spec.bias};
      return;
    case PIMOE_PRESET_COMPUTATION:
      spec = {PIMOE_ACT_GELU, 2 * base_width, false, spec.bias};
      return;
    case PIMOE_PRESET_MATHEMATICAL:
      spec = {PIMOE_ACT_SILU, base_width, false, spec.bias};
      return;
    case PIMOE_PRESET_LOGICAL:
      spec = {PIMOE_ACT_TANH, base_width, false, spec.bias};
      return;
    case PIMOE_PRESET_LANGUAGE:
      spec = {PIMOE_ACT_SWIGLU, base_width, false, spec.bias};
      return;
    case PIMOE_PRESET_CREATIVE:
      spec = {PIMOE_ACT_GELU_TANH, base_width, true, spec.bias};
      return;
    case PIMOE_PRESET_ANALYTICAL:
      spec = {PIMOE_ACT_RELU, base_width, true, spec.bias};
      return;
  }
}

void apply_override(const ExpertOverride &o, const ExpertSpec &layer_default, ExpertSpec &spec) {
  if (o.preset) apply_preset(*o.preset, layer_default, spec);
  if (o.activation) spec.activation = *o.activation;
  if (o.width) spec.intermediate = *o.width;
  if (o.pre_norm) spec.pre_norm = *o.pre_norm;
}

}  // namespace

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
  const int64_t eligible = options.num_experts / options.num_groups * options.topk_groups;
  if (options.top_k > eligible) {
    fail(PIMOE_ERR_INVALID_OPTION, "top_k (", options.top_k, ") exceeds the experts of the kept groups (topk_groups (",
         options.topk_groups, ") * num_experts/num_groups (", options.num_experts / options.num_groups,
         ") = ", eligible, ")");
  }
  if (options.shared_width < 0 || options.shared_width > kMaxIntermediate) {
    fail(PIMOE_ERR_INVALID_OPTION, "shared_width (", options.shared_width, ") is out of range [0, ", kMaxIntermediate,
         "]");
  }
  if (options.shared_gate && options.shared_width == 0) {
    fail(PIMOE_ERR_INVALID_OPTION, "shared_gate (1) needs a shared expert (shared_width > 0)");
  }
  if (options.router_scoring != "softmax" && options.router_scoring != "sigmoid") {
    fail(PIMOE_ERR_INVALID_OPTION, "router_scoring '", options.router_scoring, "' is not 'softmax' or 'sigmoid'");
  }
  if (options.group_score != "top2_sum" && options.group_score != "max") {
    fail(PIMOE_ERR_INVALID_OPTION, "group_score '", options.group_score, "' is not 'top2_sum' or 'max'");
  }
  LayerConfig config;
  config.hidden = options.hidden;
  config.router.scoring = options.router_scoring == "sigmoid" ? RouterScoring::Sigmoid : RouterScoring::Softmax;
  config.router.selection_bias = options.router_bias;
  config.router.routed_scaling_factor = options.routed_scaling_factor;
  config.router.num_groups = options.num_groups;
  config.router.topk_groups = options.topk_groups;
  config.router.group_score = options.group_score == "max" ? GroupScore::Max : GroupScore::Top2Sum;
  config.shared.width = options.shared_width;
  config.shared.gated = options.shared_gate;
  config.router.num_experts = options.num_experts;
  config.router.top_k = options.top_k;
  config.router.temperature = options.temperature;
  config.router.renormalize = options.renormalize;
  config.router.capacity_factor = options.capacity_factor;
  config.router.aux_loss_coef = options.aux_loss_coef;
  config.layer_norm_eps = options.layer_norm_eps;
  config.seed = options.seed;
  config.threads = options.threads;
  config.deterministic = options.deterministic;
  config.cpu_gemm = options.cpu_gemm;
  config.weight_dtype = options.weight_dtype == "bf16"   ? WeightDtype::BF16
                        : options.weight_dtype == "fp16" ? WeightDtype::F16
                                                         : WeightDtype::F32;
  config.backend = options.backend;

  if (!options.per_expert.empty()) {
    int32_t highest = options.per_expert.rbegin()->first;
    if (highest >= options.num_experts) {
      fail(PIMOE_ERR_INVALID_OPTION, "expert override for expert ", highest, " but num_experts is ",
           options.num_experts);
    }
  }
  const ExpertSpec layer_default{options.activation, options.intermediate, options.pre_norm, options.expert_bias};
  config.experts.assign(static_cast<size_t>(options.num_experts), layer_default);
  for (int64_t e = 0; e < options.num_experts; ++e) {
    ExpertSpec &spec = config.experts[static_cast<size_t>(e)];
    apply_override(options.every_expert, layer_default, spec);
    auto it = options.per_expert.find(static_cast<int32_t>(e));
    if (it != options.per_expert.end()) apply_override(it->second, layer_default, spec);
    if (spec.intermediate < 1 || spec.intermediate > kMaxIntermediate) {
      fail(PIMOE_ERR_INVALID_OPTION, "expert ", e, ": width ", spec.intermediate, " is out of range [1, ",
           kMaxIntermediate, "]");
    }
  }
  return config;
}

}  // namespace pimoe
