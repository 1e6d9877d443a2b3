// SPDX-License-Identifier: MIT
// libFuzzer target: a sequence of C API calls on one model. The input picks a small layer (a few routing features,
// storage formats, callback experts), creates it, then runs up to 64 calls chosen by its bytes: forward (0 tokens
// included, buffer counts right or wrong, values with NaN/Inf), forward with the full routing, the stats snapshot
// (any struct_size), expert loads, stats reset, adaptive state reset, save, load back (whose outputs must equal the
// saved model's, bit for bit), set a callback (good, failing, NULL; any expert), tensor names/shapes/reads, dims.
// Buffers are always valid memory of the count passed: the API may reject a count, never be lied to about one.
// Every call's status is checked (fuzz_status.h); nothing may crash, leak or trip a sanitizer.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "fuzz_status.h"
#include "fuzz_temp_dir.h"
#include "pimoe/pimoe.h"

namespace {

using pimoe_fuzz::finding;
using pimoe_fuzz::FuzzInput;
using pimoe_fuzz::ok;

struct OptionsHandle {
  pimoe_options *p = nullptr;
  ~OptionsHandle() { pimoe_options_destroy(p); }
};
struct ModelHandle {
  pimoe_model *p = nullptr;
  ~ModelHandle() { pimoe_destroy(p); }
  void reset(pimoe_model *next) {
    pimoe_destroy(p);
    p = next;
  }
};

int copy_expert(void *, int32_t, const float *input, int64_t rows, int64_t hidden, float *output) {
  std::memcpy(output, input, static_cast<size_t>(rows * hidden) * sizeof(float));
  return 0;
}
int failing_expert(void *, int32_t, const float *, int64_t, int64_t, float *) {
  return 7;
}

const char *const kWeightDtypes[] = {"auto", "fp32", "bf16", "fp16", "int8", "int4", "fp8_e4m3", "mxfp4", "int3"};
const char *const kActivationDtypes[] = {"auto", "fp32", "int8"};

// The runtime options, which pimoe_load takes from its caller: the loaded model gets the created one's.
struct Runtime {
  int64_t threads = 1;
  const char *activation_dtype = "auto";
  bool deterministic = false;

  void apply(pimoe_options *o) const {
    ok(pimoe_options_set_by_name(o, "backend", "cpu"), "set backend");
    ok(pimoe_options_set_int(o, PIMOE_OPT_THREADS, threads), "set threads");
    ok(pimoe_options_set_by_name(o, "activation_dtype", activation_dtype), "set activation_dtype");
    ok(pimoe_options_set_int(o, PIMOE_OPT_DETERMINISTIC, deterministic), "set deterministic");
  }
};

// A small layer from the input's first bytes; each option's status is checked, a refused one keeps its default.
void choose_layer(FuzzInput &in, pimoe_options *o, Runtime &runtime) {
  const int64_t experts = in.in_range(1, 8);
  ok(pimoe_options_set_int(o, PIMOE_OPT_HIDDEN, in.in_range(1, 32)), "set hidden");
  ok(pimoe_options_set_int(o, PIMOE_OPT_NUM_EXPERTS, experts), "set num_experts");
  ok(pimoe_options_set_int(o, PIMOE_OPT_TOP_K, in.in_range(1, experts)), "set top_k");
  ok(pimoe_options_set_int(o, PIMOE_OPT_INTERMEDIATE, in.in_range(1, 32)), "set intermediate");
  ok(pimoe_options_set_int(o, PIMOE_OPT_ACTIVATION, in.in_range(0, 7)), "set activation");  // 7: refused
  ok(pimoe_options_set_int(o, PIMOE_OPT_SEED, in.byte()), "set seed");
  const uint8_t a = in.byte(), b = in.byte();
  if (a & 1) ok(pimoe_options_set_int(o, PIMOE_OPT_EXPERT_BIAS, 1), "set expert_bias");
  if (a & 2) ok(pimoe_options_set_int(o, PIMOE_OPT_PRE_NORM, 1), "set pre_norm");
  if (a & 4) ok(pimoe_options_set_by_name(o, "router_scoring", "sigmoid"), "set router_scoring");
  if (a & 8) ok(pimoe_options_set_int(o, PIMOE_OPT_ROUTER_BIAS, 1), "set router_bias");
  if (a & 16) {
    ok(pimoe_options_set_int(o, PIMOE_OPT_SHARED_WIDTH, in.in_range(1, 16)), "set shared_width");
    ok(pimoe_options_set_int(o, PIMOE_OPT_SHARED_GATE, in.flag()), "set shared_gate");
  }
  if (a & 32) ok(pimoe_options_set_by_name(o, "routing_mode", "expert_choice"), "set routing_mode");
  if (a & 64) ok(pimoe_options_set_float(o, PIMOE_OPT_ADAPTIVE_BIAS_RATE, in.byte() / 64.0), "set adaptive_bias_rate");
  if (a & 128) ok(pimoe_options_set_int(o, PIMOE_OPT_DYNAMIC_CAPACITY, 1), "set dynamic_capacity");
  if (b & 1) {
    ok(pimoe_options_set_int(o, PIMOE_OPT_ATTENTION_HEADS, in.in_range(1, 2)), "set attention_heads");
    ok(pimoe_options_set_int(o, PIMOE_OPT_ATTENTION_HEAD_DIM, in.in_range(1, 8)), "set attention_head_dim");
    ok(pimoe_options_set_int(o, PIMOE_OPT_ATTENTION_CAUSAL, in.flag()), "set attention_causal");
  }
  if (b & 2) ok(pimoe_options_set_int(o, PIMOE_OPT_COMBINE_ATTENTION_DIM, in.in_range(1, 8)), "set combine");
  if (b & 4) ok(pimoe_options_set_float(o, PIMOE_OPT_CAPACITY_FACTOR, in.byte() / 32.0), "set capacity_factor");
  if (b & 8) {
    ok(pimoe_options_set_int(o, PIMOE_OPT_NUM_GROUPS, in.in_range(1, experts)), "set num_groups");
    ok(pimoe_options_set_int(o, PIMOE_OPT_TOPK_GROUPS, in.in_range(1, 4)), "set topk_groups");
  }
  if (b & 16) {
    ok(pimoe_options_set_by_name(o, "weight_dtype", in.pick(kWeightDtypes)), "set weight_dtype");
    ok(pimoe_options_set_int(o, PIMOE_OPT_WEIGHT_GROUP_SIZE, 32 << in.in_range(0, 2)), "set weight_group_size");
    ok(pimoe_options_set_int(o, PIMOE_OPT_WEIGHT_ZERO_POINT, in.flag()), "set weight_zero_point");
    const auto expert = static_cast<int32_t>(in.in_range(-1, 8));
    ok(pimoe_options_set_expert_weight_dtype(o, expert, in.pick(kWeightDtypes)), "set_expert_weight_dtype");
  }
  if (b & 32) ok(pimoe_options_set_int(o, PIMOE_OPT_ROUTER_LOGIT_BIAS, 1), "set router_logit_bias");
  if (b & 64) {
    ok(pimoe_options_set_expert_callback(o, static_cast<int32_t>(in.in_range(-1, 8)), copy_expert, nullptr),
       "set_expert_callback");
  }
  if (b & 128) {
    const auto expert = static_cast<int32_t>(in.in_range(-1, 8));
    ok(pimoe_options_set_expert_preset(o, expert, static_cast<pimoe_expert_preset>(in.in_range(0, 7))),
       "set_expert_preset");
  }
  runtime.threads = in.in_range(1, 2);
  runtime.activation_dtype = in.pick(kActivationDtypes);
  runtime.deterministic = in.flag();
  runtime.apply(o);
}

// A count that is usually right: `right`, or off by a little (the API must refuse it).
size_t some_count(FuzzInput &in, size_t right) {
  const uint8_t c = in.byte();
  if (c < 200) return right;
  const size_t off = static_cast<size_t>(c - 199);
  return c & 1 ? right + off : (right >= off ? right - off : 0);
}

// An input of n values: small finite numbers, now and then a NaN or Inf at one place.
std::vector<float> some_input(FuzzInput &in, size_t n) {
  std::vector<float> x(n);
  const uint8_t seed = in.byte();
  for (size_t i = 0; i < n; ++i) x[i] = std::sin(0.1f * static_cast<float>(i + seed)) * (1 + seed % 7);
  if (n > 0 && in.byte() >= 240) {
    const int64_t at = in.in_range(0, static_cast<int64_t>(n) - 1);
    x[static_cast<size_t>(at)] = in.any_float();
  }
  return x;
}

struct Call {
  int64_t batch = 0, seq = 0, hidden = 0;
  std::vector<float> input, output;
};

Call some_call(FuzzInput &in, pimoe_model *model) {
  Call c;
  ok(pimoe_model_dims(model, &c.hidden, nullptr, nullptr), "pimoe_model_dims");
  c.batch = in.in_range(0, 3);
  c.seq = in.in_range(0, 4);
  const auto n = static_cast<size_t>(c.batch * c.seq * c.hidden);
  c.input = some_input(in, some_count(in, n));
  c.output.assign(some_count(in, n), 0.0f);
  return c;
}

void forward(FuzzInput &in, pimoe_model *model) {
  Call c = some_call(in, model);
  const size_t tokens = static_cast<size_t>(c.batch * c.seq);
  const size_t slots = static_cast<size_t>(pimoe_model_routing_slots(model));
  const bool routing = in.flag();
  std::vector<int32_t> ids(routing ? some_count(in, tokens * slots) : 0);
  std::vector<float> weights(ids.size());
  ok(pimoe_forward(model, c.input.data(), c.input.size(), c.batch, c.seq, c.output.data(), c.output.size(),
                   routing ? ids.data() : nullptr, routing ? weights.data() : nullptr, ids.size()),
     "pimoe_forward");
}

void forward_routing(FuzzInput &in, pimoe_model *model) {
  Call c = some_call(in, model);
  int32_t experts = 0;
  ok(pimoe_model_dims(model, nullptr, &experts, nullptr), "pimoe_model_dims");
  const size_t tokens = static_cast<size_t>(c.batch * c.seq);
  const size_t slots = static_cast<size_t>(pimoe_model_routing_slots(model));
  const uint8_t wanted = in.byte();
  std::vector<int32_t> ids(some_count(in, tokens * slots));
  std::vector<float> weights(ids.size()), probabilities(some_count(in, tokens * static_cast<size_t>(experts)));
  std::vector<uint8_t> dropped(ids.size());
  pimoe_routing r{};
  r.struct_size = wanted & 16 ? sizeof r : in.in_range(0, sizeof r);
  r.expert_ids = wanted & 1 ? ids.data() : nullptr;
  r.weights = wanted & 2 ? weights.data() : nullptr;
  r.dropped = wanted & 4 ? dropped.data() : nullptr;
  r.slot_count = ids.size();
  r.probabilities = wanted & 8 ? probabilities.data() : nullptr;
  r.probability_count = probabilities.size();
  ok(pimoe_forward_routing(model, c.input.data(), c.input.size(), c.batch, c.seq, c.output.data(), c.output.size(),
                           wanted & 32 ? nullptr : &r),
     "pimoe_forward_routing");
}

void stats(FuzzInput &in, pimoe_model *model) {
  struct {
    pimoe_stats_snapshot s;
    uint8_t beyond[64];  // room for a struct_size larger than this header's: the library copies what it knows
  } out{};
  out.s.struct_size = static_cast<uint32_t>(in.in_range(0, sizeof out));
  if (ok(pimoe_stats(model, &out.s), "pimoe_stats") && out.s.struct_size > sizeof out.s) {
    finding("pimoe_stats", "struct_size grew past the snapshot");
  }
  int32_t experts = 0;
  ok(pimoe_model_dims(model, nullptr, &experts, nullptr), "pimoe_model_dims");
  std::vector<uint64_t> loads(some_count(in, static_cast<size_t>(experts)) + 1);
  ok(pimoe_stats_expert_loads(model, loads.data(), loads.size() - 1), "pimoe_stats_expert_loads");
}

void tensors(FuzzInput &in, pimoe_model *model) {
  const int64_t count = pimoe_tensor_count(model);
  const int64_t index = in.in_range(-1, count);
  const char *name = pimoe_tensor_name(model, index);
  if ((name != nullptr) != (index >= 0 && index < count)) finding("pimoe_tensor_name", "NULL iff out of range broken");
  const std::string text = name ? name : "experts.99.up.weight";
  int32_t ndim = 0;
  int64_t dims[4] = {0, 0, 0, 0};
  if (!ok(pimoe_tensor_shape(model, text.c_str(), &ndim, dims), "pimoe_tensor_shape")) return;
  if (ndim < 1 || ndim > 2) finding("pimoe_tensor_shape", "rank outside 1..2");
  const auto n = static_cast<size_t>(ndim == 1 ? dims[0] : dims[0] * dims[1]);
  std::vector<float> values(some_count(in, n) + 1);
  if (ok(pimoe_tensor_read(model, text.c_str(), values.data(), values.size() - 1), "pimoe_tensor_read")) {
    for (size_t i = 0; i + 1 < values.size(); ++i) {
      if (!std::isfinite(values[i])) finding("pimoe_tensor_read", "a weight is not finite");
    }
  }
}

// Saves, loads the file back, and checks the loaded model computes what the saved one does (same runtime options):
// then the loaded model carries on in its place.
void save_and_load(FuzzInput &in, ModelHandle &model, const Runtime &runtime, const std::string &path) {
  const bool saved = ok(pimoe_save(model.p, path.c_str()), "pimoe_save");
  OptionsHandle options;
  if (!ok(pimoe_options_create(&options.p), "pimoe_options_create")) return;
  runtime.apply(options.p);
  const bool same_formats = in.byte() < 200;
  if (!same_formats) ok(pimoe_options_set_by_name(options.p, "weight_dtype", in.pick(kWeightDtypes)), "set weight_dtype");
  ModelHandle loaded;
  if (!ok(pimoe_load(path.c_str(), options.p, &loaded.p), "pimoe_load")) {
    if (saved && same_formats) finding("pimoe_load", "a file pimoe_save wrote does not load");
    return;
  }
  ::unlink(path.c_str());
  if (!saved) finding("pimoe_load", "loaded a file that pimoe_save failed to write");
  // The loaded model computes what the saved one does (bit for bit where the result does not hang on scheduling).
  if (same_formats && (runtime.threads == 1 || runtime.deterministic) && in.flag()) {
    int64_t hidden = 0;
    ok(pimoe_model_dims(model.p, &hidden, nullptr, nullptr), "pimoe_model_dims");
    const int64_t seq = in.in_range(1, 4);
    const std::vector<float> x = some_input(in, static_cast<size_t>(seq * hidden));
    std::vector<float> y0(x.size()), y1(x.size());
    const bool a = ok(pimoe_forward(model.p, x.data(), x.size(), 1, seq, y0.data(), y0.size(), nullptr, nullptr, 0),
                      "pimoe_forward (saved)");
    const bool b = ok(pimoe_forward(loaded.p, x.data(), x.size(), 1, seq, y1.data(), y1.size(), nullptr, nullptr, 0),
                      "pimoe_forward (loaded)");
    if (a && b && std::memcmp(y0.data(), y1.data(), y0.size() * sizeof(float)) != 0) {
      finding("pimoe_load", "the loaded model's output differs from the saved model's");
    }
  }
  model.reset(loaded.p);
  loaded.p = nullptr;
}

void set_callback(FuzzInput &in, pimoe_model *model) {
  pimoe_expert_fn fns[] = {copy_expert, failing_expert, nullptr};
  const auto expert = static_cast<int32_t>(in.in_range(-1, 8));
  ok(pimoe_model_set_expert_callback(model, expert, in.pick(fns), nullptr), "pimoe_model_set_expert_callback");
}

void describe(FuzzInput &in, pimoe_model *model) {
  pimoe_activation activation{};
  int64_t width = 0;
  int32_t pre_norm = 0;
  ok(pimoe_model_expert(model, static_cast<int32_t>(in.in_range(-1, 8)), &activation, &width, &pre_norm),
     "pimoe_model_expert");
  if (std::strcmp(pimoe_model_backend(model), "cpu") != 0) finding("pimoe_model_backend", "not the cpu backend");
  (void)pimoe_model_last_error(model);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 2048) return 0;  // 64 calls need far less; longer inputs only slow the search
  FuzzInput in(data, size);
  OptionsHandle options;
  if (!ok(pimoe_options_create(&options.p), "pimoe_options_create")) return 0;
  Runtime runtime;
  choose_layer(in, options.p, runtime);
  ModelHandle model;
  if (!ok(pimoe_create(options.p, &model.p), "pimoe_create")) return 0;
  const std::string path = pimoe_fuzz::temp_dir().path() + "/model.safetensors";
  int saves = 0;  // at most 4 an input: a save and load costs as much as dozens of other calls
  for (int call = 0; call < 64 && !in.empty(); ++call) {
    uint8_t op = in.byte() % 9;
    if (op == 5 && ++saves > 4) op = 8;
    switch (op) {
      case 0: forward(in, model.p); break;
      case 1: forward_routing(in, model.p); break;
      case 2: stats(in, model.p); break;
      case 3: ok(pimoe_stats_reset(model.p), "pimoe_stats_reset"); break;
      case 4: ok(pimoe_model_reset_adaptive_state(model.p), "pimoe_model_reset_adaptive_state"); break;
      case 5: save_and_load(in, model, runtime, path); break;
      case 6: set_callback(in, model.p); break;
      case 7: tensors(in, model.p); break;
      default: describe(in, model.p); break;
    }
  }
  ::unlink(path.c_str());
  return 0;
}
