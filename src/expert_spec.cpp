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
  LayerConfig config;
  config.hidden = options.hidden;
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
