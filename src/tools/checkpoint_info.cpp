// SPDX-License-Identifier: MIT
#include "tools/checkpoint_info.h"

#include <pimoe/pimoe.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "error.h"
#include "formats/hf_keys.h"
#include "formats/mapped_file.h"
#include "tools/quant_error_text.h"

namespace {

using nlohmann::json;
using pimoe::HfSetting;

// The most decoder layers pimoe-info tries to import, one pimoe_import_hf() each: far above any published model's
// (DeepSeek-V3 has 61, Qwen3-235B 94), so that a num_hidden_layers of 2^40 is refused before the loop starts.
constexpr int64_t kMaxInspectedLayers = 1024;

// The first of `keys` that config.json has, as text ("-" when none): the families name the same setting differently.
// A key "outer.inner" is the member inner of the object outer (DBRX's "ffn_config.moe_num_experts", hf_keys.h).
std::string first_of(const json &config, std::initializer_list<const char *> keys) {
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
    if (it != scope->end() && !it->is_null()) return it->is_string() ? it->get<std::string>() : it->dump();
  }
  return "-";
}

// A setting under the spellings the importer accepts (formats/hf_keys.h): the family's when model_type is one
// libpimoe imports, else every family's.
std::string setting_of(const json &config, HfSetting setting) {
  pimoe::HfFamily family{};
  const auto type = config.find("model_type");
  const bool known = type != config.end() && type->is_string() &&
                     pimoe::hf_family_of(type->get_ref<const std::string &>().c_str(), family);
  for (const pimoe::HfSpellings &row : pimoe::kHfSpellings) {
    if (row.setting != setting || (known && row.family != family)) continue;
    for (const char *key : row.keys) {
      if (key && first_of(config, {key}) != "-") return first_of(config, {key});
    }
  }
  return "-";
}

// The total size of the folder's *.safetensors files; a sum past uintmax_t (sparse files) saturates.
uintmax_t safetensors_bytes(const std::filesystem::path &dir) {
  uintmax_t total = 0;
  std::error_code ec;
  for (const auto &entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".safetensors" || !entry.is_regular_file(ec)) continue;
    const uintmax_t size = entry.file_size(ec);
    if (ec) continue;
    if (__builtin_add_overflow(total, size, &total)) return UINTMAX_MAX;
  }
  return total;
}

// config.json's num_hidden_layers (1 when absent): how many layers to try. An entry that is not an integer in
// [1, kMaxInspectedLayers] is refused, naming the file and the key, before any layer is imported.
bool layers_to_inspect(const json &config, const std::string &path, int64_t &layers) {
  const char *key = "num_hidden_layers";  // or the family's spelling (DBRX: n_layers)
  const auto type = config.find("model_type");
  pimoe::HfFamily family{};
  if (type != config.end() && type->is_string() &&
      pimoe::hf_family_of(type->get_ref<const std::string &>().c_str(), family)) {
    for (const char *spelled : pimoe::hf_spellings(family, HfSetting::Layers).keys) {
      if (spelled && config.contains(spelled)) {
        key = spelled;
        break;
      }
    }
  }
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) {
    layers = 1;
    return true;
  }
  const bool integer =
      it->is_number_integer() && (it->is_number_unsigned() ? it->get<uint64_t>() <= uint64_t(kMaxInspectedLayers)
                                                           : it->get<int64_t>() <= kMaxInspectedLayers);
  if (!integer || it->get<int64_t>() < 1) {
    std::printf(
        "checkpoint:  file '%s': key '%s' = %s is not an integer in [1, %lld] (the layers "
        "pimoe-info inspects)\n",
        path.c_str(), key, it->dump().c_str(), static_cast<long long>(kMaxInspectedLayers));
    return false;
  }
  layers = it->get<int64_t>();
  return true;
}

}  // namespace

int describe_checkpoint(const std::string &dir, const char *weight_dtype) {
  const std::string config_path = (std::filesystem::path(dir) / "config.json").string();
  json config;
  try {
    // The importer's reader: a regular file (never a FIFO or a directory), at most its size cap, read whole.
    const std::string text = pimoe::read_text_file(config_path, pimoe::kMaxJsonFileBytes);
    config = json::parse(text, nullptr, /*allow_exceptions=*/false);
  } catch (const pimoe::Error &e) {
    std::printf("checkpoint:  %s\n", e.what());  // names config.json and why: absent, a directory, a FIFO, too large
    return 1;
  }
  if (config.is_discarded()) {
    std::printf("checkpoint:  %s is not valid JSON\n", config_path.c_str());
    return 1;
  }
  if (!config.is_object()) {
    std::printf("checkpoint:  %s is not a JSON object\n", config_path.c_str());
    return 1;
  }
  // Llama4Config (model_type llama4) keeps the text model's settings in "text_config", where the importer reads them:
  // describe those (the top level's other keys beside them), under the checkpoint's model_type.
  const auto text_config = config.find("text_config");
  if (first_of(config, {"model_type"}) == "llama4" && text_config != config.end() && text_config->is_object()) {
    json text = *text_config;
    for (const auto &item : config.items()) {
      if (item.key() != "text_config" && !text.contains(item.key())) text[item.key()] = item.value();
    }
    text["model_type"] = "llama4";
    config = std::move(text);
  }
  int64_t layers = 0;
  if (!layers_to_inspect(config, config_path, layers)) return 1;
  std::printf("family:      %s (Hugging Face checkpoint)\n", first_of(config, {"model_type"}).c_str());
  std::printf("layer dims:  hidden %s, %s routed experts, top_k %s, expert width %s\n",
              setting_of(config, HfSetting::Hidden).c_str(), setting_of(config, HfSetting::NumExperts).c_str(),
              setting_of(config, HfSetting::TopK).c_str(), setting_of(config, HfSetting::ExpertWidth).c_str());
  std::printf("router:      scoring %s, norm_topk_prob %s, n_group %s, topk_group %s, routed_scaling_factor %s\n",
              first_of(config, {"scoring_func"}).c_str(), first_of(config, {"norm_topk_prob"}).c_str(),
              first_of(config, {"n_group"}).c_str(), first_of(config, {"topk_group"}).c_str(),
              first_of(config, {"routed_scaling_factor"}).c_str());
  std::printf("shared:      n_shared_experts %s, shared_expert_intermediate_size %s\n",
              first_of(config, {"n_shared_experts"}).c_str(),
              first_of(config, {"shared_expert_intermediate_size"}).c_str());
  std::printf("dtype:       %s\n", first_of(config, {"torch_dtype", "dtype"}).c_str());
  std::printf("size:        %ju bytes of safetensors\n", safetensors_bytes(dir));

  // Whether a layer loads is pimoe_import_hf()'s verdict, layer by layer.
  pimoe_options *options = nullptr;
  if (pimoe_options_create(&options) != PIMOE_OK || pimoe_options_set_int(options, PIMOE_OPT_THREADS, 1) != PIMOE_OK ||
      (weight_dtype && pimoe_options_set_string(options, PIMOE_OPT_WEIGHT_DTYPE, weight_dtype) != PIMOE_OK)) {
    pimoe_options_destroy(options);
    std::printf("loads:       no: %s\n", pimoe_last_error());
    return 1;
  }
  int loaded = 0;
  for (int64_t layer = 0; layer < layers; ++layer) {
    pimoe_model *model = nullptr;
    const pimoe_status status = pimoe_import_hf(dir.c_str(), static_cast<int32_t>(layer), options, &model);
    if (status != PIMOE_OK) {
      std::printf("layer %-5lld no: %s (%s)\n", static_cast<long long>(layer), pimoe_last_error(),
                  pimoe_status_string(status));
      continue;
    }
    int64_t hidden = 0;
    int32_t experts = 0, top_k = 0;
    pimoe_model_dims(model, &hidden, &experts, &top_k);
    std::printf("layer %-5lld loads: hidden %lld, %d experts, top_k %d, %lld weight tensors; quant error %s\n",
                static_cast<long long>(layer), static_cast<long long>(hidden), experts, top_k,
                static_cast<long long>(pimoe_tensor_count(model)), quant_error_text(model).c_str());
    pimoe_destroy(model);
    ++loaded;
  }
  pimoe_options_destroy(options);
  std::printf("loads:       %s (%d of %lld layers are MoE layers libpimoe imports)\n", loaded ? "yes" : "no", loaded,
              static_cast<long long>(layers));
  return loaded ? 0 : 1;
}
