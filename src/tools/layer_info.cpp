// SPDX-License-Identifier: MIT
#include "tools/layer_info.h"

#include <pimoe/pimoe.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "error.h"
#include "formats/hf_config.h"
#include "formats/hf_keys.h"
#include "formats/mapped_file.h"
#include "formats/native_format.h"
#include "formats/safetensors.h"
#include "layer_config.h"
#include "options.h"

namespace pimoe_tools {
namespace {

using nlohmann::json;
using pimoe::LayerConfig;

// The most decoder layers a checkpoint may declare: far above any published model's (DeepSeek-V3 has 61, Qwen3-235B
// 94), so that a num_hidden_layers of 2^40 is refused before the loop over layers starts.
constexpr int64_t kMaxInspectedLayers = 1024;

// The routing features a layer uses, by the names of their options (pimoe.h), in the option table's order: the
// default softmax top-k layer has none. A test per family compares this list.
json routing_features(const pimoe::RouterConfig &r, const LayerConfig &config) {
  json features = json::array();
  const auto add = [&](bool on, const char *name) {
    if (on) features.push_back(name);
  };
  add(r.scoring != pimoe::RouterScoring::Softmax, "router_scoring");
  add(r.selection_bias, "router_bias");
  add(r.logit_bias, "router_logit_bias");
  add(r.routed_scaling_factor != 1.0, "routed_scaling_factor");
  add(r.num_groups != 1, "num_groups");
  add(!r.group_levels.empty(), "group_levels");
  add(r.expert_choice, "routing_mode");
  add(r.capacity_factor > 0.0, "capacity_factor");
  add(r.attention_heads > 0, "router_attention_heads");
  add(r.adaptive_bias_rate > 0.0, "adaptive_bias_rate");
  add(r.dynamic_capacity, "dynamic_capacity");
  add(r.combine_attention_dim > 0, "combine_attention_dim");
  add(config.shared.width > 0, "shared_expert");
  add(config.shared.gated, "shared_expert_gate");
  add(r.has_callback_experts, "expert_callback");
  return features;
}

json router_json(const LayerConfig &config) {
  const pimoe::RouterConfig &r = config.router;
  json levels = json::array();
  for (const auto &[groups, kept] : r.group_levels) levels.push_back({groups, kept});
  json router = {
      {"scoring", pimoe::enum_name(r.scoring)},
      {"temperature", r.temperature},
      {"renormalize", r.renormalize},
      {"capacity_factor", r.capacity_factor},
      {"dropless", r.capacity_factor == 0.0 && !r.expert_choice},
      {"aux_loss_coef", r.aux_loss_coef},
      {"selection_bias", r.selection_bias},
      {"logit_bias", r.logit_bias},
      {"routed_scaling_factor", r.routed_scaling_factor},
      {"num_groups", r.num_groups},
      {"topk_groups", r.topk_groups},
      {"group_score", pimoe::enum_name(r.group_score)},
      {"group_levels", levels},
      {"routing_mode", r.expert_choice ? "expert_choice" : "token_choice"},
      {"attention_heads", r.attention_heads},
      {"attention_head_dim", r.attention_heads > 0 ? json(r.attention_head_dim) : json(nullptr)},
      {"attention_causal", r.attention_heads > 0 ? json(r.attention_causal) : json(nullptr)},
      {"adaptive_bias_rate", r.adaptive_bias_rate},
      {"dynamic_capacity", r.dynamic_capacity},
      {"capacity_momentum", r.dynamic_capacity ? json(r.capacity_momentum) : json(nullptr)},
      {"combine_attention_dim", r.combine_attention_dim},
  };
  return router;
}

bool is_matrix(const pimoe::ExpectedTensor &t) {
  const auto ends_with = [&](const char *tail) {
    const std::string s(tail);
    return t.name.size() > s.size() && t.name.compare(t.name.size() - s.size(), s.size(), s) == 0;
  };
  const bool projection = ends_with(".gate.weight") || ends_with(".up.weight") || ends_with(".down.weight");
  return projection && (t.name.compare(0, 8, "experts.") == 0 || t.name.compare(0, 7, "shared.") == 0);
}

// The layer as LayerConfig says: every field the importers and pimoe_load set, and the tensors it holds.
json layer_json(const LayerConfig &config) {
  json experts = json::array();
  for (size_t e = 0; e < config.experts.size(); ++e) {
    const pimoe::ExpertSpec &spec = config.experts[e];
    if (spec.callback) {
      experts.push_back({{"index", e}, {"callback", true}});
      continue;
    }
    experts.push_back({{"index", e},
                       {"activation", pimoe::activation_name(spec.activation)},
                       {"intermediate", spec.intermediate},
                       {"pre_norm", spec.pre_norm},
                       {"bias", spec.bias},
                       {"format", spec.format.name()},
                       {"callback", false}});
  }
  json tensors = json::array();
  std::map<std::string, std::pair<int64_t, uint64_t>> by_format;  // format -> (matrices, bytes)
  uint64_t other = 0, total = 0;
  for (const pimoe::ExpectedTensor &t : pimoe::native_tensor_layout(config)) {
    uint64_t bytes = 0;
    for (const pimoe::StoredTensor &s : pimoe::stored_tensors(t)) {
      uint64_t count = 1;
      for (int64_t d : s.shape) count *= static_cast<uint64_t>(d);
      bytes += count * pimoe::dtype_size(s.dtype);
    }
    const std::string format = t.format.name();
    tensors.push_back({{"name", t.name}, {"shape", t.shape}, {"format", format}, {"bytes", bytes}});
    total += bytes;
    if (is_matrix(t)) {
      ++by_format[format].first;
      by_format[format].second += bytes;
    } else {
      other += bytes;
    }
  }
  json formats = json::object();
  for (const auto &[name, entry] : by_format) formats[name] = {{"matrices", entry.first}, {"bytes", entry.second}};

  json shared = nullptr;
  if (config.shared.width > 0) {
    shared = {{"width", config.shared.width}, {"gated", config.shared.gated}, {"activation", "swiglu"},
              {"format", config.weight_format.name()}};
  }
  return {
      {"hidden", config.hidden},
      {"num_experts", config.router.num_experts},
      {"top_k", config.router.top_k},
      {"router", router_json(config)},
      {"routing_features", routing_features(config.router, config)},
      {"shared_expert", shared},
      {"layer_norm_eps", config.layer_norm_eps},
      {"swiglu_alpha", config.swiglu_alpha},
      {"swiglu_limit", config.swiglu_limit},
      {"weight_format", config.weight_format.name()},
      {"experts", experts},
      {"tensors", tensors},
      {"bytes_by_format", formats},
      {"other_bytes", other},
      {"total_bytes", total},
  };
}

// The first of `keys` that config.json has (null when none): the families name the same setting differently.
// A key "outer.inner" is the member inner of the object outer (DBRX's "ffn_config.moe_num_experts", hf_keys.h).
json first_of(const json &config, std::initializer_list<const char *> keys) {
  for (const char *key : keys) {
    const json *scope = &config;
    std::string name = key;
    const size_t dot = name.find('.');
    if (dot != std::string::npos) {
      const auto outer = config.find(name.substr(0, dot));
      if (outer == config.end() || !outer->is_object()) continue;
      scope = &*outer;
      name = name.substr(dot + 1);
    }
    auto it = scope->find(name);
    if (it != scope->end() && !it->is_null()) return *it;
  }
  return nullptr;
}

// A setting under the spellings the importer accepts (formats/hf_keys.h): the family's when model_type is one
// libpimoe imports, else every family's.
json setting_of(const json &config, pimoe::HfSetting setting) {
  pimoe::HfFamily family{};
  const auto type = config.find("model_type");
  const bool known = type != config.end() && type->is_string() &&
                     pimoe::hf_family_of(type->get_ref<const std::string &>().c_str(), family);
  for (const pimoe::HfSpellings &row : pimoe::kHfSpellings) {
    if (row.setting != setting || (known && row.family != family)) continue;
    for (const char *key : row.keys) {
      if (key && !first_of(config, {key}).is_null()) return first_of(config, {key});
    }
  }
  return nullptr;
}

// The total size of the folder's *.safetensors files; a sum past uint64_t (sparse files) saturates.
uint64_t safetensors_bytes(const std::filesystem::path &dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto &entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".safetensors" || !entry.is_regular_file(ec)) continue;
    const uintmax_t size = entry.file_size(ec);
    if (ec) continue;
    if (__builtin_add_overflow(total, size, &total)) return UINT64_MAX;
  }
  return total;
}

// config.json's decoder-layer count under the family's spelling (num_hidden_layers; DBRX: n_layers; hf_keys.h), 1
// when absent, refused unless an integer in [1, kMaxInspectedLayers].
int64_t layer_count(const json &config, const std::string &path) {
  const char *key = "num_hidden_layers";
  pimoe::HfFamily family{};
  const auto type = config.find("model_type");
  if (type != config.end() && type->is_string() &&
      pimoe::hf_family_of(type->get_ref<const std::string &>().c_str(), family)) {
    for (const char *spelled : pimoe::hf_spellings(family, pimoe::HfSetting::Layers).keys) {
      if (spelled && config.contains(spelled)) {
        key = spelled;
        break;
      }
    }
  }
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return 1;
  const bool integer =
      it->is_number_integer() && (it->is_number_unsigned() ? it->get<uint64_t>() <= uint64_t(kMaxInspectedLayers)
                                                           : it->get<int64_t>() <= kMaxInspectedLayers);
  if (!integer || it->get<int64_t>() < 1) {
    pimoe::fail(PIMOE_ERR_FORMAT, "file '", path, "': key '", key, "' = ", it->dump(),
                " is not an integer in [1, ", kMaxInspectedLayers, "] (the layers pimoe info inspects)");
  }
  return it->get<int64_t>();
}

std::string quant_of(pimoe::HfQuant quant) {
  switch (quant) {
    case pimoe::HfQuant::Fp8Block: return "fp8 e4m3, 128x128 blocks";
    case pimoe::HfQuant::Mxfp4: return "mxfp4";
    case pimoe::HfQuant::None: break;
  }
  return "none";
}

}  // namespace

json describe_native_file(const std::string &path) {
  const pimoe::SafetensorsFile file(path);
  const pimoe::SafetensorsView &view = file.view();
  const LayerConfig config = pimoe::native_config(view, pimoe::Options{});
  const auto writer = view.metadata().find("pimoe.library_version");  // informational: a file may lack it
  json info = {{"source", {{"kind", "native"},
                           {"path", path},
                           {"format_version", pimoe::native_format_version(view)},
                           {"library_version", writer == view.metadata().end() ? json(nullptr) : json(writer->second)},
                           {"file_bytes", view.total_bytes()}}}};
  info.update(layer_json(config));
  return info;
}

json describe_checkpoint_layer(const std::string &dir, int32_t layer) {
  const pimoe::HfLayerConfig hf = pimoe::read_hf_config(dir, layer, pimoe::Options{});
  LayerConfig config;
  try {
    config = pimoe::resolve_layer_config(hf.options);
  } catch (const pimoe::Error &e) {  // as pimoe_import_hf words it
    if (e.status() != PIMOE_ERR_INVALID_OPTION) throw;
    pimoe::fail(PIMOE_ERR_FORMAT, "file '", hf.config_path, "' describes a layer libpimoe cannot build: ", e.what());
  }
  json info = {{"source", {{"kind", "hf"},
                           {"path", dir},
                           {"family", pimoe::hf_model_type(hf.family)},
                           {"layer", layer},
                           {"tensor_prefix", hf.prefix},
                           {"quantization", quant_of(hf.quant)}}}};
  info.update(layer_json(config));
  return info;
}

json describe_checkpoint(const std::string &dir) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  // The importer's reader: a regular file (never a FIFO or a directory), at most its size cap, read whole.
  json config = json::parse(pimoe::read_text_file(path, pimoe::kMaxJsonFileBytes), nullptr, false);
  if (config.is_discarded()) pimoe::fail(PIMOE_ERR_FORMAT, "file '", path, "' is not valid JSON");
  if (!config.is_object()) pimoe::fail(PIMOE_ERR_FORMAT, "file '", path, "' is not a JSON object");
  // Llama4Config (model_type llama4) keeps the text model's settings in "text_config", where the importer reads them:
  // describe those (with the top level's other keys beside them), under the checkpoint's model_type.
  const auto text_config = config.find("text_config");
  if (first_of(config, {"model_type"}) == "llama4" && text_config != config.end() && text_config->is_object()) {
    json text = *text_config;
    for (const auto &item : config.items()) {
      if (item.key() != "text_config" && !text.contains(item.key())) text[item.key()] = item.value();
    }
    text["model_type"] = "llama4";
    config = std::move(text);
  }
  const int64_t layers = layer_count(config, path);
  json info = {
      {"source", {{"kind", "hf_checkpoint"}, {"path", dir}, {"family", first_of(config, {"model_type"})}}},
      {"config",
       {{"hidden", setting_of(config, pimoe::HfSetting::Hidden)},
        {"num_experts", setting_of(config, pimoe::HfSetting::NumExperts)},
        {"top_k", setting_of(config, pimoe::HfSetting::TopK)},
        {"expert_width", setting_of(config, pimoe::HfSetting::ExpertWidth)},
        {"scoring_func", first_of(config, {"scoring_func"})},
        {"norm_topk_prob", first_of(config, {"norm_topk_prob"})},
        {"n_group", first_of(config, {"n_group"})},
        {"topk_group", first_of(config, {"topk_group"})},
        {"routed_scaling_factor", first_of(config, {"routed_scaling_factor"})},
        {"n_shared_experts", first_of(config, {"n_shared_experts"})},
        {"shared_expert_intermediate_size", first_of(config, {"shared_expert_intermediate_size"})},
        {"dtype", first_of(config, {"torch_dtype", "dtype"})},
        {"num_hidden_layers", layers}}},
      {"safetensors_bytes", safetensors_bytes(dir)},
  };
  // Which layers are MoE layers, from config.json alone (read_hf_config: what pimoe_import_hf reads first).
  json list = json::array();
  for (int64_t layer = 0; layer < layers; ++layer) {
    try {
      const pimoe::HfLayerConfig hf = pimoe::read_hf_config(dir, static_cast<int32_t>(layer), pimoe::Options{});
      list.push_back({{"layer", layer},
                      {"moe", true},
                      {"hidden", hf.hidden},
                      {"num_experts", hf.num_experts},
                      {"top_k", hf.options.top_k},
                      {"expert_width", hf.expert_width},
                      {"shared_width", hf.shared_width},
                      {"quantization", quant_of(hf.quant)}});
    } catch (const pimoe::Error &e) {
      list.push_back({{"layer", layer},
                      {"moe", false},
                      {"status", pimoe_status_string(e.status())},
                      {"why", e.what()}});
    }
  }
  info["layers"] = list;
  return info;
}

int32_t first_moe_layer(const json &checkpoint) {
  for (const json &layer : checkpoint.value("layers", json::array())) {
    if (layer.value("moe", false)) return layer.at("layer").get<int32_t>();
  }
  return -1;
}

bool add_load_verdict(json &info, const std::string &path, int32_t layer, const std::string &weight_dtype) {
  pimoe_options *options = nullptr;
  pimoe_model *model = nullptr;
  pimoe_status status = pimoe_options_create(&options);
  if (status == PIMOE_OK) status = pimoe_options_set_int(options, PIMOE_OPT_THREADS, 1);
  if (status == PIMOE_OK && !weight_dtype.empty()) {
    status = pimoe_options_set_string(options, PIMOE_OPT_WEIGHT_DTYPE, weight_dtype.c_str());
  }
  if (status == PIMOE_OK) {
    status = layer >= 0 ? pimoe_import_hf(path.c_str(), layer, options, &model) : pimoe_load(path.c_str(), options, &model);
  }
  pimoe_options_destroy(options);
  if (status != PIMOE_OK) {
    info["load"] = {{"ok", false}, {"status", pimoe_status_string(status)}, {"error", pimoe_last_error()}};
    return false;
  }
  pimoe_stats_snapshot s{};
  s.struct_size = sizeof s;
  json quant = nullptr;  // unknown: the matrices came quantised, their fp32 values are not in the source
  if (pimoe_stats(model, &s) == PIMOE_OK && !std::isnan(s.weight_quant_rel_rms_error)) {
    quant = {{"rel_rms", s.weight_quant_rel_rms_error}, {"max_abs", s.weight_quant_max_abs_error}};
  }
  info["load"] = {{"ok", true},
                  {"backend", pimoe_model_backend(model)},
                  {"weight_tensors", pimoe_tensor_count(model)},
                  {"quant_error", quant}};
  pimoe_destroy(model);
  return true;
}

int add_import_verdicts(json &checkpoint, const std::string &weight_dtype) {
  const std::string dir = checkpoint.at("source").at("path");
  int loaded = 0;
  for (json &layer : checkpoint.at("layers")) {
    if (layer.at("moe").get<bool>()) {
      loaded += add_load_verdict(layer, dir, layer.at("layer").get<int32_t>(), weight_dtype);
    }
  }
  return loaded;
}

}  // namespace pimoe_tools
