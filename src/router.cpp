// SPDX-License-Identifier: MIT
#include "router.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace pimoe {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Selects the k largest of p[0..E) in descending order; ties go to the lower index (as torch.topk on CPU).
void top_k(const double *p, int64_t E, int64_t k, int32_t *ids) {
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = -1;
    for (int64_t e = 0; e < E; ++e) {
      bool taken = false;
      for (int64_t i = 0; i < j; ++i) taken = taken || ids[i] == e;
      if (!taken && (best < 0 || p[e] > p[best])) best = e;
    }
    ids[j] = static_cast<int32_t>(best);
  }
}

// Per-expert capacity of this call: C = ceil(T*k*cf/E) each, or with dynamic capacity the same E*C slots shared out
// in proportion to the load average (pimoe.h, DYNAMIC_CAPACITY).
void compute_capacities(const RouterConfig &config, const float *load_ema, const RoutePlan &plan,
                        RouterScratch &scratch) {
  const int64_t T = plan.tokens, k = plan.top_k, E = plan.num_experts;
  const auto capacity =
      static_cast<int64_t>(std::ceil(static_cast<double>(T * k) * config.capacity_factor / static_cast<double>(E)));
  std::vector<int64_t> &cap = scratch.capacity;
  cap.assign(static_cast<size_t>(E), capacity);
  if (!config.dynamic_capacity || load_ema == nullptr) return;
  const int64_t total = E * capacity;
  double sum = 0.0;
  for (int64_t e = 0; e < E; ++e) sum += load_ema[e];
  std::vector<double> &fraction = scratch.capacity_fraction;
  fraction.resize(static_cast<size_t>(E));
  int64_t given = 0;
  for (int64_t e = 0; e < E; ++e) {
    const double quota = static_cast<double>(total) * load_ema[e] / sum;
    cap[e] = static_cast<int64_t>(std::floor(quota + 1e-9));
    fraction[e] = quota - static_cast<double>(cap[e]);
    given += cap[e];
  }
  for (int64_t left = total - given; left > 0; --left) {
    int64_t best = 0;
    for (int64_t e = 1; e < E; ++e) {
      if (fraction[e] > fraction[best]) best = e;
    }
    ++cap[best];
    fraction[best] = -kInf;
  }
}

void apply_capacity(const RouterConfig &config, const float *load_ema, RoutePlan &plan, RouterScratch &scratch) {
  const int64_t T = plan.tokens, k = plan.top_k;
  plan.dropped_count = 0;
  if (config.capacity_factor <= 0.0 || config.expert_choice) return;
  compute_capacities(config, load_ema, plan, scratch);
  scratch.admitted.assign(static_cast<size_t>(plan.num_experts), 0);
  for (int64_t j = 0; j < k; ++j) {  // first choices of every token before any second choice (GShard order)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t a = t * k + j;
      const auto e = static_cast<size_t>(plan.expert[a]);
      int64_t &admitted = scratch.admitted[e];
      if (admitted < scratch.capacity[e]) {
        ++admitted;
      } else {
        plan.dropped[a] = 1;
        plan.weight[a] = 0.0f;
        ++plan.dropped_count;
      }
    }
  }
}

// Counting sort of the kept assignments by expert. Assignments to callback experts stay out of `order` (the backend
// never sees them) and are listed in callback_order instead; unused expert-choice slots (expert -1) in neither.
void sort_by_expert(const RouterConfig &config, RoutePlan &plan, RouterScratch &scratch) {
  const int64_t A = plan.tokens * plan.top_k, E = plan.num_experts;
  const bool callbacks = config.has_callback_experts;
  auto to_backend = [&](int64_t a) {
    return !plan.dropped[a] && plan.expert[a] >= 0 && !(callbacks && config.callback_expert[plan.expert[a]]);
  };
  std::fill(plan.counts.begin(), plan.counts.end(), 0);
  for (int64_t a = 0; a < A; ++a) {
    if (to_backend(a)) ++plan.counts[static_cast<size_t>(plan.expert[a])];
  }
  plan.offsets[0] = 0;
  for (int64_t e = 0; e < E; ++e) plan.offsets[e + 1] = plan.offsets[e] + plan.counts[e];
  std::vector<int64_t> &cursor = scratch.cursor;
  cursor.assign(plan.offsets.begin(), plan.offsets.end() - 1);
  for (int64_t a = 0; a < A; ++a) {
    if (to_backend(a)) plan.order[cursor[plan.expert[a]]++] = a;
  }
  for (int64_t a = 0; a < A; ++a) plan.position[a] = -1;
  for (int64_t p = 0; p < plan.kept(); ++p) plan.position[plan.order[p]] = p;
  plan.loads.assign(plan.counts.begin(), plan.counts.end());
  plan.callback_order.clear();
  if (!callbacks) return;
  for (int64_t e = 0; e < E; ++e) {
    if (!config.callback_expert[e]) continue;
    for (int64_t a = 0; a < A; ++a) {
      if (plan.expert[a] == e && !plan.dropped[a]) {
        plan.callback_order.push_back(a);
        ++plan.loads[e];
      }
    }
  }
}

// A group's score from its experts' selection scores s[0..size): the largest, or the sum of the two largest.
double group_score(GroupScore kind, const double *s, int64_t size) {
  double best = -kInf, second = -kInf;
  for (int64_t i = 0; i < size; ++i) {
    if (s[i] > best) {
      second = best;
      best = s[i];
    } else if (s[i] > second) {
      second = s[i];
    }
  }
  return kind == GroupScore::Max || size < 2 ? best : best + second;
}

// Multi-level group limit (pimoe.h, GROUP_LEVELS): sets sel[e] = -inf outside the groups kept at the last level.
void apply_group_tree(const RouterConfig &config, RouterScratch &scratch) {
  const int64_t E = config.num_experts;
  std::vector<double> &sel = scratch.selection;
  std::vector<uint8_t> &alive = scratch.group_alive;
  alive.assign(static_cast<size_t>(E), 1);
  int64_t size = E;
  for (const auto &[groups, keep] : config.group_levels) {
    size /= groups;
    const int64_t n = E / size;
    for (int64_t g = 0; g < n; ++g) {
      if (!alive[g * size]) {
        scratch.group_score[g] = -kInf;
        continue;
      }
      scratch.group_score[g] = group_score(config.group_score, sel.data() + g * size, size);
    }
    int32_t *kept = scratch.group_ids.data();
    top_k(scratch.group_score.data(), n, keep, kept);
    std::fill(alive.begin(), alive.end(), 0);
    for (int64_t i = 0; i < keep; ++i) std::fill(alive.begin() + kept[i] * size, alive.begin() + (kept[i] + 1) * size, 1);
  }
  for (int64_t e = 0; e < E; ++e) {
    if (!alive[e]) sel[e] = -kInf;
  }
}

// Phi-3.5-MoE's sparsemixer at inference (pimoe.h, SPARSEMIXER_EPS): the best and second-best logit, each weighted by
// the softmax, evaluated at it, of the logits within 2 eps (relative) of it. The mask is computed in fp32, as
// transformers computes it on fp32 logits; the softmax in double. Ties to the lower index (torch.max).
void sparsemixer_token(const RouterConfig &config, const float *z, int32_t *ids, double *weights) {
  const int64_t E = config.num_experts;
  const auto inv_tau = static_cast<float>(1.0 / config.temperature);
  const auto limit = static_cast<float>(2.0 * config.sparsemixer_eps);
  auto s = [&](int64_t e) { return config.temperature == 1.0 ? z[e] : z[e] * inv_tau; };
  int64_t first = 0;
  for (int64_t e = 1; e < E; ++e) {
    if (s(e) > s(first)) first = e;
  }
  int64_t second = first == 0 ? 1 : 0;
  for (int64_t e = 0; e < E; ++e) {
    if (e != first && s(e) > s(second)) second = e;
  }
  for (int slot = 0; slot < 2; ++slot) {
    const int64_t chosen = slot == 0 ? first : second;
    const float m = s(chosen);
    double sum = 0.0;
    for (int64_t e = 0; e < E; ++e) {
      if (slot == 1 && e == first) continue;  // masked out before the second pick
      const float factor = std::max(std::fabs(s(e)), m);
      if ((m - s(e)) / factor > limit) continue;  // NaN (0 / 0) compares false: kept, as in torch
      sum += std::exp(static_cast<double>(s(e)) - static_cast<double>(m));
    }
    ids[slot] = static_cast<int32_t>(chosen);
    weights[slot] = 1.0 / sum;
  }
}

// Scores, selects and weighs one token's experts for any router other than plain softmax top-k: softmax or sigmoid
// scores, selection by score + bias within the best groups, weights from the unbiased scores.
void route_token_general(const RouterConfig &config, const float *z, const float *bias, RoutePlan &plan,
                         RouterScratch &scratch, int64_t t, double &z_loss_sum, double &top1_sum) {
  const int64_t E = config.num_experts, k = config.top_k;
  const double inv_tau = 1.0 / config.temperature;
  std::vector<double> &prob = scratch.probability, &sel = scratch.selection;
  double z_max = z[0];
  for (int64_t e = 1; e < E; ++e) z_max = std::max(z_max, static_cast<double>(z[e]));
  double sum_raw = 0.0;
  for (int64_t e = 0; e < E; ++e) sum_raw += std::exp(z[e] - z_max);
  const double lse = z_max + std::log(sum_raw);
  z_loss_sum += lse * lse;

  const bool sigmoid = config.scoring == RouterScoring::Sigmoid;
  double score_sum = 0.0;
  for (int64_t e = 0; e < E; ++e) {
    prob[e] = sigmoid ? 1.0 / (1.0 + std::exp(-z[e] * inv_tau)) : std::exp((z[e] - z_max) * inv_tau);
    score_sum += prob[e];
  }
  if (!sigmoid) {
    for (int64_t e = 0; e < E; ++e) prob[e] /= score_sum;
  }
  // Aux loss P_i: the scores normalised per token (softmax: already; sigmoid: s_i / sum_j s_j).
  const double p_scale = sigmoid ? 1.0 / score_sum : 1.0;
  for (int64_t e = 0; e < E; ++e) scratch.probability_sum[e] += prob[e] * p_scale;

  float *scores = plan.scores.data() + t * E;
  for (int64_t e = 0; e < E; ++e) scores[e] = static_cast<float>(prob[e]);
  if (config.expert_choice) {  // experts pick tokens once every token is scored
    top1_sum += *std::max_element(prob.begin(), prob.begin() + E);
    return;
  }
  if (config.sparsemixer_eps > 0.0) {
    int32_t *ids = plan.expert.data() + t * k;
    double weights[2];
    sparsemixer_token(config, z, ids, weights);
    top1_sum += prob[ids[0]];
    for (int64_t j = 0; j < 2; ++j) {
      plan.choice_count[ids[j]] += 1.0;
      plan.weight[t * k + j] = static_cast<float>(weights[j] * config.routed_scaling_factor);
    }
    return;
  }

  for (int64_t e = 0; e < E; ++e) sel[e] = config.selection_bias ? prob[e] + static_cast<double>(bias[e]) : prob[e];
  const int64_t G = config.num_groups;
  if (!config.group_levels.empty()) {
    apply_group_tree(config, scratch);
  } else if (G > 1) {
    const int64_t size = E / G;
    for (int64_t g = 0; g < G; ++g) {
      scratch.group_score[g] = group_score(config.group_score, sel.data() + g * size, size);
    }
    int32_t *kept = scratch.group_ids.data();
    top_k(scratch.group_score.data(), G, config.topk_groups, kept);
    for (int64_t g = 0; g < G; ++g) {
      bool keep = false;
      for (int64_t i = 0; i < config.topk_groups; ++i) keep = keep || kept[i] == g;
      if (!keep) std::fill(sel.begin() + g * size, sel.begin() + (g + 1) * size, -kInf);
    }
  }

  int32_t *ids = plan.expert.data() + t * k;
  top_k(sel.data(), E, k, ids);
  top1_sum += prob[ids[0]];
  double chosen_sum = 0.0;
  for (int64_t j = 0; j < k; ++j) {
    chosen_sum += prob[ids[j]];
    plan.choice_count[ids[j]] += 1.0;
  }
  double scale = 1.0;
  if (config.renormalize) scale = 1.0 / (sigmoid ? chosen_sum + 1e-20 : chosen_sum);
  for (int64_t j = 0; j < k; ++j) {
    plan.weight[t * k + j] = static_cast<float>(prob[ids[j]] * scale * config.routed_scaling_factor);
  }
}

// Expert-choice routing (pimoe.h, ROUTING_MODE): every expert takes the C tokens of largest score; a token's slots
// list its experts by descending weight, then unused slots. Needs plan.scores filled.
void route_expert_choice(const RouterConfig &config, RoutePlan &plan, RouterScratch &scratch) {
  const int64_t T = plan.tokens, E = plan.num_experts;
  const double cf = config.capacity_factor > 0.0 ? config.capacity_factor : static_cast<double>(config.top_k);
  const int64_t C =
      std::min(T, static_cast<int64_t>(std::ceil(static_cast<double>(T) * cf / static_cast<double>(E))));
  scratch.ec_chosen.assign(static_cast<size_t>(T * E), 0);
  scratch.ec_tokens.resize(static_cast<size_t>(T));
  for (int64_t e = 0; e < E; ++e) {
    for (int64_t t = 0; t < T; ++t) scratch.ec_tokens[t] = t;
    auto higher = [&](int64_t a, int64_t b) {
      const float sa = plan.scores[a * E + e], sb = plan.scores[b * E + e];
      return sa > sb || (sa == sb && a < b);
    };
    std::partial_sort(scratch.ec_tokens.begin(), scratch.ec_tokens.begin() + C, scratch.ec_tokens.end(), higher);
    for (int64_t i = 0; i < C; ++i) scratch.ec_chosen[scratch.ec_tokens[i] * E + e] = 1;
    plan.choice_count[e] = static_cast<double>(C);
  }
  for (int64_t t = 0; t < T; ++t) {
    int32_t *ids = plan.expert.data() + t * E;
    float *w = plan.weight.data() + t * E;
    const float *c = plan.scores.data() + t * E;
    int64_t n = 0;
    for (int64_t e = 0; e < E; ++e) {
      if (scratch.ec_chosen[t * E + e]) ids[n++] = static_cast<int32_t>(e);
    }
    std::sort(ids, ids + n, [&](int32_t a, int32_t b) { return c[a] > c[b] || (c[a] == c[b] && a < b); });
    for (int64_t j = 0; j < n; ++j) w[j] = static_cast<float>(c[ids[j]] * config.routed_scaling_factor);
    for (int64_t j = n; j < E; ++j) {
      ids[j] = -1;
      w[j] = 0.0f;
    }
  }
}

}  // namespace

void build_route_plan(const RouterConfig &config, const float *logits, int64_t tokens, RoutePlan &plan,
                      RouterScratch &scratch, const float *selection_bias, const float *load_ema) {
  const int64_t E = config.num_experts, k = config.slots(), A = tokens * k;
  plan.tokens = tokens;
  plan.top_k = k;
  plan.num_experts = E;
  plan.expert.resize(A);
  plan.weight.resize(A);
  plan.dropped.assign(A, 0);
  plan.position.resize(A);
  plan.counts.resize(E);
  plan.offsets.resize(E + 1);
  plan.order.resize(A);
  plan.scores.resize(static_cast<size_t>(tokens * E));

  // Per-call sums for the aux loss: f_i counts choices, P_i sums probabilities.
  std::vector<double> &prob = scratch.probability, &prob_sum = scratch.probability_sum;
  std::vector<double> &choice_count = plan.choice_count;
  prob.resize(E);
  prob_sum.assign(E, 0.0);
  choice_count.assign(E, 0.0);
  double z_loss_sum = 0.0, top1_sum = 0.0;
  const double inv_tau = 1.0 / config.temperature;

  const bool plain = config.plain_softmax();
  if (!plain) {
    scratch.selection.resize(E);
    scratch.group_score.resize(static_cast<size_t>(std::max<int64_t>(config.num_groups, E)));
    scratch.group_ids.resize(static_cast<size_t>(std::max<int64_t>(config.num_groups, E)));
    for (int64_t t = 0; t < tokens; ++t) {
      route_token_general(config, logits + t * E, selection_bias, plan, scratch, t, z_loss_sum, top1_sum);
    }
  }
  for (int64_t t = 0; plain && t < tokens; ++t) {  // plain softmax top-k: the default layer's fast path
    const float *z = logits + t * E;
    double z_max = z[0];
    for (int64_t e = 1; e < E; ++e) z_max = std::max(z_max, static_cast<double>(z[e]));
    double sum_tau = 0.0, sum_raw = 0.0;
    for (int64_t e = 0; e < E; ++e) {
      prob[e] = std::exp((z[e] - z_max) * inv_tau);
      sum_tau += prob[e];
      if (inv_tau != 1.0) sum_raw += std::exp(z[e] - z_max);
    }
    if (inv_tau == 1.0) sum_raw = sum_tau;
    const double lse = z_max + std::log(sum_raw);
    z_loss_sum += lse * lse;
    float *scores = plan.scores.data() + t * E;
    for (int64_t e = 0; e < E; ++e) {
      prob[e] /= sum_tau;
      prob_sum[e] += prob[e];
      scores[e] = static_cast<float>(prob[e]);
    }

    int32_t *ids = plan.expert.data() + t * k;
    top_k(prob.data(), E, k, ids);
    top1_sum += prob[ids[0]];
    double chosen_sum = 0.0;
    for (int64_t j = 0; j < k; ++j) {
      chosen_sum += prob[ids[j]];
      choice_count[ids[j]] += 1.0;
    }
    const double scale = config.renormalize ? 1.0 / chosen_sum : 1.0;
    for (int64_t j = 0; j < k; ++j) plan.weight[t * k + j] = static_cast<float>(prob[ids[j]] * scale);
  }

  if (config.expert_choice) route_expert_choice(config, plan, scratch);

  plan.balance = routing_balance(choice_count.data(), prob_sum.data(), E, tokens);
  plan.z_sum = z_loss_sum;
  plan.top1_probability_sum = top1_sum;

  apply_capacity(config, load_ema, plan, scratch);
  sort_by_expert(config, plan, scratch);
}

void routing_losses(const RouterConfig &config, RouteResult &route) {
  const double T = static_cast<double>(route.tokens);
  route.aux_loss = config.aux_loss_coef * static_cast<double>(config.num_experts) * route.balance;
  route.z_loss = route.z_sum / T;
}

}  // namespace pimoe
