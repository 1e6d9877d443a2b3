// SPDX-License-Identifier: MIT
// libFuzzer target: the option setters (by name, typed, per expert), the environment variables behind the
// experimental options, presets and overrides, then pimoe_create with the result and, when it succeeds, one forward
// call. Every call must return a status (fuzz_status.h); none may crash, leak or trip a sanitizer.
//
// The input is text, one command a line (tests/fuzz/corpus/options/ has examples; options.dict the words):
//   name=value          pimoe_options_set_by_name(name, value)
//   %key=integer        pimoe_options_set_int((pimoe_option)key, value)      (key and value as strtoll reads them)
//   ~key=number         pimoe_options_set_float((pimoe_option)key, value)    (value as strtod reads it)
//   ^key=text           pimoe_options_set_string((pimoe_option)key, text)
//   @expert.field=value pimoe_options_set_expert_<field>(expert, value): preset, activation, width, pre_norm,
//                       weight_dtype (text), callback (value ignored)
//   $VARIABLE=value     setenv: only the experimental options' variables (kEnvironment), unset again afterwards
// The harness keeps the layer small (a few MB of weights, at most 4 threads) by skipping inputs whose accepted sizes
// would exceed it: that bounds the fuzzer's time per input, the library is not asked to refuse such layers.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "fuzz_status.h"
#include "pimoe/pimoe.h"

namespace {

using pimoe_fuzz::FuzzInput;
using pimoe_fuzz::ok;

// The environment variables of the experimental options (pimoe.h), the only ones an input may set.
const char *const kEnvironment[] = {"PIMOE_CUDA_NO_WGMMA",    "PIMOE_CUDA_STREAM_TOKENS", "PIMOE_CUDA_DECODE_GEMM_ROWS",
                                    "PIMOE_VULKAN_COOPMAT_N", "PIMOE_VULKAN_VALIDATION",  "PIMOE_VULKAN_ROUTING",
                                    "PIMOE_VULKAN_TILES",     "PIMOE_VULKAN_PROFILE"};

// Unsets every variable an input set, however the input ends.
struct EnvironmentGuard {
  ~EnvironmentGuard() {
    for (const char *name : kEnvironment) ::unsetenv(name);
  }
};

// The options that size the layer, as the harness has seen them accepted (defaults from pimoe.h).
struct LayerSize {
  double hidden = 512, experts = 8, intermediate = 2048, shared = 0, heads = 0, head_dim = 16, combine = 0,
         threads = 0, widest_override = 0;

  // An upper bound of the layer's weights, in floats: experts of the widest width (a COMPUTATION preset doubles
  // the layer's), the shared expert, the attention router and combine, the router and norms.
  double weight_floats() const {
    const double width = std::fmax(2 * intermediate, widest_override);
    return experts * (3 * width * hidden + 4 * hidden + width) + 3 * shared * hidden + 4 * heads * head_dim * hidden +
           2 * combine * hidden + 3 * experts * hidden;
  }
  bool small() const { return weight_floats() <= (1 << 20) && threads <= 4; }

  void record(pimoe_option key, double value) {
    switch (key) {
      case PIMOE_OPT_HIDDEN: hidden = value; break;
      case PIMOE_OPT_NUM_EXPERTS: experts = value; break;
      case PIMOE_OPT_INTERMEDIATE: intermediate = value; break;
      case PIMOE_OPT_SHARED_WIDTH: shared = value; break;
      case PIMOE_OPT_ATTENTION_HEADS: heads = value; break;
      case PIMOE_OPT_ATTENTION_HEAD_DIM: head_dim = value; break;
      case PIMOE_OPT_COMBINE_ATTENTION_DIM: combine = value; break;
      case PIMOE_OPT_THREADS: threads = value; break;
      default: break;
    }
  }
};

// The names of the size options, for set_by_name lines.
struct SizeName {
  const char *name;
  pimoe_option key;
};
const SizeName kSizeNames[] = {{"hidden", PIMOE_OPT_HIDDEN},
                               {"num_experts", PIMOE_OPT_NUM_EXPERTS},
                               {"intermediate", PIMOE_OPT_INTERMEDIATE},
                               {"shared_width", PIMOE_OPT_SHARED_WIDTH},
                               {"router_attention_heads", PIMOE_OPT_ATTENTION_HEADS},
                               {"router_attention_head_dim", PIMOE_OPT_ATTENTION_HEAD_DIM},
                               {"combine_attention_dim", PIMOE_OPT_COMBINE_ATTENTION_DIM},
                               {"threads", PIMOE_OPT_THREADS}};

// A callback expert: copies its input (deterministic, always succeeds).
int copy_expert(void *, int32_t, const float *input, int64_t rows, int64_t hidden, float *output) {
  std::memcpy(output, input, static_cast<size_t>(rows * hidden) * sizeof(float));
  return 0;
}

struct OptionsHandle {
  pimoe_options *p = nullptr;
  ~OptionsHandle() { pimoe_options_destroy(p); }
};
struct ModelHandle {
  pimoe_model *p = nullptr;
  ~ModelHandle() { pimoe_destroy(p); }
};

void set_expert(pimoe_options *options, const std::string &target, const std::string &value, LayerSize &size) {
  const size_t dot = target.find('.');
  if (dot == std::string::npos) return;
  const auto expert = static_cast<int32_t>(std::strtol(target.c_str(), nullptr, 10));
  const std::string field = target.substr(dot + 1);
  const long long number = std::strtoll(value.c_str(), nullptr, 10);
  // The enums hold 0 .. 7 in C++ (their bits): 7 is an invalid activation, every preset is valid.
  if (field == "preset") {
    ok(pimoe_options_set_expert_preset(options, expert, static_cast<pimoe_expert_preset>(number & 7)),
       "set_expert_preset");
  } else if (field == "activation") {
    ok(pimoe_options_set_expert_activation(options, expert, static_cast<pimoe_activation>(number & 7)),
       "set_expert_activation");
  } else if (field == "width") {
    if (ok(pimoe_options_set_expert_width(options, expert, number), "set_expert_width")) {
      size.widest_override = std::fmax(size.widest_override, static_cast<double>(number));
    }
  } else if (field == "pre_norm") {
    ok(pimoe_options_set_expert_pre_norm(options, expert, static_cast<int32_t>(number)), "set_expert_pre_norm");
  } else if (field == "weight_dtype") {
    ok(pimoe_options_set_expert_weight_dtype(options, expert, value.c_str()), "set_expert_weight_dtype");
  } else if (field == "callback") {
    ok(pimoe_options_set_expert_callback(options, expert, copy_expert, nullptr), "set_expert_callback");
  }
}

// Runs one command line on the options.
void run_line(pimoe_options *options, const std::string &line, LayerSize &size) {
  if (line.empty()) return;
  const size_t eq = line.find('=');
  if (eq == std::string::npos) return;
  // As the C API sees them: each up to its first NUL.
  const std::string head = line.substr(0, eq).c_str(), value = line.substr(eq + 1).c_str();
  const std::string rest = head.empty() ? head : head.substr(1);  // "=value" sets the option named ""
  // A C caller may pass any int as a key; in C++ an enum holds only the values of its bits (0 .. 1023 here).
  const auto key = static_cast<pimoe_option>(std::strtoll(rest.c_str(), nullptr, 10) & 1023);
  switch (line[0]) {
    case '%': {
      const long long v = std::strtoll(value.c_str(), nullptr, 10);
      if (ok(pimoe_options_set_int(options, key, v), "set_int")) size.record(key, static_cast<double>(v));
      return;
    }
    case '~':
      ok(pimoe_options_set_float(options, key, std::strtod(value.c_str(), nullptr)), "set_float");
      return;
    case '^':
      ok(pimoe_options_set_string(options, key, value.c_str()), "set_string");
      return;
    case '@':
      set_expert(options, rest, value, size);
      return;
    case '$':
      for (const char *name : kEnvironment) {
        if (rest == name) ::setenv(name, value.c_str(), 1);
      }
      return;
    default:
      break;
  }
  if (!ok(pimoe_options_set_by_name(options, head.c_str(), value.c_str()), "set_by_name")) return;
  for (const SizeName &s : kSizeNames) {
    if (head == s.name) size.record(s.key, static_cast<double>(std::strtoll(value.c_str(), nullptr, 10)));
  }
}

// One forward call of 1 to 3 tokens, with routing outputs, on a layer that pimoe_create accepted.
void forward_once(pimoe_model *model, const LayerSize &size) {
  const auto hidden = static_cast<int64_t>(size.hidden);
  const int64_t tokens = 3;
  std::vector<float> input(static_cast<size_t>(tokens * hidden)), output(input.size());
  for (size_t i = 0; i < input.size(); ++i) input[i] = std::sin(0.37f * static_cast<float>(i));
  const int64_t slots = pimoe_model_routing_slots(model);
  std::vector<int32_t> ids(static_cast<size_t>(tokens * slots));
  std::vector<float> weights(ids.size());
  // A failure must be a status with a message (fuzz_status.h), like any other call.
  ok(pimoe_forward(model, input.data(), input.size(), 1, tokens, output.data(), output.size(), ids.data(),
                   weights.data(), ids.size()),
     "pimoe_forward");
  pimoe_stats_snapshot stats{};
  stats.struct_size = sizeof stats;
  ok(pimoe_stats(model, &stats), "pimoe_stats");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;  // a few dozen commands say everything; longer inputs only slow the search
  EnvironmentGuard environment;
  OptionsHandle options;
  if (!ok(pimoe_options_create(&options.p), "pimoe_options_create")) return 0;
  // Small defaults first (the library's are a 100 MB layer): the input's lines override them.
  const char *const small_defaults[][2] = {{"hidden", "16"}, {"intermediate", "16"}, {"threads", "1"}};
  LayerSize layer;
  for (const auto &kv : small_defaults) run_line(options.p, std::string(kv[0]) + "=" + kv[1], layer);

  FuzzInput in(data, size);
  while (!in.empty()) run_line(options.p, in.text('\n', 512), layer);
  if (!layer.small()) return 0;
  // The backend name was parsed above; the layer is built on the CPU, the one backend of the fuzz build, so that a
  // replay in a build with GPU backends does the same work (and "auto" cannot pick a GPU there).
  ok(pimoe_options_set_by_name(options.p, "backend", "cpu"), "set backend");

  ModelHandle model;
  if (!ok(pimoe_create(options.p, &model.p), "pimoe_create")) return 0;
  if (!model.p) pimoe_fuzz::finding("pimoe_create", "PIMOE_OK without a model");
  int64_t hidden = 0;
  ok(pimoe_model_dims(model.p, &hidden, nullptr, nullptr), "pimoe_model_dims");
  if (hidden != static_cast<int64_t>(layer.hidden)) pimoe_fuzz::finding("pimoe_model_dims", "hidden differs from the option");
  forward_once(model.p, layer);
  return 0;
}
