// SPDX-License-Identifier: MIT
// Which CPU kernels the library chose (backends/cpu/cpu_isa.cpp), read from the CPU device's description through the
// public API: the best instruction set this CPU has (NEON, or NEON with dot products where the kernel reports
// FEAT_DotProd, on aarch64; AVX-512, AVX2 or the portable kernels on x86-64), lowered by PIMOE_CPU_ISA. ctest runs
// it once per value of the variable (tests/cpu.cmake); the expectation is worked out here from the CPU independently
// of the library's detection. That the chosen kernels match the oracle is test_parity's job (it runs on them).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "pimoe/pimoe.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace {

std::string env_isa() {
  const char *v = std::getenv("PIMOE_CPU_ISA");
  return v ? v : "";
}

// The kernels this CPU should get with no PIMOE_CPU_ISA, and the architecture's names in rising order.
struct Expected {
  std::string best;
  std::vector<std::string> ladder;
};

Expected expected() {
#if defined(__aarch64__)
#if defined(__linux__)
  const bool dot = (getauxval(AT_HWCAP) & (1ul << 20)) != 0;  // HWCAP_ASIMDDP
#else
  const bool dot = false;
#endif
  return {dot ? "neon_dot" : "neon", {"generic", "neon", "neon_dot"}};
#elif defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return {avx512 ? "avx512" : avx2 ? "avx2" : "generic", {"generic", "avx2", "avx512"}};
#else
  return {"generic", {"generic"}};
#endif
}

// The kernels PIMOE_CPU_ISA should leave: a lower name of this architecture lowers, anything else keeps the best.
std::string want_kernels() {
  const Expected e = expected();
  const std::string asked = env_isa();
  size_t best_rank = 0, asked_rank = e.ladder.size();
  for (size_t i = 0; i < e.ladder.size(); ++i) {
    if (e.ladder[i] == e.best) best_rank = i;
    if (e.ladder[i] == asked) asked_rank = i;
  }
  return asked_rank < best_rank ? asked : e.best;
}

TEST(CpuKernels, TheChosenKernelsAreTheBestTheCpuHasLoweredByPimoeCpuIsa) {
  const char *device = pimoe_backend_device("cpu");
  ASSERT_NE(device, nullptr);
  const std::string text(device);
  const std::string want = "kernels " + want_kernels();
  // The name ends the description: "kernels neon" must not pass for "kernels neon_dot".
  ASSERT_GE(text.size(), want.size()) << text;
  EXPECT_EQ(text.substr(text.size() - want.size()), want) << text << " (PIMOE_CPU_ISA=" << env_isa() << ")";
  std::printf("%s (PIMOE_CPU_ISA=%s)\n", device, env_isa().c_str());
}

#if defined(__aarch64__)
// On aarch64 the portable kernels are never the default: NEON is part of every aarch64 CPU.
TEST(CpuKernels, Aarch64RunsNeonUnlessLowered) {
  const std::string text(pimoe_backend_device("cpu"));
  if (env_isa() == "generic") {
    EXPECT_NE(text.find("kernels generic"), std::string::npos) << text;
  } else {
    EXPECT_NE(text.find("kernels neon"), std::string::npos) << text;
  }
}
#endif

}  // namespace
