// SPDX-License-Identifier: MIT
#include "formats/hf_config.h"

#include <sys/stat.h>

#include <cerrno>
#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>

#include "error.h"
#include "formats/json_document.h"
#include "formats/mapped_file.h"

namespace pimoe {
namespace {

using nlohmann::json;

// Shortest text that reads back to the same double (locale-independent).
std::string format_double(double value) {
  char text[64];
  const auto result = std::to_chars(text, text + sizeof text, value);
  return std::string(text, result.ptr);
}

// Typed access to config.json's top-level keys; every message names the file and the key.
class ConfigReader {
 public:
  // `prefix` names a nested object's keys in messages ("quantization_config.").
  ConfigReader(const json &root, std::string path, std::string prefix = "")
      : root_(root), path_(std::move(path)), prefix_(std::move(prefix)) {}

  const std::string &path() const { return path_; }

  std::string where() const { return "file '" + path_ + "': "; }

  // A key that is absent or null.
  bool absent(const char *key) const {
    const auto it = root_.find(key);
    return it == root_.end() || it->is_null();
  }

  const json &get(const char *key) const {
    const auto it = root_.find(key);
    if (it == root_.end() || it->is_null())
      fail(PIMOE_ERR_FORMAT, where(), "required key '", prefix_, key, "' is missing");
    return *it;
  }

  int64_t integer(const char *key) const {
    const json &value = get(key);
    if (value.is_number_unsigned()) {
      if (value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' = ", value.dump(), " is out of range");
      }
      return static_cast<int64_t>(value.get<uint64_t>());
    }
    if (!value.is_number_integer())
      fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' = ", value.dump(), " is not an integer");
    return value.get<int64_t>();
  }
  int64_t integer(const char *key, int64_t fallback) const { return absent(key) ? fallback : integer(key); }

  // An integer that must be >= minimum (sizes, counts).
  int64_t at_least(const char *key, int64_t minimum) const {
    const int64_t value = integer(key);
    if (value < minimum)
      fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' = ", value, " must be at least ", minimum);
    return value;
  }

  double number(const char *key, double fallback) const {
    if (absent(key)) return fallback;
    const json &value = get(key);
    if (!value.is_number())
      fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' = ", value.dump(), " is not a number");
    return value.get<double>();
  }

  bool flag(const char *key, bool fallback) const {
    if (absent(key)) return fallback;
    const json &value = get(key);
    if (!value.is_boolean())
      fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' = ", value.dump(), " is not a boolean");
    return value.get<bool>();
  }

  std::string text(const char *key, const char *fallback) const {
    if (absent(key)) return fallback;
    const json &value = get(key);
    if (!value.is_string())
      fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' = ", value.dump(), " is not a string");
    return value.get<std::string>();
  }

  // A setting spelled in several ways (formats/hf_keys.h): the value of the spellings config.json has, each at least
  // `minimum`; `used` names the first. FORMAT when none is there (naming every key looked for) or two disagree.
  int64_t at_least_of(const HfSpellings &spellings, int64_t minimum, std::string &used) const {
    const char *found = nullptr;
    int64_t value = 0;
    std::string looked_for;
    for (const char *key : spellings.keys) {
      if (!key) break;
      looked_for += (looked_for.empty() ? "'" : ", '") + std::string(key) + "'";
      if (absent(key)) continue;
      const int64_t spelled = at_least(key, minimum);
      if (!found) {
        found = key;
        value = spelled;
      } else if (spelled != value) {
        fail(PIMOE_ERR_FORMAT, where(), "keys '", prefix_, found, "' (", value, ") and '", prefix_, key, "' (", spelled,
             ") disagree (both name the same setting)");
      }
    }
    if (!found) {
      fail(PIMOE_ERR_FORMAT, where(), "required key '", prefix_, spellings.keys[0], "' is missing (looked for ",
           looked_for, ")");
    }
    used = found;
    return value;
  }

  std::vector<int64_t> integer_list(const char *key) const {
    std::vector<int64_t> out;
    if (absent(key)) return out;
    const json &value = get(key);
    if (!value.is_array()) fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' is not a list");
    for (const json &item : value) {
      if (!item.is_number_integer()) fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' holds a non-integer");
      out.push_back(item.get<int64_t>());
    }
    return out;
  }

 private:
  const json &root_;
  std::string path_;
  std::string prefix_;
};

JsonDocument read_json(const std::string &path) {
  const std::string text = read_text_file(path, kMaxJsonFileBytes);
  JsonDocument document(text.data(), text.size());
  if (document.too_deep()) {
    fail(PIMOE_ERR_FORMAT, "file '", path, "': JSON nested deeper than ", JsonDocument::kMaxDepth, " levels");
  }
  if (!document.valid()) fail(PIMOE_ERR_FORMAT, "file '", path, "': not valid JSON");
  if (!document.root().is_object()) fail(PIMOE_ERR_FORMAT, "file '", path, "': not a JSON object");
  return document;
}

// Runs an Options setter, reporting its range errors as errors of config.json's key.
template <typename Set>
void checked(const ConfigReader &config, const std::string &key, Set &&set) {
  try {
    set();
  } catch (const Error &e) {
    fail(PIMOE_ERR_FORMAT, config.where(), "key '", key, "': ", e.what());
  }
}

HfFamily family_of(const std::string &model_type, const ConfigReader &config) {
  HfFamily family = HfFamily::Mixtral;
  if (hf_family_of(model_type.c_str(), family)) return family;
  std::string supported;
  for (const HfFamilyName &f : kHfFamilies) supported += (supported.empty() ? "" : ", ") + std::string(f.model_type);
  fail(PIMOE_ERR_UNSUPPORTED, config.where(), "model_type '", model_type, "' is not supported (supported: ", supported,
       ")");
}

// config.json's quantization_config: absent (the weights are F32, BF16 or F16), DeepSeek-V3's FP8 blocks, or
// gpt-oss's MXFP4. Anything else is refused, naming the key.
HfQuant quantization_of(const json &root, const ConfigReader &config, HfFamily family) {
  const auto it = root.find("quantization_config");
  if (it == root.end() || it->is_null()) return HfQuant::None;
  if (!it->is_object()) fail(PIMOE_ERR_FORMAT, config.where(), "key 'quantization_config' is not an object");
  const ConfigReader q(*it, config.path(), "quantization_config.");
  const std::string method = q.text("quant_method", "");
  auto unsupported = [&](const std::string &key, const std::string &value, const char *why) {
    fail(PIMOE_ERR_UNSUPPORTED, config.where(), "key 'quantization_config.", key, "' = ", value, ": ", why);
  };
  if (method == "fp8") {
    if (family == HfFamily::GptOss) unsupported("quant_method", "'fp8'", "gpt_oss checkpoints ship mxfp4");
    const std::string fmt = q.text("fmt", "e4m3");
    if (fmt != "e4m3") unsupported("fmt", "'" + fmt + "'", "only e4m3 (F8_E4M3) weights are supported");
    const std::string scheme = q.text("activation_scheme", "dynamic");
    if (scheme != "dynamic") {
      unsupported("activation_scheme", "'" + scheme + "'",
                  "only 'dynamic' (libpimoe computes with fp32 activations; static input scales are not applied)");
    }
    if (!q.absent("weight_block_size")) {
      const std::vector<int64_t> block = q.integer_list("weight_block_size");
      if (block != std::vector<int64_t>{128, 128}) {
        std::string text = "[";
        for (size_t i = 0; i < block.size(); ++i) text += (i ? ", " : "") + std::to_string(block[i]);
        unsupported("weight_block_size", text + "]", "only [128, 128] blocks (DeepSeek-V3's weight_scale_inv)");
      }
    }
    return HfQuant::Fp8Block;
  }
  if (method == "mxfp4") {
    if (family != HfFamily::GptOss) unsupported("quant_method", "'mxfp4'", "only gpt_oss checkpoints ship mxfp4");
    return HfQuant::Mxfp4;
  }
  if (q.absent("quant_method")) q.get("quant_method");  // FORMAT: the key is missing
  fail(PIMOE_ERR_UNSUPPORTED, config.where(), "key 'quantization_config.quant_method' = '", method,
       "': supported: 'fp8' (e4m3, 128x128 blocks) and 'mxfp4' (gpt_oss)");
}

void dense_layer(const ConfigReader &config, int32_t layer, const std::string &why) {
  fail(PIMOE_ERR_INVALID_ARGUMENT, config.where(), "layer ", layer, " is a dense MLP layer (", why,
       "): it has no MoE block to import");
}

}  // namespace

const char *hf_model_type(HfFamily family) {
  for (const HfFamilyName &f : kHfFamilies) {
    if (f.family == family) return f.model_type;
  }
  return "unknown";
}

HfLayerConfig read_hf_config(const std::string &dir, int32_t layer, const Options &runtime) {
  struct stat info {};
  if (::stat(dir.c_str(), &info) != 0) {
    fail(PIMOE_ERR_IO, "checkpoint directory '", dir, "': ", path_error_text(errno));
  }
  if (!S_ISDIR(info.st_mode)) fail(PIMOE_ERR_IO, "checkpoint '", dir, "' is not a directory");

  HfLayerConfig out;
  out.config_path = dir + "/config.json";
  const JsonDocument document = read_json(out.config_path);
  const json &root = document.root();
  const ConfigReader config(root, out.config_path);
  if (config.absent("model_type")) fail(PIMOE_ERR_FORMAT, config.where(), "required key 'model_type' is missing");
  out.family = family_of(config.text("model_type", ""), config);
  out.layer = layer;

  const int64_t layers = config.at_least("num_hidden_layers", 1);
  if (layer < 0 || layer >= layers) {
    fail(PIMOE_ERR_INVALID_ARGUMENT, config.where(), "layer ", layer, " is out of range (num_hidden_layers = ", layers,
         ")");
  }
  const std::string activation = config.text("hidden_act", "silu");
  // gpt-oss's experts ignore hidden_act (their clamped SwiGLU is fixed; its configs say "silu").
  if (activation != "silu" && out.family != HfFamily::GptOss) {
    fail(PIMOE_ERR_UNSUPPORTED, config.where(), "key 'hidden_act' = '", activation,
         "': only SwiGLU experts with silu are supported");
  }

  // Runtime settings from the caller; the layer's from config.json.
  Options &o = out.options;
  o.threads = runtime.threads;
  o.backend = runtime.backend;
  o.deterministic = runtime.deterministic;
  o.cpu_gemm = runtime.cpu_gemm;
  o.activation_dtype = runtime.activation_dtype;
  o.weight_dtype = runtime.weight_dtype;
  o.tuning = runtime.tuning;
  o.seed = runtime.seed;
  o.activation = PIMOE_ACT_SWIGLU;
  o.pre_norm = false;
  o.expert_bias = false;
  o.temperature = 1.0;
  o.capacity_factor = 0.0;  // every supported family is dropless at inference
  out.quant = quantization_of(root, config, out.family);
  if (runtime.weight_dtype == WeightDtype::Auto) {  // "auto": the format the checkpoint ships
    if (out.quant == HfQuant::Fp8Block) o.weight_dtype = WeightDtype::Fp8E4M3;
    if (out.quant == HfQuant::Mxfp4) o.weight_dtype = WeightDtype::Mxfp4;
  }
  o.weight_group_size = runtime.weight_group_size;
  o.weight_zero_point = runtime.weight_zero_point;

  bool renormalize = false;
  std::string prefix = "model.layers." + std::to_string(layer) + ".mlp.";
  switch (out.family) {
    case HfFamily::Mixtral:
      renormalize = true;  // MixtralSparseMoeBlock always divides the top-k weights by their sum
      prefix = "model.layers." + std::to_string(layer) + ".block_sparse_moe.";
      break;
    case HfFamily::Qwen2Moe:
    case HfFamily::Qwen3Moe: {
      renormalize = config.flag("norm_topk_prob", false);
      const std::vector<int64_t> mlp_only = config.integer_list("mlp_only_layers");
      for (int64_t l : mlp_only) {
        if (l == layer) dense_layer(config, layer, "it is listed in 'mlp_only_layers'");
      }
      const int64_t step = config.integer("decoder_sparse_step", 1);
      if (step < 1) fail(PIMOE_ERR_FORMAT, config.where(), "key 'decoder_sparse_step' = ", step, " must be >= 1");
      if ((int64_t{layer} + 1) % step != 0) {  // int64: layer + 1 overflows int32 for the last int32 layer
        dense_layer(config, layer,
                    "(layer + 1) % decoder_sparse_step != 0, decoder_sparse_step = " + std::to_string(step));
      }
      if (out.family == HfFamily::Qwen2Moe) {
        out.shared_width = config.at_least("shared_expert_intermediate_size", 0);
        out.shared_width_key = "shared_expert_intermediate_size";
        out.shared_gate = out.shared_width > 0;
      }
      break;
    }
    case HfFamily::Olmoe:
      renormalize = config.flag("norm_topk_prob", false);
      break;
    case HfFamily::GptOss:
      // GptOssTopKRouter: logits = x W^T + b, the top-k logits softmaxed among themselves (= softmax, renormalised);
      // GptOssExperts: the clamped SwiGLU on interleaved gate/up rows, biases on both projections.
      renormalize = true;
      o.activation = PIMOE_ACT_SWIGLU_OAI;
      o.expert_bias = true;
      o.router_logit_bias = true;
      out.router_logit_bias = true;
      if (out.quant != HfQuant::Mxfp4) {
        fail(PIMOE_ERR_UNSUPPORTED, config.where(),
             "gpt_oss without quantization_config 'mxfp4' (fused BF16 experts) is not supported: libpimoe imports "
             "gpt-oss checkpoints as they ship, with MXFP4 experts");
      }
      break;
    case HfFamily::DeepseekV2:
    case HfFamily::DeepseekV3: {
      const int64_t first_dense = config.integer("first_k_dense_replace", 0);
      const int64_t freq = config.integer("moe_layer_freq", 1);
      if (freq < 1) fail(PIMOE_ERR_FORMAT, config.where(), "key 'moe_layer_freq' = ", freq, " must be >= 1");
      if (layer < first_dense) {
        dense_layer(config, layer, "first_k_dense_replace = " + std::to_string(first_dense));
      }
      if (layer % freq != 0)
        dense_layer(config, layer, "layer % moe_layer_freq != 0, moe_layer_freq = " + std::to_string(freq));
      break;
    }
  }
  out.prefix = prefix;
  std::string hidden_key, top_k_key;
  out.hidden = config.at_least_of(hf_spellings(out.family, HfSetting::Hidden), 1, hidden_key);
  out.num_experts = config.at_least_of(hf_spellings(out.family, HfSetting::NumExperts), 1, out.experts_key);
  out.expert_width = config.at_least_of(hf_spellings(out.family, HfSetting::ExpertWidth), 1, out.width_key);
  const int64_t top_k = config.at_least_of(hf_spellings(out.family, HfSetting::TopK), 1, top_k_key);
  const std::string &experts_key = out.experts_key, &width_key = out.width_key;
  checked(config, hidden_key, [&] { o.set_int(PIMOE_OPT_HIDDEN, out.hidden); });
  checked(config, experts_key, [&] { o.set_int(PIMOE_OPT_NUM_EXPERTS, out.num_experts); });
  checked(config, top_k_key, [&] { o.set_int(PIMOE_OPT_TOP_K, top_k); });
  checked(config, width_key, [&] { o.set_int(PIMOE_OPT_INTERMEDIATE, out.expert_width); });
  const double aux = config.number("router_aux_loss_coef", 1.0);
  checked(config, "router_aux_loss_coef", [&] { o.set_float(PIMOE_OPT_AUX_LOSS_COEF, aux); });
  o.renormalize = renormalize;

  // Options of the routers the DeepSeek and Qwen2-MoE families need, set by name (docs: pimoe.h option table).
  auto set = [&](const std::string &key, const char *name, const std::string &value) {
    checked(config, key, [&] { o.set_by_name(name, value.c_str()); });
  };
  if (out.family == HfFamily::DeepseekV2 || out.family == HfFamily::DeepseekV3) {
    const bool v3 = out.family == HfFamily::DeepseekV3;
    const int64_t shared_experts = config.at_least("n_shared_experts", 0);
    if (__builtin_mul_overflow(shared_experts, out.expert_width, &out.shared_width)) {
      fail(PIMOE_ERR_FORMAT, config.where(), "keys 'n_shared_experts' (", shared_experts, ") * '", width_key, "' (",
           out.expert_width, "): the shared expert's width overflows a 64-bit integer");
    }
    out.shared_width_key = "n_shared_experts * moe_intermediate_size";
    const std::string scoring = config.text("scoring_func", v3 ? "sigmoid" : "softmax");
    if (scoring != "softmax" && scoring != "sigmoid") {
      fail(PIMOE_ERR_UNSUPPORTED, config.where(), "key 'scoring_func' = '", scoring, "' is not supported");
    }
    const std::string method = config.text("topk_method", v3 ? "noaux_tc" : "greedy");
    const int64_t groups = config.integer("n_group", 1);
    const int64_t topk_groups = config.integer("topk_group", 1);
    const double scaling = config.number("routed_scaling_factor", v3 ? 2.5 : 1.0);
    const bool norm = config.flag("norm_topk_prob", v3);
    double applied_scaling = scaling;
    if (v3) {
      o.renormalize = norm;  // DeepSeek-V3: weights /= (sum + 1e-20) if norm_topk_prob, then *= scaling
    } else {
      // DeepSeek-V2 (deepseek-ai's modeling_deepseek.py): renormalised when norm_topk_prob and top_k > 1, else
      // scaled by routed_scaling_factor, never both. Every published V2 checkpoint has norm_topk_prob false, where
      // this equals transformers' DeepseekV2TopkRouter (which always scales and ignores norm_topk_prob).
      o.renormalize = norm && top_k > 1;
      if (o.renormalize) applied_scaling = 1.0;
    }
    if (v3) {
      if (method != "noaux_tc") {
        fail(PIMOE_ERR_UNSUPPORTED, config.where(), "key 'topk_method' = '", method,
             "' is not supported for deepseek_v3 (only 'noaux_tc')");
      }
      out.selection_bias = true;
      set("topk_method", "router_bias", "1");
      set("n_group", "num_groups", std::to_string(groups));
      set("topk_group", "topk_groups", std::to_string(topk_groups));
      set("topk_method", "group_score", "top2_sum");
    } else if (method == "group_limited_greedy") {
      set("n_group", "num_groups", std::to_string(groups));
      set("topk_group", "topk_groups", std::to_string(topk_groups));
      set("topk_method", "group_score", "max");
    } else if (method != "greedy") {
      fail(PIMOE_ERR_UNSUPPORTED, config.where(), "key 'topk_method' = '", method,
           "' is not supported for deepseek_v2 ('greedy' or 'group_limited_greedy')");
    }
    if (scoring != "softmax") set("scoring_func", "router_scoring", scoring);
    if (applied_scaling != 1.0) {
      set("routed_scaling_factor", "routed_scaling_factor", format_double(applied_scaling));
    }
  }
  if (out.family == HfFamily::GptOss) {
    const double limit = config.number("swiglu_limit", 7.0);
    const double alpha = config.number("swiglu_alpha", 1.702);  // absent from gpt-oss's configs: GptOssConfig's
    checked(config, "swiglu_limit", [&] { o.set_float(PIMOE_OPT_SWIGLU_LIMIT, limit); });
    checked(config, "swiglu_alpha", [&] { o.set_float(PIMOE_OPT_SWIGLU_ALPHA, alpha); });
  }
  if (out.shared_width > 0) {
    set(out.shared_width_key, "shared_width", std::to_string(out.shared_width));
    if (out.shared_gate) set(out.shared_width_key, "shared_gate", "1");
  }
  return out;
}

}  // namespace pimoe
