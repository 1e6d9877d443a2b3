/* SPDX-License-Identifier: MIT */
// Which decoder layers of a Hugging Face checkpoint hold a MoE block, by each family's rule (its decoder-layer
// constructor in transformers), with the rule and the list of MoE layers in words for pimoe_import_hf's messages.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "formats/hf_config_reader.h"
#include "formats/hf_keys.h"

namespace pimoe {
namespace hf {

// Which decoder layers hold a MoE block, by each family's decoder-layer constructor in transformers.
class MoeLayers {
 public:
  MoeLayers(const ConfigReader &config, HfFamily family, int64_t layers) : family_(family), layers_(layers) {
    auto positive = [&](const char *key, int64_t fallback) {
      const int64_t value = config.integer(key, fallback);
      if (value < 1) fail(PIMOE_ERR_FORMAT, config.where(), "key '", key, "' = ", value, " must be >= 1");
      return value;
    };
    switch (family) {
      case HfFamily::Qwen2Moe:
      case HfFamily::Qwen3Moe:
      case HfFamily::Qwen3Next:
        mlp_only_ = config.integer_list("mlp_only_layers");
        step_ = positive("decoder_sparse_step", 1);
        rule_ = "a layer is sparse when it is not in mlp_only_layers (" + list_text(mlp_only_) +
                ") and (layer + 1) % decoder_sparse_step == 0, decoder_sparse_step = " + std::to_string(step_);
        break;
      case HfFamily::DeepseekV2:
      case HfFamily::DeepseekV3:
        first_ = config.integer("first_k_dense_replace", 0);
        step_ = positive("moe_layer_freq", 1);
        rule_ =
            "a layer is sparse when layer >= first_k_dense_replace and layer % moe_layer_freq == 0, "
            "first_k_dense_replace = " +
            std::to_string(first_) + ", moe_layer_freq = " + std::to_string(step_);
        break;
      case HfFamily::Glm4Moe:
      case HfFamily::Dots1:
        first_ = config.integer("first_k_dense_replace", family == HfFamily::Glm4Moe ? 1 : 0);
        rule_ = "a layer is sparse when layer >= first_k_dense_replace = " + std::to_string(first_);
        break;
      case HfFamily::Ernie45Moe:
        first_ = config.integer("moe_layer_start_index", 1);
        last_ = config.integer("moe_layer_end_index", -1);
        if (last_ == -1) last_ = layers - 1;  // Ernie4_5_MoeConfig: -1 is the last layer
        step_ = positive("moe_layer_interval", 1);
        rule_ =
            "a layer is sparse when (layer + 1) % moe_layer_interval == 0 and moe_layer_start_index <= layer <= "
            "moe_layer_end_index, moe_layer_interval = " +
            std::to_string(step_) + ", moe_layer_start_index = " + std::to_string(first_) +
            ", moe_layer_end_index = " + std::to_string(last_);
        break;
      case HfFamily::Jamba: {
        step_ = positive("expert_layer_period", 2);
        offset_ = config.integer("expert_layer_offset", 1);
        std::string key;
        const int64_t experts = config.at_least_of(hf_spellings(family, HfSetting::NumExperts), 1, key);
        dense_everywhere_ = experts == 1;  // JambaConfig.layers_num_experts: one expert is a dense MLP everywhere
        rule_ = "a layer is sparse when layer % expert_layer_period == expert_layer_offset and " + key +
                " > 1, expert_layer_period = " + std::to_string(step_) +
                ", expert_layer_offset = " + std::to_string(offset_) + ", " + key + " = " + std::to_string(experts);
        break;
      }
      case HfFamily::BailingHybrid:
        // BailingHybridConfig: mlp_layer_types ("sparse" / "dense"), else dense below first_k_dense_replace (2).
        if (!config.absent("mlp_layer_types")) {
          const json &types = config.get("mlp_layer_types");
          if (!types.is_array()) fail(PIMOE_ERR_FORMAT, config.where(), "key 'mlp_layer_types' is not a list");
          for (const json &t : types) moe_listed_.push_back(t == "sparse" ? 1 : 0);
          listed_ = true;
          rule_ = "a layer is sparse when mlp_layer_types says \"sparse\"";
        } else {
          first_ = config.integer("first_k_dense_replace", 2);
          rule_ = "a layer is sparse when layer >= first_k_dense_replace = " + std::to_string(first_);
        }
        break;
      case HfFamily::Llama4Text:
      case HfFamily::Llama4:
        // Llama4TextConfig: moe_layers, else every interleave_moe_layer_step-th layer from step - 1 on.
        listed_ = !config.absent("moe_layers");
        if (listed_) {
          moe_listed_ = config.integer_list("moe_layers");
          rule_ = "a layer is sparse when it is in moe_layers (" + list_text(moe_listed_) + ")";
        } else {
          step_ = positive("interleave_moe_layer_step", 1);
          rule_ = "a layer is sparse when (layer + 1) % interleave_moe_layer_step == 0, interleave_moe_layer_step = " +
                  std::to_string(step_);
        }
        break;
      default:
        rule_ = "every layer is sparse";
    }
  }

  bool sparse(int64_t layer) const {
    switch (family_) {
      case HfFamily::Qwen2Moe:
      case HfFamily::Qwen3Moe:
      case HfFamily::Qwen3Next:
        for (int64_t l : mlp_only_) {
          if (l == layer) return false;
        }
        return (layer + 1) % step_ == 0;  // int64: layer + 1 overflows int32 for the last int32 layer
      case HfFamily::DeepseekV2:
      case HfFamily::DeepseekV3:
        return layer >= first_ && layer % step_ == 0;
      case HfFamily::Glm4Moe:
      case HfFamily::Dots1:
        return layer >= first_;
      case HfFamily::Ernie45Moe:
        return (layer + 1) % step_ == 0 && layer >= first_ && layer <= last_;
      case HfFamily::Jamba:
        return !dense_everywhere_ && layer % step_ == offset_;
      case HfFamily::BailingHybrid:
        if (!listed_) return layer >= first_;
        return layer < static_cast<int64_t>(moe_listed_.size()) && moe_listed_[static_cast<size_t>(layer)] == 1;
      case HfFamily::Llama4Text:
      case HfFamily::Llama4:
        if (!listed_) return (layer + 1) % step_ == 0;
        for (int64_t l : moe_listed_) {
          if (l == layer) return true;
        }
        return false;
      default:
        return true;
    }
  }

  const std::string &rule() const { return rule_; }

  // The sparse layers of [0, layers) as ranges ("1-5, 7"); past kListed layers, "..." says the list goes on.
  std::string list() const {
    constexpr int64_t kListed = 4096;
    std::string text;
    int64_t begin = -1;
    const int64_t end = std::min(layers_, kListed);
    auto close = [&](int64_t last) {
      text += (text.empty() ? "" : ", ") + std::to_string(begin);
      if (last > begin) text += "-" + std::to_string(last);
      begin = -1;
    };
    for (int64_t l = 0; l < end; ++l) {
      if (sparse(l) && begin < 0) begin = l;
      if (!sparse(l) && begin >= 0) close(l - 1);
    }
    if (begin >= 0) close(end - 1);
    if (text.empty()) text = "none";
    if (layers_ > kListed) text += ", ... (the first " + std::to_string(kListed) + " layers listed)";
    return text + " of " + std::to_string(layers_);
  }

 private:
  static std::string list_text(const std::vector<int64_t> &values) {
    std::string text = "[";
    for (size_t i = 0; i < values.size(); ++i) text += (i ? ", " : "") + std::to_string(values[i]);
    return text + "]";
  }

  HfFamily family_;
  int64_t layers_;
  std::vector<int64_t> mlp_only_, moe_listed_;
  int64_t step_ = 1, first_ = 0, last_ = 0, offset_ = 0;
  bool dense_everywhere_ = false;
  bool listed_ = false;  // llama4: moe_layers given
  std::string rule_;
};

}  // namespace hf
}  // namespace pimoe
