// SPDX-License-Identifier: MIT
// `pimoe info --json` on every importer family's fixture (tests/fixtures) and on native files with each routing
// feature: the JSON is parsed and its fields compared with what each family's transformers class does (the
// fixtures' README) and with what the C API reports of the same layer, imported or loaded (dims, every expert, the
// tensors' names and shapes).
#include <pimoe/pimoe.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_test_util.h"

namespace {

using cli_test::Result;
using cli_test::run_pimoe;
using cli_test::Scratch;
using nlohmann::json;

struct Family {
  const char *dir;
  const char *family;
  int64_t hidden, experts, top_k, width;
  const char *scoring;
  bool renormalize;
  double scaling;
  int64_t groups, topk_groups;
  const char *group_score;
  int64_t shared_width;  // 0: none
  bool shared_gated;
  const char *activation;
  bool bias;
  const char *format;  // the experts' storage as held
  std::vector<std::string> features;
};

// From tests/fixtures/README.md and each folder's config.json; every fixture's MoE block is decoder layer 1.
const Family kFamilies[] = {
    {"mixtral", "mixtral", 64, 8, 2, 48, "softmax", true, 1.0, 1, 1, "top2_sum", 0, false, "swiglu", false, "fp32", {}},
    {"qwen2_moe", "qwen2_moe", 48, 8, 2, 32, "softmax", false, 1.0, 1, 1, "top2_sum", 64, true, "swiglu", false, "fp32",
     {"shared_expert", "shared_expert_gate"}},
    {"qwen3_moe", "qwen3_moe", 64, 16, 4, 32, "softmax", true, 1.0, 1, 1, "top2_sum", 0, false, "swiglu", false, "fp32",
     {}},
    {"olmoe", "olmoe", 64, 8, 2, 32, "softmax", false, 1.0, 1, 1, "top2_sum", 0, false, "swiglu", false, "fp32", {}},
    {"deepseek_v2", "deepseek_v2", 48, 16, 3, 24, "softmax", false, 1.5, 4, 2, "max", 48, false, "swiglu", false, "fp32",
     {"routed_scaling_factor", "num_groups", "shared_expert"}},
    {"deepseek_v3", "deepseek_v3", 64, 16, 4, 32, "sigmoid", true, 2.5, 4, 2, "top2_sum", 32, false, "swiglu", false,
     "fp32", {"router_scoring", "router_bias", "routed_scaling_factor", "num_groups", "shared_expert"}},
    {"deepseek_v3_fp8", "deepseek_v3", 192, 16, 4, 64, "sigmoid", true, 2.5, 4, 2, "top2_sum", 64, false, "swiglu",
     false, "fp8_e4m3", {"router_scoring", "router_bias", "routed_scaling_factor", "num_groups", "shared_expert"}},
    {"gpt_oss", "gpt_oss", 128, 8, 2, 96, "softmax", true, 1.0, 1, 1, "top2_sum", 0, false, "swiglu_oai", true, "mxfp4",
     {"router_logit_bias"}},
};

// gtest names a failing case by these (instead of the parameter's bytes).
void PrintTo(const Family &f, std::ostream *os) { *os << f.dir; }

json parse(const Result &r) {
  EXPECT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j;
}

// The layer's dims, experts and tensors in `info` are those the C API reports of `model`.
void expect_same_as_model(const json &info, const pimoe_model *model) {
  int64_t hidden = 0;
  int32_t experts = 0, top_k = 0;
  ASSERT_EQ(pimoe_model_dims(model, &hidden, &experts, &top_k), PIMOE_OK);
  EXPECT_EQ(info["hidden"], hidden);
  EXPECT_EQ(info["num_experts"], experts);
  EXPECT_EQ(info["top_k"], top_k);
  ASSERT_EQ(info["experts"].size(), static_cast<size_t>(experts));
  for (int32_t e = 0; e < experts; ++e) {
    pimoe_activation act{};
    int64_t width = 0;
    int32_t pre_norm = 0;
    ASSERT_EQ(pimoe_model_expert(model, e, &act, &width, &pre_norm), PIMOE_OK);
    EXPECT_EQ(info["experts"][e]["intermediate"], width) << "expert " << e;
    EXPECT_EQ(info["experts"][e]["pre_norm"], pre_norm != 0) << "expert " << e;
  }
  ASSERT_EQ(info["tensors"].size(), static_cast<size_t>(pimoe_tensor_count(model)));
  for (int64_t i = 0; i < pimoe_tensor_count(model); ++i) {
    const std::string name = pimoe_tensor_name(model, i);
    EXPECT_EQ(info["tensors"][i]["name"], name);
    int32_t ndim = 0;
    int64_t shape[4] = {0};
    ASSERT_EQ(pimoe_tensor_shape(model, name.c_str(), &ndim, shape), PIMOE_OK);
    EXPECT_EQ(info["tensors"][i]["shape"], std::vector<int64_t>(shape, shape + ndim)) << name;
  }
}

class InfoFamily : public ::testing::TestWithParam<Family> {};

TEST_P(InfoFamily, LayerJsonIsTheImportedLayer) {
  const Family &f = GetParam();
  const std::string dir = std::string(PIMOE_HF_FIXTURE_DIR) + "/" + f.dir;
  Scratch scratch;
  const json info = parse(run_pimoe(scratch, {"info", dir, "--layer", "1", "--json", "--load"}));
  EXPECT_EQ(info["source"]["kind"], "hf");
  EXPECT_EQ(info["source"]["family"], f.family);
  EXPECT_EQ(info["hidden"], f.hidden);
  EXPECT_EQ(info["num_experts"], f.experts);
  EXPECT_EQ(info["top_k"], f.top_k);
  const json &r = info["router"];
  EXPECT_EQ(r["scoring"], f.scoring);
  EXPECT_EQ(r["renormalize"], f.renormalize);
  EXPECT_EQ(r["routed_scaling_factor"], f.scaling);
  EXPECT_EQ(r["num_groups"], f.groups);
  EXPECT_EQ(r["topk_groups"], f.topk_groups);
  EXPECT_EQ(r["group_score"], f.group_score);
  EXPECT_EQ(r["dropless"], true);
  EXPECT_EQ(info["routing_features"], f.features);
  if (f.shared_width == 0) {
    EXPECT_TRUE(info["shared_expert"].is_null());
  } else {
    EXPECT_EQ(info["shared_expert"]["width"], f.shared_width);
    EXPECT_EQ(info["shared_expert"]["gated"], f.shared_gated);
  }
  for (const json &e : info["experts"]) {
    EXPECT_EQ(e["activation"], f.activation);
    EXPECT_EQ(e["intermediate"], f.width);
    EXPECT_EQ(e["bias"], f.bias);
    EXPECT_EQ(e["format"], f.format);
  }
  // Bytes by format: the experts' matrices (and a shared expert's) in their format; the sum is the layer's.
  const json &formats = info["bytes_by_format"];
  ASSERT_TRUE(formats.contains(f.format)) << formats.dump();
  EXPECT_EQ(formats[f.format]["matrices"], 3 * f.experts + (f.shared_width ? 3 : 0));
  uint64_t sum = info["other_bytes"];
  for (const auto &item : formats.items()) sum += item.value()["bytes"].get<uint64_t>();
  EXPECT_EQ(sum, info["total_bytes"].get<uint64_t>());
  EXPECT_EQ(info["load"]["ok"], true);

  pimoe_model *model = nullptr;
  ASSERT_EQ(pimoe_import_hf(dir.c_str(), 1, nullptr, &model), PIMOE_OK) << pimoe_last_error();
  expect_same_as_model(info, model);
  pimoe_destroy(model);
}

TEST_P(InfoFamily, CheckpointListsItsMoeLayersFromConfig) {
  const Family &f = GetParam();
  Scratch scratch;
  const json info = parse(run_pimoe(scratch, {"info", std::string(PIMOE_HF_FIXTURE_DIR) + "/" + f.dir, "--json"}));
  EXPECT_EQ(info["source"]["kind"], "hf_checkpoint");
  ASSERT_EQ(info["layers"].size(), 2u);
  const json &one = info["layers"][1];
  EXPECT_EQ(one["moe"], true);
  EXPECT_EQ(one["num_experts"], f.experts);
  EXPECT_EQ(one["top_k"], f.top_k);
  EXPECT_EQ(one["expert_width"], f.width);
  EXPECT_EQ(one["shared_width"], f.shared_width);
  // Layer 0 is dense in the families that keep a dense first layer (first_k_dense_replace, mlp_only_layers).
  const std::string dir = f.dir;
  const bool dense0 = dir.rfind("deepseek", 0) == 0 || dir == "qwen2_moe";
  EXPECT_EQ(info["layers"][0]["moe"], !dense0) << info["layers"][0].dump();
  if (dense0) {
    EXPECT_NE(info["layers"][0]["why"].get<std::string>().find("dense"), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, InfoFamily, ::testing::ValuesIn(kFamilies),
                         [](const auto &p) { return std::string(p.param.dir); });

// A routing feature set on a created layer, saved, and described from the file.
struct Feature {
  const char *name;                                     // the test's name
  std::vector<std::pair<const char *, const char *>> options;  // set by name on top of the base layer
  const char *feature;                                  // expected in routing_features
  const char *field;                                    // router field to compare (or "shared_expert")
  json value;
};

const Feature kFeatures[] = {
    {"sigmoid", {{"router_scoring", "sigmoid"}}, "router_scoring", "scoring", "sigmoid"},
    {"selection_bias", {{"router_bias", "1"}}, "router_bias", "selection_bias", true},
    {"logit_bias", {{"router_logit_bias", "1"}}, "router_logit_bias", "logit_bias", true},
    {"scaling", {{"routed_scaling_factor", "2.5"}}, "routed_scaling_factor", "routed_scaling_factor", 2.5},
    {"groups", {{"num_groups", "4"}, {"topk_groups", "2"}, {"group_score", "max"}}, "num_groups", "group_score", "max"},
    {"group_levels", {{"group_levels", "2:1,2:1"}}, "group_levels", "group_levels", json::array({{2, 1}, {2, 1}})},
    {"expert_choice", {{"routing_mode", "expert_choice"}}, "routing_mode", "routing_mode", "expert_choice"},
    {"capacity", {{"capacity_factor", "1.25"}}, "capacity_factor", "capacity_factor", 1.25},
    {"attention_router", {{"router_attention_heads", "2"}, {"router_attention_head_dim", "4"}},
     "router_attention_heads", "attention_heads", 2},
    {"adaptive", {{"adaptive_bias_rate", "0.01"}}, "adaptive_bias_rate", "adaptive_bias_rate", 0.01},
    {"dynamic_capacity", {{"capacity_factor", "1.5"}, {"dynamic_capacity", "1"}}, "dynamic_capacity",
     "dynamic_capacity", true},
    {"attention_combine", {{"combine_attention_dim", "8"}}, "combine_attention_dim", "combine_attention_dim", 8},
    {"shared_gate", {{"shared_width", "16"}, {"shared_gate", "1"}}, "shared_expert_gate", "shared_expert",
     json{{"width", 16}, {"gated", true}, {"activation", "swiglu"}, {"format", "fp32"}}},
};

void PrintTo(const Feature &f, std::ostream *os) { *os << f.name; }

class InfoFeature : public ::testing::TestWithParam<Feature> {};

TEST_P(InfoFeature, NativeFileShowsIt) {
  const Feature &f = GetParam();
  pimoe_options *o = nullptr;
  ASSERT_EQ(pimoe_options_create(&o), PIMOE_OK);
  for (const auto &[key, value] : std::vector<std::pair<const char *, const char *>>{
           {"hidden", "32"}, {"num_experts", "8"}, {"top_k", "2"}, {"intermediate", "16"}, {"backend", "cpu"}}) {
    ASSERT_EQ(pimoe_options_set_by_name(o, key, value), PIMOE_OK) << key;
  }
  for (const auto &[key, value] : f.options) ASSERT_EQ(pimoe_options_set_by_name(o, key, value), PIMOE_OK) << key;
  pimoe_model *model = nullptr;
  ASSERT_EQ(pimoe_create(o, &model), PIMOE_OK) << pimoe_last_error();
  pimoe_options_destroy(o);
  Scratch scratch;
  const std::string file = scratch.path("layer.safetensors");
  ASSERT_EQ(pimoe_save(model, file.c_str()), PIMOE_OK) << pimoe_last_error();

  const json info = parse(run_pimoe(scratch, {"info", file, "--json", "--load"}));
  EXPECT_EQ(info["source"]["kind"], "native");
  const json &features = info["routing_features"];
  EXPECT_NE(std::find(features.begin(), features.end(), f.feature), features.end()) << features.dump();
  const json &actual = std::string(f.field) == "shared_expert" ? info["shared_expert"] : info["router"][f.field];
  EXPECT_EQ(actual, f.value) << info["router"].dump();
  EXPECT_EQ(info["load"]["ok"], true);
  expect_same_as_model(info, model);
  pimoe_destroy(model);

  // The text form says the same (it prints the JSON's fields).
  const Result text = run_pimoe(scratch, {"info", file});
  EXPECT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find(std::string("features:    ")), std::string::npos);
  EXPECT_NE(text.out.find(f.feature), std::string::npos) << text.out;
}

INSTANTIATE_TEST_SUITE_P(Features, InfoFeature, ::testing::ValuesIn(kFeatures),
                         [](const auto &p) { return std::string(p.param.name); });

TEST(InfoErrors, NameTheFileAndExitNonZero) {
  Scratch scratch;
  Result r = run_pimoe(scratch, {"info", scratch.path("absent.safetensors")});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("absent.safetensors"), std::string::npos) << r.err;
  r = run_pimoe(scratch, {"info"});
  EXPECT_EQ(r.status, 2) << "a usage error";
  r = run_pimoe(scratch, {"info", std::string(PIMOE_HF_FIXTURE_DIR) + "/deepseek_v3", "--layer", "0"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("dense"), std::string::npos) << r.err;
}

}  // namespace
