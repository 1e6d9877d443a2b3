// SPDX-License-Identifier: MIT
#include "tools/checkpoint_info.h"

#include <pimoe/pimoe.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tools/quant_error_text.h"

namespace {

using nlohmann::json;

// The first of `keys` that config.json has, as text ("-" when none): the families name the same setting differently.
std::string first_of(const json &config, std::initializer_list<const char *> keys) {
  for (const char *key : keys) {
    auto it = config.find(key);
    if (it != config.end() && !it->is_null()) return it->is_string() ? it->get<std::string>() : it->dump();
  }
  return "-";
}

uintmax_t safetensors_bytes(const std::filesystem::path &dir) {
  uintmax_t total = 0;
  std::error_code ec;
  for (const auto &entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".safetensors" && entry.is_regular_file(ec)) total += entry.file_size(ec);
  }
  return total;
}

}  // namespace

int describe_checkpoint(const std::string &dir, const char *weight_dtype) {
  const std::filesystem::path config_path = std::filesystem::path(dir) / "config.json";
  json config;
  try {
    std::ifstream in(config_path);
    if (!in) {
      std::printf("checkpoint:  no config.json in '%s'\n", dir.c_str());
      return 1;
    }
    config = json::parse(in);
  } catch (const std::exception &e) {
    std::printf("checkpoint:  %s is not valid JSON: %s\n", config_path.c_str(), e.what());
    return 1;
  }
  if (!config.is_object()) {
    std::printf("checkpoint:  %s is not a JSON object\n", config_path.c_str());
    return 1;
  }
  std::printf("family:      %s (Hugging Face checkpoint)\n", first_of(config, {"model_type"}).c_str());
  std::printf("layer dims:  hidden %s, %s routed experts, top_k %s, expert width %s\n",
              first_of(config, {"hidden_size"}).c_str(),
              first_of(config, {"num_local_experts", "num_experts", "n_routed_experts"}).c_str(),
              first_of(config, {"num_experts_per_tok"}).c_str(),
              first_of(config, {"moe_intermediate_size", "intermediate_size"}).c_str());
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
  const std::string layers_text = first_of(config, {"num_hidden_layers"});
  const int64_t layers = layers_text == "-" ? 0 : std::strtoll(layers_text.c_str(), nullptr, 10);
  pimoe_options *options = nullptr;
  if (pimoe_options_create(&options) != PIMOE_OK || pimoe_options_set_int(options, PIMOE_OPT_THREADS, 1) != PIMOE_OK ||
      (weight_dtype && pimoe_options_set_string(options, PIMOE_OPT_WEIGHT_DTYPE, weight_dtype) != PIMOE_OK)) {
    pimoe_options_destroy(options);
    std::printf("loads:       no: %s\n", pimoe_last_error());
    return 1;
  }
  int loaded = 0;
  for (int64_t layer = 0; layer < std::max<int64_t>(layers, 1); ++layer) {
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
              static_cast<long long>(std::max<int64_t>(layers, 1)));
  return loaded ? 0 : 1;
}
