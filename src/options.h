/* SPDX-License-Identifier: MIT */
// Layer options as set through the C API, and their validation.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "layer_config.h"
#include "option_table.h"
#include "pimoe/pimoe.h"

namespace pimoe {

// What one pimoe_options_set_expert_* call sequence said about an expert (or about every expert).
struct ExpertOverride {
  std::optional<pimoe_expert_preset> preset;
  std::optional<pimoe_activation> activation;
  std::optional<int64_t> width;
  std::optional<bool> pre_norm;
  std::optional<WeightDtype> weight_dtype;  // the expert's storage format (same group size and zero point)
};

// Every layer-wide option's field and default come from option_table.h; string values arrive here parsed to enums.
struct Options {
  PIMOE_OPTIONS(PIMOE_OPTION_FIELD)
  BackendTuning tuning;  // the experimental options, as set (the environment is applied by resolve_layer_config)
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

// Parses "G1:K1,G2:K2,..." (the group_levels option); "" gives no levels. Throws PIMOE_ERR_INVALID_OPTION.
std::vector<std::pair<int64_t, int64_t>> parse_group_levels(const std::string &text);

// The option table's checks of string options (option_table.h): throw PIMOE_ERR_INVALID_OPTION on a bad value.
void check_backend_name(const char *value);
void check_group_levels(const char *value);

// Parses an activation name ("gelu", "swiglu", ...); throws PIMOE_ERR_INVALID_OPTION naming `what`.
pimoe_activation parse_activation(const std::string &name, const char *what);
const char *activation_name(pimoe_activation activation);
bool is_valid_activation(int64_t value);

// The layer an Options describes: presets and overrides applied, every cross-option constraint checked (top_k <=
// num_experts, ...), the environment's overrides of the experimental options applied (layer_config.cpp).
LayerConfig resolve_layer_config(const Options &options);

// The storage format a weight_dtype value names under these options: "auto" is fp32 here (pimoe_load and
// pimoe_import_hf resolve it from the file before the layer is built); int4 takes weight_group_size and
// weight_zero_point. Throws PIMOE_ERR_INVALID_OPTION when weight_group_size is not 32, 64 or 128 (whatever the dtype).
WeightFormat weight_format_of(WeightDtype dtype, const Options &options);

}  // namespace pimoe

// The opaque C handle is the C++ options object itself.
struct pimoe_options {
  pimoe::Options options;
};
