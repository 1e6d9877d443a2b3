// SPDX-License-Identifier: MIT
// The environment variables over the experimental options (src/option_env.cpp): the variable wins when set, read the
// way the backends read it before it was an option; a value the option rejects is ignored. Built from the library's
// sources (the function is internal), with a stub for the backend-name check as the fuzz target has.
#include <gtest/gtest.h>

#include <cstdlib>

#include "backend_registry.h"
#include "error.h"
#include "options.h"

namespace pimoe {
BackendName parse_backend_name(const std::string &name) {
  fail(PIMOE_ERR_INVALID_OPTION, "test build: backend '", name, "' is not checked here");
}
}  // namespace pimoe

namespace {

using pimoe::BackendTuning;

const char *const kVariables[] = {"PIMOE_CUDA_NO_WGMMA",     "PIMOE_CUDA_STREAM_TOKENS", "PIMOE_CUDA_DECODE_GEMM_ROWS",
                                  "PIMOE_VULKAN_COOPMAT_N",  "PIMOE_VULKAN_VALIDATION",  "PIMOE_VULKAN_ROUTING",
                                  "PIMOE_VULKAN_TILES",      "PIMOE_VULKAN_PROFILE"};

class OptionEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char *v : kVariables) unsetenv(v);
  }
  void TearDown() override { SetUp(); }

  // The tuning after one variable is set to `value`, starting from `set`.
  static BackendTuning with(const char *variable, const char *value, const BackendTuning &set = {}) {
    setenv(variable, value, 1);
    BackendTuning out = pimoe::apply_tuning_environment(set);
    unsetenv(variable);
    return out;
  }
};

TEST_F(OptionEnv, DefaultsAreTheBackendsOwnAndUnsetVariablesKeepTheOptions) {
  const BackendTuning d;
  EXPECT_FALSE(d.cuda_no_wgmma);
  EXPECT_EQ(d.cuda_stream_tokens, 1);       // cuda_backend.cpp kStreamTokens
  EXPECT_EQ(d.cuda_decode_gemm_rows, 4.0);  // cuda_backend.cpp kDecodeGemmRows
  EXPECT_EQ(d.vulkan_coopmat_n, pimoe::VulkanCoopmatN::Auto);
  EXPECT_EQ(d.vulkan_validation, pimoe::VulkanValidation::Off);
  EXPECT_EQ(d.vulkan_routing, pimoe::VulkanRouting::Auto);
  EXPECT_EQ(d.vulkan_tiles, pimoe::VulkanTiles::Auto);
  EXPECT_FALSE(d.vulkan_profile);

  BackendTuning set;
  set.cuda_stream_tokens = 7;
  set.vulkan_tiles = pimoe::VulkanTiles::Fma;
  const BackendTuning out = pimoe::apply_tuning_environment(set);
  EXPECT_EQ(out.cuda_stream_tokens, 7);
  EXPECT_EQ(out.vulkan_tiles, pimoe::VulkanTiles::Fma);
  EXPECT_EQ(with("PIMOE_CUDA_STREAM_TOKENS", "", set).cuda_stream_tokens, 7) << "an empty variable is unset";
}

TEST_F(OptionEnv, FlagsAreOnForAnyValueButZero) {
  BackendTuning on;
  on.cuda_no_wgmma = on.vulkan_profile = true;
  EXPECT_TRUE(with("PIMOE_CUDA_NO_WGMMA", "1").cuda_no_wgmma);
  EXPECT_TRUE(with("PIMOE_CUDA_NO_WGMMA", "yes").cuda_no_wgmma);
  EXPECT_FALSE(with("PIMOE_CUDA_NO_WGMMA", "0", on).cuda_no_wgmma) << "the variable overrides the option";
  EXPECT_TRUE(with("PIMOE_VULKAN_PROFILE", "1").vulkan_profile);
  EXPECT_FALSE(with("PIMOE_VULKAN_PROFILE", "0", on).vulkan_profile);
}

TEST_F(OptionEnv, NumbersAreReadAsTheCudaBackendReadThem) {
  EXPECT_EQ(with("PIMOE_CUDA_STREAM_TOKENS", "16").cuda_stream_tokens, 16);
  EXPECT_EQ(with("PIMOE_CUDA_STREAM_TOKENS", "2.7").cuda_stream_tokens, 2);  // strtod, then truncated
  EXPECT_EQ(with("PIMOE_CUDA_STREAM_TOKENS", "-1").cuda_stream_tokens, 1);   // negative: ignored
  EXPECT_EQ(with("PIMOE_CUDA_STREAM_TOKENS", "many").cuda_stream_tokens, 1);
  EXPECT_EQ(with("PIMOE_CUDA_DECODE_GEMM_ROWS", "0.4").cuda_decode_gemm_rows, 0.4);
  EXPECT_EQ(with("PIMOE_CUDA_DECODE_GEMM_ROWS", "0").cuda_decode_gemm_rows, 0.0);
  EXPECT_EQ(with("PIMOE_CUDA_DECODE_GEMM_ROWS", "1e12").cuda_decode_gemm_rows, 4.0);  // out of the option's range
}

TEST_F(OptionEnv, VulkanChoices) {
  using namespace pimoe;
  EXPECT_EQ(with("PIMOE_VULKAN_COOPMAT_N", "8").vulkan_coopmat_n, VulkanCoopmatN::N8);
  EXPECT_EQ(with("PIMOE_VULKAN_COOPMAT_N", "32").vulkan_coopmat_n, VulkanCoopmatN::Auto);
  EXPECT_EQ(with("PIMOE_VULKAN_VALIDATION", "0").vulkan_validation, VulkanValidation::Off);
  EXPECT_EQ(with("PIMOE_VULKAN_VALIDATION", "1").vulkan_validation, VulkanValidation::On);
  EXPECT_EQ(with("PIMOE_VULKAN_VALIDATION", "sync").vulkan_validation, VulkanValidation::Sync);
  BackendTuning host;
  host.vulkan_routing = VulkanRouting::Host;
  EXPECT_EQ(with("PIMOE_VULKAN_ROUTING", "host").vulkan_routing, VulkanRouting::Host);
  EXPECT_EQ(with("PIMOE_VULKAN_ROUTING", "device", host).vulkan_routing, VulkanRouting::Auto);
  BackendTuning fma;
  fma.vulkan_tiles = VulkanTiles::Fma;
  EXPECT_EQ(with("PIMOE_VULKAN_TILES", "coopmat-split", fma).vulkan_tiles, VulkanTiles::CoopmatSplit);
  EXPECT_EQ(with("PIMOE_VULKAN_TILES", "huge", fma).vulkan_tiles, VulkanTiles::Fma);
}

}  // namespace
