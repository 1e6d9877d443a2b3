// SPDX-License-Identifier: MIT
// pimoe_prune: which experts or channels go (checked against the rule recomputed here from pimoe_forward's routing
// and the tensors' norms), that the copy holds exactly the kept tensors, rows and columns, that the report's numbers
// are the ones measured here, that routing-mass pruning beats random pruning on a skewed stream, that a saved pruned
// layer loads and computes the same, and every refusal.
#include "api/api_test_util.h"

#include <pimoe/pimoe.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>
#include <string>
#include <vector>

using namespace pimoe_test;

namespace {

constexpr int64_t kH = 32, kE = 8, kK = 2, kI = 48;

SmallConfig layer_config() {
  SmallConfig c;
  c.hidden = kH;
  c.experts = kE;
  c.top_k = kK;
  c.intermediate = kI;
  c.seed = 7;
  return c;
}

ModelPtr make_layer(const char *activation = "swiglu", const char *weight_dtype = "fp32", int64_t groups = 1) {
  OptionsPtr o = small_options(layer_config());
  EXPECT_EQ(pimoe_options_set_by_name(o.get(), "activation", activation), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_by_name(o.get(), "weight_dtype", weight_dtype), PIMOE_OK) << last_error();
  if (groups > 1) {
    EXPECT_EQ(pimoe_options_set_int(o.get(), PIMOE_OPT_NUM_GROUPS, groups), PIMOE_OK) << last_error();
    EXPECT_EQ(pimoe_options_set_int(o.get(), PIMOE_OPT_TOPK_GROUPS, 2), PIMOE_OK) << last_error();
  }
  return create_model(o.get());
}

// A stream skewed towards a few experts: each token is a multiple of one expert's router row (drawn with Zipf(1)
// weights over the experts) plus noise, so the router sends most tokens to the first experts of the draw.
std::vector<float> skewed_stream(pimoe_model *m, int64_t tokens, uint64_t seed) {
  const std::vector<float> router = read_tensor(m, "router.weight");
  const std::vector<float> noise = random_input(static_cast<size_t>(tokens * kH), seed);
  std::vector<double> zipf(kE);
  for (int64_t e = 0; e < kE; ++e) zipf[static_cast<size_t>(e)] = 1.0 / static_cast<double>(e + 1);
  const double total = std::accumulate(zipf.begin(), zipf.end(), 0.0);
  std::vector<float> x(noise.size());
  for (int64_t t = 0; t < tokens; ++t) {
    double u = (noise[static_cast<size_t>(t * kH)] + 2.0) / 4.0 * total;  // in [0, total)
    int64_t e = 0;
    while (e + 1 < kE && u >= zipf[static_cast<size_t>(e)]) u -= zipf[static_cast<size_t>(e++)];
    const int64_t expert = (e * 3 + 1) % kE;  // not the experts' index order
    for (int64_t h = 0; h < kH; ++h) {
      x[static_cast<size_t>(t * kH + h)] =
          4.0f * router[static_cast<size_t>(expert * kH + h)] * std::sqrt(static_cast<float>(kH)) +
          0.5f * noise[static_cast<size_t>(t * kH + h)];
    }
  }
  return x;
}

struct Pruned {
  pimoe_status status = PIMOE_ERR_INTERNAL;
  ModelPtr model;
  pimoe_prune_report report{};
};

Pruned prune(pimoe_model *m, pimoe_prune_method method, double fraction, uint64_t seed, const std::vector<float> &x) {
  Pruned p;
  p.report.struct_size = sizeof p.report;
  pimoe_model *out = nullptr;
  p.status = pimoe_prune(m, method, fraction, seed, x.data(), x.size(), static_cast<int64_t>(x.size()) / kH, &out,
                         &p.report);
  p.model.reset(out);
  return p;
}

std::vector<float> output_of(pimoe_model *m, const std::vector<float> &x) {
  ForwardResult r = forward(m, x, 1, static_cast<int64_t>(x.size()) / kH, kH, kK, false);
  EXPECT_EQ(r.status, PIMOE_OK) << last_error();
  return r.output;
}

double relative_rms(const std::vector<float> &got, const std::vector<float> &want) {
  double d = 0.0, r = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    d += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    r += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(d / r);
}

// The routing mass per expert, from pimoe_forward's ids and weights (nothing is dropped: capacity is off).
std::vector<double> routing_mass(pimoe_model *m, const std::vector<float> &x) {
  ForwardResult r = forward(m, x, 1, static_cast<int64_t>(x.size()) / kH, kH, kK, true);
  EXPECT_EQ(r.status, PIMOE_OK) << last_error();
  std::vector<double> mass(kE, 0.0);
  for (size_t i = 0; i < r.ids.size(); ++i) mass[static_cast<size_t>(r.ids[i])] += r.weights[i];
  return mass;
}

std::vector<float> row_of(const std::vector<float> &m, int64_t cols, int64_t row) {
  return std::vector<float>(m.begin() + row * cols, m.begin() + (row + 1) * cols);
}

// The experts of `pruned` are the source's experts `kept`, in order, tensor for tensor and bit for bit.
void expect_experts_copied(pimoe_model *source, pimoe_model *pruned, const std::vector<int64_t> &kept) {
  const std::vector<float> router = read_tensor(source, "router.weight");
  const std::vector<float> router_p = read_tensor(pruned, "router.weight");
  ASSERT_EQ(router_p.size(), kept.size() * kH);
  for (size_t i = 0; i < kept.size(); ++i) {
    EXPECT_EQ(row_of(router_p, kH, static_cast<int64_t>(i)), row_of(router, kH, kept[i])) << "router row " << i;
    for (const char *part : {"gate.weight", "up.weight", "down.weight"}) {
      const std::string from = "experts." + std::to_string(kept[i]) + "." + part;
      const std::string to = "experts." + std::to_string(i) + "." + part;
      EXPECT_EQ(read_tensor(pruned, to.c_str()), read_tensor(source, from.c_str())) << to << " <- " << from;
    }
  }
}

TEST(Prune, ExpertsByRoutingMassDropTheLeastRouted) {
  ModelPtr m = make_layer();
  ASSERT_TRUE(m);
  const std::vector<float> x = skewed_stream(m.get(), 256, 11);
  const std::vector<double> mass = routing_mass(m.get(), x);
  // The rule, recomputed: drop round(0.25 * 8) = 2 experts of least mass.
  std::vector<int64_t> order(kE);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return mass[a] < mass[b]; });
  std::vector<int64_t> kept(order.begin() + 2, order.end());
  std::sort(kept.begin(), kept.end());
  const std::vector<float> want = output_of(m.get(), x);
  Pruned p = prune(m.get(), PIMOE_PRUNE_EXPERTS_BY_MASS, 0.25, 0, x);
  ASSERT_EQ(p.status, PIMOE_OK) << last_error();
  ASSERT_TRUE(p.model);
  int64_t hidden = 0;
  int32_t experts = 0, top_k = 0;
  PIMOE_ASSERT_OK(pimoe_model_dims(p.model.get(), &hidden, &experts, &top_k));
  EXPECT_EQ(experts, kE - 2);
  EXPECT_EQ(top_k, kK);
  expect_experts_copied(m.get(), p.model.get(), kept);
  // The report: the counts, the bytes pimoe_stats gives, and the error measured here.
  EXPECT_EQ(p.report.struct_size, sizeof p.report);
  EXPECT_EQ(p.report.experts_before, kE);
  EXPECT_EQ(p.report.experts_after, kE - 2);
  EXPECT_EQ(p.report.channels_before, kE * kI);
  EXPECT_EQ(p.report.channels_after, (kE - 2) * kI);
  EXPECT_EQ(p.report.weight_bytes_before, get_stats(m.get()).weight_bytes);
  EXPECT_EQ(p.report.weight_bytes_after, get_stats(p.model.get()).weight_bytes);
  EXPECT_LT(p.report.weight_bytes_after, p.report.weight_bytes_before);
  EXPECT_NEAR(p.report.output_error, relative_rms(output_of(p.model.get(), x), want), 1e-12);
  EXPECT_GT(p.report.output_error, 0.0);
}

TEST(Prune, RoutingMassBeatsRandomOnASkewedStream) {
  ModelPtr m = make_layer();
  ASSERT_TRUE(m);
  const std::vector<float> x = skewed_stream(m.get(), 512, 12);
  Pruned by_mass = prune(m.get(), PIMOE_PRUNE_EXPERTS_BY_MASS, 0.25, 0, x);
  ASSERT_EQ(by_mass.status, PIMOE_OK) << last_error();
  // Random pruning's error is an expectation: the mean over seeds (one draw may happen to drop well).
  constexpr int kSeeds = 8;
  double random_mean = 0.0;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    Pruned r = prune(m.get(), PIMOE_PRUNE_EXPERTS_RANDOM, 0.25, seed, x);
    ASSERT_EQ(r.status, PIMOE_OK) << last_error();
    random_mean += r.report.output_error / kSeeds;
  }
  std::printf("  output error dropping 2 of 8 experts: by routing mass %.4f, at random (mean of %d seeds) %.4f\n",
              by_mass.report.output_error, kSeeds, random_mean);
  EXPECT_LT(by_mass.report.output_error, random_mean);
}

TEST(Prune, RandomIsSeededAndDeterministic) {
  ModelPtr m = make_layer();
  ASSERT_TRUE(m);
  const std::vector<float> x = random_input(64 * kH, 3);
  std::set<std::vector<float>> routers;
  for (uint64_t seed : {1u, 1u, 2u, 3u, 4u}) {
    Pruned r = prune(m.get(), PIMOE_PRUNE_EXPERTS_RANDOM, 0.5, seed, x);
    ASSERT_EQ(r.status, PIMOE_OK) << last_error();
    EXPECT_EQ(r.report.experts_after, kE / 2);
    routers.insert(read_tensor(r.model.get(), "router.weight"));
  }
  EXPECT_GE(routers.size(), 3u) << "seeds 1-4 should not all drop the same experts";
  EXPECT_LE(routers.size(), 4u) << "seed 1 twice must drop the same experts";
}

TEST(Prune, ChannelsByNormKeepTheStrongest) {
  ModelPtr m = make_layer();
  ASSERT_TRUE(m);
  const std::vector<float> x = random_input(64 * kH, 4);
  Pruned p = prune(m.get(), PIMOE_PRUNE_CHANNELS_BY_NORM, 0.25, 0, x);
  ASSERT_EQ(p.status, PIMOE_OK) << last_error();
  const int64_t kept_width = kI - 12;  // round(0.25 * 48) = 12 channels go
  EXPECT_EQ(p.report.experts_after, kE);
  EXPECT_EQ(p.report.channels_after, kE * kept_width);
  for (int64_t e = 0; e < kE; ++e) {
    const std::string prefix = "experts." + std::to_string(e) + ".";
    const std::vector<float> gate = read_tensor(m.get(), (prefix + "gate.weight").c_str());
    const std::vector<float> up = read_tensor(m.get(), (prefix + "up.weight").c_str());
    const std::vector<float> down = read_tensor(m.get(), (prefix + "down.weight").c_str());
    std::vector<double> score(kI);
    for (int64_t j = 0; j < kI; ++j) {
      double g = 0, u = 0, d = 0;
      for (int64_t h = 0; h < kH; ++h) {
        g += static_cast<double>(gate[j * kH + h]) * gate[j * kH + h];
        u += static_cast<double>(up[j * kH + h]) * up[j * kH + h];
        d += static_cast<double>(down[h * kI + j]) * down[h * kI + j];
      }
      score[j] = std::sqrt(g) * std::sqrt(u) * std::sqrt(d);
    }
    std::vector<int64_t> order(kI);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[a] > score[b]; });
    std::vector<int64_t> kept(order.begin(), order.begin() + kept_width);
    std::sort(kept.begin(), kept.end());
    const std::vector<float> up_p = read_tensor(p.model.get(), (prefix + "up.weight").c_str());
    const std::vector<float> down_p = read_tensor(p.model.get(), (prefix + "down.weight").c_str());
    ASSERT_EQ(up_p.size(), static_cast<size_t>(kept_width * kH)) << prefix;
    for (int64_t i = 0; i < kept_width; ++i) {
      EXPECT_EQ(row_of(up_p, kH, i), row_of(up, kH, kept[i])) << prefix << " up row " << i;
      for (int64_t h = 0; h < kH; ++h) ASSERT_EQ(down_p[h * kept_width + i], down[h * kI + kept[i]]) << prefix;
    }
  }
  EXPECT_GT(p.report.output_error, 0.0);
  EXPECT_LT(p.report.output_error, 1.0);
}

TEST(Prune, CompactExpertsKeepTheirCodes) {
  ModelPtr m = make_layer("swiglu", "int4");
  ASSERT_TRUE(m);
  const std::vector<float> x = skewed_stream(m.get(), 128, 5);
  Pruned p = prune(m.get(), PIMOE_PRUNE_EXPERTS_BY_MASS, 0.25, 0, x);
  ASSERT_EQ(p.status, PIMOE_OK) << last_error();
  std::vector<int64_t> kept;  // which source expert each pruned one is, found by its tensors (in order)
  for (int64_t i = 0, e = 0; i < p.report.experts_after; ++i) {
    const std::vector<float> up = read_tensor(p.model.get(), ("experts." + std::to_string(i) + ".up.weight").c_str());
    while (e < kE && read_tensor(m.get(), ("experts." + std::to_string(e) + ".up.weight").c_str()) != up) ++e;
    ASSERT_LT(e, kE) << "pruned expert " << i << " is none of the source's";
    kept.push_back(e++);
  }
  expect_experts_copied(m.get(), p.model.get(), kept);
  EXPECT_LT(p.report.weight_bytes_after, p.report.weight_bytes_before);
}

TEST(Prune, SavedPrunedLayerLoadsAndComputesTheSame) {
  ModelPtr m = make_layer();
  ASSERT_TRUE(m);
  const std::vector<float> x = skewed_stream(m.get(), 64, 6);
  Pruned p = prune(m.get(), PIMOE_PRUNE_EXPERTS_BY_MASS, 0.25, 0, x);
  ASSERT_EQ(p.status, PIMOE_OK) << last_error();
  const std::string path = ::testing::TempDir() + "pruned_layer.safetensors";
  PIMOE_ASSERT_OK(pimoe_save(p.model.get(), path.c_str()));
  pimoe_model *loaded = nullptr;
  PIMOE_ASSERT_OK(pimoe_load(path.c_str(), nullptr, &loaded));
  ModelPtr l(loaded);
  EXPECT_TRUE(bitwise_equal(output_of(l.get(), x), output_of(p.model.get(), x)));
  std::remove(path.c_str());
}

TEST(Prune, RefusesWhatItCannotDo) {
  ModelPtr m = make_layer();
  ASSERT_TRUE(m);
  const std::vector<float> x = random_input(16 * kH, 8);
  pimoe_model *out = reinterpret_cast<pimoe_model *>(0x1);  // untouched on failure
  pimoe_prune_report report{};
  report.struct_size = sizeof report;
  auto expect = [&](pimoe_status want, const char *what, pimoe_model *model, pimoe_prune_method method, double f,
                    const float *cal, size_t count, int64_t tokens, pimoe_prune_report *r) {
    EXPECT_EQ(pimoe_prune(model, method, f, 0, cal, count, tokens, &out, r), want) << what;
    EXPECT_EQ(out, reinterpret_cast<pimoe_model *>(0x1)) << what;
    EXPECT_TRUE(contains(last_error(), what)) << last_error();
  };
  const auto mass = PIMOE_PRUNE_EXPERTS_BY_MASS;
  expect(PIMOE_ERR_NULL_POINTER, "model", nullptr, mass, 0.25, x.data(), x.size(), 16, &report);
  expect(PIMOE_ERR_NULL_POINTER, "calibration", m.get(), mass, 0.25, nullptr, x.size(), 16, &report);
  expect(PIMOE_ERR_INVALID_ARGUMENT, "fraction 0", m.get(), mass, 0.0, x.data(), x.size(), 16, &report);
  expect(PIMOE_ERR_INVALID_ARGUMENT, "fraction 1", m.get(), mass, 1.0, x.data(), x.size(), 16, &report);
  expect(PIMOE_ERR_INVALID_ARGUMENT, "fraction nan", m.get(), mass, NAN, x.data(), x.size(), 16, &report);
  expect(PIMOE_ERR_INVALID_ARGUMENT, "tokens (0)", m.get(), mass, 0.25, x.data(), 0, 0, &report);
  expect(PIMOE_ERR_INVALID_ARGUMENT, "calibration_count", m.get(), mass, 0.25, x.data(), x.size() - 1, 16, &report);
  expect(PIMOE_ERR_INVALID_ARGUMENT, "method 7", m.get(), static_cast<pimoe_prune_method>(7), 0.25, x.data(),
         x.size(), 16, &report);
  expect(PIMOE_ERR_INVALID_ARGUMENT, "fewer than top_k", m.get(), mass, 0.9, x.data(), x.size(), 16, &report);
  std::vector<float> bad = x;
  bad[5] = INFINITY;
  expect(PIMOE_ERR_INVALID_ARGUMENT, "calibration[5]", m.get(), mass, 0.25, bad.data(), bad.size(), 16, &report);
  pimoe_prune_report small{};
  small.struct_size = 4;
  expect(PIMOE_ERR_INVALID_ARGUMENT, "struct_size", m.get(), mass, 0.25, x.data(), x.size(), 16, &small);
  ModelPtr grouped = make_layer("swiglu", "fp32", 4);
  ASSERT_TRUE(grouped);
  expect(PIMOE_ERR_UNSUPPORTED, "groups", grouped.get(), mass, 0.25, x.data(), x.size(), 16, &report);
  ModelPtr int4 = make_layer("swiglu", "int4");
  ASSERT_TRUE(int4);
  expect(PIMOE_ERR_UNSUPPORTED, "int4", int4.get(), PIMOE_PRUNE_CHANNELS_BY_NORM, 0.25, x.data(), x.size(), 16,
         &report);
  EXPECT_EQ(report.experts_after, 0) << "the report is written only on success";
}

}  // namespace
