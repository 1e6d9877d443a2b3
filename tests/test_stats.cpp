// SPDX-License-Identifier: MIT
// Statistics (pimoe_stats_snapshot): every value is recomputed here BY HAND from the routing the library reports
// (expert ids / weights) and from router logits computed in double precision from "router.weight", using the
// formulas written in pimoe.h. Nothing here uses the library's or the oracle's own metric code.
#include <gtest/gtest.h>
#include <pimoe/pimoe.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iomanip>
#include <string>
#include <vector>

#include <unistd.h>

#include "api/api_test_util.h"

using namespace pimoe_test;

namespace {

// ---------------------------------------------------------------- formulas from pimoe.h, written out

struct LoadMetrics {
  double utilization, cv, max_violation, jain, entropy;
};

LoadMetrics load_metrics(const std::vector<uint64_t> &loads) {
  const double E = static_cast<double>(loads.size());
  double L = 0, sum_sq = 0, max_l = 0, used = 0;
  for (uint64_t l : loads) {
    L += static_cast<double>(l);
    sum_sq += static_cast<double>(l) * static_cast<double>(l);
    max_l = std::max(max_l, static_cast<double>(l));
    used += l > 0 ? 1.0 : 0.0;
  }
  LoadMetrics r{};
  r.utilization = used / E;
  if (L == 0) {
    r.cv = 0;
    r.max_violation = 0;
    r.jain = 1;
    r.entropy = 0;
    return r;
  }
  const double m = L / E;
  double var = 0;
  for (uint64_t l : loads) var += (static_cast<double>(l) - m) * (static_cast<double>(l) - m);
  var /= E;  // population variance
  r.cv = std::sqrt(var) / m;
  r.max_violation = (max_l - m) / m;
  r.jain = L * L / (E * sum_sq);
  if (loads.size() == 1) {
    r.entropy = 1;
  } else {
    double h = 0;
    for (uint64_t l : loads) {
      if (l == 0) continue;  // 0 log 0 = 0
      const double p = static_cast<double>(l) / L;
      h -= p * std::log(p);
    }
    r.entropy = h / std::log(E);
  }
  return r;
}

// z[t*E + e] = sum_h W[e, h] * x[t, h], in double, with W = "router.weight" [E, H] (nn.Linear layout).
std::vector<double> router_logits(const pimoe_model *m, const std::vector<float> &x, int64_t T, int64_t H, int64_t E) {
  std::vector<float> w = read_tensor(m, "router.weight");
  EXPECT_EQ(w.size(), static_cast<size_t>(E * H));
  std::vector<double> z(static_cast<size_t>(T * E), 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t e = 0; e < E; ++e) {
      double acc = 0;
      for (int64_t h = 0; h < H; ++h) acc += static_cast<double>(w[e * H + h]) * static_cast<double>(x[t * H + h]);
      z[t * E + e] = acc;
    }
  return z;
}

// p = softmax(z / tau) for one token.
std::vector<double> softmax(const double *z, int64_t E, double tau) {
  double mx = z[0] / tau;
  for (int64_t e = 1; e < E; ++e) mx = std::max(mx, z[e] / tau);
  std::vector<double> p(E);
  double s = 0;
  for (int64_t e = 0; e < E; ++e) s += (p[e] = std::exp(z[e] / tau - mx));
  for (double &v : p) v /= s;
  return p;
}

double logsumexp(const double *z, int64_t E) {
  double mx = z[0];
  for (int64_t e = 1; e < E; ++e) mx = std::max(mx, z[e]);
  double s = 0;
  for (int64_t e = 0; e < E; ++e) s += std::exp(z[e] - mx);
  return mx + std::log(s);
}

struct CallLosses {
  double aux, z, top1_sum;  // top1_sum: sum over the call's tokens of max_i p_i
};

// aux = alpha * E * sum_i f_i P_i (f_i from ALL reported choices, before capacity drops), z = mean lse(z)^2.
CallLosses call_losses(const std::vector<double> &z, const std::vector<int32_t> &ids, int64_t T, int64_t E, int64_t k,
                       double tau, double alpha) {
  std::vector<double> f(E, 0.0), P(E, 0.0);
  CallLosses r{0, 0, 0};
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> p = softmax(&z[t * E], E, tau);
    for (int64_t e = 0; e < E; ++e) P[e] += p[e] / static_cast<double>(T);
    r.top1_sum += *std::max_element(p.begin(), p.end());
    const double lse = logsumexp(&z[t * E], E);
    r.z += lse * lse / static_cast<double>(T);
    for (int64_t j = 0; j < k; ++j) f[ids[t * k + j]] += 1.0 / static_cast<double>(T);
  }
  for (int64_t e = 0; e < E; ++e) r.aux += f[e] * P[e];
  r.aux *= alpha * static_cast<double>(E);
  return r;
}

::testing::AssertionResult rel_near(double got, double want, double rel, const char *what) {
  const double tol = rel * std::max(1.0, std::fabs(want));
  if (std::fabs(got - want) <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": library " << got << ", by hand " << want << " (diff " << got - want
                                       << ", tol " << tol << ")";
}

uint64_t total_weight_elements(const pimoe_model *m) {
  uint64_t n = 0;
  const int64_t count = pimoe_tensor_count(m);
  for (int64_t i = 0; i < count; ++i) n += static_cast<uint64_t>(tensor_elements(m, pimoe_tensor_name(m, i)));
  return n;
}

// Bytes the default CPU backend holds, by the header's rule: every matrix (the 2-D tensors) is stored with its
// rows padded to a multiple of 16 for the packed GEMM; vectors as they are.
uint64_t packed_weight_bytes(const pimoe_model *m) {
  uint64_t bytes = 0;
  const int64_t count = pimoe_tensor_count(m);
  for (int64_t i = 0; i < count; ++i) {
    int32_t ndim = 0;
    int64_t dims[4] = {0, 0, 0, 0};
    if (pimoe_tensor_shape(m, pimoe_tensor_name(m, i), &ndim, dims) != PIMOE_OK) return 0;
    bytes +=
        ndim == 2 ? 4 * static_cast<uint64_t>((dims[0] + 15) / 16 * 16 * dims[1]) : 4 * static_cast<uint64_t>(dims[0]);
  }
  return bytes;
}

void expect_load_metrics(const pimoe_stats_snapshot &s, const std::vector<uint64_t> &loads) {
  const LoadMetrics want = load_metrics(loads);
  EXPECT_TRUE(rel_near(s.expert_utilization, want.utilization, 1e-12, "expert_utilization"));
  EXPECT_TRUE(rel_near(s.load_cv, want.cv, 1e-9, "load_cv"));
  EXPECT_TRUE(rel_near(s.load_max_violation, want.max_violation, 1e-9, "load_max_violation"));
  EXPECT_TRUE(rel_near(s.load_jain_index, want.jain, 1e-9, "load_jain_index"));
  EXPECT_TRUE(rel_near(s.load_normalized_entropy, want.entropy, 1e-9, "load_normalized_entropy"));
}

void expect_loads(const pimoe_model *m, const std::vector<uint64_t> &want) {
  std::vector<uint64_t> got(want.size(), 999999);
  ASSERT_EQ(pimoe_stats_expert_loads(m, got.data(), got.size()), PIMOE_OK) << last_error();
  EXPECT_EQ(got, want);
}

void expect_cleared(const pimoe_model *m, uint32_t E, uint64_t weight_bytes) {
  pimoe_stats_snapshot s = get_stats(m);
  EXPECT_EQ(s.struct_size, sizeof s);
  EXPECT_EQ(s.num_experts, E);
  EXPECT_EQ(s.forward_calls, 0u);
  EXPECT_EQ(s.tokens, 0u);
  EXPECT_EQ(s.dropped_tokens, 0u);
  EXPECT_EQ(s.latency_last_ms, 0.0);
  EXPECT_EQ(s.latency_mean_ms, 0.0);
  EXPECT_EQ(s.latency_p50_ms, 0.0);
  EXPECT_EQ(s.latency_p95_ms, 0.0);
  EXPECT_EQ(s.latency_p99_ms, 0.0);
  EXPECT_EQ(s.tokens_per_second, 0.0);
  EXPECT_EQ(s.weight_bytes, weight_bytes) << "weights did not go anywhere";
  EXPECT_EQ(s.expert_utilization, 0.0);
  EXPECT_EQ(s.load_cv, 0.0);             // 0 when L = 0
  EXPECT_EQ(s.load_max_violation, 0.0);  // 0 when L = 0
  EXPECT_EQ(s.load_jain_index, 1.0);     // 1 when L = 0
  EXPECT_EQ(s.load_normalized_entropy, 0.0);
  EXPECT_EQ(s.routing_confidence, 0.0);
  EXPECT_EQ(s.aux_loss, 0.0);
  EXPECT_EQ(s.z_loss, 0.0);
  expect_loads(m, std::vector<uint64_t>(E, 0));
}

}  // namespace

// ------------------------------------------------------------------------------------------------ dropless

TEST(Stats, DroplessCountsMetricsLossesAgainstHandComputation) {
  constexpr int64_t H = 16, E = 8, K = 2;
  const double tau = 0.8, alpha = 0.5;
  SmallConfig cfg;
  cfg.hidden = H;
  cfg.experts = E;
  cfg.top_k = K;
  cfg.seed = 2024;
  OptionsPtr o = small_options(cfg);
  PIMOE_ASSERT_OK(pimoe_options_set_float(o.get(), PIMOE_OPT_TEMPERATURE, tau));
  PIMOE_ASSERT_OK(pimoe_options_set_float(o.get(), PIMOE_OPT_AUX_LOSS_COEF, alpha));
  ModelPtr m = create_model(o.get());
  ASSERT_NE(m, nullptr);
  const uint64_t weight_bytes = packed_weight_bytes(m.get());
  ASSERT_GE(weight_bytes, 4 * total_weight_elements(m.get()));
  expect_cleared(m.get(), E, weight_bytes);  // a fresh model has nothing recorded

  const int64_t shapes[][2] = {{1, 5}, {1, 1}, {3, 4}, {7, 1}, {2, 9}};
  std::vector<uint64_t> loads(E, 0);
  uint64_t calls = 0, tokens = 0;
  double top1_sum = 0;
  for (auto &bs : shapes) {
    const int64_t T = bs[0] * bs[1];
    std::vector<float> in = random_input(static_cast<size_t>(T * H), 100 + calls);
    ForwardResult r = forward(m.get(), in, bs[0], bs[1], H, K, true);
    ASSERT_EQ(r.status, PIMOE_OK) << last_error();
    ++calls;
    tokens += static_cast<uint64_t>(T);
    for (int32_t id : r.ids) {
      ASSERT_GE(id, 0);
      ASSERT_LT(id, E);
      ++loads[id];
    }
    const std::vector<double> z = router_logits(m.get(), in, T, H, E);
    // Sanity: the reported first choice is the arg-max of p (where there is a clear winner).
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> p = softmax(&z[t * E], E, tau);
      std::vector<double> sorted = p;
      std::sort(sorted.rbegin(), sorted.rend());
      if (sorted[0] - sorted[1] > 1e-4) {
        EXPECT_EQ(r.ids[t * K], std::max_element(p.begin(), p.end()) - p.begin()) << "token " << t;
      }
    }
    const CallLosses want = call_losses(z, r.ids, T, E, K, tau, alpha);
    top1_sum += want.top1_sum;

    pimoe_stats_snapshot s = get_stats(m.get());
    SCOPED_TRACE("after call " + std::to_string(calls));
    EXPECT_EQ(s.num_experts, static_cast<uint32_t>(E));
    EXPECT_EQ(s.forward_calls, calls);
    EXPECT_EQ(s.tokens, tokens);
    EXPECT_EQ(s.dropped_tokens, 0u);
    expect_loads(m.get(), loads);
    expect_load_metrics(s, loads);
    EXPECT_TRUE(rel_near(s.routing_confidence, top1_sum / static_cast<double>(tokens), 1e-4, "routing_confidence"));
    EXPECT_GT(s.routing_confidence, 1.0 / E);
    EXPECT_LE(s.routing_confidence, 1.0);
    EXPECT_TRUE(rel_near(s.aux_loss, want.aux, 1e-4, "aux_loss"));
    EXPECT_TRUE(rel_near(s.z_loss, want.z, 1e-4, "z_loss"));
    EXPECT_GT(s.z_loss, 0.0);
    // Latency and throughput.
    EXPECT_GT(s.latency_last_ms, 0.0);
    EXPECT_GT(s.latency_mean_ms, 0.0);
    EXPECT_GT(s.latency_p50_ms, 0.0);
    EXPECT_LE(s.latency_p50_ms, s.latency_p95_ms);
    EXPECT_LE(s.latency_p95_ms, s.latency_p99_ms);
    // Fewer than 100 calls: nearest-rank p99 is the slowest call, which bounds the last and the mean.
    EXPECT_LE(s.latency_last_ms, s.latency_p99_ms);
    EXPECT_LE(s.latency_mean_ms, s.latency_p99_ms * (1 + 1e-9));
    EXPECT_GT(s.tokens_per_second, 0.0);
    const double sum_latency_s = s.latency_mean_ms * static_cast<double>(calls) / 1000.0;
    EXPECT_NEAR(s.tokens_per_second, static_cast<double>(tokens) / sum_latency_s,
                1e-3 * static_cast<double>(tokens) / sum_latency_s);
    // Memory.
    EXPECT_EQ(s.weight_bytes, weight_bytes);
    EXPECT_GT(s.workspace_bytes, 0u);
  }
  // The balance metrics must not be trivially perfect here (8 experts, 30 tokens, top-2): sanity of the test.
  EXPECT_GT(load_metrics(loads).cv, 0.0);

  // Reset zeroes everything, then counting starts again from the next call.
  PIMOE_ASSERT_OK(pimoe_stats_reset(m.get()));
  expect_cleared(m.get(), E, weight_bytes);
  std::vector<float> in = random_input(6 * H, 999);
  ForwardResult r = forward(m.get(), in, 2, 3, H, K, true);
  ASSERT_EQ(r.status, PIMOE_OK);
  std::vector<uint64_t> after(E, 0);
  for (int32_t id : r.ids) ++after[id];
  pimoe_stats_snapshot s = get_stats(m.get());
  EXPECT_EQ(s.forward_calls, 1u);
  EXPECT_EQ(s.tokens, 6u);
  expect_loads(m.get(), after);
  expect_load_metrics(s, after);
  const std::vector<double> z = router_logits(m.get(), in, 6, H, E);
  const CallLosses want = call_losses(z, r.ids, 6, E, K, tau, alpha);
  EXPECT_TRUE(rel_near(s.routing_confidence, want.top1_sum / 6.0, 1e-4, "routing_confidence after reset"));
  EXPECT_TRUE(rel_near(s.aux_loss, want.aux, 1e-4, "aux_loss after reset"));
  EXPECT_TRUE(rel_near(s.z_loss, want.z, 1e-4, "z_loss after reset"));
  EXPECT_GT(s.latency_last_ms, 0.0);
  EXPECT_EQ(s.latency_last_ms, s.latency_p50_ms);  // one call: every percentile is that call
  EXPECT_EQ(s.latency_p50_ms, s.latency_p99_ms);
}

// ------------------------------------------------------------------------------------------------ capacity

TEST(Stats, CapacityDropsFirstChoiceFirstAndAreCounted) {
  constexpr int64_t H = 16, E = 4, K = 2;
  const double cf = 0.5, alpha = 1.0;
  SmallConfig cfg;
  cfg.hidden = H;
  cfg.experts = E;
  cfg.top_k = K;
  cfg.seed = 77;
  OptionsPtr o = small_options(cfg);
  ModelPtr dropless = create_model(o.get());
  PIMOE_ASSERT_OK(pimoe_options_set_float(o.get(), PIMOE_OPT_CAPACITY_FACTOR, cf));
  ModelPtr m = create_model(o.get());
  ASSERT_TRUE(m && dropless);

  std::vector<uint64_t> loads(E, 0);
  uint64_t dropped_total = 0, calls = 0, tokens = 0;
  bool saw_fully_dropped_token = false;
  const int64_t token_counts[] = {10, 3, 1, 16, 7};
  for (int64_t T : token_counts) {
    std::vector<float> in = random_input(static_cast<size_t>(T * H), 500 + calls);
    ForwardResult r = forward(m.get(), in, 1, T, H, K, true);
    ForwardResult d = forward(dropless.get(), in, 1, T, H, K, true);
    ASSERT_EQ(r.status, PIMOE_OK) << last_error();
    ASSERT_EQ(d.status, PIMOE_OK) << last_error();
    ++calls;
    tokens += static_cast<uint64_t>(T);
    SCOPED_TRACE("call " + std::to_string(calls) + ", T = " + std::to_string(T));
    // Same router: same choices reported, dropped or not.
    EXPECT_EQ(r.ids, d.ids);

    // C = ceil(T*k*cf/E); admit first choices of all tokens in token order, then second choices, ...
    const uint64_t C = static_cast<uint64_t>(std::ceil(static_cast<double>(T * K) * cf / static_cast<double>(E)));
    std::vector<uint64_t> taken(E, 0);
    std::vector<bool> kept(static_cast<size_t>(T * K), false);
    uint64_t dropped = 0;
    for (int64_t j = 0; j < K; ++j)
      for (int64_t t = 0; t < T; ++t) {
        const int32_t e = r.ids[t * K + j];
        if (taken[e] < C) {
          ++taken[e];
          kept[t * K + j] = true;
          ++loads[e];
        } else {
          ++dropped;
        }
      }
    dropped_total += dropped;
    for (int64_t i = 0; i < T * K; ++i) {
      if (kept[i]) {
        EXPECT_GT(r.weights[i], 0.0f) << "slot " << i << " should have been admitted";
        // The kept weights are not renormalised: exactly the dropless model's weights.
        EXPECT_EQ(r.weights[i], d.weights[i]) << "slot " << i;
      } else {
        EXPECT_EQ(r.weights[i], 0.0f) << "slot " << i << " should have been dropped (weight 0)";
      }
    }
    for (int64_t t = 0; t < T; ++t) {
      bool any_kept = false;
      for (int64_t j = 0; j < K; ++j) any_kept = any_kept || kept[t * K + j];
      if (!any_kept) {
        saw_fully_dropped_token = true;
        for (int64_t h = 0; h < H; ++h) EXPECT_EQ(r.output[t * H + h], 0.0f) << "fully dropped token " << t;
      }
    }
    pimoe_stats_snapshot s = get_stats(m.get());
    EXPECT_EQ(s.forward_calls, calls);
    EXPECT_EQ(s.tokens, tokens);
    EXPECT_EQ(s.dropped_tokens, dropped_total);
    expect_loads(m.get(), loads);
    expect_load_metrics(s, loads);
    // aux_loss counts choices before drops: by hand, and equal to the dropless twin's.
    const std::vector<double> z = router_logits(m.get(), in, T, H, E);
    const CallLosses want = call_losses(z, r.ids, T, E, K, 1.0, alpha);
    EXPECT_TRUE(rel_near(s.aux_loss, want.aux, 1e-4, "aux_loss with capacity"));
    EXPECT_TRUE(rel_near(s.z_loss, want.z, 1e-4, "z_loss with capacity"));
    pimoe_stats_snapshot sd = get_stats(dropless.get());
    EXPECT_TRUE(rel_near(s.aux_loss, sd.aux_loss, 1e-9, "aux_loss vs the dropless twin"));
    EXPECT_EQ(sd.dropped_tokens, 0u);
  }
  EXPECT_GT(dropped_total, 0u) << "test setup: the capacity limit never bit";
  std::printf("[ info ] capacity test: %llu of %llu assignments dropped; fully dropped token seen: %s\n",
              static_cast<unsigned long long>(dropped_total), static_cast<unsigned long long>(tokens * K),
              saw_fully_dropped_token ? "yes" : "no");
}

// ------------------------------------------------------------------------------------------------ edge cases

TEST(Stats, SingleExpert) {
  constexpr int64_t H = 8;
  SmallConfig cfg;
  cfg.hidden = H;
  cfg.experts = 1;
  cfg.top_k = 1;
  OptionsPtr o = small_options(cfg);
  PIMOE_ASSERT_OK(pimoe_options_set_float(o.get(), PIMOE_OPT_AUX_LOSS_COEF, 0.25));
  ModelPtr m = create_model(o.get());
  ASSERT_NE(m, nullptr);
  std::vector<float> in = random_input(5 * H, 3);
  ForwardResult r = forward(m.get(), in, 1, 5, H, 1, true);
  ASSERT_EQ(r.status, PIMOE_OK) << last_error();
  for (int64_t t = 0; t < 5; ++t) {
    EXPECT_EQ(r.ids[t], 0);
    EXPECT_FLOAT_EQ(r.weights[t], 1.0f);
  }
  pimoe_stats_snapshot s = get_stats(m.get());
  EXPECT_EQ(s.num_experts, 1u);
  EXPECT_EQ(s.expert_utilization, 1.0);
  EXPECT_NEAR(s.load_cv, 0.0, 1e-12);
  EXPECT_NEAR(s.load_max_violation, 0.0, 1e-12);
  EXPECT_NEAR(s.load_jain_index, 1.0, 1e-12);
  EXPECT_EQ(s.load_normalized_entropy, 1.0);  // documented: 1 when E = 1
  EXPECT_NEAR(s.routing_confidence, 1.0, 1e-6);
  EXPECT_NEAR(s.aux_loss, 0.25, 1e-6);  // alpha * 1 * (f = 1) * (P = 1)
  const std::vector<double> z = router_logits(m.get(), in, 5, H, 1);
  double zl = 0;
  for (double v : z) zl += v * v / 5.0;  // logsumexp of one logit is the logit
  EXPECT_TRUE(rel_near(s.z_loss, zl, 1e-4, "z_loss, E = 1"));
  expect_loads(m.get(), {5});
}

TEST(Stats, LatencyPercentilesOverManyCalls) {
  ModelPtr m = small_model();
  ASSERT_NE(m, nullptr);
  std::vector<float> in = random_input(16, 4);
  std::vector<float> out(16);
  const int calls = 120;
  for (int i = 0; i < calls; ++i)
    ASSERT_EQ(pimoe_forward(m.get(), in.data(), in.size(), 1, 1, out.data(), out.size(), nullptr, nullptr, 0),
              PIMOE_OK);
  pimoe_stats_snapshot s = get_stats(m.get());
  EXPECT_EQ(s.forward_calls, static_cast<uint64_t>(calls));
  EXPECT_EQ(s.tokens, static_cast<uint64_t>(calls));
  EXPECT_GT(s.latency_p50_ms, 0.0);
  EXPECT_LE(s.latency_p50_ms, s.latency_p95_ms);
  EXPECT_LE(s.latency_p95_ms, s.latency_p99_ms);
  EXPECT_GT(s.latency_mean_ms, 0.0);
  EXPECT_GT(s.latency_last_ms, 0.0);
  EXPECT_NEAR(s.tokens_per_second, calls / (s.latency_mean_ms * calls / 1000.0),
              1e-3 * calls / (s.latency_mean_ms * calls / 1000.0));
  // Loads without routing buffers are still counted: 120 tokens * top-2.
  std::vector<uint64_t> loads(8);
  PIMOE_ASSERT_OK(pimoe_stats_expert_loads(m.get(), loads.data(), loads.size()));
  uint64_t total = 0;
  for (uint64_t l : loads) total += l;
  EXPECT_EQ(total, 2u * calls);
  // The same token every time: only two experts ever chosen.
  int used = 0;
  for (uint64_t l : loads) used += l > 0;
  EXPECT_EQ(used, 2);
  EXPECT_DOUBLE_EQ(s.expert_utilization, 2.0 / 8.0);
  // Only two experts used, equally: max violation (L/2 - L/8) / (L/8) = 3.
  EXPECT_NEAR(s.load_max_violation, 3.0, 1e-9);
  EXPECT_NEAR(s.load_jain_index, 0.25, 1e-9);
  EXPECT_NEAR(s.load_normalized_entropy, std::log(2.0) / std::log(8.0), 1e-9);
}

// ------------------------------------------------------------------------------------ weight quantisation error

// weight_quant_rel_rms_error and weight_quant_max_abs_error, recomputed here from pimoe.h's definition: the fp32
// weights w are the same seed's fp32 layer's (the seeded values do not depend on the storage format), deq(q(w)) what
// pimoe_tensor_read gives of the compact layer; plain loops in double over every expert and shared-expert matrix.
namespace quant {

struct Format {
  const char *name;  // test name part
  const char *dtype;
  int64_t group;
  bool zero_point;
};

const Format kFormats[] = {
    {"bf16", "bf16", 32, false},         {"fp16", "fp16", 32, false},       {"int8", "int8", 32, false},
    {"int4_g32", "int4", 32, false},     {"int4_g64_zp", "int4", 64, true}, {"int4_g128", "int4", 128, false},
    {"fp8_e4m3", "fp8_e4m3", 32, false}, {"mxfp4", "mxfp4", 32, false},
};

void PrintTo(const Format &f, std::ostream *os) { *os << f.name; }  // gtest's name of a failing parameter

// SwiGLU experts (gate, up, down) and a shared expert; H = 40 pads the 4-bit blocks, I = 136 leaves a partial fp8
// block. `dtype` null: the layer's weight_dtype is left at its default (fp32 for pimoe_create, "auto" for a load).
OptionsPtr layer_options(const Format *f) {
  SmallConfig cfg;
  cfg.hidden = 40;
  cfg.intermediate = 136;
  cfg.experts = 4;
  cfg.seed = 4100;
  OptionsPtr o = small_options(cfg);
  EXPECT_EQ(pimoe_options_set_int(o.get(), PIMOE_OPT_ACTIVATION, PIMOE_ACT_SWIGLU), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_int(o.get(), PIMOE_OPT_SHARED_WIDTH, 24), PIMOE_OK) << last_error();
  if (f) {
    EXPECT_EQ(pimoe_options_set_string(o.get(), PIMOE_OPT_WEIGHT_DTYPE, f->dtype), PIMOE_OK) << last_error();
    EXPECT_EQ(pimoe_options_set_int(o.get(), PIMOE_OPT_WEIGHT_GROUP_SIZE, f->group), PIMOE_OK) << last_error();
    EXPECT_EQ(pimoe_options_set_int(o.get(), PIMOE_OPT_WEIGHT_ZERO_POINT, f->zero_point), PIMOE_OK) << last_error();
  }
  return o;
}

bool ends_with(const std::string &s, const std::string &tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_expert_matrix(const std::string &name) {
  const bool projection = ends_with(name, ".gate.weight") || ends_with(name, ".up.weight") ||
                          ends_with(name, ".down.weight");
  return projection && (name.rfind("experts.", 0) == 0 || name.rfind("shared.", 0) == 0);
}

struct Error {
  double rel_rms, max_abs;
  int matrices;
};

// Over the expert and shared-expert matrices of `stored` but those of the experts in `fp32_experts` (held in fp32:
// not quantised, so not part of the measure).
Error expected_error(const pimoe_model *fp32, const pimoe_model *stored, const std::vector<int> &fp32_experts = {}) {
  double err2 = 0, w2 = 0, max_abs = 0;
  int matrices = 0;
  for (int64_t i = 0; i < pimoe_tensor_count(stored); ++i) {
    const std::string name = pimoe_tensor_name(stored, i);
    if (!is_expert_matrix(name)) continue;
    bool skip = false;
    for (int e : fp32_experts) skip = skip || name.rfind("experts." + std::to_string(e) + ".", 0) == 0;
    if (skip) continue;
    const std::vector<float> w = read_tensor(fp32, name.c_str()), q = read_tensor(stored, name.c_str());
    EXPECT_EQ(w.size(), q.size()) << name;
    for (size_t j = 0; j < w.size() && j < q.size(); ++j) {
      const double d = static_cast<double>(w[j]) - static_cast<double>(q[j]);
      err2 += d * d;
      w2 += static_cast<double>(w[j]) * static_cast<double>(w[j]);
      max_abs = std::max(max_abs, std::fabs(d));
    }
    ++matrices;
  }
  return {std::sqrt(err2 / w2), max_abs, matrices};
}

// Relative to `want` alone (rel_near above is absolute below 1, and these errors are far below 1).
::testing::AssertionResult strictly_rel_near(double got, double want, const std::string &what) {
  if (std::fabs(got - want) <= 1e-9 * std::fabs(want)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << std::setprecision(17) << what << ": library " << got << ", by hand " << want;
}

void expect_error(const pimoe_model *m, const Error &want, const char *what) {
  const pimoe_stats_snapshot s = get_stats(m);
  EXPECT_GT(want.rel_rms, 0.0) << what << ": the seeded weights do not fit the format exactly";
  EXPECT_TRUE(strictly_rel_near(s.weight_quant_rel_rms_error, want.rel_rms, std::string(what) + ", rel RMS"));
  EXPECT_TRUE(strictly_rel_near(s.weight_quant_max_abs_error, want.max_abs, std::string(what) + ", max abs"));
}

void expect_unknown(const pimoe_model *m, const char *what) {
  const pimoe_stats_snapshot s = get_stats(m);
  EXPECT_TRUE(std::isnan(s.weight_quant_rel_rms_error)) << what << ": " << s.weight_quant_rel_rms_error;
  EXPECT_TRUE(std::isnan(s.weight_quant_max_abs_error)) << what << ": " << s.weight_quant_max_abs_error;
}

OptionsPtr cpu_load_options(const char *weight_dtype) {
  OptionsPtr o = make_options();
  EXPECT_EQ(pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, "cpu"), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_string(o.get(), PIMOE_OPT_WEIGHT_DTYPE, weight_dtype), PIMOE_OK) << last_error();
  return o;
}

ModelPtr load_file(const std::string &path, const pimoe_options *o) {
  pimoe_model *m = nullptr;
  const pimoe_status s = pimoe_load(path.c_str(), o, &m);
  EXPECT_EQ(s, PIMOE_OK) << describe(s);
  return ModelPtr(s == PIMOE_OK ? m : nullptr);
}

std::string temp_path(const std::string &name) {
  return ::testing::TempDir() + "pimoe_stats_" + std::to_string(::getpid()) + "_" + name + ".safetensors";
}

}  // namespace quant

class QuantError : public ::testing::TestWithParam<quant::Format> {};

// Created in the format, and loaded from an fp32 file into it: the error against the fp32 weights; a file saved in
// the format and loaded again: unknown, whatever weight_dtype it is loaded with.
TEST_P(QuantError, MatchesHandComputationAndIsUnknownWhenLoadedQuantised) {
  const quant::Format f = GetParam();
  OptionsPtr fp32_options = quant::layer_options(nullptr);
  OptionsPtr compact_options = quant::layer_options(&f);
  ModelPtr fp32 = create_model(fp32_options.get());
  ModelPtr compact = create_model(compact_options.get());
  ASSERT_TRUE(fp32 && compact);

  const quant::Error want = quant::expected_error(fp32.get(), compact.get());
  EXPECT_EQ(want.matrices, 4 * 3 + 3);  // every expert's gate, up and down, and the shared expert's
  quant::expect_error(compact.get(), want, "created");
  // Fixed at creation: forward calls and a reset change nothing.
  const std::vector<float> x = random_input(3 * 40, 5);
  ASSERT_EQ(forward(compact.get(), x, 1, 3, 40, 2, false).status, PIMOE_OK) << last_error();
  PIMOE_ASSERT_OK(pimoe_stats_reset(compact.get()));
  quant::expect_error(compact.get(), want, "after a forward call and a reset");

  const std::string fp32_path = quant::temp_path(std::string(f.name) + "_fp32");
  PIMOE_ASSERT_OK(pimoe_save(fp32.get(), fp32_path.c_str()));
  {
    ModelPtr loaded = quant::load_file(fp32_path, compact_options.get());
    ASSERT_TRUE(loaded);
    quant::expect_error(loaded.get(), want, "an fp32 file loaded into the format");
  }
  std::remove(fp32_path.c_str());

  const std::string compact_path = quant::temp_path(f.name);
  PIMOE_ASSERT_OK(pimoe_save(compact.get(), compact_path.c_str()));
  // On the CPU backend, as the layers above: "auto" would pick a GPU where there is one, which holds no int8.
  OptionsPtr as_stored = quant::cpu_load_options("auto");  // the file's format, its bytes kept
  OptionsPtr as_fp32 = quant::cpu_load_options("fp32");
  OptionsPtr as_int8 = quant::cpu_load_options("int8");
  for (const pimoe_options *o : {as_stored.get(), as_fp32.get(), as_int8.get()}) {
    ModelPtr loaded = quant::load_file(compact_path, o);
    ASSERT_TRUE(loaded);
    quant::expect_unknown(loaded.get(), o == as_stored.get() ? "a compact file loaded as stored"
                                        : o == as_fp32.get() ? "a compact file loaded into fp32"
                                                             : "a compact file loaded into int8");
  }
  std::remove(compact_path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Formats, QuantError, ::testing::ValuesIn(quant::kFormats),
                         [](const ::testing::TestParamInfo<quant::Format> &p) { return std::string(p.param.name); });

TEST(QuantErrorFp32, Fp32LayerReportsZero) {
  OptionsPtr o = quant::layer_options(nullptr);
  ModelPtr m = create_model(o.get());
  ASSERT_TRUE(m);
  const pimoe_stats_snapshot s = get_stats(m.get());
  EXPECT_EQ(s.weight_quant_rel_rms_error, 0.0);
  EXPECT_EQ(s.weight_quant_max_abs_error, 0.0);
  // So does the fp32 layer loaded back from its fp32 file.
  const std::string path = quant::temp_path("fp32_only");
  PIMOE_ASSERT_OK(pimoe_save(m.get(), path.c_str()));
  OptionsPtr auto_options = make_options();
  ModelPtr loaded = quant::load_file(path, auto_options.get());
  std::remove(path.c_str());
  ASSERT_TRUE(loaded);
  const pimoe_stats_snapshot l = get_stats(loaded.get());
  EXPECT_EQ(l.weight_quant_rel_rms_error, 0.0);
  EXPECT_EQ(l.weight_quant_max_abs_error, 0.0);
}

// Per-expert formats: an expert kept in fp32 takes no part in the measure (neither its error nor its weights).
TEST(QuantErrorFp32, MixedFormatsMeasureTheQuantisedMatricesOnly) {
  const quant::Format int4{"int4_g32", "int4", 32, false};
  OptionsPtr fp32_options = quant::layer_options(nullptr);
  OptionsPtr mixed_options = quant::layer_options(&int4);
  PIMOE_ASSERT_OK(pimoe_options_set_expert_weight_dtype(mixed_options.get(), 0, "fp32"));
  PIMOE_ASSERT_OK(pimoe_options_set_expert_weight_dtype(mixed_options.get(), 2, "bf16"));
  ModelPtr fp32 = create_model(fp32_options.get());
  ModelPtr mixed = create_model(mixed_options.get());
  ASSERT_TRUE(fp32 && mixed);
  const quant::Error want = quant::expected_error(fp32.get(), mixed.get(), {0});
  EXPECT_EQ(want.matrices, 3 * 3 + 3);
  quant::expect_error(mixed.get(), want, "int4 with expert 0 in fp32 and expert 2 in bf16");
}
