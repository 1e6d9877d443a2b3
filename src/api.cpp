// SPDX-License-Identifier: MIT
// C shims for version, errors, model lifetime, forward, stats and backend queries.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <new>

#include "api_guard.h"
#include "api_validate.h"
#include "backend_registry.h"
#include "options.h"
#include "pimoe/pimoe.h"

using namespace pimoe;

namespace {

const char *kStatusText[] = {
    "success",
    "a required pointer argument was NULL",
    "invalid argument",
    "buffer size does not match the shape",
    "unknown option",
    "invalid option value",
    "input contains NaN or Inf",
    "backend unavailable",
    "out of memory",
    "not found",
    "I/O error",
    "malformed file",
    "unsupported",
    "internal error",
    "expert callback failed",
};

// Storage for strings handed out per thread (messages copied out of a model, device descriptions).
std::string &thread_string() {
  thread_local std::string text;
  return text;
}

}  // namespace

extern "C" {

const char *pimoe_version_string(void) {
  return PIMOE_VERSION_STRING;
}
uint32_t pimoe_version_number(void) {
  return PIMOE_VERSION_NUMBER;
}
uint32_t pimoe_abi_version(void) {
  return PIMOE_ABI_VERSION;
}

const char *pimoe_build_info(void) {
  static const std::string info =
      "libpimoe " PIMOE_VERSION_STRING " " + backend_build_info() + " compiler=" PIMOE_COMPILER;
  return info.c_str();
}

const char *pimoe_status_string(pimoe_status status) {
  int index;  // read as an int: an unknown code is a legal C value but an out-of-range C++ enum
  std::memcpy(&index, &status, sizeof index);
  if (index < 0 || index >= static_cast<int>(sizeof kStatusText / sizeof kStatusText[0])) return "unknown status";
  return kStatusText[index];
}

const char *pimoe_last_error(void) {
  return thread_error();
}

const char *pimoe_model_last_error(const pimoe_model *model) {
  if (!model) return "";
  try {
    thread_string() = model->model.last_error();
  } catch (const std::bad_alloc &) {  // no exception crosses the C ABI, and this call has no status to report with
    return "out of memory (copying the model's last error)";
  }
  return thread_string().c_str();
}

pimoe_status pimoe_create(const pimoe_options *options, pimoe_model **out) {
  return guarded(nullptr, [&] {
    require(out, "pimoe_create", "out");
    const Options defaults;
    const LayerConfig config = resolve_layer_config(options ? options->options : defaults);
    *out = new pimoe_model(config);
  });
}

void pimoe_destroy(pimoe_model *model) {
  delete model;
}

pimoe_status pimoe_model_dims(const pimoe_model *model, int64_t *hidden, int32_t *num_experts, int32_t *top_k) {
  return guarded(model, [&] {
    require(model, "pimoe_model_dims", "model");
    const LayerConfig &c = model->model.config();
    if (hidden) *hidden = c.hidden;
    if (num_experts) *num_experts = static_cast<int32_t>(c.router.num_experts);
    if (top_k) *top_k = static_cast<int32_t>(c.router.top_k);
  });
}

pimoe_status pimoe_model_expert(const pimoe_model *model, int32_t expert, pimoe_activation *activation,
                                int64_t *intermediate, int32_t *pre_norm) {
  return guarded(model, [&] {
    require(model, "pimoe_model_expert", "model");
    const LayerConfig &c = model->model.config();
    if (expert < 0 || expert >= c.router.num_experts) {
      fail(PIMOE_ERR_NOT_FOUND, "pimoe_model_expert: expert ", expert, " is out of range [0, ", c.router.num_experts,
           ")");
    }
    const ExpertSpec &spec = c.experts[static_cast<size_t>(expert)];
    if (activation) *activation = spec.activation;
    if (intermediate) *intermediate = spec.intermediate;
    if (pre_norm) *pre_norm = spec.pre_norm ? 1 : 0;
  });
}

const char *pimoe_model_backend(const pimoe_model *model) {
  return model ? model->model.backend().name() : "";
}

pimoe_status pimoe_forward(pimoe_model *model, const float *input, size_t input_count, int64_t batch, int64_t seq,
                           float *output, size_t output_count, int32_t *expert_ids, float *expert_weights,
                           size_t routing_count) {
  return guarded(model, [&] {
    require(model, "pimoe_forward", "model");
    validate_forward(model->model, input, input_count, batch, seq, output, output_count, expert_ids, expert_weights,
                     routing_count, "pimoe_forward", false);
    RoutingOutputs out;
    out.ids = expert_ids;
    out.weights = expert_weights;
    model->model.forward(input, batch, seq, output, out);
  });
}

int64_t pimoe_model_routing_slots(const pimoe_model *model) {
  return model ? model->model.config().router.slots() : 0;
}

pimoe_status pimoe_forward_routing(pimoe_model *model, const float *input, size_t input_count, int64_t batch,
                                   int64_t seq, float *output, size_t output_count, pimoe_routing *routing) {
  return guarded(model, [&] {
    const char *fn = "pimoe_forward_routing";
    require(model, fn, "model");
    RoutingOutputs out;
    if (routing) {
      constexpr size_t kMinimum = offsetof(pimoe_routing, probability_count) + sizeof(size_t);
      if (routing->struct_size < kMinimum) {
        fail(PIMOE_ERR_INVALID_ARGUMENT, fn, ": routing->struct_size (", routing->struct_size,
             ") is below the minimum of ", kMinimum, " bytes; set it to sizeof(pimoe_routing)");
      }
      out.ids = routing->expert_ids;
      out.weights = routing->weights;
      out.dropped = routing->dropped;
      out.probabilities = routing->probabilities;
    }
    const int64_t tokens = validate_forward(model->model, input, input_count, batch, seq, output, output_count,
                                            nullptr, nullptr, 0, fn, false);
    const LayerConfig &c = model->model.config();
    if (out.ids || out.weights || out.dropped) {
      const auto expected = static_cast<size_t>(tokens * c.router.slots());
      if (routing->slot_count != expected) {
        fail(PIMOE_ERR_SIZE_MISMATCH, fn, ": routing->slot_count (", routing->slot_count, ") != batch*seq*slots (",
             tokens, "*", c.router.slots(), " = ", expected, ")");
      }
    }
    if (out.probabilities) {
      const auto expected = static_cast<size_t>(tokens * c.router.num_experts);
      if (routing->probability_count != expected) {
        fail(PIMOE_ERR_SIZE_MISMATCH, fn, ": routing->probability_count (", routing->probability_count,
             ") != batch*seq*num_experts (", expected, ")");
      }
    }
    model->model.forward(input, batch, seq, output, out);
  });
}

pimoe_status pimoe_model_set_expert_callback(pimoe_model *model, int32_t expert, pimoe_expert_fn fn,
                                             void *user_data) {
  return guarded(model, [&] {
    require(model, "pimoe_model_set_expert_callback", "model");
    if (!fn) fail(PIMOE_ERR_NULL_POINTER, "pimoe_model_set_expert_callback: fn is NULL");
    model->model.set_callback(expert, ExpertCallback{fn, user_data});
  });
}

pimoe_status pimoe_model_reset_adaptive_state(pimoe_model *model) {
  return guarded(model, [&] {
    require(model, "pimoe_model_reset_adaptive_state", "model");
    model->model.reset_adaptive_state();
  });
}

// The snapshot is versioned by struct_size: fields are only ever appended, so a program built against an older
// header finds every field it knows where it was. Pinned here, so that an edit moving one fails the build.
static_assert(offsetof(pimoe_stats_snapshot, weight_bytes) == 80, "pimoe_stats_snapshot's layout moved");
static_assert(offsetof(pimoe_stats_snapshot, z_loss) == 152, "pimoe_stats_snapshot's layout moved");
static_assert(offsetof(pimoe_stats_snapshot, weight_quant_rel_rms_error) == 160, "pimoe_stats_snapshot's layout moved");
static_assert(offsetof(pimoe_stats_snapshot, weight_quant_max_abs_error) == 168, "pimoe_stats_snapshot's layout moved");
static_assert(sizeof(pimoe_stats_snapshot) == 176, "pimoe_stats_snapshot: a field was added without pinning it here");

pimoe_status pimoe_stats(const pimoe_model *model, pimoe_stats_snapshot *out) {
  return guarded(model, [&] {
    require(model, "pimoe_stats", "model");
    require(out, "pimoe_stats", "out");
    constexpr size_t kMinimum = offsetof(pimoe_stats_snapshot, forward_calls);
    const size_t size = out->struct_size;
    if (size < kMinimum) {
      fail(PIMOE_ERR_INVALID_ARGUMENT, "pimoe_stats: out->struct_size (", size, ") is below the minimum of ",
           kMinimum, " bytes; set it to sizeof(pimoe_stats_snapshot)");
    }
    pimoe_stats_snapshot full = model->model.stats().snapshot();
    full.weight_bytes = model->model.weight_bytes();
    full.workspace_bytes = model->model.workspace_bytes();
    full.weight_quant_rel_rms_error = model->model.quant_error().rel_rms();
    full.weight_quant_max_abs_error = model->model.quant_error().max_abs();
    const size_t copied = std::min(size, sizeof full);
    full.struct_size = static_cast<uint32_t>(copied);
    std::memcpy(out, &full, copied);
  });
}

pimoe_status pimoe_stats_expert_loads(const pimoe_model *model, uint64_t *counts, size_t count) {
  return guarded(model, [&] {
    require(model, "pimoe_stats_expert_loads", "model");
    require(counts, "pimoe_stats_expert_loads", "counts");
    const auto E = static_cast<size_t>(model->model.config().router.num_experts);
    if (count < E) {
      fail(PIMOE_ERR_SIZE_MISMATCH, "pimoe_stats_expert_loads: count (", count, ") is less than num_experts (", E, ")");
    }
    model->model.stats().expert_loads(counts);
  });
}

pimoe_status pimoe_stats_reset(pimoe_model *model) {
  return guarded(model, [&] {
    require(model, "pimoe_stats_reset", "model");
    model->model.stats().reset();
  });
}

int32_t pimoe_backend_count(void) {
  return static_cast<int32_t>(compiled_backends().size());
}

const char *pimoe_backend_name(int32_t index) {
  if (index < 0 || index >= pimoe_backend_count()) return nullptr;
  return compiled_backends()[static_cast<size_t>(index)];
}

pimoe_status pimoe_backend_probe(const char *name, int32_t *usable) {
  return guarded(nullptr, [&] {
    require(name, "pimoe_backend_probe", "name");
    require(usable, "pimoe_backend_probe", "usable");
    BackendName parsed;
    try {
      parsed = parse_backend_name(name);
    } catch (const Error &e) {
      throw Error(PIMOE_ERR_NOT_FOUND, e.what());
    }
    std::string why;
    const bool ok = backend_usable(parsed, why);
    *usable = ok ? 1 : 0;
    if (!ok) set_thread_error(why);
  });
}

int32_t pimoe_backend_device_count(const char *kind) {
  clear_thread_error();
  if (!kind) {
    set_thread_error("pimoe_backend_device_count: kind is NULL");
    return -1;
  }
  std::string why;
  const int count = backend_device_count(kind, why);
  if (count < 0) set_thread_error("pimoe_backend_device_count: " + why);
  return count;
}

const char *pimoe_backend_device(const char *name) {
  clear_thread_error();
  if (!name) return nullptr;
  try {
    const BackendName parsed = parse_backend_name(name);
    std::string why;
    if (!backend_usable(parsed, why)) {
      set_thread_error(why);
      return nullptr;
    }
    thread_string() = describe_backend(parsed);
    if (thread_string().empty()) return nullptr;
    return thread_string().c_str();
  } catch (const std::exception &e) {
    set_thread_error(e.what());
    return nullptr;
  }
}

}  // extern "C"
