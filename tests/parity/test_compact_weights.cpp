// Compact weight storage (weight_dtype bf16, fp16, int8, int4, fp8_e4m3, mxfp4): the oracle of a compact layer is the
// same layer on its dequantised weights (what pimoe_tensor_read returns), at the fp32 tolerance, because the CPU
// backend computes in fp32 on exactly those values. Every activation, a shared expert, expert norms and biases,
// threads 1 and 2, calls of 1, 7 and 256 tokens; mixed per-expert formats; a compact layer equals bitwise the fp32
// layer loaded from its dequantised weights. On a backend that holds fp32/bf16/fp16 only, the other formats must be
// refused with PIMOE_ERR_UNSUPPORTED (checked, not skipped).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
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

bool FloatOnlyBackend() { return std::string(Backend()) != "cpu"; }
bool FloatFormat(const std::string &d) { return d == "fp32" || d == "bf16" || d == "fp16"; }

void ApplyFormat(const Format &f, Layer &l) {
  l.weight_dtype = f.dtype;
  l.weight_group_size = f.group;
  l.weight_zero_point = f.zero_point;
}

// A GPU backend refuses what it cannot hold, naming the format.
void ExpectRefused(const Layer &l) {
  ModelPtr m;
  pimoe_options *raw = nullptr;
  PIMOE_ASSERT_OK(pimoe_options_create(&raw));
  OptionsPtr o(raw);
  PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_WEIGHT_DTYPE, l.weight_dtype.c_str()));
  PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, Backend()));
  pimoe_model *out = nullptr;
  EXPECT_EQ(pimoe_create(o.get(), &out), PIMOE_ERR_UNSUPPORTED);
  EXPECT_EQ(out, nullptr);
  EXPECT_NE(std::string(pimoe_last_error()).find(l.weight_dtype), std::string::npos) << pimoe_last_error();
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
  if (FloatOnlyBackend() && !FloatFormat(f.dtype)) return ExpectRefused(l);
  for (int threads : {1, 2}) {
    l.threads = threads;
    for (int64_t tokens : {1, 7, 256}) {
      // GPU tensor cores round activations on large calls with bf16/fp16 weights (pimoe.h): 1e-5 holds below.
      if (FloatOnlyBackend() && tokens > 7 && f.dtype != std::string("fp32")) continue;
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

// Per-expert overrides: a hot expert kept at higher precision in an int4 layer, the others in every other format.
TEST(CompactWeights, MixedPerExpertFormatsKeepParity) {
  if (FloatOnlyBackend()) GTEST_SKIP() << "per-expert formats are the CPU backend's (GPU backends: one per layer)";
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
    if (FloatOnlyBackend() && !FloatFormat(f.dtype)) continue;  // refused: CompactWeightsKeepParity checks it
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
  if (FloatOnlyBackend()) GTEST_SKIP() << "the CPU backend's promise (GPU tensor cores round activations)";
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
  if (FloatOnlyBackend()) GTEST_SKIP() << "the CPU backend's sizes";
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
