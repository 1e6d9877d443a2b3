// SPDX-License-Identifier: MIT
// C-ABI basics: versions, build info, backend queries, option keys (typed and by name), expert presets and
// overrides, the tensor naming scheme, and the seeded weight initialisation described in pimoe.h.
#include "api/api_test_util.h"

#include <pimoe/pimoe.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace pimoe_test;

// ------------------------------------------------------------------------------------------------ version

TEST(Version, MacrosMatchTheLibrary) {
  ASSERT_NE(pimoe_version_string(), nullptr);
  EXPECT_STREQ(pimoe_version_string(), PIMOE_VERSION_STRING);
  EXPECT_EQ(pimoe_version_number(), static_cast<uint32_t>(PIMOE_VERSION_NUMBER));
  EXPECT_EQ(pimoe_abi_version(), static_cast<uint32_t>(PIMOE_ABI_VERSION));
  EXPECT_EQ(PIMOE_VERSION_NUMBER, PIMOE_VERSION_MAJOR * 10000 + PIMOE_VERSION_MINOR * 100 + PIMOE_VERSION_PATCH);
  const std::string expect = std::to_string(PIMOE_VERSION_MAJOR) + "." + std::to_string(PIMOE_VERSION_MINOR) + "." +
                             std::to_string(PIMOE_VERSION_PATCH);
  EXPECT_EQ(expect, PIMOE_VERSION_STRING);
}

TEST(Version, BuildInfo) {
  const char *info = pimoe_build_info();
  ASSERT_NE(info, nullptr);
  EXPECT_GT(std::strlen(info), 0u);
  EXPECT_TRUE(contains(info, "cpu")) << info;
  EXPECT_EQ(std::string(info).find('\n'), std::string::npos) << "build info should be one line: " << info;
  EXPECT_STREQ(info, pimoe_build_info());
}

// ------------------------------------------------------------------------------------------------ backends

TEST(Backends, ListAndProbe) {
  const int32_t n = pimoe_backend_count();
  ASSERT_GE(n, 1);
  std::vector<std::string> names;
  for (int32_t i = 0; i < n; ++i) {
    const char *name = pimoe_backend_name(i);
    ASSERT_NE(name, nullptr) << i;
    names.emplace_back(name);
    int32_t usable = -1;
    PIMOE_EXPECT_OK(pimoe_backend_probe(name, &usable));
    EXPECT_TRUE(usable == 0 || usable == 1) << name << " usable=" << usable;
    if (!usable) {
      EXPECT_STRNE(pimoe_last_error(), "") << name << " unusable without a reason";
    }
  }
  // Order of preference: cuda, vulkan, cpu (as far as compiled in).
  const char *order[] = {"cuda", "vulkan", "cpu"};
  size_t pos = 0;
  for (const std::string &nm : names) {
    size_t j = pos;
    while (j < 3 && nm != order[j]) ++j;
    ASSERT_LT(j, 3u) << "unexpected or out-of-order backend \"" << nm << "\"";
    pos = j + 1;
  }
  EXPECT_EQ(names.back(), "cpu");

  int32_t usable = -1;
  PIMOE_ASSERT_OK(pimoe_backend_probe("cpu", &usable));
  EXPECT_EQ(usable, 1);
  EXPECT_STREQ(pimoe_last_error(), "");
  usable = -1;
  PIMOE_ASSERT_OK(pimoe_backend_probe("auto", &usable));
  EXPECT_EQ(usable, 1);

  const char *dev = pimoe_backend_device("cpu");
  ASSERT_NE(dev, nullptr);
  EXPECT_GT(std::strlen(dev), 0u);
  EXPECT_NE(pimoe_backend_device("auto"), nullptr);
  EXPECT_EQ(pimoe_backend_device("no-such-backend"), nullptr);
}

TEST(Backends, ModelBackendName) {
  SmallConfig c;
  ModelPtr cpu = small_model(c);
  ASSERT_NE(cpu, nullptr);
  ASSERT_NE(pimoe_model_backend(cpu.get()), nullptr);
  EXPECT_STREQ(pimoe_model_backend(cpu.get()), "cpu");
  c.backend = "auto";
  ModelPtr any = small_model(c);
  ASSERT_NE(any, nullptr);
  const char *name = pimoe_model_backend(any.get());
  ASSERT_NE(name, nullptr);
  int32_t usable = -1;
  PIMOE_EXPECT_OK(pimoe_backend_probe(name, &usable));
  EXPECT_EQ(usable, 1) << name;
}

// ------------------------------------------------------------------------------------------------ defaults

TEST(Defaults, NullOptionsAndFreshOptionsAreTheDocumentedDefaults) {
  pimoe_model *m = nullptr;
  PIMOE_ASSERT_OK(pimoe_create(nullptr, &m));
  ModelPtr a(m);
  int64_t h = 0;
  int32_t e = 0, k = 0;
  PIMOE_ASSERT_OK(pimoe_model_dims(m, &h, &e, &k));
  EXPECT_EQ(h, 512);
  EXPECT_EQ(e, 8);
  EXPECT_EQ(k, 2);
  for (int32_t i = 0; i < e; ++i) {
    pimoe_activation act = PIMOE_ACT_TANH;
    int64_t width = 0;
    int32_t norm = -1;
    PIMOE_ASSERT_OK(pimoe_model_expert(m, i, &act, &width, &norm));
    EXPECT_EQ(act, PIMOE_ACT_GELU);
    EXPECT_EQ(width, 2048);
    EXPECT_EQ(norm, 0);
  }
  EXPECT_EQ(pimoe_tensor_count(m), 1 + 8 * 2);  // router + (up, down) per expert; no norm, no bias

  OptionsPtr o = make_options();
  ModelPtr b = create_model(o.get());
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(bitwise_equal(read_tensor(a.get(), "router.weight"), read_tensor(b.get(), "router.weight")));
  EXPECT_TRUE(bitwise_equal(read_tensor(a.get(), "experts.7.down.weight"), read_tensor(b.get(), "experts.7.down.weight")));
}

TEST(Defaults, OptionsMayBeReusedOrDestroyedAfterCreate) {
  OptionsPtr o = small_options();
  ModelPtr a = create_model(o.get());
  ASSERT_NE(a, nullptr);
  std::vector<float> in = random_input(3 * 16, 5);
  ForwardResult ra = forward(a.get(), in, 1, 3, 16, 2, true);
  ASSERT_EQ(ra.status, PIMOE_OK) << last_error();
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_TOP_K, 3));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_SEED, 99));
  ModelPtr b = create_model(o.get());
  ASSERT_NE(b, nullptr);
  o.reset();
  int32_t ka = 0, kb = 0;
  PIMOE_EXPECT_OK(pimoe_model_dims(a.get(), nullptr, nullptr, &ka));
  PIMOE_EXPECT_OK(pimoe_model_dims(b.get(), nullptr, nullptr, &kb));
  EXPECT_EQ(ka, 2);
  EXPECT_EQ(kb, 3);
  ForwardResult ra2 = forward(a.get(), in, 1, 3, 16, 2, true);
  ASSERT_EQ(ra2.status, PIMOE_OK) << last_error();
  EXPECT_TRUE(bitwise_equal(ra.output, ra2.output));
  ForwardResult rb = forward(b.get(), in, 1, 3, 16, 3, true);
  ASSERT_EQ(rb.status, PIMOE_OK) << last_error();
}

// ------------------------------------------------------------------------------------------------ presets

namespace {
struct Spec {
  pimoe_activation act;
  int64_t width;
  int32_t norm;
};

Spec expert_spec(const pimoe_model *m, int32_t e) {
  Spec s{static_cast<pimoe_activation>(-1), -1, -1};
  pimoe_status st = pimoe_model_expert(m, e, &s.act, &s.width, &s.norm);
  EXPECT_EQ(st, PIMOE_OK) << describe(st);
  return s;
}
}  // namespace

TEST(Presets, TableFromTheHeader) {
  constexpr int64_t I = 32;
  const Spec table[8] = {
      {PIMOE_ACT_GELU, I, 0},       // GENERIC (layer defaults: GELU, no norm)
      {PIMOE_ACT_GELU, I, 1},       // REASONING
      {PIMOE_ACT_GELU, 2 * I, 0},   // COMPUTATION
      {PIMOE_ACT_SILU, I, 0},       // MATHEMATICAL
      {PIMOE_ACT_TANH, I, 0},       // LOGICAL
      {PIMOE_ACT_SWIGLU, I, 0},     // LANGUAGE
      {PIMOE_ACT_GELU_TANH, I, 1},  // CREATIVE
      {PIMOE_ACT_RELU, I, 1},       // ANALYTICAL
  };
  for (int layer_variant = 0; layer_variant < 2; ++layer_variant) {
    OptionsPtr o = small_options();
    if (layer_variant == 1) {
      PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_ACTIVATION, PIMOE_ACT_RELU));
      PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_PRE_NORM, 1));
    }
    for (int32_t e = 0; e < 8; ++e)
      PIMOE_ASSERT_OK(pimoe_options_set_expert_preset(o.get(), e, static_cast<pimoe_expert_preset>(e)));
    ModelPtr m = create_model(o.get());
    ASSERT_NE(m, nullptr);
    for (int32_t e = 0; e < 8; ++e) {
      Spec want = table[e];
      if (e == 0 && layer_variant == 1) want = {PIMOE_ACT_RELU, I, 1};
      Spec got = expert_spec(m.get(), e);
      EXPECT_EQ(got.act, want.act) << "preset " << e << " variant " << layer_variant;
      EXPECT_EQ(got.width, want.width) << "preset " << e << " variant " << layer_variant;
      EXPECT_EQ(got.norm, want.norm) << "preset " << e << " variant " << layer_variant;
    }
    // The layer still runs with all expert kinds mixed.
    std::vector<float> in = random_input(5 * 16, 11);
    ForwardResult r = forward(m.get(), in, 1, 5, 16, 2, false);
    EXPECT_EQ(r.status, PIMOE_OK) << last_error();
    for (float v : r.output) ASSERT_TRUE(std::isfinite(v));
  }
}

namespace {
// The mixed layer used below: E = 8, H = 16, I = 32.
OptionsPtr mixed_options(bool bias) {
  OptionsPtr o = small_options();
  // All experts LOGICAL first; later calls for single experts win.
  EXPECT_EQ(pimoe_options_set_expert_preset(o.get(), -1, PIMOE_PRESET_LOGICAL), PIMOE_OK) << last_error();
  // Explicit width before the preset: the explicit width still wins.
  EXPECT_EQ(pimoe_options_set_expert_width(o.get(), 2, 40), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_expert_preset(o.get(), 2, PIMOE_PRESET_COMPUTATION), PIMOE_OK) << last_error();
  // Explicit activation after the preset.
  EXPECT_EQ(pimoe_options_set_expert_preset(o.get(), 3, PIMOE_PRESET_LANGUAGE), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_expert_activation(o.get(), 3, PIMOE_ACT_TANH), PIMOE_OK) << last_error();
  // Explicit activation before the preset.
  EXPECT_EQ(pimoe_options_set_expert_activation(o.get(), 4, PIMOE_ACT_RELU), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_expert_preset(o.get(), 4, PIMOE_PRESET_REASONING), PIMOE_OK) << last_error();
  // Explicit norm=0 before a preset with norm.
  EXPECT_EQ(pimoe_options_set_expert_pre_norm(o.get(), 5, 0), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_expert_preset(o.get(), 5, PIMOE_PRESET_ANALYTICAL), PIMOE_OK) << last_error();
  // A later preset replaces an earlier one.
  EXPECT_EQ(pimoe_options_set_expert_preset(o.get(), 6, PIMOE_PRESET_CREATIVE), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_expert_preset(o.get(), 6, PIMOE_PRESET_LANGUAGE), PIMOE_OK) << last_error();
  // Explicit fields only; later width wins over the earlier one.
  EXPECT_EQ(pimoe_options_set_expert_width(o.get(), 7, 8), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_expert_width(o.get(), 7, 48), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_expert_pre_norm(o.get(), 7, 1), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_expert_activation(o.get(), 7, PIMOE_ACT_SWIGLU), PIMOE_OK) << last_error();
  // Expert 1: only an explicit norm on top of the every-expert LOGICAL preset.
  EXPECT_EQ(pimoe_options_set_expert_pre_norm(o.get(), 1, 1), PIMOE_OK) << last_error();
  if (bias) {
    EXPECT_EQ(pimoe_options_set_int(o.get(), PIMOE_OPT_EXPERT_BIAS, 1), PIMOE_OK) << last_error();
  }
  return o;
}

const Spec kMixed[8] = {
    {PIMOE_ACT_TANH, 32, 0},    // 0: LOGICAL (from -1)
    {PIMOE_ACT_TANH, 32, 1},    // 1: LOGICAL (from -1) with explicit norm
    {PIMOE_ACT_GELU, 40, 0},    // 2: COMPUTATION with explicit width 40
    {PIMOE_ACT_TANH, 32, 0},    // 3: LANGUAGE with explicit tanh
    {PIMOE_ACT_RELU, 32, 1},    // 4: REASONING with explicit relu
    {PIMOE_ACT_RELU, 32, 0},    // 5: ANALYTICAL with explicit norm 0
    {PIMOE_ACT_SWIGLU, 32, 0},  // 6: LANGUAGE (replaced CREATIVE)
    {PIMOE_ACT_SWIGLU, 48, 1},  // 7: explicit swiglu, width 48, norm
};
}  // namespace

TEST(Presets, ExplicitFieldsOverridePresetsWhateverTheOrder) {
  OptionsPtr o = mixed_options(false);
  ModelPtr m = create_model(o.get());
  ASSERT_NE(m, nullptr);
  for (int32_t e = 0; e < 8; ++e) {
    Spec got = expert_spec(m.get(), e);
    EXPECT_EQ(got.act, kMixed[e].act) << "expert " << e;
    EXPECT_EQ(got.width, kMixed[e].width) << "expert " << e;
    EXPECT_EQ(got.norm, kMixed[e].norm) << "expert " << e;
  }
}

TEST(Presets, EveryExpertSettingsApplyBeforeSingleExpertSettings) {
  // pimoe.h: layer defaults, then the -1 settings, then the expert's own; within a step the preset first, then the
  // explicit fields, whatever the call order.
  OptionsPtr o = small_options();
  PIMOE_ASSERT_OK(pimoe_options_set_expert_preset(o.get(), 2, PIMOE_PRESET_LANGUAGE));
  PIMOE_ASSERT_OK(pimoe_options_set_expert_activation(o.get(), 3, PIMOE_ACT_RELU));
  PIMOE_ASSERT_OK(pimoe_options_set_expert_activation(o.get(), -1, PIMOE_ACT_TANH));  // explicit before the preset
  PIMOE_ASSERT_OK(pimoe_options_set_expert_preset(o.get(), -1, PIMOE_PRESET_COMPUTATION));
  PIMOE_ASSERT_OK(pimoe_options_set_expert_preset(o.get(), 5, PIMOE_PRESET_REASONING));
  PIMOE_ASSERT_OK(pimoe_options_set_expert_width(o.get(), 6, 24));
  ModelPtr m = create_model(o.get());
  ASSERT_NE(m, nullptr);
  const Spec want[8] = {
      {PIMOE_ACT_TANH, 64, 0},    // -1: COMPUTATION (GELU, 2x, no norm), then explicit tanh
      {PIMOE_ACT_TANH, 64, 0},    //
      {PIMOE_ACT_SWIGLU, 32, 0},  // own preset LANGUAGE replaces all three fields
      {PIMOE_ACT_RELU, 64, 0},    // own explicit relu on top of the -1 result
      {PIMOE_ACT_TANH, 64, 0},    //
      {PIMOE_ACT_GELU, 32, 1},    // own preset REASONING
      {PIMOE_ACT_TANH, 24, 0},    // own explicit width
      {PIMOE_ACT_TANH, 64, 0},    //
  };
  for (int32_t e = 0; e < 8; ++e) {
    const Spec got = expert_spec(m.get(), e);
    EXPECT_EQ(got.act, want[e].act) << "expert " << e;
    EXPECT_EQ(got.width, want[e].width) << "expert " << e;
    EXPECT_EQ(got.norm, want[e].norm) << "expert " << e;
  }
}

TEST(Presets, GenericPresetRestoresTheLayerDefaults) {
  // GENERIC is the preset "(layer activation, 1x, layer pre_norm)"; as a later call it replaces an earlier preset.
  // The GENERIC row of the preset table: (layer activation, 1x, layer pre_norm).
  OptionsPtr o = small_options();
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_ACTIVATION, PIMOE_ACT_RELU));
  PIMOE_ASSERT_OK(pimoe_options_set_expert_preset(o.get(), 4, PIMOE_PRESET_COMPUTATION));
  PIMOE_ASSERT_OK(pimoe_options_set_expert_preset(o.get(), 4, PIMOE_PRESET_GENERIC));
  // Over a preset given for every expert, too: the expert's own GENERIC preset sets all three fields.
  PIMOE_ASSERT_OK(pimoe_options_set_expert_preset(o.get(), -1, PIMOE_PRESET_CREATIVE));
  PIMOE_ASSERT_OK(pimoe_options_set_expert_preset(o.get(), 6, PIMOE_PRESET_GENERIC));
  ModelPtr m = create_model(o.get());
  ASSERT_NE(m, nullptr);
  for (int32_t e : {4, 6}) {
    const Spec got = expert_spec(m.get(), e);
    EXPECT_EQ(got.act, PIMOE_ACT_RELU) << "expert " << e;
    EXPECT_EQ(got.width, 32) << "expert " << e;
    EXPECT_EQ(got.norm, 0) << "expert " << e;
  }
  EXPECT_EQ(expert_spec(m.get(), 0).act, PIMOE_ACT_GELU_TANH);
}

// ------------------------------------------------------------------------------------------------ tensors

namespace {
struct TensorDesc {
  std::string name;
  std::vector<int64_t> shape;
};

std::vector<TensorDesc> expected_tensors(const Spec *specs, int32_t E, int64_t H, bool bias) {
  std::vector<TensorDesc> t;
  t.push_back({"router.weight", {E, H}});
  for (int32_t e = 0; e < E; ++e) {
    const std::string p = "experts." + std::to_string(e) + ".";
    const int64_t I = specs[e].width;
    const bool swiglu = specs[e].act == PIMOE_ACT_SWIGLU;
    if (specs[e].norm) {
      t.push_back({p + "norm.weight", {H}});
      t.push_back({p + "norm.bias", {H}});
    }
    if (swiglu) t.push_back({p + "gate.weight", {I, H}});
    if (swiglu && bias) t.push_back({p + "gate.bias", {I}});
    t.push_back({p + "up.weight", {I, H}});
    if (bias) t.push_back({p + "up.bias", {I}});
    t.push_back({p + "down.weight", {H, I}});
    if (bias) t.push_back({p + "down.bias", {H}});
  }
  return t;
}
}  // namespace

TEST(Tensors, NamingSchemeAndShapesOfAMixedLayer) {
  for (bool bias : {false, true}) {
    SCOPED_TRACE(bias ? "expert_bias=1" : "expert_bias=0");
    OptionsPtr o = mixed_options(bias);
    ModelPtr m = create_model(o.get());
    ASSERT_NE(m, nullptr);
    const std::vector<TensorDesc> want = expected_tensors(kMixed, 8, 16, bias);
    ASSERT_EQ(pimoe_tensor_count(m.get()), static_cast<int64_t>(want.size()));
    for (size_t i = 0; i < want.size(); ++i) {
      const char *name = pimoe_tensor_name(m.get(), static_cast<int64_t>(i));
      ASSERT_NE(name, nullptr) << i;
      EXPECT_EQ(want[i].name, name) << "tensor " << i;
      EXPECT_EQ(name, pimoe_tensor_name(m.get(), static_cast<int64_t>(i))) << "name pointer not stable";
      int32_t nd = -1;
      int64_t dims[4] = {-1, -1, -1, -1};
      PIMOE_ASSERT_OK(pimoe_tensor_shape(m.get(), want[i].name.c_str(), &nd, dims));
      ASSERT_EQ(nd, static_cast<int32_t>(want[i].shape.size())) << want[i].name;
      for (int32_t d = 0; d < nd; ++d) EXPECT_EQ(dims[d], want[i].shape[d]) << want[i].name << " dim " << d;
      std::vector<float> v = read_tensor(m.get(), want[i].name.c_str());
      ASSERT_FALSE(v.empty());
      for (float x : v) ASSERT_TRUE(std::isfinite(x)) << want[i].name;
    }
    // Tensors that must not exist in this layer.
    int32_t nd = 0;
    int64_t dims[4];
    EXPECT_EQ(pimoe_tensor_shape(m.get(), "experts.0.gate.weight", &nd, dims), PIMOE_ERR_NOT_FOUND);
    EXPECT_EQ(pimoe_tensor_shape(m.get(), "experts.0.norm.weight", &nd, dims), PIMOE_ERR_NOT_FOUND);
    // Expert 6 is SwiGLU: its gate and up biases exist with expert_bias only.
    EXPECT_EQ(pimoe_tensor_shape(m.get(), "experts.6.up.bias", &nd, dims), bias ? PIMOE_OK : PIMOE_ERR_NOT_FOUND);
    EXPECT_EQ(pimoe_tensor_shape(m.get(), "experts.6.gate.bias", &nd, dims), bias ? PIMOE_OK : PIMOE_ERR_NOT_FOUND);
    EXPECT_EQ(pimoe_tensor_shape(m.get(), "experts.0.gate.bias", &nd, dims), PIMOE_ERR_NOT_FOUND);
    EXPECT_EQ(pimoe_tensor_shape(m.get(), "experts.8.up.weight", &nd, dims), PIMOE_ERR_NOT_FOUND);
  }
}

// ------------------------------------------------------------------------------------------------ seeds

namespace {
uint64_t fnv1a64(const std::string &s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}
uint64_t splitmix64(uint64_t &state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
// The documented initialisation, in double: U(-b, b) from ((u >> 40) * 2^-24).
std::vector<double> documented_init(uint64_t seed, const std::string &name, size_t n, double b, double center) {
  std::vector<double> v(n);
  uint64_t state = seed ^ fnv1a64(name);
  for (size_t i = 0; i < n; ++i) {
    const double u = static_cast<double>(splitmix64(state) >> 40) * (1.0 / 16777216.0);
    v[i] = center + (2.0 * u - 1.0) * b;
  }
  return v;
}
}  // namespace

TEST(Seeds, SameSeedSameWeightsDifferentSeedDifferentWeights) {
  OptionsPtr oa = mixed_options(true);
  OptionsPtr ob = mixed_options(true);
  OptionsPtr oc = mixed_options(true);
  PIMOE_ASSERT_OK(pimoe_options_set_int(oc.get(), PIMOE_OPT_SEED, 43));
  ModelPtr a = create_model(oa.get()), b = create_model(ob.get()), c = create_model(oc.get());
  ASSERT_TRUE(a && b && c);
  const int64_t n = pimoe_tensor_count(a.get());
  ASSERT_GT(n, 1);
  for (int64_t i = 0; i < n; ++i) {
    const char *name = pimoe_tensor_name(a.get(), i);
    ASSERT_NE(name, nullptr);
    std::vector<float> va = read_tensor(a.get(), name), vb = read_tensor(b.get(), name), vc = read_tensor(c.get(), name);
    EXPECT_TRUE(bitwise_equal(va, vb)) << name << ": same seed, different weights";
    ASSERT_EQ(va.size(), vc.size());
    size_t same = 0;
    for (size_t j = 0; j < va.size(); ++j) same += va[j] == vc[j];
    EXPECT_LT(same, va.size() / 4 + 1) << name << ": seed 42 and 43 give mostly equal weights";
  }
  // Every tensor has its own stream.
  EXPECT_FALSE(bitwise_equal(read_tensor(a.get(), "experts.0.up.weight"), read_tensor(a.get(), "experts.1.up.weight")));
  // Same seed and forward: same output.
  std::vector<float> in = random_input(6 * 16, 8);
  ForwardResult ra = forward(a.get(), in, 1, 6, 16, 2, true), rb = forward(b.get(), in, 1, 6, 16, 2, true);
  ASSERT_EQ(ra.status, PIMOE_OK);
  ASSERT_EQ(rb.status, PIMOE_OK);
  EXPECT_TRUE(bitwise_equal(ra.output, rb.output));
  EXPECT_EQ(ra.ids, rb.ids);
}

TEST(Seeds, DocumentedInitialisationScheme) {
  SmallConfig cfg;
  cfg.seed = 0x5EEDULL;
  OptionsPtr o = small_options(cfg);
  PIMOE_ASSERT_OK(pimoe_options_set_expert_preset(o.get(), 1, PIMOE_PRESET_REASONING));  // norm on expert 1
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_EXPERT_BIAS, 1));
  ModelPtr m = create_model(o.get());
  ASSERT_NE(m, nullptr);
  const double H = 16, I = 32;
  struct Case {
    const char *name;
    double b, center;
  };
  const Case cases[] = {
      {"router.weight", 1 / std::sqrt(H), 0.0},          {"experts.0.up.weight", 1 / std::sqrt(H), 0.0},
      {"experts.0.up.bias", 1 / std::sqrt(H), 0.0},      {"experts.0.down.weight", 1 / std::sqrt(I), 0.0},
      {"experts.0.down.bias", 1 / std::sqrt(I), 0.0},    {"experts.1.norm.weight", 0.1, 1.0},
      {"experts.1.norm.bias", 0.1, 0.0},                 {"experts.5.down.weight", 1 / std::sqrt(I), 0.0},
  };
  for (const Case &c : cases) {
    std::vector<float> got = read_tensor(m.get(), c.name);
    ASSERT_FALSE(got.empty()) << c.name;
    std::vector<double> want = documented_init(static_cast<uint64_t>(cfg.seed), c.name, got.size(), c.b, c.center);
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      if (std::fabs(got[i] - want[i]) > 1e-6 * (std::fabs(c.center) + c.b)) {
        if (bad++ < 3)
          ADD_FAILURE() << c.name << "[" << i << "] = " << got[i] << ", documented scheme gives " << want[i];
      }
    }
    EXPECT_EQ(bad, 0u) << c.name;
  }
  // The router stream depends only on the seed and the name: other sizes don't change it.
  SmallConfig cfg2 = cfg;
  cfg2.intermediate = 8;
  cfg2.top_k = 1;
  ModelPtr m2 = small_model(cfg2);
  ASSERT_NE(m2, nullptr);
  EXPECT_TRUE(bitwise_equal(read_tensor(m.get(), "router.weight"), read_tensor(m2.get(), "router.weight")));
}

// ------------------------------------------------------------------------------------------------ options by name

TEST(OptionsByName, EveryKeyMatchesItsTypedSetter) {
  OptionsPtr typed = make_options();
  OptionsPtr named = make_options();
  ASSERT_TRUE(typed && named);
  pimoe_options *t = typed.get();
  PIMOE_ASSERT_OK(pimoe_options_set_int(t, PIMOE_OPT_HIDDEN, 24));
  PIMOE_ASSERT_OK(pimoe_options_set_int(t, PIMOE_OPT_NUM_EXPERTS, 6));
  PIMOE_ASSERT_OK(pimoe_options_set_int(t, PIMOE_OPT_TOP_K, 3));
  PIMOE_ASSERT_OK(pimoe_options_set_int(t, PIMOE_OPT_INTERMEDIATE, 20));
  PIMOE_ASSERT_OK(pimoe_options_set_int(t, PIMOE_OPT_ACTIVATION, PIMOE_ACT_SILU));
  PIMOE_ASSERT_OK(pimoe_options_set_int(t, PIMOE_OPT_PRE_NORM, 1));
  PIMOE_ASSERT_OK(pimoe_options_set_int(t, PIMOE_OPT_EXPERT_BIAS, 1));
  PIMOE_ASSERT_OK(pimoe_options_set_float(t, PIMOE_OPT_TEMPERATURE, 0.7));
  PIMOE_ASSERT_OK(pimoe_options_set_int(t, PIMOE_OPT_RENORMALIZE, 0));
  PIMOE_ASSERT_OK(pimoe_options_set_float(t, PIMOE_OPT_CAPACITY_FACTOR, 1.25));
  PIMOE_ASSERT_OK(pimoe_options_set_float(t, PIMOE_OPT_AUX_LOSS_COEF, 0.01));
  PIMOE_ASSERT_OK(pimoe_options_set_float(t, PIMOE_OPT_LAYER_NORM_EPS, 1e-3));
  PIMOE_ASSERT_OK(pimoe_options_set_int(t, PIMOE_OPT_SEED, 1234));
  PIMOE_ASSERT_OK(pimoe_options_set_int(t, PIMOE_OPT_THREADS, 1));
  PIMOE_ASSERT_OK(pimoe_options_set_string(t, PIMOE_OPT_BACKEND, "cpu"));
  PIMOE_ASSERT_OK(pimoe_options_set_int(t, PIMOE_OPT_DETERMINISTIC, 1));

  pimoe_options *n = named.get();
  const char *kv[][2] = {
      {"hidden", "24"},         {"num_experts", "6"},      {"top_k", "3"},          {"intermediate", "20"},
      {"activation", "silu"},   {"pre_norm", "1"},         {"expert_bias", "1"},    {"temperature", "0.7"},
      {"renormalize", "0"},     {"capacity_factor", "1.25"}, {"aux_loss_coef", "0.01"}, {"layer_norm_eps", "1e-3"},
      {"seed", "1234"},         {"threads", "1"},          {"backend", "cpu"},      {"deterministic", "1"},
  };
  static_assert(sizeof kv / sizeof kv[0] == PIMOE_OPT_DETERMINISTIC + 1, "one entry per option key");
  for (auto &p : kv) PIMOE_ASSERT_OK(pimoe_options_set_by_name(n, p[0], p[1]));

  ModelPtr mt = create_model(t), mn = create_model(n);
  ASSERT_TRUE(mt && mn);
  int64_t h = 0;
  int32_t e = 0, k = 0;
  PIMOE_ASSERT_OK(pimoe_model_dims(mn.get(), &h, &e, &k));
  EXPECT_EQ(h, 24);
  EXPECT_EQ(e, 6);
  EXPECT_EQ(k, 3);
  Spec s = expert_spec(mn.get(), 0);
  EXPECT_EQ(s.act, PIMOE_ACT_SILU);
  EXPECT_EQ(s.width, 20);
  EXPECT_EQ(s.norm, 1);
  EXPECT_STREQ(pimoe_model_backend(mn.get()), "cpu");
  int32_t nd = 0;
  int64_t dims[4];
  EXPECT_EQ(pimoe_tensor_shape(mn.get(), "experts.0.up.bias", &nd, dims), PIMOE_OK) << "expert_bias by name";

  // Same options -> same weights, same outputs, same routing, same statistics (temperature, renormalize,
  // capacity_factor, aux_loss_coef, layer_norm_eps are only observable through these).
  const int64_t T = 9;
  std::vector<float> in = random_input(T * 24, 77);
  ForwardResult rt = forward(mt.get(), in, 1, T, 24, 3, true), rn = forward(mn.get(), in, 1, T, 24, 3, true);
  ASSERT_EQ(rt.status, PIMOE_OK) << last_error();
  ASSERT_EQ(rn.status, PIMOE_OK) << last_error();
  EXPECT_TRUE(bitwise_equal(rt.output, rn.output));
  EXPECT_EQ(rt.ids, rn.ids);
  EXPECT_TRUE(bitwise_equal(rt.weights, rn.weights));
  pimoe_stats_snapshot st = get_stats(mt.get()), sn = get_stats(mn.get());
  EXPECT_EQ(st.dropped_tokens, sn.dropped_tokens);
  EXPECT_EQ(st.aux_loss, sn.aux_loss);
  EXPECT_EQ(st.z_loss, sn.z_loss);
  EXPECT_EQ(st.routing_confidence, sn.routing_confidence);
  // renormalize=0: weights are raw probabilities, so they sum to less than 1.
  for (int64_t tok = 0; tok < T; ++tok) {
    double sum = 0;
    for (int64_t j = 0; j < 3; ++j) sum += rn.weights[tok * 3 + j];
    EXPECT_LT(sum, 1.0);
  }
  // A model with defaults for the "invisible" options differs (so the settings above did take effect).
  OptionsPtr d = make_options();
  for (auto &p : kv) {
    const std::string key = p[0];
    if (key == "temperature" || key == "renormalize" || key == "capacity_factor" || key == "aux_loss_coef") continue;
    PIMOE_ASSERT_OK(pimoe_options_set_by_name(d.get(), p[0], p[1]));
  }
  ModelPtr md = create_model(d.get());
  ASSERT_NE(md, nullptr);
  ForwardResult rd = forward(md.get(), in, 1, T, 24, 3, true);
  ASSERT_EQ(rd.status, PIMOE_OK);
  EXPECT_FALSE(bitwise_equal(rd.weights, rn.weights));
  pimoe_stats_snapshot sd = get_stats(md.get());
  EXPECT_NE(sd.aux_loss, sn.aux_loss);
}

TEST(OptionsByName, ActivationNames) {
  const std::pair<const char *, pimoe_activation> names[] = {
      {"gelu", PIMOE_ACT_GELU},
      {"gelu_tanh", PIMOE_ACT_GELU_TANH},
      {"silu", PIMOE_ACT_SILU},
      {"relu", PIMOE_ACT_RELU},
      {"tanh", PIMOE_ACT_TANH},
      {"swiglu", PIMOE_ACT_SWIGLU},
      {"swiglu_oai", PIMOE_ACT_SWIGLU_OAI},
  };
  for (auto &p : names) {
    OptionsPtr o = small_options();
    PIMOE_ASSERT_OK(pimoe_options_set_by_name(o.get(), "activation", p.first));
    ModelPtr m = create_model(o.get());
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(expert_spec(m.get(), 3).act, p.second) << p.first;
    int32_t nd = 0;
    int64_t dims[4];
    const pimoe_status gate = pimoe_tensor_shape(m.get(), "experts.3.gate.weight", &nd, dims);
    const bool gated = p.second == PIMOE_ACT_SWIGLU || p.second == PIMOE_ACT_SWIGLU_OAI;
    EXPECT_EQ(gate, gated ? PIMOE_OK : PIMOE_ERR_NOT_FOUND) << p.first;
  }
}

// ------------------------------------------------------------------------------------------------ forward basics

TEST(Forward, RoutingOutputIsWellFormed) {
  for (int renorm = 0; renorm < 2; ++renorm) {
    OptionsPtr o = small_options();
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_TOP_K, 3));
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_RENORMALIZE, renorm));
    ModelPtr m = create_model(o.get());
    ASSERT_NE(m, nullptr);
    const int64_t T = 20;
    std::vector<float> in = random_input(T * 16, 21);
    ForwardResult r = forward(m.get(), in, 4, 5, 16, 3, true);
    ASSERT_EQ(r.status, PIMOE_OK) << last_error();
    for (int64_t t = 0; t < T; ++t) {
      double sum = 0;
      for (int64_t j = 0; j < 3; ++j) {
        const int32_t id = r.ids[t * 3 + j];
        const float w = r.weights[t * 3 + j];
        ASSERT_GE(id, 0);
        ASSERT_LT(id, 8);
        for (int64_t j2 = 0; j2 < j; ++j2) EXPECT_NE(r.ids[t * 3 + j2], id) << "token " << t;
        EXPECT_GT(w, 0.0f);
        EXPECT_LE(w, 1.0f);
        if (j > 0) {
          EXPECT_LE(w, r.weights[t * 3 + j - 1]) << "slots not in descending probability";
        }
        sum += w;
      }
      if (renorm)
        EXPECT_NEAR(sum, 1.0, 1e-5) << "token " << t;
      else
        EXPECT_LT(sum, 1.0 + 1e-6) << "token " << t;
    }
    for (float v : r.output) ASSERT_TRUE(std::isfinite(v));
    // Without routing buffers: same output.
    ForwardResult r2 = forward(m.get(), in, 4, 5, 16, 3, false);
    ASSERT_EQ(r2.status, PIMOE_OK);
    EXPECT_TRUE(bitwise_equal(r.output, r2.output));
    // The batch/seq split does not matter, only the token sequence.
    ForwardResult r3 = forward(m.get(), in, 1, T, 16, 3, true);
    ForwardResult r4 = forward(m.get(), in, T, 1, 16, 3, true);
    ASSERT_EQ(r3.status, PIMOE_OK);
    ASSERT_EQ(r4.status, PIMOE_OK);
    EXPECT_TRUE(bitwise_equal(r.output, r3.output));
    EXPECT_TRUE(bitwise_equal(r.output, r4.output));
    EXPECT_EQ(r.ids, r3.ids);
  }
}

TEST(Forward, TokensAreIndependent) {
  ModelPtr m = small_model();
  ASSERT_NE(m, nullptr);
  const int64_t T = 7, H = 16;
  std::vector<float> in = random_input(T * H, 31);
  ForwardResult all = forward(m.get(), in, 1, T, H, 2, true);
  ASSERT_EQ(all.status, PIMOE_OK);
  double rms = 0;
  for (float v : all.output) rms += double(v) * v;
  rms = std::sqrt(rms / all.output.size());
  for (int64_t t = 0; t < T; ++t) {
    std::vector<float> one(in.begin() + t * H, in.begin() + (t + 1) * H);
    ForwardResult r = forward(m.get(), one, 1, 1, H, 2, true);
    ASSERT_EQ(r.status, PIMOE_OK);
    EXPECT_EQ(r.ids[0], all.ids[t * 2]);
    EXPECT_EQ(r.ids[1], all.ids[t * 2 + 1]);
    for (int64_t h = 0; h < H; ++h) EXPECT_NEAR(r.output[h], all.output[t * H + h], 1e-5 * rms) << t << "," << h;
  }
}

// ------------------------------------------------------------------------------------------------ determinism

TEST(Determinism, ThreadCountNeverChangesTheBits) {
  // pimoe.h (DETERMINISTIC): in both modes the thread count never changes the output bits.
  for (int det = 0; det < 2; ++det) {
    SCOPED_TRACE("deterministic=" + std::to_string(det));
    std::vector<ForwardResult> results;
    for (int64_t threads : {1, 2, 3}) {
      SmallConfig c;
      c.hidden = 64;
      c.intermediate = 128;
      c.threads = threads;
      OptionsPtr o = small_options(c);
      PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_DETERMINISTIC, det));
      ModelPtr m = create_model(o.get());
      ASSERT_NE(m, nullptr);
      std::vector<float> in = random_input(37 * 64, 61);
      results.push_back(forward(m.get(), in, 1, 37, 64, 2, true));
      ASSERT_EQ(results.back().status, PIMOE_OK) << last_error();
    }
    for (size_t i = 1; i < results.size(); ++i) {
      EXPECT_TRUE(bitwise_equal(results[0].output, results[i].output)) << "threads differ: run " << i;
      EXPECT_EQ(results[0].ids, results[i].ids);
      EXPECT_TRUE(bitwise_equal(results[0].weights, results[i].weights));
    }
  }
}

TEST(Determinism, DeterministicModeTokenBitsDoNotDependOnTheBatch) {
  SmallConfig c;
  c.hidden = 64;
  c.intermediate = 128;
  c.threads = 2;
  OptionsPtr o = small_options(c);
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_DETERMINISTIC, 1));
  ModelPtr m = create_model(o.get());
  ASSERT_NE(m, nullptr);
  const int64_t T = 29, H = 64;
  std::vector<float> in = random_input(T * H, 62);
  ForwardResult all = forward(m.get(), in, 1, T, H, 2, true);
  ASSERT_EQ(all.status, PIMOE_OK) << last_error();
  // Alone, and inside a different batch (the token moved to another position among other tokens).
  for (int64_t t : {int64_t{0}, int64_t{7}, T - 1}) {
    std::vector<float> one(in.begin() + t * H, in.begin() + (t + 1) * H);
    ForwardResult r = forward(m.get(), one, 1, 1, H, 2, true);
    ASSERT_EQ(r.status, PIMOE_OK);
    EXPECT_EQ(0, std::memcmp(r.output.data(), all.output.data() + t * H, H * sizeof(float))) << "token " << t;
    std::vector<float> mixed = random_input(5 * H, 63 + t);
    std::copy(one.begin(), one.end(), mixed.begin() + 3 * H);
    ForwardResult rm = forward(m.get(), mixed, 1, 5, H, 2, false);
    ASSERT_EQ(rm.status, PIMOE_OK);
    EXPECT_EQ(0, std::memcmp(rm.output.data() + 3 * H, all.output.data() + t * H, H * sizeof(float)))
        << "token " << t << " inside another batch";
  }
}
