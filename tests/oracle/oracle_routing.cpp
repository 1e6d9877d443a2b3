// SPDX-License-Identifier: MIT
// The reference oracle's routing and forward pass: see oracle.h. Plain loops, double accumulation, formulas straight
// from pimoe.h (the option table's routing features and "Routing of one token, in full").
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <utility>

#include "oracle.h"

namespace pimoe_oracle {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// row . x for a float row of length x.size() and a double vector.
double Dot(const float *row, const std::vector<double> &x) {
  double acc = 0.0;
  for (size_t i = 0; i < x.size(); ++i) acc += static_cast<double>(row[i]) * x[i];
  return acc;
}

// y = W v, W [rows, v.size()] row-major fp32.
std::vector<double> MatVec(const std::vector<float> &weight, size_t rows, const std::vector<double> &v) {
  std::vector<double> y(rows, 0.0);
  for (size_t r = 0; r < rows; ++r) y[r] = Dot(&weight[r * v.size()], v);
  return y;
}

std::vector<double> ToDouble(const float *x, size_t n) {
  return std::vector<double>(x, x + n);
}

// A (sub)group of consecutive experts [first, first + size).
struct Group {
  int32_t first = 0;
  int32_t size = 0;
  double score = 0.0;
};

}  // namespace

// ------------------------------------------------------------------------------------------------ token routing

std::vector<double> Scores(const Hyper &hp, const std::vector<double> &logits) {
  std::vector<double> c(logits.size(), 0.0);
  if (hp.sigmoid) {
    for (size_t e = 0; e < logits.size(); ++e) c[e] = 1.0 / (1.0 + std::exp(-logits[e] / hp.temperature));
    return c;
  }
  double m = -kInf;
  for (double z : logits) m = std::max(m, z / hp.temperature);
  double sum = 0.0;
  for (size_t e = 0; e < logits.size(); ++e) {
    c[e] = std::exp(logits[e] / hp.temperature - m);
    sum += c[e];
  }
  for (double &p : c) p /= sum;
  return c;
}

std::vector<double> GroupTreeMask(const std::vector<double> &q, const std::vector<Hyper::GroupLevel> &levels,
                                  bool group_max, double *gap, int32_t *eligible) {
  const int32_t num_experts = static_cast<int32_t>(q.size());
  double smallest_gap = kInf;
  std::vector<Group> kept = {Group{0, num_experts, 0.0}};
  for (const Hyper::GroupLevel &level : levels) {
    // Split every kept group into G_l subgroups of consecutive experts (in expert order).
    std::vector<Group> subs;
    for (const Group &g : kept) {
      const int32_t size = g.size / level.groups;
      for (int32_t i = 0; i < level.groups; ++i) subs.push_back(Group{g.first + i * size, size, 0.0});
    }
    for (Group &s : subs) {
      std::vector<double> v(q.begin() + s.first, q.begin() + s.first + s.size);
      std::sort(v.begin(), v.end(), std::greater<double>());
      s.score = (group_max || v.size() < 2) ? v[0] : v[0] + v[1];
    }
    // Best first; ties to the subgroup with the lower first expert.
    std::sort(subs.begin(), subs.end(), [](const Group &a, const Group &b) {
      if (a.score != b.score) return a.score > b.score;
      return a.first < b.first;
    });
    const size_t keep = std::min(static_cast<size_t>(std::max(level.keep, 1)), subs.size());
    if (keep < subs.size()) smallest_gap = std::min(smallest_gap, subs[keep - 1].score - subs[keep].score);
    subs.resize(keep);
    kept = std::move(subs);
  }
  std::vector<bool> in(q.size(), false);
  int32_t count = 0;
  for (const Group &g : kept) {
    for (int32_t e = g.first; e < g.first + g.size; ++e) in[static_cast<size_t>(e)] = true;
    count += g.size;
  }
  std::vector<double> masked = q;
  for (size_t e = 0; e < q.size(); ++e) {
    if (!in[e]) masked[e] = -kInf;
  }
  if (gap != nullptr) *gap = smallest_gap;
  if (eligible != nullptr) *eligible = count;
  return masked;
}

TokenRoute RouteLogits(const Weights &w, const Hyper &hp, const std::vector<double> &logits) {
  const size_t num_experts = logits.size();
  const size_t k = static_cast<size_t>(hp.top_k);
  TokenRoute r;
  r.logits = logits;
  r.probs = Scores(hp, logits);
  // Selection scores q = c + b; experts outside the kept groups get -inf.
  r.selection = r.probs;
  if (hp.HasSelectionBias()) {
    for (size_t e = 0; e < num_experts; ++e) r.selection[e] += static_cast<double>(w.selection_bias[e]);
  }
  r.selection = GroupTreeMask(r.selection, hp.EffectiveGroupLevels(), hp.group_max, &r.group_gap, &r.eligible);
  r.order.resize(num_experts);
  for (size_t e = 0; e < num_experts; ++e) r.order[e] = static_cast<int32_t>(e);
  // Descending selection score; equal scores keep ascending expert index (stable sort of an ascending list).
  std::stable_sort(r.order.begin(), r.order.end(), [&](int32_t a, int32_t b) {
    return r.selection[static_cast<size_t>(a)] > r.selection[static_cast<size_t>(b)];
  });
  r.weights.assign(k, 0.0);
  double chosen = 0.0;
  for (size_t j = 0; j < k; ++j) {
    r.weights[j] = r.probs[static_cast<size_t>(r.order[j])];
    chosen += r.weights[j];
  }
  if (hp.sparsemixer_eps > 0.0) {
    // sparsemixer: weight j = softmax over the logits within 2 eps (relative) of the j-th pick, at that pick; the
    // second pick's softmax leaves out the first pick.
    for (size_t j = 0; j < 2; ++j) {
      const size_t pick = static_cast<size_t>(r.order[j]);
      const double m = r.logits[pick] / hp.temperature;
      double sum = 0.0;
      for (size_t e = 0; e < r.logits.size(); ++e) {
        if (j == 1 && e == static_cast<size_t>(r.order[0])) continue;
        const double s = r.logits[e] / hp.temperature;
        if ((m - s) / std::max(std::fabs(s), m) > 2.0 * hp.sparsemixer_eps) continue;
        sum += std::exp(s - m);
      }
      r.weights[j] = 1.0 / sum;
    }
  } else if (hp.renormalize) {
    const double denominator = hp.sigmoid ? chosen + 1e-20 : chosen;
    for (double &v : r.weights) v /= denominator;
  }
  for (double &v : r.weights) v *= hp.routed_scaling;
  return r;
}

TokenRoute RouteToken(const Weights &w, const Hyper &hp, const float *x) {
  const size_t hidden = static_cast<size_t>(w.hidden);
  return RouteLogits(w, hp, RouterLogits(w, hp, ToDouble(x, hidden)));
}

std::vector<double> RouterLogits(const Weights &w, const Hyper &hp, const std::vector<double> &v) {
  std::vector<double> z = MatVec(w.router, static_cast<size_t>(w.num_experts), v);
  if (hp.router_logit_bias) {
    for (size_t e = 0; e < z.size(); ++e) z[e] += static_cast<double>(w.router_logit_bias[e]);
  }
  return z;
}

// ------------------------------------------------------------------------------------------------ expert choice

int64_t ExpertChoiceCapacity(int64_t tokens, int32_t num_experts, int32_t top_k, double capacity_factor) {
  const double cf = capacity_factor > 0.0 ? capacity_factor : static_cast<double>(top_k);
  const int64_t c =
      static_cast<int64_t>(std::ceil(static_cast<double>(tokens) * cf / static_cast<double>(num_experts)));
  return std::min(tokens, c);
}

void ExpertChoiceRoute(const std::vector<double> &scores, int64_t tokens, int32_t num_experts, int64_t capacity,
                       double scaling, std::vector<int32_t> *ids, std::vector<double> *weights) {
  const size_t t_count = static_cast<size_t>(tokens);
  const size_t ne = static_cast<size_t>(num_experts);
  std::vector<std::vector<std::pair<int32_t, double>>> per_token(t_count);
  for (size_t e = 0; e < ne; ++e) {
    std::vector<size_t> order(t_count);
    for (size_t t = 0; t < t_count; ++t) order[t] = t;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return scores[a * ne + e] > scores[b * ne + e]; });
    const size_t take = std::min(t_count, static_cast<size_t>(std::max<int64_t>(capacity, 0)));
    for (size_t i = 0; i < take; ++i) {
      const size_t t = order[i];
      per_token[t].push_back({static_cast<int32_t>(e), scores[t * ne + e] * scaling});
    }
  }
  ids->assign(t_count * ne, -1);
  weights->assign(t_count * ne, 0.0);
  for (size_t t = 0; t < t_count; ++t) {
    std::vector<std::pair<int32_t, double>> &list = per_token[t];
    std::sort(list.begin(), list.end(), [](const std::pair<int32_t, double> &a, const std::pair<int32_t, double> &b) {
      if (a.second != b.second) return a.second > b.second;
      return a.first < b.first;
    });
    for (size_t j = 0; j < list.size(); ++j) {
      (*ids)[t * ne + j] = list[j].first;
      (*weights)[t * ne + j] = list[j].second;
    }
  }
}

// ------------------------------------------------------------------------------------------------ attention router

std::vector<double> AttentionContext(const Weights &w, const Hyper &hp, const float *input, int64_t seq) {
  const size_t hd = static_cast<size_t>(w.hidden);
  const size_t heads = static_cast<size_t>(hp.attention_heads);
  const size_t dh = static_cast<size_t>(hp.attention_head_dim);
  const size_t width = heads * dh;
  const size_t n = static_cast<size_t>(seq);
  std::vector<std::vector<double>> q(n), k(n), v(n);
  for (size_t t = 0; t < n; ++t) {
    const std::vector<double> x = ToDouble(input + t * hd, hd);
    q[t] = MatVec(w.attention_q, width, x);
    k[t] = MatVec(w.attention_k, width, x);
    v[t] = MatVec(w.attention_v, width, x);
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  std::vector<double> u(n * hd, 0.0);
  for (size_t t = 0; t < n; ++t) {
    std::vector<double> ctx(width, 0.0);
    const size_t last = hp.attention_causal ? t : n - 1;
    for (size_t h = 0; h < heads; ++h) {
      std::vector<double> s(last + 1, 0.0);
      double m = -kInf;
      for (size_t j = 0; j <= last; ++j) {
        double dot = 0.0;
        for (size_t d = 0; d < dh; ++d) dot += q[t][h * dh + d] * k[j][h * dh + d];
        s[j] = dot * scale;
        m = std::max(m, s[j]);
      }
      double sum = 0.0;
      for (double &a : s) {
        a = std::exp(a - m);
        sum += a;
      }
      for (size_t j = 0; j <= last; ++j) {
        const double a = s[j] / sum;
        for (size_t d = 0; d < dh; ++d) ctx[h * dh + d] += a * v[j][h * dh + d];
      }
    }
    const std::vector<double> ut = MatVec(w.attention_o, hd, ctx);
    std::copy(ut.begin(), ut.end(), u.begin() + static_cast<std::ptrdiff_t>(t * hd));
  }
  return u;
}

// ------------------------------------------------------------------------------------------------ attention combine

std::vector<double> CombineWeights(const Weights &w, const Hyper &hp, const float *x,
                                   const std::vector<std::vector<double>> &outputs, const std::vector<double> &weights) {
  const size_t hd = static_cast<size_t>(w.hidden);
  const size_t dc = static_cast<size_t>(hp.combine_dim);
  const std::vector<double> q = MatVec(w.combine_q, dc, ToDouble(x, hd));
  const double scale = 1.0 / std::sqrt(static_cast<double>(dc));
  std::vector<double> logit(weights.size(), -kInf);
  double m = -kInf;
  for (size_t j = 0; j < weights.size(); ++j) {
    if (!(weights[j] > 0.0)) continue;
    const std::vector<double> kj = MatVec(w.combine_k, dc, outputs[j]);
    double dot = 0.0;
    for (size_t d = 0; d < dc; ++d) dot += q[d] * kj[d];
    logit[j] = dot * scale + std::log(weights[j]);
    m = std::max(m, logit[j]);
  }
  std::vector<double> out(weights.size(), 0.0);
  double sum = 0.0;
  for (size_t j = 0; j < weights.size(); ++j) {
    if (!(weights[j] > 0.0)) continue;
    out[j] = std::exp(logit[j] - m);
    sum += out[j];
  }
  for (size_t j = 0; j < weights.size(); ++j) {
    if (weights[j] > 0.0) out[j] /= sum;
  }
  return out;
}

// ------------------------------------------------------------------------------------------------ capacity

int64_t Capacity(int64_t tokens, int32_t top_k, double capacity_factor, int32_t num_experts) {
  if (capacity_factor <= 0.0) return -1;
  return static_cast<int64_t>(
      std::ceil(static_cast<double>(tokens) * top_k * capacity_factor / static_cast<double>(num_experts)));
}

std::vector<int64_t> DynamicCapacities(int64_t total_slots, const std::vector<float> &ema) {
  const size_t ne = ema.size();
  double sum = 0.0;
  for (float m : ema) sum += static_cast<double>(m);
  std::vector<double> share(ne, 0.0);
  for (size_t e = 0; e < ne; ++e) {
    share[e] = sum > 0.0 ? static_cast<double>(total_slots) * static_cast<double>(ema[e]) / sum
                         : static_cast<double>(total_slots) / static_cast<double>(ne);
  }
  std::vector<int64_t> c(ne, 0);
  int64_t assigned = 0;
  for (size_t e = 0; e < ne; ++e) {
    c[e] = static_cast<int64_t>(std::floor(share[e] + 1e-9));
    assigned += c[e];
  }
  std::vector<size_t> order(ne);
  for (size_t e = 0; e < ne; ++e) order[e] = e;
  std::vector<double> frac(ne);
  for (size_t e = 0; e < ne; ++e) frac[e] = share[e] - static_cast<double>(c[e]);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return frac[a] > frac[b]; });
  int64_t remaining = total_slots - assigned;
  for (size_t i = 0; remaining > 0 && i < ne; ++i, --remaining) ++c[order[i]];
  return c;
}

// ------------------------------------------------------------------------------------------------ stateful steps

std::vector<float> AdaptiveBiasStep(const std::vector<float> &bias, const std::vector<uint64_t> &loads, double u) {
  double mean = 0.0;
  for (uint64_t c : loads) mean += static_cast<double>(c);
  if (!loads.empty()) mean /= static_cast<double>(loads.size());
  std::vector<float> out(bias.size());
  for (size_t e = 0; e < bias.size(); ++e) {
    const double c = static_cast<double>(loads[e]);
    const double sign = mean > c ? 1.0 : (mean < c ? -1.0 : 0.0);
    out[e] = static_cast<float>(static_cast<double>(bias[e]) + u * sign);
  }
  return out;
}

std::vector<float> LoadEmaStep(const std::vector<float> &ema, const std::vector<uint64_t> &choices,
                               uint64_t total_assignments, double beta) {
  if (total_assignments == 0) return ema;
  std::vector<float> out(ema.size());
  for (size_t e = 0; e < ema.size(); ++e) {
    const double d = static_cast<double>(choices[e]) / static_cast<double>(total_assignments);
    out[e] = static_cast<float>(beta * static_cast<double>(ema[e]) + (1.0 - beta) * d);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------ forward

Result Forward(const Weights &w, const Hyper &hp, const float *input, int64_t tokens) {
  return Forward(w, hp, input, 1, tokens);
}

Result Forward(const Weights &w, const Hyper &hp, const float *input, int64_t batch, int64_t seq) {
  const size_t num_experts = static_cast<size_t>(w.num_experts);
  const size_t hidden = static_cast<size_t>(w.hidden);
  const size_t k = static_cast<size_t>(hp.top_k);
  const int64_t tokens = batch * seq;
  const size_t t_count = static_cast<size_t>(tokens);
  const size_t slots = hp.expert_choice ? num_experts : k;
  Result r;
  r.tokens = tokens;
  r.top_k = hp.top_k;
  r.slots = static_cast<int32_t>(slots);
  r.output.assign(t_count * hidden, 0.0);
  r.ids.assign(t_count * slots, -1);
  r.weights.assign(t_count * slots, 0.0);
  r.dropped.assign(t_count * slots, 0);
  r.logits.assign(t_count * num_experts, 0.0);
  r.probs.assign(t_count * num_experts, 0.0);
  r.boundary_gap.assign(t_count, kInf);
  r.min_slot_gap.assign(t_count, kInf);
  r.boundary_zgap.assign(t_count, kInf);
  r.min_slot_zgap.assign(t_count, kInf);
  r.loads.assign(num_experts, 0);
  r.choices.assign(num_experts, 0);
  r.capacities.assign(num_experts, -1);

  // Router logits: z = W_g x, or W_g (x + u) with the attention router (u from the token's sequence); + c with
  // ROUTER_LOGIT_BIAS.
  if (hp.attention_heads > 0) {
    r.context.assign(t_count * hidden, 0.0);
    for (int64_t b = 0; b < batch; ++b) {
      const size_t first = static_cast<size_t>(b * seq);
      const std::vector<double> u = AttentionContext(w, hp, input + first * hidden, seq);
      std::copy(u.begin(), u.end(), r.context.begin() + static_cast<std::ptrdiff_t>(first * hidden));
    }
  }
  for (size_t t = 0; t < t_count; ++t) {
    std::vector<double> v = ToDouble(input + t * hidden, hidden);
    if (!r.context.empty()) {
      for (size_t h = 0; h < hidden; ++h) v[h] += r.context[t * hidden + h];
    }
    const std::vector<double> z = RouterLogits(w, hp, v);
    std::copy(z.begin(), z.end(), r.logits.begin() + static_cast<std::ptrdiff_t>(t * num_experts));
  }

  std::vector<double> mean_prob(num_experts, 0.0);
  double z_sum = 0.0;
  for (size_t t = 0; t < t_count; ++t) {
    const std::vector<double> z(r.logits.begin() + static_cast<std::ptrdiff_t>(t * num_experts),
                                r.logits.begin() + static_cast<std::ptrdiff_t>((t + 1) * num_experts));
    const std::vector<double> c = Scores(hp, z);
    double score_sum = 0.0;
    for (double p : c) score_sum += p;
    for (size_t e = 0; e < num_experts; ++e) {
      r.probs[t * num_experts + e] = c[e];
      mean_prob[e] += hp.sigmoid ? c[e] / score_sum : c[e];  // P_i: scores normalised per token
    }
    // z loss: logsumexp of the raw logits, squared.
    double m = -kInf;
    for (double zi : z) m = std::max(m, zi);
    double s = 0.0;
    for (double zi : z) s += std::exp(zi - m);
    const double lse = m + std::log(s);
    z_sum += lse * lse;
    if (hp.expert_choice) {
      r.top1_sum += *std::max_element(c.begin(), c.end());
      continue;
    }

    const TokenRoute route = RouteLogits(w, hp, z);
    for (size_t j = 0; j < k; ++j) {
      r.ids[t * k + j] = route.order[j];
      r.weights[t * k + j] = route.weights[j];
      ++r.choices[static_cast<size_t>(route.order[j])];
    }
    // Gaps between ranks j and j+1 of the selection scores, within the kept groups' experts. The logit gap is
    // meaningful only without a selection bias (scores are then monotonic in z); else it is left infinite.
    const size_t eligible = static_cast<size_t>(route.eligible);
    const bool biased = hp.HasSelectionBias();
    for (size_t j = 0; j < k && j + 1 < eligible; ++j) {
      const size_t a = static_cast<size_t>(route.order[j]), b = static_cast<size_t>(route.order[j + 1]);
      const double gap = route.selection[a] - route.selection[b];
      const double zgap = biased ? kInf : (route.logits[a] - route.logits[b]) / hp.temperature;
      r.min_slot_gap[t] = std::min(r.min_slot_gap[t], gap);
      r.min_slot_zgap[t] = std::min(r.min_slot_zgap[t], zgap);
      if (j == k - 1) {
        r.boundary_gap[t] = gap;
        r.boundary_zgap[t] = zgap;
      }
    }
    // A near tie between the last kept group and the first dropped one changes the eligible experts.
    r.boundary_gap[t] = std::min(r.boundary_gap[t], route.group_gap);
    r.boundary_zgap[t] = std::min(r.boundary_zgap[t], biased ? kInf : route.group_gap);
    r.min_slot_gap[t] = std::min(r.min_slot_gap[t], route.group_gap);
    r.top1_sum += route.probs[static_cast<size_t>(route.order[0])];
  }

  if (hp.expert_choice) {
    // Each expert takes its C tokens of largest score; no drops.
    r.capacity = ExpertChoiceCapacity(tokens, w.num_experts, hp.top_k, hp.capacity_factor);
    ExpertChoiceRoute(r.probs, tokens, w.num_experts, r.capacity, hp.routed_scaling, &r.ids, &r.weights);
    for (size_t i = 0; i < r.ids.size(); ++i) {
      if (r.ids[i] < 0) continue;
      ++r.choices[static_cast<size_t>(r.ids[i])];
      ++r.loads[static_cast<size_t>(r.ids[i])];
    }
    r.capacities.assign(num_experts, r.capacity);
    // Near ties: per expert, the gap between a token's score and the selection threshold (the C-th and (C+1)-th
    // scores of its column); per token the smallest over experts, and between its consecutive slot weights.
    const size_t cap = static_cast<size_t>(r.capacity);
    for (size_t e = 0; e < num_experts; ++e) {
      std::vector<double> col(t_count);
      for (size_t t = 0; t < t_count; ++t) col[t] = r.probs[t * num_experts + e];
      std::vector<double> sorted = col;
      std::sort(sorted.begin(), sorted.end(), std::greater<double>());
      const double last_in = cap > 0 ? sorted[cap - 1] : kInf;
      const double first_out = cap < t_count ? sorted[cap] : -kInf;
      for (size_t t = 0; t < t_count; ++t) {
        const bool in = std::find(r.ids.begin() + static_cast<std::ptrdiff_t>(t * slots),
                                  r.ids.begin() + static_cast<std::ptrdiff_t>((t + 1) * slots),
                                  static_cast<int32_t>(e)) != r.ids.begin() + static_cast<std::ptrdiff_t>((t + 1) * slots);
        const double gap = in ? col[t] - first_out : last_in - col[t];
        r.boundary_gap[t] = std::min(r.boundary_gap[t], gap);
      }
    }
    for (size_t t = 0; t < t_count; ++t) {
      r.min_slot_gap[t] = r.boundary_gap[t];
      for (size_t j = 0; j + 1 < slots && r.ids[t * slots + j + 1] >= 0; ++j) {
        const double a = r.probs[t * num_experts + static_cast<size_t>(r.ids[t * slots + j])];
        const double b = r.probs[t * num_experts + static_cast<size_t>(r.ids[t * slots + j + 1])];
        r.min_slot_gap[t] = std::min(r.min_slot_gap[t], a - b);
      }
    }
  } else {
    // Capacity: first choices of all tokens in token order, then second choices, ... against C (static) or C_i
    // (dynamic: the E*C slots re-budgeted from the load average).
    r.capacity = Capacity(tokens, hp.top_k, hp.capacity_factor, w.num_experts);
    if (r.capacity >= 0) {
      if (hp.dynamic_capacity) {
        std::vector<float> ema = w.load_ema;
        if (ema.empty()) ema.assign(num_experts, static_cast<float>(1.0 / static_cast<double>(num_experts)));
        r.capacities = DynamicCapacities(static_cast<int64_t>(num_experts) * r.capacity, ema);
      } else {
        r.capacities.assign(num_experts, r.capacity);
      }
    }
    for (size_t j = 0; j < k; ++j) {
      for (size_t t = 0; t < t_count; ++t) {
        const size_t e = static_cast<size_t>(r.ids[t * k + j]);
        if (r.capacities[e] >= 0 && r.loads[e] >= static_cast<uint64_t>(r.capacities[e])) {
          r.dropped[t * k + j] = 1;
          r.weights[t * k + j] = 0.0;
          ++r.dropped_count;
        } else {
          ++r.loads[e];
        }
      }
    }
  }
  r.routed_weights = r.weights;

  // Expert outputs o of every kept slot: neural experts per token; a callback expert once per call on its kept rows
  // gathered in token order (experts in ascending index), only when it has at least one.
  std::vector<std::vector<double>> outs(t_count * slots);
  for (size_t t = 0; t < t_count; ++t) {
    for (size_t j = 0; j < slots; ++j) {
      const int32_t e = r.ids[t * slots + j];
      if (e < 0 || r.dropped[t * slots + j]) continue;
      const Expert &expert = w.experts[static_cast<size_t>(e)];
      if (expert.callback || hp.IsCallback(e)) continue;
      const float *x = input + t * hidden;
      std::vector<float> scaled;
      if (hp.expert_input_scaling) {  // the expert's input is w_j * x (an fp32 product, as the library forms it)
        scaled.resize(hidden);
        for (size_t h = 0; h < hidden; ++h) scaled[h] = static_cast<float>(r.weights[t * slots + j]) * x[h];
        x = scaled.data();
      }
      outs[t * slots + j] = ExpertForward(expert, w.hidden, hp.layer_norm_eps, x, hp.swiglu_alpha, hp.swiglu_limit);
    }
  }
  for (size_t e = 0; e < num_experts; ++e) {
    const int32_t ei = static_cast<int32_t>(e);
    if (!(w.experts[e].callback || hp.IsCallback(ei))) continue;
    std::vector<size_t> rows;  // indices t*slots + j
    for (size_t t = 0; t < t_count; ++t) {
      for (size_t j = 0; j < slots; ++j) {
        if (r.ids[t * slots + j] == ei && !r.dropped[t * slots + j]) rows.push_back(t * slots + j);
      }
    }
    if (rows.empty()) continue;
    if (!hp.callback) {
      r.error = "callback expert " + std::to_string(e) + " has no callback";
      return r;
    }
    std::vector<float> in(rows.size() * hidden), out(rows.size() * hidden, 0.0f);
    for (size_t i = 0; i < rows.size(); ++i) {
      const float *x = input + (rows[i] / slots) * hidden;
      std::copy(x, x + hidden, in.begin() + static_cast<std::ptrdiff_t>(i * hidden));
    }
    const int rc = hp.callback(ei, in.data(), static_cast<int64_t>(rows.size()), w.hidden, out.data());
    if (rc != 0) {
      r.error = "callback expert " + std::to_string(e) + " returned " + std::to_string(rc);
      return r;
    }
    for (size_t i = 0; i < rows.size(); ++i) {
      outs[rows[i]] = ToDouble(out.data() + i * hidden, hidden);
    }
  }

  // Cross-expert attention combine: w' over the slots with w_j > 0.
  if (hp.combine_dim > 0) {
    for (size_t t = 0; t < t_count; ++t) {
      const std::vector<std::vector<double>> o(outs.begin() + static_cast<std::ptrdiff_t>(t * slots),
                                               outs.begin() + static_cast<std::ptrdiff_t>((t + 1) * slots));
      const std::vector<double> wt(r.weights.begin() + static_cast<std::ptrdiff_t>(t * slots),
                                   r.weights.begin() + static_cast<std::ptrdiff_t>((t + 1) * slots));
      const std::vector<double> combined = CombineWeights(w, hp, input + t * hidden, o, wt);
      std::copy(combined.begin(), combined.end(), r.weights.begin() + static_cast<std::ptrdiff_t>(t * slots));
    }
  }

  for (size_t t = 0; t < t_count; ++t) {
    for (size_t j = 0; j < slots; ++j) {
      const std::vector<double> &y = outs[t * slots + j];
      if (y.empty()) continue;
      const double wt = hp.expert_input_scaling ? 1.0 : r.weights[t * slots + j];
      for (size_t h = 0; h < hidden; ++h) r.output[t * hidden + h] += wt * y[h];
    }
  }
  // The shared expert: every token, unaffected by capacity, scaled by sigmoid(shared.score.weight . x) when gated.
  if (hp.shared_width > 0) {
    for (size_t t = 0; t < t_count; ++t) {
      const float *x = input + t * hidden;
      const std::vector<double> y = ExpertForward(w.shared, w.hidden, hp.layer_norm_eps, x);
      double g = 1.0;
      if (hp.shared_gate) {
        double dot = 0.0;
        for (size_t h = 0; h < hidden; ++h) dot += static_cast<double>(w.shared_score[h]) * x[h];
        g = 1.0 / (1.0 + std::exp(-dot));
      }
      for (size_t h = 0; h < hidden; ++h) r.output[t * hidden + h] += g * y[h];
    }
  }

  if (t_count > 0) {
    double aux = 0.0;
    for (size_t e = 0; e < num_experts; ++e) {
      const double f = static_cast<double>(r.choices[e]) / static_cast<double>(t_count);
      const double p = mean_prob[e] / static_cast<double>(t_count);
      aux += f * p;
    }
    r.aux_loss = hp.aux_loss_coef * static_cast<double>(num_experts) * aux;
    r.z_loss = z_sum / static_cast<double>(t_count);
    r.routing_confidence = r.top1_sum / static_cast<double>(t_count);
  }
  return r;
}

}  // namespace pimoe_oracle
