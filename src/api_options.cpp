// SPDX-License-Identifier: MIT
// C shims for pimoe_options.
#include <cstring>

#include "api_guard.h"
#include "options.h"
#include "pimoe/pimoe.h"

using namespace pimoe;

namespace {

Options &options_of(pimoe_options *options, const char *function) {
  require(options, function, "options");
  return options->options;
}

void check_expert_index(int32_t expert, const char *function) {
  if (expert < -1 || expert >= 4096) {
    fail(PIMOE_ERR_INVALID_ARGUMENT, function, ": expert index ", expert,
         " is out of range (0 .. num_experts-1, or -1 for every expert)");
  }
}

}  // namespace

extern "C" {

pimoe_status pimoe_options_create(pimoe_options **out) {
  return guarded(nullptr, [&] {
    require(out, "pimoe_options_create", "out");
    *out = new pimoe_options{};
  });
}

void pimoe_options_destroy(pimoe_options *options) {
  delete options;
}

pimoe_status pimoe_options_set_int(pimoe_options *options, pimoe_option key, int64_t value) {
  return guarded(nullptr, [&] { options_of(options, "pimoe_options_set_int").set_int(raw_value(key), value); });
}

pimoe_status pimoe_options_set_float(pimoe_options *options, pimoe_option key, double value) {
  return guarded(nullptr, [&] { options_of(options, "pimoe_options_set_float").set_float(raw_value(key), value); });
}

pimoe_status pimoe_options_set_string(pimoe_options *options, pimoe_option key, const char *value) {
  return guarded(nullptr, [&] { options_of(options, "pimoe_options_set_string").set_string(raw_value(key), value); });
}

pimoe_status pimoe_options_set_by_name(pimoe_options *options, const char *key, const char *value) {
  return guarded(nullptr, [&] { options_of(options, "pimoe_options_set_by_name").set_by_name(key, value); });
}

pimoe_status pimoe_options_set_expert_preset(pimoe_options *options, int32_t expert, pimoe_expert_preset preset) {
  return guarded(nullptr, [&] {
    Options &o = options_of(options, "pimoe_options_set_expert_preset");
    check_expert_index(expert, "pimoe_options_set_expert_preset");
    const int raw = raw_value(preset);
    if (raw < PIMOE_PRESET_GENERIC || raw > PIMOE_PRESET_ANALYTICAL) {
      fail(PIMOE_ERR_INVALID_OPTION, "pimoe_options_set_expert_preset: unknown preset ", raw);
    }
    o.expert_override(expert).preset = static_cast<pimoe_expert_preset>(raw);
  });
}

pimoe_status pimoe_options_set_expert_activation(pimoe_options *options, int32_t expert, pimoe_activation activation) {
  return guarded(nullptr, [&] {
    Options &o = options_of(options, "pimoe_options_set_expert_activation");
    check_expert_index(expert, "pimoe_options_set_expert_activation");
    const int raw = raw_value(activation);
    if (!is_valid_activation(raw)) {
      fail(PIMOE_ERR_INVALID_OPTION, "pimoe_options_set_expert_activation: unknown activation ", raw);
    }
    o.expert_override(expert).activation = static_cast<pimoe_activation>(raw);
  });
}

pimoe_status pimoe_options_set_expert_width(pimoe_options *options, int32_t expert, int64_t intermediate) {
  return guarded(nullptr, [&] {
    Options &o = options_of(options, "pimoe_options_set_expert_width");
    check_expert_index(expert, "pimoe_options_set_expert_width");
    if (intermediate < 1 || intermediate > 262144) {
      fail(PIMOE_ERR_INVALID_OPTION, "pimoe_options_set_expert_width: width ", intermediate,
           " is out of range [1, 262144]");
    }
    o.expert_override(expert).width = intermediate;
  });
}

pimoe_status pimoe_options_set_expert_pre_norm(pimoe_options *options, int32_t expert, int32_t enabled) {
  return guarded(nullptr, [&] {
    Options &o = options_of(options, "pimoe_options_set_expert_pre_norm");
    check_expert_index(expert, "pimoe_options_set_expert_pre_norm");
    if (enabled != 0 && enabled != 1) {
      fail(PIMOE_ERR_INVALID_OPTION, "pimoe_options_set_expert_pre_norm: enabled must be 0 or 1, not ", enabled);
    }
    o.expert_override(expert).pre_norm = enabled != 0;
  });
}

pimoe_status pimoe_options_set_expert_weight_dtype(pimoe_options *options, int32_t expert, const char *weight_dtype) {
  return guarded(nullptr, [&] {
    const char *fn = "pimoe_options_set_expert_weight_dtype";
    Options &o = options_of(options, fn);
    check_expert_index(expert, fn);
    if (!weight_dtype) fail(PIMOE_ERR_NULL_POINTER, fn, ": weight_dtype is NULL");
    for (const EnumName<WeightDtype> &item : EnumNames<WeightDtype>::list) {
      if (item.value != WeightDtype::Auto && std::strcmp(item.name, weight_dtype) == 0) {
        o.expert_override(expert).weight_dtype = item.value;
        return;
      }
    }
    fail(PIMOE_ERR_INVALID_OPTION, fn, ": weight_dtype '", weight_dtype,
         "' is not a storage format (fp32, bf16, fp16, int8, int4, fp8_e4m3, mxfp4)");
  });
}

pimoe_status pimoe_options_set_expert_callback(pimoe_options *options, int32_t expert, pimoe_expert_fn fn,
                                               void *user_data) {
  return guarded(nullptr, [&] {
    Options &o = options_of(options, "pimoe_options_set_expert_callback");
    if (expert < 0) {
      fail(PIMOE_ERR_INVALID_ARGUMENT, "pimoe_options_set_expert_callback: expert index ", expert,
           " is negative (a callback names one expert)");
    }
    if (!fn) fail(PIMOE_ERR_NULL_POINTER, "pimoe_options_set_expert_callback: fn is NULL");
    o.callbacks[expert] = ExpertCallback{fn, user_data};
  });
}

}  // extern "C"
