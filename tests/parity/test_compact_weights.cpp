// SPDX-License-Identifier: MIT
// Compact weight storage (weight_dtype bf16, fp16, int8, int4, fp8_e4m3, mxfp4): the oracle of a compact layer is the
// same layer on its dequantised weights (what pimoe_tensor_read returns), at the fp32 tolerance, because the CPU
// backend computes in fp32 on exactly those values. Every activation, a shared expert, expert norms and biases,
// threads 1 and 2, calls of 1, 7 and 256 tokens; mixed per-expert formats; a compact layer equals bitwise the fp32
// layer loaded from its dequantised weights. CUDA and Vulkan hold every format in its compact form and compute in fp32
// on the same values (decode calls decode in registers, larger ones in the GEMM's tiles), one format per layer.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "oracle_quant.h"
#include "parity.h"

namespace pimoe_parity {
namespace {

struct Format {
  const char *name;  // test name part
  const char *dtype;
  int64_t group;
  bool zero_point;
};

const Format kFormats[] = {
    {"bf16", "bf16", 32, false},         {"fp16", "fp16", 32, false},      {"int8", "int8", 32, false},
    {"int4_g32", "int4", 32, false},     {"int4_g64_zp", "int4", 64, true}, {"int4_g128", "int4", 128, false},
    {"fp8_e4m3", "fp8_e4m3", 32, false}, {"mxfp4", "mxfp4", 32, false},
};

// The backend's family: "vulkan" for "vulkan:0".
std::string BackendFamilyName() {
  const std::string b = Backend();
  return b.substr(0, b.find(':'));
}
bool GpuBackend() { return BackendFamilyName() != "cpu"; }
std::vector<int> ThreadCounts() { return GpuBackend() ? std::vector<int>{1} : std::vector<int>{1, 2}; }

void ApplyFormat(const Format &f, Layer &l) {
  l.weight_dtype = f.dtype;
  l.weight_group_size = f.group;
  l.weight_zero_point = f.zero_point;
}

class CompactWeightsKeepParity : public ::testing::TestWithParam<std::tuple<Format, pimoe_activation>> {};

TEST_P(CompactWeightsKeepParity, Case) {
  const Format f = std::get<0>(GetParam());
  Layer l;
  ApplyFormat(f, l);
  l.activation = std::get<1>(GetParam());
  l.hidden = 40;        // not a multiple of 32: padded int4/mxfp4 blocks, a partial fp8 block, a partial panel
  l.intermediate = 72;
  l.experts = 6;
  l.top_k = 2;
  l.shared_width = 24;
  l.pre_norm = l.activation == PIMOE_ACT_GELU;
  l.expert_bias = l.activation != PIMOE_ACT_SWIGLU;  // swiglu_oai with gate, up and down biases (gpt-oss)
  l.seed = 3100;
  // Host threads change nothing a GPU backend computes: one thread count there.
  for (int threads : ThreadCounts()) {
    l.threads = threads;
    for (int64_t tokens : {1, 7, 16, 256}) {
      // GPU tensor cores round activations on large calls with bf16/fp16 weights (pimoe.h): 1e-5 holds below.
      if (GpuBackend() && tokens > 7 && (f.dtype == std::string("bf16") || f.dtype == std::string("fp16"))) continue;
      // On a GPU backend, a layer it refuses (swiglu_oai, biased gated experts) is checked to be refused.
      CheckLayer(l, 1, tokens, 3101 + static_cast<uint64_t>(tokens));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Formats, CompactWeightsKeepParity,
    ::testing::Combine(::testing::ValuesIn(kFormats),
                       ::testing::Values(PIMOE_ACT_GELU, PIMOE_ACT_GELU_TANH, PIMOE_ACT_SILU, PIMOE_ACT_RELU,
                                         PIMOE_ACT_TANH, PIMOE_ACT_SWIGLU, PIMOE_ACT_SWIGLU_OAI)),
    [](const ::testing::TestParamInfo<std::tuple<Format, pimoe_activation>> &p) {
      return std::string(std::get<0>(p.param).name) + "_" + ActivationName(std::get<1>(p.param));
    });

// The integer path (activation_dtype "int8", the default for int8 and int4 on the CPU): inputs quantised per row,
// exact integer sums. Its oracle is still the dequantised layer with fp32 activations; the difference is the
// activations' rounding, which pimoe.h bounds per output and which measures below kInt8ActivationTol of the output RMS
// on these layers (the worst case seen over this sweep is printed).
constexpr double kInt8ActivationTol = 6e-2;

const Format kIntFormats[] = {
    {"int8", "int8", 32, false}, {"int4_g32", "int4", 32, false},
    {"int4_g64_zp", "int4", 64, true}, {"int4_g128", "int4", 128, false},
};

class CompactWeightsInt8Activations : public ::testing::TestWithParam<std::tuple<Format, pimoe_activation>> {};

TEST_P(CompactWeightsInt8Activations, Case) {
  const Format f = std::get<0>(GetParam());
  Layer l;
  ApplyFormat(f, l);
  l.activation_dtype = "int8";
  l.output_tol = kInt8ActivationTol;
  l.activation = std::get<1>(GetParam());
  l.hidden = 72;  // not a multiple of 32: padded depth chunks and activation blocks
  l.intermediate = 200;
  l.experts = 6;
  l.top_k = 2;
  l.shared_width = 24;  // the shared expert stays on fp32 activations
  l.pre_norm = l.activation == PIMOE_ACT_GELU;
  l.expert_bias = l.activation != PIMOE_ACT_SWIGLU;
  l.seed = 3500;
  if (GpuBackend()) {
    GTEST_SKIP() << "activation_dtype applies to the CPU backend (GPU backends compute with fp32 activations: "
                    "CompactWeightsKeepParity covers them)";
  }
  double worst = 0.0;
  for (int threads : {1, 2}) {
    l.threads = threads;
    for (int64_t tokens : {1, 7, 256}) {
      CheckSummary s;
      CheckLayer(l, 1, tokens, 3501 + static_cast<uint64_t>(tokens), &s);
      worst = std::max(worst, s.max_abs_err / s.rms);
    }
  }
  std::printf("  %s %s: worst |error| / RMS %.3g\n", f.name, ActivationName(l.activation).c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(
    Formats, CompactWeightsInt8Activations,
    ::testing::Combine(::testing::ValuesIn(kIntFormats),
                       ::testing::Values(PIMOE_ACT_GELU, PIMOE_ACT_SILU, PIMOE_ACT_RELU, PIMOE_ACT_SWIGLU,
                                         PIMOE_ACT_SWIGLU_OAI)),
    [](const ::testing::TestParamInfo<std::tuple<Format, pimoe_activation>> &p) {
      return std::string(std::get<0>(p.param).name) + "_" + ActivationName(std::get<1>(p.param));
    });

// The integer path really runs by default and "fp32" turns it off: the default's output differs from the exact
// path's, by less than the tolerance.
TEST(CompactWeights, Int8ActivationsAreTheDefaultAndFp32TurnsThemOff) {
  if (GpuBackend()) GTEST_SKIP() << "the CPU backend's option (GPU backends compute with fp32 activations)";
  for (const char *dtype : {"int8", "int4"}) {
    Layer l;
    l.weight_dtype = dtype;
    l.hidden = 64;
    l.intermediate = 96;
    l.activation = PIMOE_ACT_SILU;
    l.seed = 3600;
    Layer exact = l;
    l.activation_dtype = "auto";
    ModelPtr fast, slow;
    ASSERT_NO_FATAL_FAILURE(Create(l, &fast));
    ASSERT_NO_FATAL_FAILURE(Create(exact, &slow));
    const int64_t tokens = 5;
    std::vector<float> x = RandomInput(static_cast<size_t>(tokens * l.hidden), 3601);
    std::vector<float> ya(x.size()), yb(x.size());
    PIMOE_ASSERT_OK(
        pimoe_forward(fast.get(), x.data(), x.size(), 1, tokens, ya.data(), ya.size(), nullptr, nullptr, 0));
    PIMOE_ASSERT_OK(
        pimoe_forward(slow.get(), x.data(), x.size(), 1, tokens, yb.data(), yb.size(), nullptr, nullptr, 0));
    double sum_sq = 0.0, max_diff = 0.0;
    for (size_t i = 0; i < x.size(); ++i) {
      sum_sq += static_cast<double>(yb[i]) * yb[i];
      max_diff = std::max(max_diff, std::fabs(static_cast<double>(ya[i]) - yb[i]));
    }
    const double rms = std::sqrt(sum_sq / static_cast<double>(x.size()));
    EXPECT_GT(max_diff, 1e-6 * rms) << dtype << ": the default computed exactly what fp32 activations compute";
    EXPECT_LT(max_diff, kInt8ActivationTol * rms) << dtype;
  }
}

// ctest runs this binary's compact tests again with PIMOE_CPU_ISA=generic (tests/parity.cmake), so the portable
// kernels that other CPUs run are checked here too: the variable must really have lowered the kernels.
TEST(CompactWeights, KernelsFollowPimoeCpuIsa) {
  const char *want = std::getenv("PIMOE_CPU_ISA");
  if (GpuBackend() || !want) GTEST_SKIP() << "PIMOE_CPU_ISA is not set (the CPU's own kernels run)";
  const char *device = pimoe_backend_device("cpu");
  ASSERT_NE(device, nullptr);
  EXPECT_NE(std::string(device).find(std::string("kernels ") + want), std::string::npos) << device;
}

// Per-expert overrides: a hot expert kept at higher precision in an int4 layer, the others in every other format.
TEST(CompactWeights, MixedPerExpertFormatsKeepParity) {
  Layer l;
  l.weight_dtype = "int4";
  l.hidden = 64;
  l.intermediate = 48;
  l.experts = 8;
  l.top_k = 3;
  l.activation = PIMOE_ACT_SWIGLU;
  l.shared_width = 32;
  l.expert_weight_dtypes = {{0, "fp32"}, {1, "bf16"}, {2, "fp16"}, {3, "int8"}, {4, "fp8_e4m3"}, {5, "mxfp4"}};
  l.seed = 3200;
  if (GpuBackend()) {  // one format per layer there: refused, naming the backend
    OptionsPtr o;
    MakeOptions(l, &o);
    ASSERT_TRUE(o);
    pimoe_model *out = nullptr;
    EXPECT_EQ(pimoe_create(o.get(), &out), PIMOE_ERR_UNSUPPORTED);
    EXPECT_EQ(out, nullptr);
    EXPECT_NE(std::string(pimoe_last_error()).find("'" + BackendFamilyName() + "'"), std::string::npos)
        << pimoe_last_error();
    return;
  }
  for (int threads : {1, 2}) {
    l.threads = threads;
    for (int64_t tokens : {1, 7, 256}) CheckLayer(l, 1, tokens, 3201 + static_cast<uint64_t>(tokens));
  }
}

// The stored values follow pimoe.h's rules exactly: every expert and shared-expert matrix of a compact layer reads
// back as the independent oracle's quantisation (tests/oracle/oracle_quant.h) of the same layer's fp32 weights; the
// router stays fp32.
TEST(CompactWeights, StoredValuesFollowTheRules) {
  for (const Format &f : kFormats) {
    Layer l;
    ApplyFormat(f, l);
    l.hidden = 40;
    l.intermediate = 136;  // two fp8 row blocks, one partial
    l.activation = PIMOE_ACT_SWIGLU;
    l.shared_width = 24;
    l.seed = 3300;
    Layer l32 = l;
    l32.weight_dtype = "fp32";
    ModelPtr compact, full;
    ASSERT_NO_FATAL_FAILURE(Create(l, &compact));
    ASSERT_NO_FATAL_FAILURE(Create(l32, &full));
    po::StorageFormat sf{f.dtype, f.group, f.zero_point};
    size_t checked = 0;
    for (int64_t i = 0; i < pimoe_tensor_count(full.get()); ++i) {
      const std::string name = pimoe_tensor_name(full.get(), i);
      int64_t shape[4] = {0, 0, 0, 0};
      int32_t rank = 0;
      PIMOE_ASSERT_OK(pimoe_tensor_shape(full.get(), name.c_str(), &rank, shape));
      size_t n = 1;
      for (int32_t d = 0; d < rank; ++d) n *= static_cast<size_t>(shape[d]);
      std::vector<float> w(n), got(n);
      PIMOE_ASSERT_OK(pimoe_tensor_read(full.get(), name.c_str(), w.data(), n));
      PIMOE_ASSERT_OK(pimoe_tensor_read(compact.get(), name.c_str(), got.data(), n));
      const bool matrix = name.rfind("experts.", 0) == 0 || name.rfind("shared.", 0) == 0;
      const bool stored = matrix && name.find(".weight") != std::string::npos && rank == 2 &&
                          name.find("score") == std::string::npos;
      const std::vector<float> want = stored ? po::StoredValues(w, shape[0], shape[1], sf) : w;
      size_t changed = 0;
      for (size_t j = 0; j < n; ++j) {
        ASSERT_EQ(got[j], want[j]) << f.name << " " << name << "[" << j << "] (fp32 " << w[j] << ")";
        changed += got[j] != w[j];
      }
      if (stored) {
        EXPECT_GT(changed, n / 4) << f.name << " " << name << ": the format changed too few values";
        ++checked;
      }
    }
    EXPECT_EQ(checked, 4u * 3 + 3) << f.name;  // 4 experts and the shared expert, 3 matrices each
  }
}

// A compact layer computes exactly what the fp32 layer with its dequantised weights computes: saved (as the values
// pimoe_tensor_read returns) and loaded at fp32, the two give bitwise equal outputs for any call.
TEST(CompactWeights, BitwiseEqualToTheFp32LayerOfItsValues) {
  if (GpuBackend()) GTEST_SKIP() << "the CPU backend's promise (GPU backends run other kernels on other call sizes)";
  for (const Format &f : kFormats) {
    Layer l;
    ApplyFormat(f, l);
    l.hidden = 48;
    l.intermediate = 80;
    l.activation = PIMOE_ACT_SWIGLU;
    l.shared_width = 16;
    l.threads = 2;
    l.seed = 3400;
    ModelPtr compact;
    ASSERT_NO_FATAL_FAILURE(Create(l, &compact));
    const std::string path = ::testing::TempDir() + "compact_" + f.name + ".safetensors";
    PIMOE_ASSERT_OK(pimoe_save(compact.get(), path.c_str()));
    pimoe_options *raw = nullptr;
    PIMOE_ASSERT_OK(pimoe_options_create(&raw));
    OptionsPtr o(raw);
    PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_WEIGHT_DTYPE, "fp32"));
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_THREADS, 2));
    PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, "cpu"));
    pimoe_model *loaded = nullptr;
    PIMOE_ASSERT_OK(pimoe_load(path.c_str(), o.get(), &loaded));
    ModelPtr fp32(loaded);
    std::remove(path.c_str());
    for (int64_t tokens : {1, 7, 256}) {
      const std::vector<float> x = RandomInput(static_cast<size_t>(tokens * l.hidden), 3401);
      std::vector<float> ya(x.size()), yb(x.size());
      PIMOE_ASSERT_OK(pimoe_forward(compact.get(), x.data(), x.size(), 1, tokens, ya.data(), ya.size(), nullptr,
                                    nullptr, 0));
      PIMOE_ASSERT_OK(
          pimoe_forward(fp32.get(), x.data(), x.size(), 1, tokens, yb.data(), yb.size(), nullptr, nullptr, 0));
      for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(ya[i], yb[i]) << f.name << " T=" << tokens << " [" << i << "]";
    }
  }
}

// Shape S (hidden 512, 8 experts of 2048, GELU): the weights held, by the statistics (resident memory after load is
// measured in tests/test_compact_memory.cpp).
TEST(CompactWeights, WeightBytesOfShapeS) {
  if (GpuBackend()) GTEST_SKIP() << "the CPU backend's sizes";
  struct Case {
    const char *dtype;
    uint64_t most;
  } cases[] = {{"fp32", 67200000}, {"bf16", 33700000}, {"int8", 17000000}, {"int4", 10000000},
               {"fp8_e4m3", 17000000}, {"mxfp4", 9000000}};
  for (const Case &c : cases) {
    Layer l = DefaultLayer();
    l.weight_dtype = c.dtype;
    ModelPtr m;
    ASSERT_NO_FATAL_FAILURE(Create(l, &m));
    pimoe_stats_snapshot s{};
    s.struct_size = sizeof s;
    PIMOE_ASSERT_OK(pimoe_stats(m.get(), &s));
    EXPECT_LE(s.weight_bytes, c.most) << c.dtype;
    EXPECT_GT(s.weight_bytes, c.most / 2) << c.dtype;
  }
}

}  // namespace
}  // namespace pimoe_parity
