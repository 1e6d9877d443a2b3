// SPDX-License-Identifier: MIT
// test_parity: thread counts and CPU GEMMs, batch/sequence shapes, hidden sizes and expert counts, the default shape;
// determinism (batch invariance, thread counts, repeated calls); the statistics over calls. See parity.h.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "parity.h"

namespace {

using namespace pimoe_parity;

// ================================================================================================ threads and shapes

// Both CPU GEMMs (the packed default and OpenBLAS), each thread count, gated and plain experts with bias and norm.
class ThreadCountsAndCpuGemms : public ::testing::TestWithParam<std::tuple<std::string, int, pimoe_activation>> {};

TEST_P(ThreadCountsAndCpuGemms, Case) {
  const std::string &gemm = std::get<0>(GetParam());
  const int threads = std::get<1>(GetParam());
  const pimoe_activation act = std::get<2>(GetParam());
  Layer l;
  l.cpu_gemm = gemm;
  l.deterministic = gemm == "packed" && threads == 2;
  l.experts = 8;
  l.top_k = 2;
  l.hidden = 32;
  l.intermediate = 48;
  l.activation = act;
  l.expert_bias = act == PIMOE_ACT_GELU;
  l.pre_norm = act == PIMOE_ACT_GELU;
  l.threads = threads;
  l.seed = 100;
  CheckLayer(l, 4, 64, 1200);
  CheckLayer(l, 1, 1, 1201);
  l.capacity_factor = 1.0;
  CheckLayer(l, 4, 64, 1202);
}

INSTANTIATE_TEST_SUITE_P(ParityShapes, ThreadCountsAndCpuGemms,
                         ::testing::Combine(::testing::ValuesIn(CpuGemms()), ::testing::Values(1, 2, 4),
                                            ::testing::Values(PIMOE_ACT_SWIGLU, PIMOE_ACT_GELU)),
                         [](const ::testing::TestParamInfo<std::tuple<std::string, int, pimoe_activation>> &p) {
                           return std::get<0>(p.param) + "_threads" + std::to_string(std::get<1>(p.param)) + "_" +
                                  ActivationName(std::get<2>(p.param));
                         });

TEST(ParityShapes, BatchAndSequenceShapes) {
  Layer l;
  l.experts = 6;
  l.top_k = 2;
  l.seed = 101;
  l.threads = 2;
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  const int64_t shapes[][2] = {{1, 1}, {3, 7}, {4, 64}, {1, 300}, {17, 1}, {1, 1}};
  uint64_t seed = 1300;
  for (const auto &sh : shapes) {
    SCOPED_TRACE(std::to_string(sh[0]) + "x" + std::to_string(sh[1]));
    const std::vector<float> x = RandomInput(static_cast<size_t>(sh[0] * sh[1] * l.hidden), seed++);
    CheckSummary s;
    ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, l.Hyper(), sh[0], sh[1], x, &s));
  }
}

struct ShapeCase {
  int64_t hidden, intermediate;
  int32_t experts, top_k;
  pimoe_activation act;
};
const ShapeCase kShapeCases[] = {
    {13, 29, 4, 2, PIMOE_ACT_GELU},  {1, 1, 2, 1, PIMOE_ACT_SILU},    {7, 5, 3, 3, PIMOE_ACT_SWIGLU},
    {64, 96, 16, 4, PIMOE_ACT_RELU}, {33, 130, 1, 1, PIMOE_ACT_TANH}, {100, 3, 5, 2, PIMOE_ACT_GELU_TANH},
};

void PrintTo(const ShapeCase &c, std::ostream *os) {
  *os << "H=" << c.hidden << " I=" << c.intermediate << " E=" << c.experts << " k=" << c.top_k << " "
      << ActivationName(c.act);
}

class HiddenSizesAndExpertCounts : public ::testing::TestWithParam<ShapeCase> {};

TEST_P(HiddenSizesAndExpertCounts, Case) {
  const ShapeCase &c = GetParam();
  Layer l;
  l.hidden = c.hidden;
  l.intermediate = c.intermediate;
  l.experts = c.experts;
  l.top_k = c.top_k;
  l.activation = c.act;
  l.pre_norm = c.hidden > 1;  // LayerNorm over one element is degenerate (output = bias), still well defined
  l.expert_bias = true;
  l.seed = 110 + c.hidden;
  l.threads = 2;
  CheckLayer(l, 3, 7, 1400 + static_cast<uint64_t>(c.hidden));
}

INSTANTIATE_TEST_SUITE_P(ParityShapes, HiddenSizesAndExpertCounts, ::testing::ValuesIn(kShapeCases),
                         [](const ::testing::TestParamInfo<ShapeCase> &p) {
                           const ShapeCase &c = p.param;
                           return "H" + std::to_string(c.hidden) + "_I" + std::to_string(c.intermediate) + "_E" +
                                  std::to_string(c.experts) + "_k" + std::to_string(c.top_k) + "_" +
                                  ActivationName(c.act);
                         });

TEST(ParityShapes, DefaultShape) {
  // Every layer option left at the header's default: H=512, E=8, k=2, I=2048, GELU, no norm, no bias, seed 0.
  const Layer l = DefaultLayer();
  SCOPED_TRACE(l.Describe());
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  CheckSummary s;
  const std::vector<float> x = RandomInput(static_cast<size_t>(2 * 4 * l.hidden), 1500);
  ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, l.Hyper(), 2, 4, x, &s));
  // The default weights follow the documented initialisation too (router and expert 0 suffice).
  const std::vector<std::vector<float>> init = po::InitAllTensors(0, l.hidden, l.Specs(), false);
  ASSERT_EQ(init[0].size(), w.router.size());
  ASSERT_EQ(init[1].size(), w.experts[0].up_weight.size());
  ASSERT_EQ(init[2].size(), w.experts[0].down_weight.size());
  size_t bad = 0;
  for (size_t i = 0; i < init[0].size(); ++i) bad += std::fabs(init[0][i] - w.router[i]) > 1e-6f;
  for (size_t i = 0; i < init[1].size(); ++i) bad += std::fabs(init[1][i] - w.experts[0].up_weight[i]) > 1e-6f;
  for (size_t i = 0; i < init[2].size(); ++i) bad += std::fabs(init[2][i] - w.experts[0].down_weight[i]) > 1e-6f;
  EXPECT_EQ(bad, 0u) << "default weights differ from the documented initialisation";
}

// ================================================================================================ determinism

class TokenAloneOrInsideABatch : public ::testing::TestWithParam<std::tuple<pimoe_activation, int>> {};

TEST_P(TokenAloneOrInsideABatch, Case) {
  const pimoe_activation act = std::get<0>(GetParam());
  const int threads = std::get<1>(GetParam());
  Layer l;
  l.experts = 8;
  l.top_k = 2;
  l.hidden = 32;
  l.intermediate = 64;
  l.activation = act;
  l.pre_norm = act == PIMOE_ACT_GELU;
  l.expert_bias = true;
  l.threads = threads;
  l.deterministic = true;  // batch invariance is promised only in deterministic mode (pimoe.h)
  l.seed = 120;
  SCOPED_TRACE(l.Describe());
  if (RefusedByBackend(l)) return;
  ModelPtr model;
  ASSERT_NO_FATAL_FAILURE(Create(l, &model));
  const int64_t tokens = 200;
  const size_t hd = static_cast<size_t>(l.hidden);
  const std::vector<float> x = RandomInput(static_cast<size_t>(tokens) * hd, 1600);
  LibOutput batch;
  ASSERT_NO_FATAL_FAILURE(LibForward(model.get(), x, 4, 50, l.hidden, l.top_k, &batch));
  // The same tokens in reverse order, as a different batch composition.
  std::vector<float> rev(x.size());
  for (int64_t t = 0; t < tokens; ++t) {
    std::copy_n(x.begin() + t * l.hidden, hd, rev.begin() + (tokens - 1 - t) * l.hidden);
  }
  LibOutput reversed;
  ASSERT_NO_FATAL_FAILURE(LibForward(model.get(), rev, 1, tokens, l.hidden, l.top_k, &reversed));
  for (int64_t t = 0; t < tokens; ++t) {
    const size_t r = static_cast<size_t>(tokens - 1 - t);
    ExpectSameBits(&batch.output[static_cast<size_t>(t) * hd], &reversed.output[r * hd], hd,
                   "token " + std::to_string(t) + " at position " + std::to_string(t) + " vs " + std::to_string(r));
  }
  for (int64_t t = 0; t < tokens; t += (t < 20 ? 1 : 9)) {
    const std::vector<float> one(x.begin() + t * l.hidden, x.begin() + (t + 1) * l.hidden);
    LibOutput alone;
    ASSERT_NO_FATAL_FAILURE(LibForward(model.get(), one, 1, 1, l.hidden, l.top_k, &alone));
    const size_t ts = static_cast<size_t>(t);
    ExpectSameBits(alone.output.data(), &batch.output[ts * hd], hd, "token " + std::to_string(t) + " alone");
    for (int32_t j = 0; j < l.top_k; ++j) {
      const size_t i = ts * static_cast<size_t>(l.top_k) + static_cast<size_t>(j);
      EXPECT_EQ(alone.ids[static_cast<size_t>(j)], batch.ids[i]) << "token " << t;
      ExpectSameBits(&alone.weights[static_cast<size_t>(j)], &batch.weights[i], 1,
                     "routing weight of token " + std::to_string(t));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Determinism, TokenAloneOrInsideABatch,
                         ::testing::Combine(::testing::Values(PIMOE_ACT_GELU, PIMOE_ACT_SWIGLU),
                                            ::testing::Values(1, 4)),
                         [](const ::testing::TestParamInfo<std::tuple<pimoe_activation, int>> &p) {
                           return ActivationName(std::get<0>(p.param)) + "_threads" +
                                  std::to_string(std::get<1>(p.param));
                         });

TEST(Determinism, AcrossThreadCountsAndRepeatedCalls) {
  for (pimoe_activation act : {PIMOE_ACT_SILU, PIMOE_ACT_SWIGLU}) {
    Layer l;
    l.experts = 8;
    l.top_k = 2;
    l.hidden = 48;
    l.intermediate = 80;
    l.activation = act;
    l.seed = 130;
    const int64_t shapes[][2] = {{1, 1}, {3, 7}, {4, 64}, {2, 150}};
    std::vector<LibOutput> reference;
    for (int threads : {1, 2, 4}) {
      l.threads = threads;
      SCOPED_TRACE(l.Describe());
      ModelPtr model;
      ASSERT_NO_FATAL_FAILURE(Create(l, &model));
      size_t index = 0;
      for (const auto &sh : shapes) {
        const std::vector<float> x = RandomInput(static_cast<size_t>(sh[0] * sh[1] * l.hidden), 1700 + index);
        LibOutput out, again;
        ASSERT_NO_FATAL_FAILURE(LibForward(model.get(), x, sh[0], sh[1], l.hidden, l.top_k, &out));
        ASSERT_NO_FATAL_FAILURE(LibForward(model.get(), x, sh[0], sh[1], l.hidden, l.top_k, &again));
        const std::string what = std::to_string(sh[0]) + "x" + std::to_string(sh[1]);
        ExpectSameBits(out.output.data(), again.output.data(), out.output.size(), what + " repeated call");
        if (threads == 1) {
          reference.push_back(out);
        } else {
          ExpectSameBits(out.output.data(), reference[index].output.data(), out.output.size(),
                         what + " threads " + std::to_string(threads) + " vs 1");
          EXPECT_EQ(out.ids, reference[index].ids) << what;
          ExpectSameBits(out.weights.data(), reference[index].weights.data(), out.weights.size(), what + " weights");
        }
        ++index;
      }
    }
  }
}

TEST(Determinism, RoutingBuffersAreOptional) {
  Layer l;
  l.seed = 140;
  ModelPtr model;
  ASSERT_NO_FATAL_FAILURE(Create(l, &model));
  const std::vector<float> x = RandomInput(static_cast<size_t>(21 * l.hidden), 1800);
  LibOutput with;
  ASSERT_NO_FATAL_FAILURE(LibForward(model.get(), x, 3, 7, l.hidden, l.top_k, &with));
  std::vector<float> without(x.size(), std::nanf(""));
  PIMOE_ASSERT_OK(
      pimoe_forward(model.get(), x.data(), x.size(), 3, 7, without.data(), without.size(), nullptr, nullptr, 0));
  ExpectSameBits(with.output.data(), without.data(), x.size(), "output with vs without routing buffers");
}

}  // namespace
