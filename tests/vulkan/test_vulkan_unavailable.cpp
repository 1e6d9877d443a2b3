// SPDX-License-Identifier: MIT
// libpimoe where Vulkan cannot run: ctest runs this binary with the loader hidden (hide_vulkan_loader.so preloaded,
// so dlopen("libvulkan.so.1") fails as on a machine without the package) and with no driver (VK_DRIVER_FILES naming
// no ICD). The library must load, report the Vulkan backend unavailable with the reason
// ($PIMOE_EXPECT_VULKAN_REASON holds a part of it), and run everything else on the CPU.
#include "api/api_test_util.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

using namespace pimoe_test;

namespace {

std::string ExpectedReason() {
  const char *r = std::getenv("PIMOE_EXPECT_VULKAN_REASON");
  return r ? r : "";
}

TEST(VulkanUnavailable, TheBackendIsCompiledInButUnusableWithTheReason) {
  ASSERT_FALSE(ExpectedReason().empty()) << "set PIMOE_EXPECT_VULKAN_REASON (ctest does)";
  EXPECT_TRUE(contains(pimoe_build_info(), "vulkan")) << pimoe_build_info();
  for (const char *name : {"vulkan", "vulkan:0", "vulkan:1"}) {
    int32_t usable = 7;
    PIMOE_ASSERT_OK(pimoe_backend_probe(name, &usable));
    EXPECT_EQ(usable, 0) << name;
    EXPECT_TRUE(contains(last_error(), ExpectedReason())) << name << ": " << last_error();
    EXPECT_EQ(pimoe_backend_device(name), nullptr) << name;
    EXPECT_TRUE(contains(last_error(), ExpectedReason())) << name << ": " << last_error();
  }
  EXPECT_EQ(pimoe_backend_device_count("vulkan"), 0);
}

TEST(VulkanUnavailable, CreatingAVulkanModelFailsWithTheReason) {
  OptionsPtr o = small_options(SmallConfig{16, 8, 2, 32, 42, 1, "vulkan"});
  pimoe_model *m = nullptr;
  EXPECT_EQ(pimoe_create(o.get(), &m), PIMOE_ERR_BACKEND_UNAVAILABLE);
  EXPECT_EQ(m, nullptr);
  EXPECT_TRUE(contains(last_error(), ExpectedReason())) << last_error();
}

TEST(VulkanUnavailable, AutoRunsOnTheCpu) {
  const char *d = pimoe_backend_device("auto");
  ASSERT_NE(d, nullptr) << last_error();
  // With the CUDA backend built and a CUDA device present, auto takes CUDA: nothing here is about Vulkan then.
  if (std::string(d).rfind("cuda:", 0) == 0) GTEST_SKIP() << "auto picks " << d;
  EXPECT_EQ(std::string(d).rfind("cpu:", 0), 0u) << d;
  ModelPtr m = small_model(SmallConfig{16, 8, 2, 32, 42, 1, "auto"});
  ASSERT_NE(m, nullptr);
  EXPECT_STREQ(pimoe_model_backend(m.get()), "cpu");
  const std::vector<float> x = random_input(4 * 16, 3);
  ForwardResult r = forward(m.get(), x, 1, 4, 16, 2, true);
  EXPECT_EQ(r.status, PIMOE_OK) << last_error();
}

}  // namespace
