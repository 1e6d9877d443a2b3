// SPDX-License-Identifier: MIT
// Hugging Face importers of the families of make_family_fixtures.py: config.json read under every spelling each
// transformers config class accepts (attribute_map aliases, DBRX's nested ffn_config, Hunyuan's per-layer
// moe_topk), the settings each family's routing reads from it, and dense or out-of-range layers refused with the
// family's rule and the list of its MoE layers. Parity with transformers is HfParity in test_hf_import.cpp.
#include <gtest/gtest.h>
#include <pimoe/pimoe.h>

#include <cstdint>
#include <string>
#include <vector>

#include "hf_import_util.h"

using namespace pimoe_hf_test;

namespace {

// A setting under each spelling the family's config class accepts: the key the fixture's config.json has, and
// another name the class's attribute_map sends to the same attribute (transformers 5.25).
struct Spelling {
  const char *family;
  const char *fixture_key;
  const char *other_key;
  bool top_k;  // the setting is top_k (else the routed-expert count)
};
void PrintTo(const Spelling &s, std::ostream *os) {
  *os << s.family << ": " << s.other_key;
}
class HfFamilySpelling : public ::testing::TestWithParam<Spelling> {};

int32_t imported_setting(const std::string &dir, bool top_k) {
  pimoe_model *model = nullptr;
  EXPECT_EQ(pimoe_import_hf(dir.c_str(), 1, nullptr, &model), PIMOE_OK) << pimoe_last_error();
  int32_t experts = -1, k = -1;
  EXPECT_EQ(pimoe_model_dims(model, nullptr, &experts, &k), PIMOE_OK);
  pimoe_destroy(model);
  return top_k ? k : experts;
}

TEST_P(HfFamilySpelling, ImportsUnderTheOtherSpelling) {
  const Spelling p = GetParam();
  Scratch s(p.family);
  json config = s.config();
  const int32_t value = config[p.fixture_key].get<int32_t>();
  config.erase(p.fixture_key);
  config[p.other_key] = value;
  s.set_config(config);
  EXPECT_EQ(imported_setting(s.dir(), p.top_k), value);
}

TEST_P(HfFamilySpelling, TwoSpellingsThatDisagreeAreFormatError) {
  const Spelling p = GetParam();
  Scratch s(p.family);
  json config = s.config();
  config[p.other_key] = config[p.fixture_key].get<int32_t>() + 1;
  s.set_config(config);
  const Failure f = import_failure(s.dir(), 1);
  EXPECT_EQ(f.status, PIMOE_ERR_FORMAT) << f.message;
  EXPECT_NE(f.message.find("disagree"), std::string::npos) << f.message;
  EXPECT_NE(f.message.find(std::string("'") + p.other_key + "'"), std::string::npos) << f.message;
}

TEST_P(HfFamilySpelling, NoneThereNamesEveryKeyLookedFor) {
  const Spelling p = GetParam();
  Scratch s(p.family);
  json config = s.config();
  config.erase(p.fixture_key);
  s.set_config(config);
  const Failure f = import_failure(s.dir(), 1);
  EXPECT_EQ(f.status, PIMOE_ERR_FORMAT) << f.message;
  const size_t looked_for = f.message.find("looked for ");
  ASSERT_NE(looked_for, std::string::npos) << f.message;
  EXPECT_NE(f.message.find(std::string("'") + p.fixture_key + "'", looked_for), std::string::npos) << f.message;
  EXPECT_NE(f.message.find(std::string("'") + p.other_key + "'", looked_for), std::string::npos) << f.message;
}

INSTANTIATE_TEST_SUITE_P(AttributeMaps, HfFamilySpelling,
                         ::testing::Values(Spelling{"glm4_moe", "n_routed_experts", "num_local_experts", false},
                                           Spelling{"ernie4_5_moe", "moe_num_experts", "num_experts", false},
                                           Spelling{"ernie4_5_moe", "moe_k", "num_experts_per_tok", true},
                                           Spelling{"hunyuan_v1_moe", "num_experts", "num_local_experts", false},
                                           Spelling{"dots1", "n_routed_experts", "num_local_experts", false},
                                           Spelling{"jamba", "num_experts", "num_local_experts", false},
                                           Spelling{"minimax", "num_local_experts", "num_experts", false},
                                           Spelling{"minimax_m2", "num_local_experts", "num_experts", false},
                      Spelling{"bailing_hybrid", "num_experts", "num_local_experts", false},
                      Spelling{"bailing_hybrid", "num_experts_per_token", "num_experts_per_tok", true}),
                         [](const auto &param_info) {
                           return std::string(param_info.param.family) + "_" + param_info.param.other_key;
                         });

// Hunyuan's moe_topk is one value or one per layer (HunYuanMoEV1Gate); num_experts_per_tok is its alias.
TEST(HfFamilies, HunyuanTopKPerLayer) {
  Scratch s("hunyuan_v1_moe");
  json config = s.config();
  ASSERT_EQ(config["moe_topk"], json::array({2, 3}));
  EXPECT_EQ(imported_setting(s.dir(), true), 3);  // layer 1's
  config["moe_topk"] = 2;
  s.set_config(config);
  EXPECT_EQ(imported_setting(s.dir(), true), 2);
  config.erase("moe_topk");
  config["num_experts_per_tok"] = json::array({4, 1});
  s.set_config(config);
  EXPECT_EQ(imported_setting(s.dir(), true), 1);
  config["num_experts_per_tok"] = json::array({4});
  s.set_config(config);
  const Failure f = import_failure(s.dir(), 1);
  EXPECT_EQ(f.status, PIMOE_ERR_FORMAT) << f.message;
  EXPECT_NE(f.message.find("'num_experts_per_tok' lists 1 per-layer values: none for layer 1"), std::string::npos)
      << f.message;
}

// DBRX: the MoE settings under "ffn_config", hidden_size for d_model and num_hidden_layers for n_layers (DbrxConfig's
// attribute_map); a missing nested key is named with its object.
TEST(HfFamilies, DbrxNestedAndAliasedKeys) {
  Scratch s("dbrx");
  json config = s.config();
  config["hidden_size"] = config["d_model"];
  config.erase("d_model");
  config["num_hidden_layers"] = config["n_layers"];
  config.erase("n_layers");
  s.set_config(config);
  pimoe_model *model = nullptr;
  ASSERT_EQ(pimoe_import_hf(s.dir().c_str(), 1, nullptr, &model), PIMOE_OK) << pimoe_last_error();
  pimoe_destroy(model);

  config["ffn_config"].erase("moe_num_experts");
  s.set_config(config);
  Failure f = import_failure(s.dir(), 1);
  EXPECT_EQ(f.status, PIMOE_ERR_FORMAT) << f.message;
  EXPECT_NE(f.message.find("required key 'ffn_config.moe_num_experts' is missing"), std::string::npos) << f.message;

  config = s.config();
  config["ffn_config"] = 3;
  s.set_config(config);
  f = import_failure(s.dir(), 1);
  EXPECT_EQ(f.status, PIMOE_ERR_FORMAT) << f.message;
  EXPECT_NE(f.message.find("key 'ffn_config' is not an object"), std::string::npos) << f.message;
}

// DbrxFFN divides the top-k weights by their p-norm: p = 1 (renormalised) and null (not normalised) import, the two
// giving different outputs; another p is a routing libpimoe lacks.
TEST(HfFamilies, DbrxExpertWeightNormalisation) {
  Scratch s("dbrx");
  json config = s.config();
  const auto forward = [&](const std::string &dir) {
    pimoe_model *model = nullptr;
    EXPECT_EQ(pimoe_import_hf(dir.c_str(), 1, nullptr, &model), PIMOE_OK) << pimoe_last_error();
    std::vector<float> x(64, 0.25f), y(64, 0.0f);
    x[3] = -1.0f;
    EXPECT_EQ(pimoe_forward(model, x.data(), x.size(), 1, 1, y.data(), y.size(), nullptr, nullptr, 0), PIMOE_OK);
    pimoe_destroy(model);
    return y;
  };
  const std::vector<float> normalised = forward(s.dir());
  config["ffn_config"]["moe_normalize_expert_weights"] = nullptr;
  s.set_config(config);
  EXPECT_NE(forward(s.dir()), normalised);
  config["ffn_config"]["moe_normalize_expert_weights"] = 2.0;
  s.set_config(config);
  const Failure f = import_failure(s.dir(), 1);
  EXPECT_EQ(f.status, PIMOE_ERR_UNSUPPORTED) << f.message;
  EXPECT_NE(f.message.find("'ffn_config.moe_normalize_expert_weights' = 2"), std::string::npos) << f.message;
}

// A dense or out-of-range layer: INVALID_ARGUMENT with the family's rule, its values and the MoE layers.
struct DenseCase {
  const char *family;
  const char *edit;  // JSON merged into config.json
  int32_t layer;
  const char *rule;        // in the message
  const char *moe_layers;  // "MoE layers: ..." in the message
};
void PrintTo(const DenseCase &c, std::ostream *os) {
  *os << c.family << " layer " << c.layer << " " << c.edit;
}
class HfDenseLayer : public ::testing::TestWithParam<DenseCase> {};

TEST_P(HfDenseLayer, IsRefusedWithTheMoeLayers) {
  const DenseCase c = GetParam();
  Scratch s(c.family);
  json config = s.config();
  config.merge_patch(json::parse(c.edit));
  s.set_config(config);
  const Failure f = import_failure(s.dir(), c.layer);
  EXPECT_EQ(f.status, PIMOE_ERR_INVALID_ARGUMENT) << f.message;
  EXPECT_NE(f.message.find(c.rule), std::string::npos) << f.message;
  EXPECT_NE(f.message.find(std::string("MoE layers: ") + c.moe_layers), std::string::npos) << f.message;
}

INSTANTIATE_TEST_SUITE_P(
    Rules, HfDenseLayer,
    ::testing::Values(
        DenseCase{"ernie4_5_moe", R"({"num_hidden_layers": 8, "moe_layer_interval": 2, "moe_layer_end_index": 6})", 2,
                  "moe_layer_interval = 2, moe_layer_start_index = 1, moe_layer_end_index = 6", "1, 3, 5 of 8"},
        DenseCase{"ernie4_5_moe", R"({"num_hidden_layers": 4})", 0, "moe_layer_start_index = 1", "1-3 of 4"},
        DenseCase{"jamba", R"({"num_hidden_layers": 7})", 4, "expert_layer_period = 2, expert_layer_offset = 1",
                  "1, 3, 5 of 7"},
        DenseCase{"jamba", R"({"num_experts": 1})", 1, "num_experts = 1", "none of 2"},
        DenseCase{"glm4_moe", R"({"num_hidden_layers": 5, "first_k_dense_replace": 3})", 2, "first_k_dense_replace = 3",
                  "3-4 of 5"},
        DenseCase{"glm4_moe", R"({"first_k_dense_replace": null})", 0, "first_k_dense_replace = 1", "1 of 2"},
        DenseCase{"dots1", R"({})", 0, "first_k_dense_replace = 1", "1 of 2"},
        DenseCase{"qwen3_next", R"({"num_hidden_layers": 6, "decoder_sparse_step": 2})", 0, "decoder_sparse_step = 2",
                  "1, 3, 5 of 6"},
        DenseCase{"qwen3_next", R"({})", 0, "mlp_only_layers ([0])", "1 of 2"},
        DenseCase{"llama4_text", R"({"num_hidden_layers": 6})", 2, "interleave_moe_layer_step = 2", "1, 3, 5 of 6"},
        DenseCase{"llama4_text", R"({"moe_layers": [0, 3], "num_hidden_layers": 4})", 1, "in moe_layers ([0, 3])",
                  "0, 3 of 4"},
        DenseCase{"granitemoe", R"({})", 2, "out of range (num_hidden_layers = 2)", "0-1 of 2"},
        DenseCase{"dbrx", R"({})", -1, "out of range (n_layers = 2)", "0-1 of 2"}),
    [](const auto &param_info) {
      return std::string(param_info.param.family) + "_" + std::to_string(param_info.index);
    });

// Llama4Config (model_type llama4, the multimodal checkpoints): the text model's settings under "text_config", the
// tensors under "language_model.".
TEST(HfFamilies, Llama4MultimodalReadsTextConfig) {
  Scratch s("llama4_text");
  const json text = s.config();
  s.set_config(json{{"model_type", "llama4"}, {"text_config", text}});
  Failure f = import_failure(s.dir(), 1);
  EXPECT_EQ(f.status, PIMOE_ERR_FORMAT) << f.message;
  EXPECT_NE(f.message.find("'language_model.model.layers.1.feed_forward.router.weight' is missing"), std::string::npos)
      << f.message;
  f = import_failure(s.dir(), 0);
  EXPECT_EQ(f.status, PIMOE_ERR_INVALID_ARGUMENT) << f.message;
  EXPECT_NE(f.message.find("interleave_moe_layer_step = 2"), std::string::npos) << f.message;
  json no_experts = text;
  no_experts.erase("num_local_experts");
  s.set_config(json{{"model_type", "llama4"}, {"text_config", no_experts}});
  f = import_failure(s.dir(), 1);
  EXPECT_EQ(f.status, PIMOE_ERR_FORMAT) << f.message;
  EXPECT_NE(f.message.find("required key 'text_config.num_local_experts' is missing"), std::string::npos) << f.message;
  s.set_config(json{{"model_type", "llama4"}});
  f = import_failure(s.dir(), 1);
  EXPECT_EQ(f.status, PIMOE_ERR_FORMAT) << f.message;
  EXPECT_NE(f.message.find("required key 'text_config' is missing"), std::string::npos) << f.message;
}

// Phi-3.5-MoE: sparsemixer's eps is router_jitter_noise (PhimoeConfig's default 0.01 when absent; the weights then
// differ from the fixture's 0.3), and it always routes to two experts.
TEST(HfFamilies, PhimoeSparsemixerSettings) {
  Scratch s("phimoe");
  json config = s.config();
  const auto forward = [&]() {
    pimoe_model *model = nullptr;
    EXPECT_EQ(pimoe_import_hf(s.dir().c_str(), 1, nullptr, &model), PIMOE_OK) << pimoe_last_error();
    const auto expected = read_f32_safetensors(s.dir() + "/expected.safetensors");
    const F32Tensor &x = expected.at("input");
    std::vector<float> y(x.data.size(), 0.0f);
    EXPECT_EQ(pimoe_forward(model, x.data.data(), x.data.size(), 1, x.shape[0], y.data(), y.size(), nullptr, nullptr,
                            0),
              PIMOE_OK);
    pimoe_destroy(model);
    return y;
  };
  const std::vector<float> wide = forward();
  config.erase("router_jitter_noise");
  s.set_config(config);
  EXPECT_NE(forward(), wide);
  config["router_jitter_noise"] = 0.0;
  s.set_config(config);
  Failure f = import_failure(s.dir(), 1);
  EXPECT_EQ(f.status, PIMOE_ERR_UNSUPPORTED) << f.message;
  EXPECT_NE(f.message.find("'router_jitter_noise'"), std::string::npos) << f.message;
  config["router_jitter_noise"] = 0.3;
  config["num_experts_per_tok"] = 3;
  s.set_config(config);
  f = import_failure(s.dir(), 1);
  EXPECT_EQ(f.status, PIMOE_ERR_UNSUPPORTED) << f.message;
  EXPECT_NE(f.message.find("exactly 2 experts"), std::string::npos) << f.message;
}

// Bailing (Ling) hybrid: the shared-expert count, group count and renormalisation under both of their names (the
// attribute_map's and DeepSeek's), and the post-activation SwiGLU clamp libpimoe lacks refused per layer.
TEST(HfFamilies, BailingHybridAliasesAndClamp) {
  Scratch s("bailing_hybrid");
  json config = s.config();
  config["n_shared_experts"] = config["num_shared_experts"];
  config.erase("num_shared_experts");
  config["n_group"] = config["num_expert_group"];
  config.erase("num_expert_group");
  s.set_config(config);
  pimoe_model *model = nullptr;
  ASSERT_EQ(pimoe_import_hf(s.dir().c_str(), 1, nullptr, &model), PIMOE_OK) << pimoe_last_error();
  pimoe_destroy(model);
  config["num_expert_group"] = 2;  // disagrees with n_group 4
  s.set_config(config);
  Failure f = import_failure(s.dir(), 1);
  EXPECT_EQ(f.status, PIMOE_ERR_FORMAT) << f.message;
  EXPECT_NE(f.message.find("'num_expert_group' (2) and 'n_group' (4) disagree"), std::string::npos) << f.message;
  config.erase("num_expert_group");
  config["expert_swiglu_limit_list"] = json::array({0, 7.0});
  s.set_config(config);
  f = import_failure(s.dir(), 1);
  EXPECT_EQ(f.status, PIMOE_ERR_UNSUPPORTED) << f.message;
  EXPECT_NE(f.message.find("'expert_swiglu_limit_list' [1] = 7.0"), std::string::npos) << f.message;
  config["expert_swiglu_limit_list"] = json::array({7.0, 0});  // layer 1 unclamped
  config["mlp_layer_types"] = json::array({"sparse", "dense"});
  s.set_config(config);
  f = import_failure(s.dir(), 1);
  EXPECT_EQ(f.status, PIMOE_ERR_INVALID_ARGUMENT) << f.message;
  EXPECT_NE(f.message.find("MoE layers: 0 of 2"), std::string::npos) << f.message;
}

// Settings each family's router reads, with its config class's default when config.json omits the key.
TEST(HfFamilies, ErnieBiasedExpertsAndSharedCount) {
  Scratch s("ernie4_5_moe");
  json config = s.config();
  config["use_bias"] = true;
  s.set_config(config);
  Failure f = import_failure(s.dir(), 1);
  EXPECT_EQ(f.status, PIMOE_ERR_UNSUPPORTED) << f.message;
  EXPECT_NE(f.message.find("'use_bias'"), std::string::npos) << f.message;
  // moe_num_shared_experts absent: Ernie4_5_MoeConfig's default 2, which the fixture has.
  config.erase("use_bias");
  config.erase("moe_num_shared_experts");
  s.set_config(config);
  pimoe_model *model = nullptr;
  ASSERT_EQ(pimoe_import_hf(s.dir().c_str(), 1, nullptr, &model), PIMOE_OK) << pimoe_last_error();
  int32_t ndim = 0;
  int64_t dims[4] = {0, 0, 0, 0};
  EXPECT_EQ(pimoe_tensor_shape(model, "shared.gate.weight", &ndim, dims), PIMOE_OK) << pimoe_last_error();
  EXPECT_EQ(dims[0], 2 * config["moe_intermediate_size"].get<int64_t>());
  pimoe_destroy(model);
}

}  // namespace
