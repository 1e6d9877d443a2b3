// SPDX-License-Identifier: MIT
#include "formats/native_format.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <set>
#include <system_error>

#include "error.h"

namespace pimoe {
namespace {

const std::string kPrefix = "pimoe.";

std::string expert_key(int64_t expert, const char *field) {
  return kPrefix + "experts." + std::to_string(expert) + "." + field;
}

// Shortest text that reads back to the same double (std::to_chars is locale-independent, unlike printf).
std::string format_double(double value) {
  char text[64];
  const auto result = std::to_chars(text, text + sizeof text, value);
  return std::string(text, result.ptr);
}

// Reads the metadata of one file, naming it and the key in every message.
class MetadataReader {
 public:
  explicit MetadataReader(const SafetensorsView &view) : view_(view) {}

  const std::string &text(const std::string &key) {
    used_.insert(key);
    const auto it = view_.metadata().find(key);
    if (it == view_.metadata().end()) fail(PIMOE_ERR_FORMAT, where(), "metadata key '", key, "' is missing");
    return it->second;
  }

  int64_t integer(const std::string &key) {
    const std::string &value = text(key);
    int64_t parsed = 0;
    const auto result = std::from_chars(value.data(), value.data() + value.size(), parsed);
    if (value.empty() || result.ec != std::errc() || result.ptr != value.data() + value.size()) {
      fail(PIMOE_ERR_FORMAT, where(), "metadata '", key, "' = '", value, "' is not an integer");
    }
    return parsed;
  }

  double number(const std::string &key) {
    const std::string &value = text(key);
    double parsed = 0;
    const auto result = std::from_chars(value.data(), value.data() + value.size(), parsed);
    if (value.empty() || result.ec != std::errc() || result.ptr != value.data() + value.size()) {
      fail(PIMOE_ERR_FORMAT, where(), "metadata '", key, "' = '", value, "' is not a number");
    }
    return parsed;
  }

  bool flag(const std::string &key) {
    const int64_t value = integer(key);
    if (value != 0 && value != 1) fail(PIMOE_ERR_FORMAT, where(), "metadata '", key, "' = ", value, " is not 0 or 1");
    return value == 1;
  }

  // Every "pimoe." key must have been read: an unknown one means a file this reader does not understand.
  void reject_unused() const {
    for (const auto &item : view_.metadata()) {
      if (item.first.compare(0, kPrefix.size(), kPrefix) == 0 && used_.count(item.first) == 0) {
        fail(PIMOE_ERR_FORMAT, where(), "unknown metadata key '", item.first, "'");
      }
    }
  }

  std::string where() const { return "file '" + view_.label() + "': "; }

 private:
  const SafetensorsView &view_;
  std::set<std::string> used_;
};

// Runs an Options setter (or the config resolution), reporting its range errors as errors of the file.
template <typename Set>
void checked(const MetadataReader &reader, const std::string &key, Set &&set) {
  try {
    set();
  } catch (const Error &e) {
    fail(PIMOE_ERR_FORMAT, reader.where(), "metadata '", key, "': ", e.what());
  }
}

std::string shape_text(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

const char *part_text(StoredTensor::Part part) {
  switch (part) {
    case StoredTensor::Part::Values: return "values";
    case StoredTensor::Part::Scales: return "scales";
    case StoredTensor::Part::Zeros: return "zero points";
  }
  return "";
}

// The metadata values a stored tensor's shape derives from, for "has shape ... but the metadata (...) needs" messages.
std::string shape_reason(const LayerConfig &config, const ExpectedTensor &want, const StoredTensor &stored) {
  std::string why =
      "hidden = " + std::to_string(config.hidden) + ", num_experts = " + std::to_string(config.router.num_experts);
  if (want.expert >= 0) {
    why += ", expert " + std::to_string(want.expert) +
           " intermediate = " + std::to_string(config.experts[static_cast<size_t>(want.expert)].intermediate);
  } else if (want.name.compare(0, 7, "shared.") == 0) {
    why += ", shared_width = " + std::to_string(config.shared.width);
  }
  if (want.format.compact()) {
    why += ", weight_format " + want.format.name() + ": " + part_text(stored.part) + " of [" +
           std::to_string(want.shape[0]) + ", " + std::to_string(want.shape[1]) + "]";
    const WeightDtype d = want.format.dtype;
    if (stored.part == StoredTensor::Part::Values && (d == WeightDtype::Int4 || d == WeightDtype::Mxfp4)) {
      why += " packed two a byte in 16-byte blocks of 32";
    }
  }
  return why;
}

void check_tensors(const SafetensorsView &view, const LayerConfig &config, int64_t version) {
  const std::string where = "file '" + view.label() + "': ";
  const std::vector<ExpectedTensor> layout = native_tensor_layout(config, version);
  std::map<std::string, const ExpectedTensor *> matrix_of;  // stored name -> its layout tensor
  for (const ExpectedTensor &want : layout) {
    for (const StoredTensor &part : stored_tensors(want)) {
      matrix_of[part.name] = &want;
      const TensorInfo *have = view.find(part.name);
      if (!have) {
        fail(PIMOE_ERR_FORMAT, where, "tensor '", part.name, "' is missing (the metadata's layer needs it",
             want.format.compact() ? std::string(", the ") + part_text(part.part) + " of " + want.format.name() +
                                         " matrix '" + want.name + "'"
                                   : std::string(),
             ", ", dtype_name(part.dtype), " ", shape_text(part.shape), ")");
      }
      if (have->shape != part.shape) {
        fail(PIMOE_ERR_FORMAT, where, "tensor '", part.name, "' has shape ", shape_text(have->shape),
             " but the metadata (", shape_reason(config, want, part), ") needs ", shape_text(part.shape));
      }
      if (!want.format.compact()) {
        if (have->dtype != DType::F32 && have->dtype != DType::BF16 && have->dtype != DType::F16) {
          fail(PIMOE_ERR_UNSUPPORTED, where, "tensor '", part.name, "' has dtype ", dtype_name(have->dtype),
               " (native files hold fp32 tensors as F32, BF16 or F16; a compact matrix needs its format in the ",
               "metadata)");
        }
      } else if (have->dtype != part.dtype) {
        fail(PIMOE_ERR_FORMAT, where, "tensor '", part.name, "' has dtype ", dtype_name(have->dtype), " but ",
             want.format.name(), " stores its ", part_text(part.part), " as ", dtype_name(part.dtype));
      }
    }
  }
  for (const TensorInfo &t : view.tensors()) {
    if (matrix_of.count(t.name)) continue;
    // A scales or zero points tensor of a matrix whose format has none is named as such.
    for (const char *suffix : {".scales", ".zeros"}) {
      const size_t n = std::strlen(suffix);
      if (t.name.size() <= n || t.name.compare(t.name.size() - n, n, suffix) != 0) continue;
      const auto it = matrix_of.find(t.name.substr(0, t.name.size() - n));
      if (it == matrix_of.end() || it->second->name != t.name.substr(0, t.name.size() - n)) continue;
      fail(PIMOE_ERR_FORMAT, where, "unexpected tensor '", t.name, "': matrix '", it->second->name, "' is stored as ",
           it->second->format.name(), ", which has no ", suffix + 1);
    }
    fail(PIMOE_ERR_FORMAT, where, "unexpected tensor '", t.name, "' (not part of the layer the metadata describes)");
  }
}

// A weight_format metadata value (absent: fp32).
WeightFormat read_format(MetadataReader &meta, const SafetensorsView &view, const std::string &key) {
  WeightFormat f;
  if (view.metadata().count(key) == 0) return f;
  const std::string &value = meta.text(key);
  if (!parse_weight_format(value, f)) {
    fail(PIMOE_ERR_FORMAT, meta.where(), "metadata '", key, "' = '", value,
         "' is not a weight format (fp32, bf16, fp16, int8, int4-g32, int4-g64, int4-g128, each int4 optionally "
         "with -zp, fp8_e4m3, mxfp4)");
  }
  return f;
}

}  // namespace

std::map<std::string, std::string> native_metadata(const LayerConfig &config) {
  std::map<std::string, std::string> m;
  m[kPrefix + "format"] = kNativeFormatName;
  bool gated_bias = false;  // only version 2 describes these
  for (const ExpertSpec &spec : config.experts) gated_bias = gated_bias || (!spec.callback && spec.gated() && spec.bias);
  m[kPrefix + "format_version"] = gated_bias ? "2" : "1";
  m[kPrefix + "library_version"] = PIMOE_VERSION_STRING;
  m[kPrefix + "hidden"] = std::to_string(config.hidden);
  m[kPrefix + "num_experts"] = std::to_string(config.router.num_experts);
  m[kPrefix + "top_k"] = std::to_string(config.router.top_k);
  m[kPrefix + "temperature"] = format_double(config.router.temperature);
  m[kPrefix + "renormalize"] = config.router.renormalize ? "1" : "0";
  m[kPrefix + "capacity_factor"] = format_double(config.router.capacity_factor);
  m[kPrefix + "aux_loss_coef"] = format_double(config.router.aux_loss_coef);
  m[kPrefix + "layer_norm_eps"] = format_double(config.layer_norm_eps);
  // The router extensions and the shared expert are written only when they differ from the defaults, so a file of a
  // plain layer stays readable by libraries that predate them; a reader takes a missing key as its default.
  const RouterConfig &r = config.router;
  if (r.scoring != RouterScoring::Softmax) m[kPrefix + "router_scoring"] = "sigmoid";
  if (r.selection_bias) m[kPrefix + "router_bias"] = "1";
  if (r.logit_bias) m[kPrefix + "router_logit_bias"] = "1";
  if (r.scale_input) m[kPrefix + "expert_input_scaling"] = "1";
  if (r.sparsemixer_eps > 0.0) m[kPrefix + "sparsemixer_eps"] = format_double(r.sparsemixer_eps);
  if (r.routed_scaling_factor != 1.0) m[kPrefix + "routed_scaling_factor"] = format_double(r.routed_scaling_factor);
  if (r.num_groups != 1 || r.topk_groups != 1) {
    m[kPrefix + "num_groups"] = std::to_string(r.num_groups);
    m[kPrefix + "topk_groups"] = std::to_string(r.topk_groups);
  }
  if (r.group_score != GroupScore::Top2Sum) m[kPrefix + "group_score"] = "max";
  if (config.shared.width > 0) m[kPrefix + "shared_width"] = std::to_string(config.shared.width);
  if (config.shared.gated) m[kPrefix + "shared_gate"] = "1";
  if (r.expert_choice) m[kPrefix + "routing_mode"] = "expert_choice";
  if (!r.group_levels.empty()) {
    std::string levels;
    for (const auto &[g, k] : r.group_levels) {
      levels += (levels.empty() ? "" : ",") + std::to_string(g) + ":" + std::to_string(k);
    }
    m[kPrefix + "group_levels"] = levels;
  }
  if (r.attention_heads > 0) {
    m[kPrefix + "router_attention_heads"] = std::to_string(r.attention_heads);
    m[kPrefix + "router_attention_head_dim"] = std::to_string(r.attention_head_dim);
    m[kPrefix + "router_attention_causal"] = r.attention_causal ? "1" : "0";
  }
  if (r.adaptive_bias_rate > 0.0) m[kPrefix + "adaptive_bias_rate"] = format_double(r.adaptive_bias_rate);
  if (r.dynamic_capacity) {
    m[kPrefix + "dynamic_capacity"] = "1";
    m[kPrefix + "capacity_momentum"] = format_double(r.capacity_momentum);
  }
  if (r.combine_attention_dim > 0) m[kPrefix + "combine_attention_dim"] = std::to_string(r.combine_attention_dim);
  bool oai = false;
  for (const ExpertSpec &spec : config.experts) oai = oai || (!spec.callback && spec.activation == PIMOE_ACT_SWIGLU_OAI);
  if (oai || config.swiglu_alpha != 1.702 || config.swiglu_limit != 7.0) {  // always with swiglu_oai experts
    m[kPrefix + "swiglu_alpha"] = format_double(config.swiglu_alpha);
    m[kPrefix + "swiglu_limit"] = format_double(config.swiglu_limit);
  }
  for (size_t e = 0; e < config.experts.size(); ++e) {
    const ExpertSpec &spec = config.experts[e];
    if (spec.callback) {  // a host function: only the slot is saved
      m[expert_key(static_cast<int64_t>(e), "kind")] = "callback";
      continue;
    }
    const auto id = static_cast<int64_t>(e);
    m[expert_key(id, "activation")] = activation_name(spec.activation);
    m[expert_key(id, "intermediate")] = std::to_string(spec.intermediate);
    m[expert_key(id, "pre_norm")] = spec.pre_norm ? "1" : "0";
    m[expert_key(id, "bias")] = spec.bias ? "1" : "0";
    if (spec.format.compact()) m[expert_key(id, "weight_format")] = spec.format.name();
  }
  // Storage formats, written only when not fp32 (an fp32 file stays as older libraries wrote it): the layer's (the
  // shared expert's matrices, and the GPU backends' one type per layer) and each expert's (above).
  if (config.weight_format.compact()) m[kPrefix + "weight_format"] = config.weight_format.name();
  return m;
}

std::vector<ExpectedTensor> native_tensor_layout(const LayerConfig &config, int64_t version) {
  const int64_t H = config.hidden;
  const int64_t E = config.router.num_experts;
  std::vector<ExpectedTensor> layout;
  auto add = [&layout](std::string name, std::vector<int64_t> shape, int64_t expert, WeightFormat format = {}) {
    layout.push_back({std::move(name), std::move(shape), expert, format});
  };
  add("router.weight", {E, H}, -1);
  if (config.router.logit_bias) add("router.bias", {E}, -1);
  if (config.router.selection_bias) add("router.selection_bias", {E}, -1);
  if (config.router.dynamic_capacity) add("router.load_ema", {E}, -1);
  if (config.router.attention_heads > 0) {
    const int64_t D = config.router.attention_heads * config.router.attention_head_dim;
    add("router.attention.q.weight", {D, H}, -1);
    add("router.attention.k.weight", {D, H}, -1);
    add("router.attention.v.weight", {D, H}, -1);
    add("router.attention.o.weight", {H, D}, -1);
  }
  for (int64_t e = 0; e < E; ++e) {
    const ExpertSpec &spec = config.experts[static_cast<size_t>(e)];
    if (spec.callback) continue;
    const std::string prefix = "experts." + std::to_string(e) + ".";
    const int64_t I = spec.intermediate;
    if (spec.pre_norm) {
      add(prefix + "norm.weight", {H}, e);
      add(prefix + "norm.bias", {H}, e);
    }
    const bool gate_up_bias = spec.bias && (!spec.gated() || version >= 2);
    if (spec.gated()) add(prefix + "gate.weight", {I, H}, e, spec.format);
    if (spec.gated() && gate_up_bias) add(prefix + "gate.bias", {I}, e);
    add(prefix + "up.weight", {I, H}, e, spec.format);
    if (gate_up_bias) add(prefix + "up.bias", {I}, e);
    add(prefix + "down.weight", {H, I}, e, spec.format);
    if (spec.bias) add(prefix + "down.bias", {H}, e);
  }
  if (config.shared.width > 0) {
    const int64_t Is = config.shared.width;
    const WeightFormat &f = config.weight_format;
    add("shared.gate.weight", {Is, H}, -1, f);
    add("shared.up.weight", {Is, H}, -1, f);
    add("shared.down.weight", {H, Is}, -1, f);
    if (config.shared.gated) add("shared.score.weight", {1, H}, -1);
  }
  if (config.router.combine_attention_dim > 0) {
    const int64_t D = config.router.combine_attention_dim;
    add("combine.q.weight", {D, H}, -1);
    add("combine.k.weight", {D, H}, -1);
  }
  return layout;
}

int64_t native_format_version(const SafetensorsView &view) {
  const auto it = view.metadata().find(kPrefix + "format_version");
  int64_t version = 0;
  if (it != view.metadata().end()) {
    const std::string &v = it->second;
    const auto result = std::from_chars(v.data(), v.data() + v.size(), version);
    if (v.empty() || result.ec != std::errc() || result.ptr != v.data() + v.size()) version = 0;
  }
  if (version < 1 || version > kNativeFormatVersion) {
    fail(PIMOE_ERR_FORMAT, "file '", view.label(), "': metadata 'pimoe.format_version' is missing or invalid");
  }
  return version;
}

std::vector<StoredTensor> stored_tensors(const ExpectedTensor &tensor) {
  const WeightFormat &f = tensor.format;
  if (!f.compact()) return {{tensor.name, tensor.shape, DType::F32, StoredTensor::Part::Values}};
  const int64_t rows = tensor.shape[0], cols = tensor.shape[1];
  const WeightFormatInfo &info = format_info(f.dtype);
  std::vector<StoredTensor> out;
  // Values: one element a value, or for the 4-bit formats the bytes of each row's 16-byte blocks.
  const std::vector<int64_t> values_shape =
      info.bits == 4 ? std::vector<int64_t>{rows, static_cast<int64_t>(CompactMatrix::values_bytes(f, 1, cols))}
                     : tensor.shape;
  DType values_dtype = DType::U8;
  for (DType d : {DType::BF16, DType::F16, DType::I8, DType::U8, DType::F8_E4M3}) {
    if (std::string(dtype_name(d)) == info.values_dtype) values_dtype = d;
  }
  out.push_back({tensor.name, values_shape, values_dtype, StoredTensor::Part::Values});
  const std::vector<int64_t> scales_shape = CompactMatrix::scales_shape(f, rows, cols);
  if (scales_shape.empty()) return out;
  const DType scales_dtype = info.scale == ScaleKind::F16PerGroup ? DType::F16
                             : info.scale == ScaleKind::E8M0Per32 ? DType::U8
                                                                  : DType::F32;
  out.push_back({tensor.name + ".scales", scales_shape, scales_dtype, StoredTensor::Part::Scales});
  if (f.zero_point) out.push_back({tensor.name + ".zeros", scales_shape, DType::U8, StoredTensor::Part::Zeros});
  return out;
}

LayerConfig native_config(const SafetensorsView &view, const Options &runtime) {
  MetadataReader meta(view);
  if (view.metadata().count(kPrefix + "format") == 0) {
    fail(PIMOE_ERR_FORMAT, meta.where(),
         "not a libpimoe native file (no 'pimoe.format' in the safetensors metadata; Hugging Face checkpoints need "
         "an importer)");
  }
  const std::string &format = meta.text(kPrefix + "format");
  if (format != kNativeFormatName) {
    fail(PIMOE_ERR_FORMAT, meta.where(), "metadata 'pimoe.format' = '", format, "', expected '", kNativeFormatName,
         "'");
  }
  const int64_t version = meta.integer(kPrefix + "format_version");
  if (version > kNativeFormatVersion) {
    fail(PIMOE_ERR_UNSUPPORTED, meta.where(), "format version ", version, " is newer than this library reads (",
         kNativeFormatVersion, "); upgrade libpimoe");
  }
  if (version < 1) fail(PIMOE_ERR_FORMAT, meta.where(), "format version ", version, " is not valid");
  meta.text(kPrefix + "library_version");  // informational: any writer version is fine

  // Runtime fields from the caller; every layer field is set from the file below, through the same setters and
  // range checks as pimoe_options_set_*.
  Options options;
  options.threads = runtime.threads;
  options.backend = runtime.backend;
  options.deterministic = runtime.deterministic;
  options.cpu_gemm = runtime.cpu_gemm;
  options.activation_dtype = runtime.activation_dtype;
  options.tuning = runtime.tuning;
  options.seed = runtime.seed;
  auto set_int = [&](const char *name, pimoe_option key) {
    const std::string full = kPrefix + name;
    const int64_t value = meta.integer(full);
    checked(meta, full, [&] { options.set_int(key, value); });
  };
  auto set_float = [&](const char *name, pimoe_option key) {
    const std::string full = kPrefix + name;
    const double value = meta.number(full);
    checked(meta, full, [&] { options.set_float(key, value); });
  };
  set_int("hidden", PIMOE_OPT_HIDDEN);
  set_int("num_experts", PIMOE_OPT_NUM_EXPERTS);
  set_int("top_k", PIMOE_OPT_TOP_K);
  set_float("temperature", PIMOE_OPT_TEMPERATURE);
  options.renormalize = meta.flag(kPrefix + "renormalize");
  set_float("capacity_factor", PIMOE_OPT_CAPACITY_FACTOR);
  set_float("aux_loss_coef", PIMOE_OPT_AUX_LOSS_COEF);
  set_float("layer_norm_eps", PIMOE_OPT_LAYER_NORM_EPS);
  // Optional keys (absent: the default), through the same setters as pimoe_options_set_*.
  auto has = [&](const char *name) { return view.metadata().count(kPrefix + name) > 0; };
  auto set_string = [&](const char *name, pimoe_option key) {
    const std::string full = kPrefix + name;
    const std::string &value = meta.text(full);
    checked(meta, full, [&] { options.set_string(key, value.c_str()); });
  };
  if (has("router_scoring")) set_string("router_scoring", PIMOE_OPT_ROUTER_SCORING);
  if (has("router_bias")) options.router_bias = meta.flag(kPrefix + "router_bias");
  if (has("router_logit_bias")) options.router_logit_bias = meta.flag(kPrefix + "router_logit_bias");
  if (has("expert_input_scaling")) options.expert_input_scaling = meta.flag(kPrefix + "expert_input_scaling");
  if (has("swiglu_alpha")) set_float("swiglu_alpha", PIMOE_OPT_SWIGLU_ALPHA);
  if (has("swiglu_limit")) set_float("swiglu_limit", PIMOE_OPT_SWIGLU_LIMIT);
  if (has("routed_scaling_factor")) set_float("routed_scaling_factor", PIMOE_OPT_ROUTED_SCALING);
  if (has("num_groups")) set_int("num_groups", PIMOE_OPT_NUM_GROUPS);
  if (has("topk_groups")) set_int("topk_groups", PIMOE_OPT_TOPK_GROUPS);
  if (has("group_score")) set_string("group_score", PIMOE_OPT_GROUP_SCORE);
  if (has("shared_width")) set_int("shared_width", PIMOE_OPT_SHARED_WIDTH);
  if (has("shared_gate")) options.shared_gate = meta.flag(kPrefix + "shared_gate");
  if (has("routing_mode")) set_string("routing_mode", PIMOE_OPT_ROUTING_MODE);
  if (has("group_levels")) set_string("group_levels", PIMOE_OPT_GROUP_LEVELS);
  if (has("router_attention_heads")) set_int("router_attention_heads", PIMOE_OPT_ATTENTION_HEADS);
  if (has("router_attention_head_dim")) set_int("router_attention_head_dim", PIMOE_OPT_ATTENTION_HEAD_DIM);
  if (has("router_attention_causal")) set_int("router_attention_causal", PIMOE_OPT_ATTENTION_CAUSAL);
  if (has("adaptive_bias_rate")) set_float("adaptive_bias_rate", PIMOE_OPT_ADAPTIVE_BIAS_RATE);
  if (has("sparsemixer_eps")) set_float("sparsemixer_eps", PIMOE_OPT_SPARSEMIXER_EPS);
  if (has("dynamic_capacity")) set_int("dynamic_capacity", PIMOE_OPT_DYNAMIC_CAPACITY);
  if (has("capacity_momentum")) set_float("capacity_momentum", PIMOE_OPT_CAPACITY_MOMENTUM);
  if (has("combine_attention_dim")) set_int("combine_attention_dim", PIMOE_OPT_COMBINE_ATTENTION_DIM);

  std::vector<bool> bias(static_cast<size_t>(options.num_experts));
  for (int64_t e = 0; e < options.num_experts; ++e) {
    if (has(("experts." + std::to_string(e) + ".kind").c_str())) {
      const std::string kind_key = expert_key(e, "kind");
      if (meta.text(kind_key) != "callback") {
        fail(PIMOE_ERR_FORMAT, meta.where(), "key '", kind_key, "' = '", meta.text(kind_key),
             "' is not 'callback'");
      }
      options.callbacks[static_cast<int32_t>(e)] = ExpertCallback{};  // registered later on the model
      continue;
    }
    ExpertOverride &o = options.expert_override(static_cast<int32_t>(e));
    const std::string activation_key = expert_key(e, "activation");
    const std::string &activation = meta.text(activation_key);
    checked(meta, activation_key, [&] { o.activation = parse_activation(activation, "activation"); });
    o.width = meta.integer(expert_key(e, "intermediate"));
    o.pre_norm = meta.flag(expert_key(e, "pre_norm"));
    bias[static_cast<size_t>(e)] = meta.flag(expert_key(e, "bias"));
  }
  // Storage formats (absent: fp32): the layer's (the shared expert's) and each expert's.
  const WeightFormat layer_format = read_format(meta, view, kPrefix + "weight_format");
  std::vector<WeightFormat> expert_format(static_cast<size_t>(options.num_experts));
  for (int64_t e = 0; e < options.num_experts; ++e) {
    if (options.callbacks.count(static_cast<int32_t>(e)) == 0) {
      expert_format[static_cast<size_t>(e)] = read_format(meta, view, expert_key(e, "weight_format"));
    }
  }
  meta.reject_unused();

  LayerConfig config;
  // The file's layer is checked without the caller's runtime promises; a conflict with those (deterministic with a
  // stateful router) is then reported as pimoe_create would, since the file is not at fault.
  const bool deterministic = options.deterministic;
  options.deterministic = false;
  try {
    config = resolve_layer_config(options);  // top_k <= num_experts, widths in range
  } catch (const Error &e) {
    fail(PIMOE_ERR_FORMAT, meta.where(), "metadata describes an invalid layer: ", e.what());
  }
  if (deterministic) {
    options.deterministic = true;
    config = resolve_layer_config(options);
  }

  for (size_t e = 0; e < bias.size(); ++e) {
    config.experts[e].bias = bias[e];
    if (!config.experts[e].callback) config.experts[e].format = expert_format[e];
  }
  config.weight_format = layer_format;
  check_tensors(view, config, version);
  return config;
}

LayerConfig with_runtime_formats(const LayerConfig &stored, const Options &runtime) {
  LayerConfig config = stored;
  const WeightFormat layer = weight_format_of(runtime.weight_dtype, runtime);  // checks the group size
  const bool layer_named = runtime.weight_dtype != WeightDtype::Auto;
  if (layer_named) config.weight_format = layer;
  for (size_t e = 0; e < config.experts.size(); ++e) {
    ExpertSpec &spec = config.experts[e];
    if (spec.callback) continue;
    std::optional<WeightDtype> named = runtime.every_expert.weight_dtype;
    const auto it = runtime.per_expert.find(static_cast<int32_t>(e));
    if (it != runtime.per_expert.end() && it->second.weight_dtype) named = it->second.weight_dtype;
    if (named) {
      spec.format = weight_format_of(*named, runtime);
    } else if (layer_named) {
      spec.format = layer;
    }
  }
  return config;
}

void read_native_tensor(const SafetensorsView &view, const TensorInfo &tensor, float *out, size_t count) {
  decode_to_f32(view, tensor, out, count);
  for (size_t i = 0; i < count; ++i) {
    if (!std::isfinite(out[i])) {
      fail(PIMOE_ERR_FORMAT, "file '", view.label(), "': tensor '", tensor.name, "' element ", i, " is ",
           std::isnan(out[i]) ? "NaN" : "Inf");
    }
  }
}

CompactMatrix read_native_compact(const SafetensorsView &view, const ExpectedTensor &tensor,
                                  std::shared_ptr<const void> owner) {
  CompactMatrix m;
  m.format = tensor.format;
  m.rows = tensor.shape[0];
  m.cols = tensor.shape[1];
  for (const StoredTensor &part : stored_tensors(tensor)) {
    const TensorInfo *t = view.find(part.name);
    if (!t) fail(PIMOE_ERR_INTERNAL, "file '", view.label(), "': tensor '", part.name, "' vanished");
    ByteBuffer bytes(owner, view.bytes(*t), static_cast<size_t>(t->byte_size()));
    switch (part.part) {
      case StoredTensor::Part::Values: m.values = std::move(bytes); break;
      case StoredTensor::Part::Scales: m.scales = std::move(bytes); break;
      case StoredTensor::Part::Zeros: m.zeros = std::move(bytes); break;
    }
  }
  m.check_codes("file '" + view.label() + "': tensor '" + tensor.name + "' (" + tensor.format.name() + ")");
  return m;
}

}  // namespace pimoe
