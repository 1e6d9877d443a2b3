// SPDX-License-Identifier: MIT
// pimoe_load and pimoe_import_hf take the runtime settings from their caller's options, as pimoe.h lists them:
// activation_dtype among them (found by fuzz_api_sequence: a loaded int8/int4 layer computed with int8 activations
// whatever the caller asked, so a saved and reloaded layer gave other outputs than the one saved). Public C API only.
#include <gtest/gtest.h>
#include <pimoe/pimoe.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace {

const std::string kFixtures = PIMOE_HF_FIXTURE_DIR;

struct Options {
  pimoe_options *p = nullptr;
  Options() { EXPECT_EQ(pimoe_options_create(&p), PIMOE_OK); }
  ~Options() { pimoe_options_destroy(p); }
  Options &set(const char *key, const char *value) {
    EXPECT_EQ(pimoe_options_set_by_name(p, key, value), PIMOE_OK) << key << " = " << value << ": " << pimoe_last_error();
    return *this;
  }
};

struct Model {
  pimoe_model *p = nullptr;
  ~Model() { pimoe_destroy(p); }
};

std::vector<float> forward(pimoe_model *m, int64_t tokens) {
  int64_t hidden = 0;
  EXPECT_EQ(pimoe_model_dims(m, &hidden, nullptr, nullptr), PIMOE_OK);
  std::vector<float> x(static_cast<size_t>(tokens * hidden)), y(x.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * 2.0f;
  EXPECT_EQ(pimoe_forward(m, x.data(), x.size(), 1, tokens, y.data(), y.size(), nullptr, nullptr, 0), PIMOE_OK)
      << pimoe_last_error();
  return y;
}

std::string temp_path(const char *name) {
  return ::testing::TempDir() + "pimoe_runtime_options_" + std::to_string(::getpid()) + "_" + name;
}

// A compact layer saved and loaded with the same activation_dtype computes what the saved layer computes.
TEST(RuntimeOptions, LoadKeepsTheCallersActivationDtype) {
  for (const char *weights : {"int8", "int4"}) {
    for (const char *activations : {"fp32", "int8"}) {
      SCOPED_TRACE(std::string(weights) + " weights, " + activations + " activations");
      Options layer;
      layer.set("backend", "cpu").set("hidden", "64").set("num_experts", "2").set("top_k", "1");
      layer.set("intermediate", "64").set("weight_dtype", weights).set("activation_dtype", activations);
      Model created;
      ASSERT_EQ(pimoe_create(layer.p, &created.p), PIMOE_OK) << pimoe_last_error();
      const std::string path = temp_path("load.safetensors");
      ASSERT_EQ(pimoe_save(created.p, path.c_str()), PIMOE_OK) << pimoe_last_error();
      Options runtime;
      runtime.set("backend", "cpu").set("activation_dtype", activations);
      Model loaded;
      ASSERT_EQ(pimoe_load(path.c_str(), runtime.p, &loaded.p), PIMOE_OK) << pimoe_last_error();
      ::unlink(path.c_str());
      EXPECT_EQ(forward(created.p, 3), forward(loaded.p, 3));
    }
  }
}

// An imported layer held as int8 with activation_dtype fp32 computes in fp32 on the dequantised weights (pimoe.h):
// bitwise what the same weights loaded as fp32 compute, which int8 activations would not.
TEST(RuntimeOptions, ImportKeepsTheCallersActivationDtype) {
  Options runtime;
  runtime.set("backend", "cpu").set("weight_dtype", "int8").set("activation_dtype", "fp32");
  Model imported;
  ASSERT_EQ(pimoe_import_hf((kFixtures + "/mixtral").c_str(), 1, runtime.p, &imported.p), PIMOE_OK)
      << pimoe_last_error();
  const std::string path = temp_path("import.safetensors");
  ASSERT_EQ(pimoe_save(imported.p, path.c_str()), PIMOE_OK) << pimoe_last_error();
  Options as_fp32;
  as_fp32.set("backend", "cpu").set("weight_dtype", "fp32");
  Model dequantised;
  ASSERT_EQ(pimoe_load(path.c_str(), as_fp32.p, &dequantised.p), PIMOE_OK) << pimoe_last_error();
  ::unlink(path.c_str());
  EXPECT_EQ(forward(imported.p, 3), forward(dequantised.p, 3));
}

}  // namespace
