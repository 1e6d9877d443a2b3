// SPDX-License-Identifier: MIT
#include "formats/hf_config.h"

#include <sys/stat.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <vector>

#include "error.h"
#include "formats/hf_config_reader.h"
#include "formats/hf_moe_layers.h"
#include "formats/json_document.h"
#include "formats/mapped_file.h"

namespace pimoe {
namespace {

using hf::checked;
using hf::ConfigReader;
using hf::format_double;
using hf::MoeLayers;
using nlohmann::json;

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

// A copy of config.json's top level with the members of the object `nested` added as "<nested>.<key>" (DBRX's
// ffn_config), so that every key reads, and is named in messages, the way hf_keys.h spells it.
json with_nested(const json &top, const char *nested, const ConfigReader &config) {
  json flat = top;
  const auto it = top.find(nested);
  if (it == top.end() || it->is_null()) return flat;
  if (!it->is_object()) fail(PIMOE_ERR_FORMAT, config.where(), "key '", nested, "' is not an object");
  for (const auto &item : it->items()) flat[std::string(nested) + "." + item.key()] = item.value();
  return flat;
}

// The object under `key`, FORMAT naming the key when it is absent or not an object.
const json &nested_object(const ConfigReader &config, const char *key) {
  const json &value = config.get(key);
  if (!value.is_object()) fail(PIMOE_ERR_FORMAT, config.where(), "key '", key, "' is not an object");
  return value;
}

// The experts' activation: hidden_act, or DBRX's ffn_config.ffn_act_fn {"name": ...} (default silu).
std::string activation_of(const ConfigReader &config, HfFamily family) {
  if (family != HfFamily::Dbrx) return config.text("hidden_act", "silu");
  const char *key = "ffn_config.ffn_act_fn";
  if (config.absent(key)) return "silu";
  const json &act = config.get(key);
  if (!act.is_object()) fail(PIMOE_ERR_FORMAT, config.where(), "key '", key, "' is not an object");
  const ConfigReader inner(act, config.path(), std::string(key) + ".");
  return inner.text("name", "silu");
}

// count * width (a shared expert's width), FORMAT when it overflows.
void multiply_width(const ConfigReader &config, int64_t count, const char *count_key, int64_t width,
                    const std::string &width_key, int64_t &out) {
  if (__builtin_mul_overflow(count, width, &out)) {
    fail(PIMOE_ERR_FORMAT, config.where(), "keys '", count_key, "' (", count, ") * '", width_key, "' (", width,
         "): the shared expert's width overflows a 64-bit integer");
  }
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
  const json &top = document.root();
  const ConfigReader top_config(top, out.config_path);
  if (top_config.absent("model_type")) {
    fail(PIMOE_ERR_FORMAT, top_config.where(), "required key 'model_type' is missing");
  }
  out.family = family_of(top_config.text("model_type", ""), top_config);
  out.layer = layer;
  const HfFamily family = out.family;
  // DBRX keeps its MoE settings in config.json's "ffn_config": read as "ffn_config.<key>" (hf_keys.h's spelling).
  const json root = family == HfFamily::Dbrx ? with_nested(top, "ffn_config", top_config) : json();
  // Llama4Config (model_type llama4, the multimodal checkpoints) keeps the text model's settings in "text_config".
  const bool llama4 = family == HfFamily::Llama4 || family == HfFamily::Llama4Text;
  const json &scope = family == HfFamily::Dbrx     ? root
                      : family == HfFamily::Llama4 ? nested_object(top_config, "text_config")
                                                   : top;
  const ConfigReader config(scope, out.config_path, family == HfFamily::Llama4 ? "text_config." : "");

  std::string layers_key;
  const int64_t layers = config.at_least_of(hf_spellings(family, HfSetting::Layers), 1, layers_key);
  const std::string activation = activation_of(config, family);
  // gpt-oss's experts ignore hidden_act (their clamped SwiGLU is fixed; its configs say "silu").
  if (activation != "silu" && family != HfFamily::GptOss) {
    fail(PIMOE_ERR_UNSUPPORTED, config.where(), "key '",
         family == HfFamily::Dbrx ? "ffn_config.ffn_act_fn.name" : "hidden_act", "' = '", activation,
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
  out.quant = quantization_of(top, config, family);
  if (runtime.weight_dtype == WeightDtype::Auto) {  // "auto": the format the checkpoint ships
    if (out.quant == HfQuant::Fp8Block) o.weight_dtype = WeightDtype::Fp8E4M3;
    if (out.quant == HfQuant::Mxfp4) o.weight_dtype = WeightDtype::Mxfp4;
  }
  o.weight_group_size = runtime.weight_group_size;
  o.weight_zero_point = runtime.weight_zero_point;

  const MoeLayers moe_layers(config, family, layers);
  if (layer < 0 || layer >= layers) {
    fail(PIMOE_ERR_INVALID_ARGUMENT, config.where(), "layer ", layer, " is out of range (", layers_key, " = ", layers,
         "); MoE layers: ", moe_layers.list());
  }
  if (!moe_layers.sparse(layer)) {
    fail(PIMOE_ERR_INVALID_ARGUMENT, config.where(), "layer ", layer, " is a dense MLP layer (", moe_layers.rule(),
         "): it has no MoE block to import; MoE layers: ", moe_layers.list());
  }

  const std::string L = std::to_string(layer);
  bool renormalize = false;
  std::string prefix = "model.layers." + L + ".mlp.";
  switch (family) {
    case HfFamily::Phimoe: {
      // PhimoeTopKRouter: sparsemixer(logits, router_jitter_noise) at inference, always two experts.
      prefix = "model.layers." + L + ".block_sparse_moe.";
      const double eps = config.number("router_jitter_noise", 0.01);
      if (!(eps > 0.0)) {
        fail(PIMOE_ERR_UNSUPPORTED, config.where(), "key 'router_jitter_noise' = ", format_double(eps),
             ": sparsemixer routing needs eps > 0");
      }
      checked(config, "router_jitter_noise", [&] { o.set_float(PIMOE_OPT_SPARSEMIXER_EPS, eps); });
      break;
    }
    case HfFamily::Mixtral:
    case HfFamily::MiniMax:
    case HfFamily::GraniteMoe:
      // MixtralSparseMoeBlock and MiniMaxTopKRouter divide the top-k softmax weights by their sum;
      // GraniteMoeTopKRouter softmaxes the top-k logits among themselves, the same weights.
      renormalize = true;
      prefix = "model.layers." + L + ".block_sparse_moe.";
      break;
    case HfFamily::MiniMaxM2:
      // MiniMaxM2TopKRouter: sigmoid scores, top-k of score + e_score_correction_bias, weights = the chosen
      // scores divided by their sum.
      renormalize = true;
      prefix = "model.layers." + L + ".block_sparse_moe.";
      out.selection_bias = true;
      break;
    case HfFamily::Dbrx: {
      // DbrxFFN: softmax, top-k, weights / ||weights||_p with p = moe_normalize_expert_weights (null: none). The
      // weights are positive, so p = 1 is the renormalisation; another p is a routing libpimoe lacks.
      prefix = "transformer.blocks." + L + ".ffn.";
      const char *key = "ffn_config.moe_normalize_expert_weights";
      if (config.present_but_null(key)) {
        renormalize = false;
      } else {
        const double p = config.number(key, 1.0);
        if (p != 1.0) {
          fail(PIMOE_ERR_UNSUPPORTED, config.where(), "key '", key, "' = ", format_double(p),
               ": only 1 (weights divided by their sum) or null (not normalised) are supported");
        }
        renormalize = true;
      }
      break;
    }
    case HfFamily::Jamba:
      renormalize = false;  // JambaTopKRouter: the top-k softmax probabilities, not renormalised
      prefix = "model.layers." + L + ".feed_forward.";
      break;
    case HfFamily::Llama4Text:
    case HfFamily::Llama4:
      // Llama4TextMoe: top-k of the logits, score = sigmoid(logit) (sigmoid scoring selects the same experts), not
      // renormalised; each chosen expert runs on x * score and its output is added unweighted (EXPERT_INPUT_SCALING);
      // Llama4TextMLP beside it as the ungated shared expert, intermediate_size wide.
      renormalize = false;
      prefix =
          std::string(family == HfFamily::Llama4 ? "language_model." : "") + "model.layers." + L + ".feed_forward.";
      out.shared_width = config.at_least("intermediate_size", 1);
      out.shared_width_key = "intermediate_size";
      break;
    case HfFamily::Qwen2Moe:
    case HfFamily::Qwen3Moe:
    case HfFamily::Qwen3Next:
      renormalize = config.flag("norm_topk_prob", family == HfFamily::Qwen3Next);  // Qwen3NextConfig: true
      if (family != HfFamily::Qwen3Moe) {
        out.shared_width = config.at_least("shared_expert_intermediate_size", 0);
        out.shared_width_key = "shared_expert_intermediate_size";
        out.shared_gate = out.shared_width > 0;
      }
      break;
    case HfFamily::Olmoe:
      renormalize = config.flag("norm_topk_prob", false);
      break;
    case HfFamily::HunyuanV1Moe:
      // HunYuanMoEV1Gate: softmax, top-k, divided by their sum; HunYuanMoEV1MLP as the ungated shared expert,
      // intermediate_size wide like the routed experts.
      renormalize = true;
      out.shared_width = config.at_least("intermediate_size", 1);
      out.shared_width_key = "intermediate_size";
      break;
    case HfFamily::Ernie45Moe: {
      // Ernie4_5_MoeTopKRouter: softmax p, top-k of p + e_score_correction_bias, weights p / max(sum, moe_norm_min).
      renormalize = true;
      out.selection_bias = true;
      if (config.flag("use_bias", false)) {
        fail(PIMOE_ERR_UNSUPPORTED, config.where(), "key 'use_bias' = true: experts with biases are not supported");
      }
      const int64_t shared = config.at_least_or("moe_num_shared_experts", 0, 2);
      out.shared_width_key = "moe_num_shared_experts * moe_intermediate_size";
      out.shared_width = shared;  // times the expert width below
      break;
    }
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
    case HfFamily::BailingHybrid:
      // BailingHybridExperts / BailingHybridMLP clamp silu(gate) and up after the activation when the layer's limit
      // is non-zero: a clamp libpimoe lacks (SWIGLU_OAI clamps before it).
      for (const char *key : {"expert_swiglu_limit_list", "share_expert_swiglu_limit_list"}) {
        if (config.absent(key)) continue;
        const json &limits = config.get(key);
        if (!limits.is_array()) fail(PIMOE_ERR_FORMAT, config.where(), "key '", key, "' is not a list");
        if (static_cast<int64_t>(limits.size()) > layer && !(limits[static_cast<size_t>(layer)] == 0)) {
          fail(PIMOE_ERR_UNSUPPORTED, config.where(), "key '", key, "' [", layer,
               "] = ", limits[static_cast<size_t>(layer)].dump(),
               ": SwiGLU clamped after the activation is not supported (only 0, no clamp)");
        }
      }
      break;
    case HfFamily::DeepseekV2:
    case HfFamily::DeepseekV3:
    case HfFamily::Glm4Moe:
    case HfFamily::Dots1:
      break;  // below
  }
  out.prefix = prefix;
  std::string hidden_key, top_k_key;
  out.hidden = config.at_least_of(hf_spellings(family, HfSetting::Hidden), 1, hidden_key);
  out.num_experts = config.at_least_of(hf_spellings(family, HfSetting::NumExperts), 1, out.experts_key);
  out.expert_width = config.at_least_of(hf_spellings(family, HfSetting::ExpertWidth), 1, out.width_key);
  // HunYuanMoEV1Config's moe_topk may list one value per layer.
  const int64_t top_k = config.at_least_of(hf_spellings(family, HfSetting::TopK), 1, top_k_key,
                                           family == HfFamily::HunyuanV1Moe ? layer : -1);
  if (family == HfFamily::Phimoe && top_k != 2) {
    fail(PIMOE_ERR_UNSUPPORTED, config.where(), "key '", top_k_key, "' = ", top_k,
         ": phimoe's sparsemixer routes every token to exactly 2 experts");
  }
  const std::string &experts_key = out.experts_key, &width_key = out.width_key;
  checked(config, hidden_key, [&] { o.set_int(PIMOE_OPT_HIDDEN, out.hidden); });
  checked(config, experts_key, [&] { o.set_int(PIMOE_OPT_NUM_EXPERTS, out.num_experts); });
  checked(config, top_k_key, [&] { o.set_int(PIMOE_OPT_TOP_K, top_k); });
  checked(config, width_key, [&] { o.set_int(PIMOE_OPT_INTERMEDIATE, out.expert_width); });
  const char *aux_key = family == HfFamily::Dbrx ? "ffn_config.moe_loss_weight" : "router_aux_loss_coef";
  const double aux = config.number(aux_key, 1.0);
  checked(config, aux_key, [&] { o.set_float(PIMOE_OPT_AUX_LOSS_COEF, aux); });
  o.renormalize = renormalize;
  if (family == HfFamily::Ernie45Moe) {
    multiply_width(config, out.shared_width, "moe_num_shared_experts", out.expert_width, width_key, out.shared_width);
  }

  // Options of the routers the DeepSeek-style and Qwen2-MoE families need, set by name (docs: pimoe.h option table).
  auto set = [&](const std::string &key, const char *name, const std::string &value) {
    checked(config, key, [&] { o.set_by_name(name, value.c_str()); });
  };
  const bool deepseek = family == HfFamily::DeepseekV2 || family == HfFamily::DeepseekV3;
  const bool bailing = family == HfFamily::BailingHybrid;
  const bool v3_like =
      family == HfFamily::DeepseekV3 || family == HfFamily::Glm4Moe || family == HfFamily::Dots1 || bailing;
  if (deepseek || v3_like) {
    const bool v3 = family == HfFamily::DeepseekV3 || bailing;
    // BailingHybridConfig stores n_shared_experts, n_group and norm_topk_prob under its attribute_map's names.
    const char *shared_key = bailing ? config.spelled("num_shared_experts", "n_shared_experts") : "n_shared_experts";
    const char *group_key = bailing ? config.spelled("num_expert_group", "n_group") : "n_group";
    const char *norm_key = bailing ? config.spelled("moe_renormalize", "norm_topk_prob") : "norm_topk_prob";
    // Dots1Config has no default for n_shared_experts; Glm4MoeConfig's and BailingHybridConfig's are 1.
    const int64_t shared_experts =
        family == HfFamily::Glm4Moe || bailing ? config.at_least_or(shared_key, 0, 1) : config.at_least(shared_key, 0);
    multiply_width(config, shared_experts, shared_key, out.expert_width, width_key, out.shared_width);
    out.shared_width_key = std::string(shared_key) + " * moe_intermediate_size";
    // Glm4MoeTopkRouter and Dots1TopkRouter are DeepSeek-V3's noaux_tc router, with no topk_method or scoring_func
    // to read (their config classes have none).
    const std::string scoring = deepseek ? config.text("scoring_func", v3 ? "sigmoid" : "softmax") : "sigmoid";
    if (scoring != "softmax" && scoring != "sigmoid") {
      fail(PIMOE_ERR_UNSUPPORTED, config.where(), "key 'scoring_func' = '", scoring, "' is not supported");
    }
    const std::string method = deepseek ? config.text("topk_method", v3 ? "noaux_tc" : "greedy") : "noaux_tc";
    // BailingHybridConfig's defaults: 8 groups, 4 kept.
    const int64_t groups = config.integer(group_key, bailing ? 8 : 1);
    const int64_t topk_groups = config.integer("topk_group", bailing ? 4 : 1);
    // Defaults of each config class: DeepseekV3Config 2.5 / true, Glm4MoeConfig 1.0 / true, Dots1Config 1.0 / false,
    // BailingHybridConfig 2.5 / true.
    const double scaling = config.number("routed_scaling_factor", v3 ? 2.5 : 1.0);
    const bool norm = config.flag(norm_key, v3 || family == HfFamily::Glm4Moe);
    double applied_scaling = scaling;
    if (v3_like) {
      o.renormalize = norm;  // DeepSeek-V3: weights /= (sum + 1e-20) if norm_topk_prob, then *= scaling
    } else {
      // DeepSeek-V2 (deepseek-ai's modeling_deepseek.py): renormalised when norm_topk_prob and top_k > 1, else
      // scaled by routed_scaling_factor, never both. Every published V2 checkpoint has norm_topk_prob false, where
      // this equals transformers' DeepseekV2TopkRouter (which always scales and ignores norm_topk_prob).
      o.renormalize = norm && top_k > 1;
      if (o.renormalize) applied_scaling = 1.0;
    }
    if (v3_like) {
      if (method != "noaux_tc") {
        fail(PIMOE_ERR_UNSUPPORTED, config.where(), "key 'topk_method' = '", method,
             "' is not supported for deepseek_v3 (only 'noaux_tc')");
      }
      out.selection_bias = true;
      set(group_key, "num_groups", std::to_string(groups));
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
  if (family == HfFamily::MiniMaxM2 || llama4) set("model_type", "router_scoring", "sigmoid");
  if (llama4) set("model_type", "expert_input_scaling", "1");
  if (out.selection_bias) set("model_type", "router_bias", "1");
  if (family == HfFamily::GptOss) {
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
