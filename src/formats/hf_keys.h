/* SPDX-License-Identifier: MIT */
// The Hugging Face families libpimoe imports and the config.json keys each spells a setting with: the one table of
// spellings, read by the importer (hf_config.cpp) and by the tools (tools/layer_info.cpp). Header-only, so
// that the tools read the same table as the importer.
#pragma once

#include <cstring>
#include <initializer_list>

namespace pimoe {

enum class HfFamily { Mixtral, Qwen2Moe, Qwen3Moe, Olmoe, DeepseekV2, DeepseekV3, GptOss };

// Each family with its config.json "model_type".
struct HfFamilyName {
  HfFamily family;
  const char *model_type;
};
constexpr HfFamilyName kHfFamilies[] = {
    {HfFamily::Mixtral, "mixtral"}, {HfFamily::Qwen2Moe, "qwen2_moe"},     {HfFamily::Qwen3Moe, "qwen3_moe"},
    {HfFamily::Olmoe, "olmoe"},     {HfFamily::DeepseekV2, "deepseek_v2"}, {HfFamily::DeepseekV3, "deepseek_v3"},
    {HfFamily::GptOss, "gpt_oss"},
};

// The settings of a MoE layer that config.json may spell in more than one way.
enum class HfSetting { Hidden, NumExperts, TopK, ExpertWidth };

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
// GptOssConfig {num_experts: num_local_experts}. gpt-oss's own config.json (openai's release) also names top_k
// experts_per_token.
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
};

// The spellings of `setting` for `family`; every pair has a row (checked below).
constexpr const HfSpellings &hf_spellings(HfFamily family, HfSetting setting) {
  for (const HfSpellings &row : kHfSpellings) {
    if (row.family == family && row.setting == setting) return row;
  }
  return kHfSpellings[0];  // unreachable: every_pair_has_one_row() below
}

namespace hf_keys_check {
constexpr bool every_pair_has_one_row() {
  for (const HfFamilyName &f : kHfFamilies) {
    for (HfSetting s : {HfSetting::Hidden, HfSetting::NumExperts, HfSetting::TopK, HfSetting::ExpertWidth}) {
      int rows = 0;
      for (const HfSpellings &row : kHfSpellings) rows += row.family == f.family && row.setting == s;
      if (rows != 1) return false;
    }
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
