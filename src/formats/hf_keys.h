/* SPDX-License-Identifier: MIT */
// The Hugging Face families libpimoe imports and the config.json keys each spells a setting with: the one table of
// spellings, read by the importer (hf_config.cpp) and by the tools (tools/layer_info.cpp). Header-only, so
// that the tools read the same table as the importer.
#pragma once

#include <cstring>
#include <initializer_list>

namespace pimoe {

enum class HfFamily {
  Mixtral,
  Qwen2Moe,
  Qwen3Moe,
  Olmoe,
  DeepseekV2,
  DeepseekV3,
  GptOss,
  GraniteMoe,
  Dbrx,
  Glm4Moe,
  Ernie45Moe,
  HunyuanV1Moe,
  Dots1,
  Jamba,
  Qwen3Next,
  MiniMax,
  MiniMaxM2,
  Llama4Text,
  Llama4,
  Phimoe,
  BailingHybrid,
};

// Each family with its config.json "model_type".
struct HfFamilyName {
  HfFamily family;
  const char *model_type;
};
constexpr HfFamilyName kHfFamilies[] = {
    {HfFamily::Mixtral, "mixtral"},
    {HfFamily::Qwen2Moe, "qwen2_moe"},
    {HfFamily::Qwen3Moe, "qwen3_moe"},
    {HfFamily::Olmoe, "olmoe"},
    {HfFamily::DeepseekV2, "deepseek_v2"},
    {HfFamily::DeepseekV3, "deepseek_v3"},
    {HfFamily::GptOss, "gpt_oss"},
    {HfFamily::GraniteMoe, "granitemoe"},
    {HfFamily::Dbrx, "dbrx"},
    {HfFamily::Glm4Moe, "glm4_moe"},
    {HfFamily::Ernie45Moe, "ernie4_5_moe"},
    {HfFamily::HunyuanV1Moe, "hunyuan_v1_moe"},
    {HfFamily::Dots1, "dots1"},
    {HfFamily::Jamba, "jamba"},
    {HfFamily::Qwen3Next, "qwen3_next"},
    {HfFamily::MiniMax, "minimax"},
    {HfFamily::MiniMaxM2, "minimax_m2"},
    {HfFamily::Llama4Text, "llama4_text"},
    {HfFamily::Llama4, "llama4"},
    {HfFamily::Phimoe, "phimoe"},
    {HfFamily::BailingHybrid, "bailing_hybrid"},
};

// The settings of a MoE layer that config.json may spell in more than one way.
enum class HfSetting { Hidden, NumExperts, TopK, ExpertWidth, Layers };

constexpr int kMaxHfSpellings = 3;

// A family's spellings of a setting: the attribute of its transformers config class first (the key that class writes),
// then every name its attribute_map sends to that attribute (a config.json written under another name loads the
// same in transformers, so it must here), then a family's own published spelling where it has one.
struct HfSpellings {
  HfFamily family;
  HfSetting setting;
  const char *keys[kMaxHfSpellings];  // nullptr-terminated when shorter
};

// attribute_map of each config class (transformers 5.25): MixtralConfig {num_experts: num_local_experts},
// Qwen2MoeConfig {}, Qwen3MoeConfig {num_experts: num_local_experts}, OlmoeConfig {num_local_experts: num_experts},
// DeepseekV2Config {num_experts: n_routed_experts}, DeepseekV3Config {num_local_experts: n_routed_experts},
// GptOssConfig {num_experts: num_local_experts}, GraniteMoeConfig {}, DbrxConfig {hidden_size: d_model,
// num_hidden_layers: n_layers} (its MoE settings live in the nested "ffn_config", spelled "ffn_config.<key>" here),
// Glm4MoeConfig {num_local_experts: n_routed_experts}, Ernie4_5_MoeConfig {num_experts: moe_num_experts,
// num_experts_per_tok: moe_k}, HunYuanMoEV1Config {num_experts_per_tok: moe_topk, num_local_experts: num_experts},
// Dots1Config {num_local_experts: n_routed_experts}, JambaConfig {num_local_experts: num_experts}, Qwen3NextConfig
// {}, MiniMaxConfig and MiniMaxM2Config {num_experts: num_local_experts}, Llama4TextConfig {} (Llama4Config nests it
// as "text_config"), PhimoeConfig {}, BailingHybridConfig {num_local_experts: num_experts, num_experts_per_tok:
// num_experts_per_token, n_shared_experts: num_shared_experts, n_group: num_expert_group, norm_topk_prob:
// moe_renormalize} (the last three read in hf_config.cpp). gpt-oss's own config.json (openai's
// release) also names top_k experts_per_token. Every family but dbrx counts its decoder layers in
// num_hidden_layers.
constexpr HfSpellings kHfSpellings[] = {
    {HfFamily::Mixtral, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::Mixtral, HfSetting::NumExperts, {"num_local_experts", "num_experts"}},
    {HfFamily::Mixtral, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::Mixtral, HfSetting::ExpertWidth, {"intermediate_size"}},
    {HfFamily::Qwen2Moe, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::Qwen2Moe, HfSetting::NumExperts, {"num_experts"}},
    {HfFamily::Qwen2Moe, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::Qwen2Moe, HfSetting::ExpertWidth, {"moe_intermediate_size"}},
    {HfFamily::Qwen3Moe, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::Qwen3Moe, HfSetting::NumExperts, {"num_experts", "num_local_experts"}},
    {HfFamily::Qwen3Moe, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::Qwen3Moe, HfSetting::ExpertWidth, {"moe_intermediate_size"}},
    {HfFamily::Olmoe, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::Olmoe, HfSetting::NumExperts, {"num_experts", "num_local_experts"}},
    {HfFamily::Olmoe, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::Olmoe, HfSetting::ExpertWidth, {"intermediate_size"}},
    {HfFamily::DeepseekV2, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::DeepseekV2, HfSetting::NumExperts, {"n_routed_experts", "num_experts"}},
    {HfFamily::DeepseekV2, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::DeepseekV2, HfSetting::ExpertWidth, {"moe_intermediate_size"}},
    {HfFamily::DeepseekV3, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::DeepseekV3, HfSetting::NumExperts, {"n_routed_experts", "num_local_experts"}},
    {HfFamily::DeepseekV3, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::DeepseekV3, HfSetting::ExpertWidth, {"moe_intermediate_size"}},
    {HfFamily::GptOss, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::GptOss, HfSetting::NumExperts, {"num_local_experts", "num_experts"}},
    {HfFamily::GptOss, HfSetting::TopK, {"num_experts_per_tok", "experts_per_token"}},
    {HfFamily::GptOss, HfSetting::ExpertWidth, {"intermediate_size"}},
    {HfFamily::GraniteMoe, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::GraniteMoe, HfSetting::NumExperts, {"num_local_experts"}},
    {HfFamily::GraniteMoe, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::GraniteMoe, HfSetting::ExpertWidth, {"intermediate_size"}},
    {HfFamily::Dbrx, HfSetting::Hidden, {"d_model", "hidden_size"}},
    {HfFamily::Dbrx, HfSetting::NumExperts, {"ffn_config.moe_num_experts"}},
    {HfFamily::Dbrx, HfSetting::TopK, {"ffn_config.moe_top_k"}},
    {HfFamily::Dbrx, HfSetting::ExpertWidth, {"ffn_config.ffn_hidden_size"}},
    {HfFamily::Dbrx, HfSetting::Layers, {"n_layers", "num_hidden_layers"}},
    {HfFamily::Glm4Moe, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::Glm4Moe, HfSetting::NumExperts, {"n_routed_experts", "num_local_experts"}},
    {HfFamily::Glm4Moe, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::Glm4Moe, HfSetting::ExpertWidth, {"moe_intermediate_size"}},
    {HfFamily::Ernie45Moe, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::Ernie45Moe, HfSetting::NumExperts, {"moe_num_experts", "num_experts"}},
    {HfFamily::Ernie45Moe, HfSetting::TopK, {"moe_k", "num_experts_per_tok"}},
    {HfFamily::Ernie45Moe, HfSetting::ExpertWidth, {"moe_intermediate_size"}},
    {HfFamily::HunyuanV1Moe, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::HunyuanV1Moe, HfSetting::NumExperts, {"num_experts", "num_local_experts"}},
    {HfFamily::HunyuanV1Moe, HfSetting::TopK, {"moe_topk", "num_experts_per_tok"}},
    {HfFamily::HunyuanV1Moe, HfSetting::ExpertWidth, {"intermediate_size"}},
    {HfFamily::Dots1, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::Dots1, HfSetting::NumExperts, {"n_routed_experts", "num_local_experts"}},
    {HfFamily::Dots1, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::Dots1, HfSetting::ExpertWidth, {"moe_intermediate_size"}},
    {HfFamily::Jamba, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::Jamba, HfSetting::NumExperts, {"num_experts", "num_local_experts"}},
    {HfFamily::Jamba, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::Jamba, HfSetting::ExpertWidth, {"intermediate_size"}},
    {HfFamily::Qwen3Next, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::Qwen3Next, HfSetting::NumExperts, {"num_experts"}},
    {HfFamily::Qwen3Next, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::Qwen3Next, HfSetting::ExpertWidth, {"moe_intermediate_size"}},
    {HfFamily::MiniMax, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::MiniMax, HfSetting::NumExperts, {"num_local_experts", "num_experts"}},
    {HfFamily::MiniMax, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::MiniMax, HfSetting::ExpertWidth, {"intermediate_size"}},
    {HfFamily::MiniMaxM2, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::MiniMaxM2, HfSetting::NumExperts, {"num_local_experts", "num_experts"}},
    {HfFamily::MiniMaxM2, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::MiniMaxM2, HfSetting::ExpertWidth, {"intermediate_size"}},
    {HfFamily::Llama4Text, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::Llama4Text, HfSetting::NumExperts, {"num_local_experts"}},
    {HfFamily::Llama4Text, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::Llama4Text, HfSetting::ExpertWidth, {"intermediate_size"}},
    // llama4 (Llama4Config): the same keys, inside config.json's "text_config" (the importer reads that object).
    {HfFamily::Llama4, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::Llama4, HfSetting::NumExperts, {"num_local_experts"}},
    {HfFamily::Llama4, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::Llama4, HfSetting::ExpertWidth, {"intermediate_size"}},
    {HfFamily::Phimoe, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::Phimoe, HfSetting::NumExperts, {"num_local_experts"}},
    {HfFamily::Phimoe, HfSetting::TopK, {"num_experts_per_tok"}},
    {HfFamily::Phimoe, HfSetting::ExpertWidth, {"intermediate_size"}},
    {HfFamily::BailingHybrid, HfSetting::Hidden, {"hidden_size"}},
    {HfFamily::BailingHybrid, HfSetting::NumExperts, {"num_experts", "num_local_experts"}},
    {HfFamily::BailingHybrid, HfSetting::TopK, {"num_experts_per_token", "num_experts_per_tok"}},
    {HfFamily::BailingHybrid, HfSetting::ExpertWidth, {"moe_intermediate_size"}},
};

// The decoder-layer count of every family but dbrx (which has its row above): num_hidden_layers.
constexpr HfSpellings kHfDefaultLayers = {HfFamily::Mixtral, HfSetting::Layers, {"num_hidden_layers"}};

// The spellings of `setting` for `family`; every pair has a row (checked below), Layers a row or the default.
constexpr const HfSpellings &hf_spellings(HfFamily family, HfSetting setting) {
  for (const HfSpellings &row : kHfSpellings) {
    if (row.family == family && row.setting == setting) return row;
  }
  return setting == HfSetting::Layers ? kHfDefaultLayers : kHfSpellings[0];  // unreachable otherwise
}

namespace hf_keys_check {
constexpr bool every_pair_has_one_row() {
  for (const HfFamilyName &f : kHfFamilies) {
    for (HfSetting s : {HfSetting::Hidden, HfSetting::NumExperts, HfSetting::TopK, HfSetting::ExpertWidth}) {
      int rows = 0;
      for (const HfSpellings &row : kHfSpellings) rows += row.family == f.family && row.setting == s;
      if (rows != 1) return false;
    }
    int layer_rows = 0;  // Layers: at most one row (else num_hidden_layers)
    for (const HfSpellings &row : kHfSpellings)
      layer_rows += row.family == f.family && row.setting == HfSetting::Layers;
    if (layer_rows > 1) return false;
  }
  return true;
}
static_assert(every_pair_has_one_row(), "kHfSpellings: one row per family and setting");
}  // namespace hf_keys_check

// The family of a config.json "model_type"; false when libpimoe imports no such family.
inline bool hf_family_of(const char *model_type, HfFamily &out) {
  for (const HfFamilyName &f : kHfFamilies) {
    if (std::strcmp(f.model_type, model_type) == 0) {
      out = f.family;
      return true;
    }
  }
  return false;
}

}  // namespace pimoe
