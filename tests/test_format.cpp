// SPDX-License-Identifier: MIT
// The native file format (docs/format.md): save/load round trips and BF16/F16 files written by hand (hostile files:
// test_format_hostile.cpp). Public C API only.
#include <dirent.h>
#include <pimoe/pimoe.h>
#include <sys/stat.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "format_test_util.h"
#include "half_type.h"

using namespace pimoe_test;
using nlohmann::json;

namespace {

struct Layer {
  SmallConfig dims;
  std::vector<std::pair<const char *, const char *>> by_name;  // extra options by name
  std::vector<std::pair<int32_t, pimoe_expert_preset>> presets;
};

ModelPtr make_layer(const Layer &layer) {
  OptionsPtr o = small_options(layer.dims);
  for (const auto &kv : layer.by_name) {
    EXPECT_EQ(pimoe_options_set_by_name(o.get(), kv.first, kv.second), PIMOE_OK) << last_error();
  }
  for (const auto &p : layer.presets) {
    EXPECT_EQ(pimoe_options_set_expert_preset(o.get(), p.first, p.second), PIMOE_OK) << last_error();
  }
  return create_model(o.get());
}

std::vector<std::string> tensor_names(const pimoe_model *m) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < pimoe_tensor_count(m); ++i) names.emplace_back(pimoe_tensor_name(m, i));
  return names;
}

void expect_same_model(pimoe_model *a, pimoe_model *b) {
  int64_t ha, hb;
  int32_t ea, eb, ka, kb;
  PIMOE_ASSERT_OK(pimoe_model_dims(a, &ha, &ea, &ka));
  PIMOE_ASSERT_OK(pimoe_model_dims(b, &hb, &eb, &kb));
  ASSERT_EQ(ha, hb);
  ASSERT_EQ(ea, eb);
  ASSERT_EQ(ka, kb);
  for (int32_t e = 0; e < ea; ++e) {
    pimoe_activation aa, ab;
    int64_t ia, ib;
    int32_t na, nb;
    PIMOE_ASSERT_OK(pimoe_model_expert(a, e, &aa, &ia, &na));
    PIMOE_ASSERT_OK(pimoe_model_expert(b, e, &ab, &ib, &nb));
    EXPECT_EQ(aa, ab) << e;
    EXPECT_EQ(ia, ib) << e;
    EXPECT_EQ(na, nb) << e;
  }
  ASSERT_EQ(tensor_names(a), tensor_names(b));
  for (const std::string &name : tensor_names(a)) {
    EXPECT_TRUE(bitwise_equal(read_tensor(a, name.c_str()), read_tensor(b, name.c_str()))) << name;
  }
  // Same outputs, routing and routing statistics (temperature, renormalisation, capacity, aux coefficient).
  for (int64_t tokens : {1, 7, 64}) {
    const std::vector<float> x = random_input(static_cast<size_t>(tokens * ha), static_cast<uint64_t>(tokens));
    ForwardResult ra = forward(a, x, 1, tokens, ha, ka, true);
    ForwardResult rb = forward(b, x, 1, tokens, hb, kb, true);
    ASSERT_EQ(ra.status, PIMOE_OK);
    ASSERT_EQ(rb.status, PIMOE_OK);
    EXPECT_TRUE(bitwise_equal(ra.output, rb.output)) << tokens << " tokens";
    EXPECT_EQ(ra.ids, rb.ids);
    EXPECT_TRUE(bitwise_equal(ra.weights, rb.weights));
    const pimoe_stats_snapshot sa = get_stats(a), sb = get_stats(b);
    EXPECT_EQ(sa.aux_loss, sb.aux_loss);
    EXPECT_EQ(sa.z_loss, sb.z_loss);
    EXPECT_EQ(sa.dropped_tokens, sb.dropped_tokens);
    EXPECT_EQ(sa.routing_confidence, sb.routing_confidence);
  }
}

}  // namespace

namespace pimoe_test {

// A small valid file: 2 experts (one with LayerNorm), biases, H=8, I=4.
std::string save_small(const std::string &dir) {
  Layer layer;
  layer.dims.hidden = 8;
  layer.dims.experts = 2;
  layer.dims.top_k = 1;
  layer.dims.intermediate = 4;
  layer.by_name = {{"expert_bias", "1"}};
  layer.presets = {{1, PIMOE_PRESET_REASONING}};
  ModelPtr m = make_layer(layer);
  const std::string path = dir + "/small.safetensors";
  EXPECT_EQ(pimoe_save(m.get(), path.c_str()), PIMOE_OK) << last_error();
  return path;
}

}  // namespace pimoe_test

// ------------------------------------------------------------------------------------------------ round trips

class RoundTrip : public ::testing::TestWithParam<int> {};

Layer round_trip_layer(int which) {
  Layer l;
  l.dims.hidden = 24;
  l.dims.experts = 6;
  l.dims.intermediate = 16;
  switch (which) {
    case 0:  // the defaults: GELU, no norm, no bias
      break;
    case 1:  // mixed experts: every preset kind, biases
      l.by_name = {{"expert_bias", "1"}};
      l.presets = {{0, PIMOE_PRESET_REASONING}, {1, PIMOE_PRESET_COMPUTATION}, {2, PIMOE_PRESET_LANGUAGE},
                   {3, PIMOE_PRESET_CREATIVE},  {4, PIMOE_PRESET_ANALYTICAL},  {5, PIMOE_PRESET_LOGICAL}};
      break;
    case 2:  // SwiGLU everywhere, Qwen-style raw probabilities, a temperature, a capacity limit, odd floats
      l.dims.top_k = 3;
      l.by_name = {
          {"activation", "swiglu"},  {"renormalize", "0"},       {"temperature", "0.7"}, {"capacity_factor", "1.25"},
          {"aux_loss_coef", "0.01"}, {"layer_norm_eps", "1e-6"}, {"pre_norm", "1"}};
      break;
    case 3:  // SiLU with biases and norms, top_k = E
      l.dims.experts = 3;
      l.dims.top_k = 3;
      l.by_name = {
          {"activation", "silu"}, {"expert_bias", "1"}, {"pre_norm", "1"}, {"temperature", "1.3333333333333333"}};
      break;
    case 4:  // every router extension and a gated shared expert (DeepSeek-V3-like routing, Qwen2-MoE-like gate)
      l.dims.experts = 8;
      l.dims.top_k = 3;
      l.by_name = {{"activation", "swiglu"},         {"router_scoring", "sigmoid"}, {"router_bias", "1"},
                   {"routed_scaling_factor", "2.5"}, {"num_groups", "4"},           {"topk_groups", "2"},
                   {"group_score", "max"},           {"shared_width", "20"},        {"shared_gate", "1"},
                   {"capacity_factor", "1.5"},       {"temperature", "0.9"}};
      break;
    case 5:  // softmax with groups (top2_sum), an ungated shared expert, no renormalisation
      l.dims.top_k = 2;
      l.by_name = {{"num_groups", "3"},
                   {"topk_groups", "2"},
                   {"shared_width", "7"},
                   {"renormalize", "0"},
                   {"routed_scaling_factor", "0.3333333333333333"}};
      break;
    case 6:  // gpt-oss's block: the router's logit bias, clamped SwiGLU experts with gate, up and down biases
      l.by_name = {{"activation", "swiglu_oai"},
                   {"expert_bias", "1"},
                   {"router_logit_bias", "1"},
                   {"swiglu_alpha", "1.25"},
                   {"swiglu_limit", "5.5"}};
      break;
  }
  return l;
}

TEST_P(RoundTrip, IdenticalModelAfterSaveAndLoad) {
  const std::string dir = test_dir();
  const Layer layer = round_trip_layer(GetParam());
  ModelPtr original = make_layer(layer);
  ASSERT_TRUE(original);
  const std::string path = dir + "/model.safetensors";
  PIMOE_ASSERT_OK(pimoe_save(original.get(), path.c_str()));
  EXPECT_STREQ(pimoe_last_error(), "");
  ModelPtr loaded = load(path);
  ASSERT_TRUE(loaded);
  expect_same_model(original.get(), loaded.get());

  // Saving the loaded model gives the same bytes except for nothing: the format is canonical.
  const std::string again = dir + "/again.safetensors";
  PIMOE_ASSERT_OK(pimoe_save(loaded.get(), again.c_str()));
  EXPECT_EQ(read_file(path), read_file(again));
}

INSTANTIATE_TEST_SUITE_P(Layers, RoundTrip, ::testing::Values(0, 1, 2, 3, 4, 5, 6));

TEST(RoundTripFormat, FileFollowsTheDocumentedLayout) {
  const std::string dir = test_dir();
  ModelPtr m = make_layer(round_trip_layer(1));
  const std::string path = dir + "/m.safetensors";
  PIMOE_ASSERT_OK(pimoe_save(m.get(), path.c_str()));
  const Bytes file = read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[static_cast<size_t>(i)];
  EXPECT_EQ((8 + n) % 8, 0u) << "data section aligned to 8 bytes";
  Crafted c = Crafted::parse(file);
  EXPECT_EQ(c.meta("format"), "pimoe.moe");
  EXPECT_EQ(c.meta("format_version"), "2");  // a SwiGLU expert with biases (LANGUAGE): version 2
  EXPECT_EQ(c.meta("library_version"), PIMOE_VERSION_STRING);
  EXPECT_EQ(c.meta("hidden"), "24");
  EXPECT_EQ(c.meta("experts.2.activation"), "swiglu");
  EXPECT_EQ(c.meta("experts.1.intermediate"), "32");
  EXPECT_EQ(c.meta("experts.0.pre_norm"), "1");
  EXPECT_EQ(c.meta("experts.0.bias"), "1");
  // Data in the documented tensor order, all F32, names as pimoe_tensor_name().
  uint64_t offset = 0;
  for (const std::string &name : tensor_names(m.get())) {
    ASSERT_TRUE(c.header.contains(name)) << name;
    EXPECT_EQ(c.header[name]["dtype"], "F32");
    EXPECT_EQ(c.header[name]["data_offsets"][0].get<uint64_t>(), offset) << name;
    offset = c.header[name]["data_offsets"][1];
  }
  EXPECT_EQ(offset, c.data.size());
  EXPECT_EQ(c.header.size(), tensor_names(m.get()).size() + 1);
}

// Version 1 is written when it describes the layer; the new options' keys only when the layer has them.
TEST(RoundTripFormat, VersionAndNewKeysOnlyWhenNeeded) {
  const std::string dir = test_dir();
  for (int which : {0, 2, 3, 6}) {
    ModelPtr m = make_layer(round_trip_layer(which));
    const std::string path = dir + "/v.safetensors";
    PIMOE_ASSERT_OK(pimoe_save(m.get(), path.c_str()));
    Crafted c = Crafted::parse(read_file(path));
    const json &meta = c.header["__metadata__"];
    EXPECT_EQ(c.meta("format_version"), which == 6 ? "2" : "1") << which;
    EXPECT_EQ(meta.contains("pimoe.router_logit_bias"), which == 6) << which;
    EXPECT_EQ(meta.contains("pimoe.swiglu_alpha"), which == 6) << which;
    if (which == 6) {
      EXPECT_EQ(c.meta("router_logit_bias"), "1");
      EXPECT_EQ(c.meta("swiglu_alpha"), "1.25");
      EXPECT_EQ(c.meta("swiglu_limit"), "5.5");
      EXPECT_EQ(c.meta("experts.0.activation"), "swiglu_oai");
      EXPECT_TRUE(c.header.contains("router.bias"));
      EXPECT_TRUE(c.header.contains("experts.5.gate.bias"));
      EXPECT_TRUE(c.header.contains("experts.5.up.bias"));
    }
  }
}

// A version-1 file (before gated experts had gate and up biases): its SwiGLU expert with biases has a down bias only,
// and loads with zero gate and up biases; the same file with a gate bias is malformed.
TEST(RoundTripFormat, VersionOneSwigluExpertsHaveZeroGateAndUpBiases) {
  const std::string dir = test_dir();
  ModelPtr m = make_layer(round_trip_layer(1));  // expert 2 is LANGUAGE (SwiGLU), every expert has biases
  const std::string path = dir + "/v2.safetensors";
  PIMOE_ASSERT_OK(pimoe_save(m.get(), path.c_str()));
  Crafted c = Crafted::parse(read_file(path));
  c.meta("format_version") = "1";
  std::map<std::string, Bytes> tensors = c.tensor_bytes();
  for (const char *name : {"experts.2.gate.bias", "experts.2.up.bias"}) {
    c.header.erase(name);
    tensors.erase(name);
  }
  c.relayout(tensors);
  const std::string v1 = dir + "/v1.safetensors";
  write_file(v1, c.bytes());
  ModelPtr loaded = load(v1);
  ASSERT_TRUE(loaded);
  ASSERT_EQ(tensor_names(loaded.get()), tensor_names(m.get()));
  for (const std::string &name : tensor_names(m.get())) {
    const std::vector<float> got = read_tensor(loaded.get(), name.c_str());
    if (name == "experts.2.gate.bias" || name == "experts.2.up.bias") {
      EXPECT_EQ(got, std::vector<float>(got.size(), 0.0f)) << name;
    } else {
      EXPECT_TRUE(bitwise_equal(got, read_tensor(m.get(), name.c_str()))) << name;
    }
  }
  // Saved again, it is a version-2 file with the zero biases.
  const std::string again = dir + "/again.safetensors";
  PIMOE_ASSERT_OK(pimoe_save(loaded.get(), again.c_str()));
  EXPECT_EQ(Crafted::parse(read_file(again)).meta("format_version"), "2");
  // Version 1 with a gated expert's gate bias: not a layer that version describes.
  Crafted bad = Crafted::parse(read_file(path));
  bad.meta("format_version") = "1";
  const std::string bad_path = dir + "/bad.safetensors";
  write_file(bad_path, bad.bytes());
  pimoe_model *out = nullptr;
  EXPECT_EQ(pimoe_load(bad_path.c_str(), nullptr, &out), PIMOE_ERR_FORMAT);
  EXPECT_NE(std::string(pimoe_last_error()).find("unexpected tensor 'experts.2.gate.bias'"), std::string::npos)
      << pimoe_last_error();
  EXPECT_EQ(out, nullptr);
}

TEST(RoundTripFormat, NullOptionsAndRuntimeOptionsFromTheCaller) {
  const std::string dir = test_dir();
  const std::string path = save_small(dir);
  pimoe_model *m = nullptr;
  PIMOE_ASSERT_OK(pimoe_load(path.c_str(), nullptr, &m));
  ModelPtr owned(m);
  // Layer options in the options object are ignored; runtime ones are used (an unusable backend fails).
  OptionsPtr o = make_options();
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_HIDDEN, 64));
  // A backend no machine has (device 999), so the check holds on GPU machines too.
  PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, "vulkan:999"));
  pimoe_model *m2 = nullptr;
  const pimoe_status s = pimoe_load(path.c_str(), o.get(), &m2);
  EXPECT_EQ(s, PIMOE_ERR_BACKEND_UNAVAILABLE) << describe(s);
  EXPECT_EQ(m2, nullptr);
  PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, "cpu"));
  PIMOE_ASSERT_OK(pimoe_load(path.c_str(), o.get(), &m2));
  ModelPtr owned2(m2);
  int64_t hidden = 0;
  PIMOE_ASSERT_OK(pimoe_model_dims(m2, &hidden, nullptr, nullptr));
  EXPECT_EQ(hidden, 8);
}

TEST(RoundTripFormat, SaveErrors) {
  const std::string dir = test_dir();
  ModelPtr m = small_model();
  EXPECT_EQ(pimoe_save(nullptr, "x"), PIMOE_ERR_NULL_POINTER);
  EXPECT_EQ(pimoe_save(m.get(), nullptr), PIMOE_ERR_NULL_POINTER);
  const std::string bad = dir + "/no/such/folder/m.safetensors";
  EXPECT_EQ(pimoe_save(m.get(), bad.c_str()), PIMOE_ERR_IO);
  EXPECT_TRUE(contains(last_error(), bad)) << last_error();
  EXPECT_TRUE(contains(last_error(), "pimoe_save")) << last_error();
  EXPECT_TRUE(contains(pimoe_model_last_error(m.get()), bad));
}

// A saved file gets the mode a new file of the process gets (0666 less the umask), not mkstemp's 0600; nothing of
// the temporary file is left. The umask is process-wide: each case sets it and the old one comes back.
class SavedFileMode : public ::testing::TestWithParam<mode_t> {};

TEST_P(SavedFileMode, IsTheUmasksModeForANewFile) {
  const std::string dir = test_dir();
  ModelPtr m = small_model();
  const std::string path = dir + "/mode_" + std::to_string(GetParam()) + ".safetensors";
  const mode_t previous = ::umask(GetParam());
  const pimoe_status status = pimoe_save(m.get(), path.c_str());
  ::umask(previous);
  ASSERT_EQ(status, PIMOE_OK) << last_error();
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0) << path;
  EXPECT_EQ(info.st_mode & 07777, 0666 & ~GetParam()) << std::oct << "umask 0" << GetParam();
  size_t entries = 0;
  DIR *d = ::opendir(dir.c_str());
  ASSERT_NE(d, nullptr);
  while (const dirent *entry = ::readdir(d)) entries += entry->d_name[0] != '.';
  ::closedir(d);
  EXPECT_EQ(entries, 1u) << "a temporary file was left in " << dir;
}

INSTANTIATE_TEST_SUITE_P(Umasks, SavedFileMode, ::testing::Values(mode_t{022}, mode_t{0}, mode_t{077}, mode_t{027}));

// ------------------------------------------------------------------------------------------------ BF16 / F16

namespace {

uint16_t to_bf16(float f) {  // round to nearest even
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}
float from_bf16(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
uint16_t to_f16(float f) {
  const pimoe_test::Half h = static_cast<pimoe_test::Half>(f);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}
float from_f16(uint16_t bits) {
  pimoe_test::Half h;
  std::memcpy(&h, &bits, 2);
  return static_cast<float>(h);
}

double rms(const std::vector<float> &v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s / static_cast<double>(v.size()));
}

}  // namespace

class HalfFiles : public ::testing::TestWithParam<const char *> {};

TEST_P(HalfFiles, LoadWithinTolerance) {
  const std::string dtype = GetParam();
  const bool bf16 = dtype == "BF16";
  const std::string dir = test_dir();
  ModelPtr original = make_layer(round_trip_layer(1));
  const std::string path = dir + "/f32.safetensors";
  PIMOE_ASSERT_OK(pimoe_save(original.get(), path.c_str()));
  Crafted c = Crafted::parse(read_file(path));
  std::map<std::string, Bytes> tensors = c.tensor_bytes();
  std::map<std::string, std::vector<float>> expected;
  for (auto &item : tensors) {
    const size_t n = item.second.size() / 4;
    Bytes half(2 * n);
    std::vector<float> &want = expected[item.first];
    for (size_t i = 0; i < n; ++i) {
      float f;
      std::memcpy(&f, item.second.data() + 4 * i, 4);
      const uint16_t h = bf16 ? to_bf16(f) : to_f16(f);
      std::memcpy(half.data() + 2 * i, &h, 2);
      want.push_back(bf16 ? from_bf16(h) : from_f16(h));
    }
    item.second = half;
    c.header[item.first]["dtype"] = dtype;
  }
  c.relayout(tensors);
  const std::string half_path = dir + "/half.safetensors";
  write_file(half_path, c.bytes());
  ModelPtr loaded = load(half_path);
  ASSERT_TRUE(loaded);
  for (const auto &item : expected) {
    EXPECT_TRUE(bitwise_equal(read_tensor(loaded.get(), item.first.c_str()), item.second)) << item.first;
  }
  const std::vector<float> x = random_input(32 * 24, 5);
  ForwardResult a = forward(original.get(), x, 1, 32, 24, 2, false);
  ForwardResult b = forward(loaded.get(), x, 1, 32, 24, 2, false);
  ASSERT_EQ(b.status, PIMOE_OK);
  double err = 0;
  for (size_t i = 0; i < a.output.size(); ++i) err = std::max(err, std::fabs(double(a.output[i]) - b.output[i]));
  // Per-element error relative to the output RMS; routing may flip on near-ties, so a few tokens may differ more.
  size_t far = 0;
  for (size_t i = 0; i < a.output.size(); ++i)
    far += std::fabs(double(a.output[i]) - b.output[i]) > 1e-2 * rms(a.output);
  EXPECT_LE(far, a.output.size() / 20) << dtype << ": max error " << err << ", rms " << rms(a.output);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, HalfFiles, ::testing::Values("BF16", "F16"));

TEST(HalfFiles, F16SpecialValuesDecode) {
  // Subnormal, normal, max, negative zero: the decoder is exact; Inf is rejected as a weight.
  const std::string dir = test_dir();
  Crafted c = Crafted::parse(read_file(save_small(dir)));
  std::map<std::string, Bytes> tensors = c.tensor_bytes();
  const uint16_t specials[] = {0x0001, 0x03ff, 0x0400, 0x3c00, 0x7bff, 0x8000, 0xc000, 0x3555};
  Bytes half(2 * 16);
  for (size_t i = 0; i < 16; ++i) std::memcpy(half.data() + 2 * i, &specials[i % 8], 2);
  tensors["router.weight"] = half;
  c.header["router.weight"]["dtype"] = "F16";
  c.relayout(tensors);
  const std::string path = dir + "/special.safetensors";
  write_file(path, c.bytes());
  ModelPtr m = load(path);
  ASSERT_TRUE(m);
  const std::vector<float> w = read_tensor(m.get(), "router.weight");
  for (size_t i = 0; i < 16; ++i) EXPECT_EQ(w[i], from_f16(specials[i % 8])) << i;
  EXPECT_TRUE(std::signbit(w[5]));

  const uint16_t inf = 0x7c00;
  std::memcpy(half.data() + 6, &inf, 2);
  tensors["router.weight"] = half;
  c.relayout(tensors);
  write_file(path, c.bytes());
  load(path, PIMOE_ERR_FORMAT);
  EXPECT_TRUE(contains(last_error(), "'router.weight' element 3 is Inf")) << last_error();
}
