/* SPDX-License-Identifier: MIT */
// The resolved, validated description of a layer: what a Model is built from.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "compact_matrix.h"
#include "option_table.h"
#include "pimoe/pimoe.h"

namespace pimoe {

// A host function computing one expert (pimoe_expert_fn), with its user data.
struct ExpertCallback {
  pimoe_expert_fn fn = nullptr;
  void *user_data = nullptr;
};

struct ExpertSpec {
  pimoe_activation activation = PIMOE_ACT_GELU;
  int64_t intermediate = 0;
  bool pre_norm = false;
  bool bias = false;
  // A host callback computes this expert (pimoe_expert_callback): it has no weights, and a backend never sees its
  // assignments (the router keeps them out of the plan's counting sort; the model calls the callback).
  bool callback = false;
  WeightFormat format;  // storage of the expert's matrices (the layer's, or the expert's override)

  // A gated expert (SwiGLU, SwiGLU-OAI) has a gate projection; with `bias`, gate, up and down have biases.
  bool gated() const { return activation == PIMOE_ACT_SWIGLU || activation == PIMOE_ACT_SWIGLU_OAI; }
};

// RouterScoring, GroupScore, WeightDtype and CpuGemm: option_table.h (the options' values, parsed at the setter).

struct RouterConfig {
  int64_t num_experts = 0;
  int64_t top_k = 0;
  double temperature = 1.0;
  bool renormalize = true;
  double capacity_factor = 0.0;
  double aux_loss_coef = 1.0;
  RouterScoring scoring = RouterScoring::Softmax;
  bool selection_bias = false;  // tensor "router.selection_bias" [E]: selection by score + b, weights unbiased
  bool logit_bias = false;      // tensor "router.bias" [E]: z = W_g x + c (the model adds c to the backend's logits)
  double routed_scaling_factor = 1.0;
  int64_t num_groups = 1;  // group-limited routing: E/num_groups consecutive experts per group; 1 = off
  int64_t topk_groups = 1;
  GroupScore group_score = GroupScore::Top2Sum;
  // Multi-level group tree (two levels or more; a single level is num_groups/topk_groups): {groups, kept} per level.
  std::vector<std::pair<int64_t, int64_t>> group_levels;
  bool expert_choice = false;  // each expert takes its top-C tokens of the call
  int64_t attention_heads = 0;  // attention router: logits from x + self-attention context; 0 = off
  int64_t attention_head_dim = 16;
  bool attention_causal = false;
  double adaptive_bias_rate = 0.0;  // > 0: selection bias updated after every call (implies selection_bias)
  bool dynamic_capacity = false;    // per-expert capacity from router.load_ema
  double capacity_momentum = 0.9;
  int64_t combine_attention_dim = 0;  // attention combine d_c; 0 = off
  bool scale_input = false;           // expert_input_scaling: y = sum_j expert_j(w_j x) (the model's run_scaled)
  double sparsemixer_eps = 0.0;       // > 0: Phi-3.5-MoE's sparsemixer routing (router.cpp)
  bool has_callback_experts = false;
  std::vector<uint8_t> callback_expert;  // [E] 1: computed by a host callback (kept out of the backend's plan)

  // Routing slots per token in the plan and the routing outputs.
  int64_t slots() const { return expert_choice ? num_experts : top_k; }

  // True when the layer uses a routing feature that only the host router implements (attention router, expert
  // choice, multi-level groups, adaptive bias, dynamic capacity, attention combine, callback experts, the router's
  // logit bias, expert input scaling, sparsemixer): a backend's fused on-device routing must then leave routing to
  // the model (router_logits + run_experts).
  bool needs_host_routing() const {
    return !group_levels.empty() || expert_choice || attention_heads > 0 || adaptive_bias_rate > 0.0 ||
           dynamic_capacity || combine_attention_dim > 0 || has_callback_experts || logit_bias || scale_input ||
           sparsemixer_eps > 0.0;
  }

  // True when routing is plain softmax top-k (the default layer): the router's fast path.
  bool plain_softmax() const {
    return scoring == RouterScoring::Softmax && !selection_bias && num_groups == 1 && routed_scaling_factor == 1.0 &&
           group_levels.empty() && !expert_choice && sparsemixer_eps == 0.0;
  }
};

// The always-on shared expert (DeepSeekMoE, Qwen2-MoE): SwiGLU of `width`, optionally scaled by sigmoid(w . x).
struct SharedExpertConfig {
  int64_t width = 0;  // 0: none
  bool gated = false;
};

struct LayerConfig {
  // Callback experts' functions, by expert index (see ExpertSpec::callback). Not part of the saved layer.
  std::vector<ExpertCallback> callbacks;

  int64_t hidden = 0;
  RouterConfig router;
  std::vector<ExpertSpec> experts;
  SharedExpertConfig shared;
  double layer_norm_eps = 1e-5;
  double swiglu_alpha = 1.702;  // SWIGLU_OAI experts' alpha and limit
  double swiglu_limit = 7.0;
  uint64_t seed = 0;
  int64_t threads = 0;
  bool deterministic = false;
  std::string backend;  // a well-formed backend name (checked at the setter); availability is the registry's call
  CpuGemm cpu_gemm = CpuGemm::Packed;
  // Storage of expert and shared-expert matrices: the layer's format (never "auto" once resolved); experts may
  // override it (ExpertSpec::format); the shared expert uses the layer's.
  WeightFormat weight_format;
  // The CPU backend's activations for int8/int4 matrices (never Auto once resolved).
  ActivationDtype activation_dtype = ActivationDtype::Int8;
  // The experimental options with the environment's overrides applied (option_table.h; not saved with the layer).
  BackendTuning tuning;
};

// Expert features the GPU backends' kernels do not implement: SWIGLU_OAI experts and gated experts with biases. Throws
// PIMOE_ERR_UNSUPPORTED naming `backend`, the expert and the feature when the layer has one (a backend family calls
// it before taking the weights).
void refuse_cpu_only_expert_features(const LayerConfig &config, const char *backend);

}  // namespace pimoe
