// The resolved, validated description of a layer: what a Model is built from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "options.h"

namespace pimoe {

struct ExpertSpec {
  pimoe_activation activation = PIMOE_ACT_GELU;
  int64_t intermediate = 0;
  bool pre_norm = false;
  bool bias = false;

  bool gated() const { return activation == PIMOE_ACT_SWIGLU; }
};

struct RouterConfig {
  int64_t num_experts = 0;
  int64_t top_k = 0;
  double temperature = 1.0;
  bool renormalize = true;
  double capacity_factor = 0.0;
  double aux_loss_coef = 1.0;
};

struct LayerConfig {
  int64_t hidden = 0;
  RouterConfig router;
  std::vector<ExpertSpec> experts;
  double layer_norm_eps = 1e-5;
  uint64_t seed = 0;
  int64_t threads = 0;
  bool deterministic = false;
  std::string backend;
  std::string cpu_gemm;
};

// Applies presets and overrides and checks every cross-option constraint (top_k <= num_experts, ...).
LayerConfig resolve_layer_config(const Options &options);

}  // namespace pimoe
