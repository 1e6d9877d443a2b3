// SPDX-License-Identifier: MIT
// Routing of one token on the device, included by route.comp (which declares B_LOGITS, B_PROBS as
// doubles and B_ROUTE). The same arithmetic as the host router (src/router.cpp), in double precision and in
// the same order, with an exp of its own (GLSL has none for doubles): a token's experts and weights come out as the
// host router's, so routing on the device or on the host gives the same bits (pimoe_forward and
// pimoe_forward_routing agree). Kernels that include this need the device's shaderFloat64.

#include "dmath.glsl"

// Routes token t, following pimoe.h's "Routing of one token, in full": scores c (softmax of z/tau, or sigmoid of
// z/tau), selection scores q = c + b, group-limited selection (the topk_groups best groups by the sum of their 2 best
// q, or their best; ties to the lower group), the k largest q among the kept experts (ties to the lower index; slots
// in descending q), weights c of the chosen (renormalised, + 1e-20 for sigmoid scores), times the routed scaling
// factor. Also the token's log-sum-exp of z (z-loss), top-1 score and the factor that makes its scores the aux
// loss's P. Writes ids and weights of its slots, its scores (probs) and its TOK_* values; capacity comes later.
void route_token(uint t) {
  const uint E = pc.experts, K = pc.slots;
  const bool sigmoid = (pc.flags & CALL_SIGMOID) != 0u;
  const bool biased = (pc.flags & CALL_SELECTION_BIAS) != 0u;
  const double inv_tau = push_double(pc.inv_tau_lo, pc.inv_tau_hi);
  const uint z0 = t * E;

  double zmax = double(logits_v[z0]);
  for (uint e = 1u; e < E; ++e) zmax = max(zmax, double(logits_v[z0 + e]));
  double sum_raw = 0.0LF, sum_score = 0.0LF;
  for (uint e = 0u; e < E; ++e) sum_raw += exp_d(double(logits_v[z0 + e]) - zmax);
  for (uint e = 0u; e < E; ++e) {
    const double z = double(logits_v[z0 + e]);
    const double c = sigmoid ? 1.0LF / (1.0LF + exp_d(-z * inv_tau)) : exp_d((z - zmax) * inv_tau);
    probs_d[z0 + e] = c;
    sum_score += c;
  }
  if (!sigmoid) {
    for (uint e = 0u; e < E; ++e) probs_d[z0 + e] /= sum_score;
  }
  const uint tok = pc.route_tok + t * TOK_STRIDE;
  route[tok + TOK_LSE] = floatBitsToInt(float(zmax) + log(float(sum_raw)));  // z-loss only: float is plenty
  route[tok + TOK_PSCALE] = floatBitsToInt(sigmoid ? float(1.0LF / sum_score) : 1.0);

  // Group limit: a bit per kept group (at most 32 groups on this path; the host router serves more).
  uint kept_groups = 0xffffffffu;
  const uint G = pc.groups;
  if (G > 1u) {
    const uint size = E / G;
    kept_groups = 0u;
    for (uint pick = 0u; pick < pc.topk_groups; ++pick) {
      double best_score = 0.0LF;
      uint best = G;
      for (uint g = 0u; g < G; ++g) {
        if ((kept_groups & (1u << g)) != 0u) continue;
        double first = -1.0LF / 0.0LF, second = -1.0LF / 0.0LF;
        for (uint i = 0u; i < size; ++i) {
          const uint e = g * size + i;
          const double q = biased ? probs_d[z0 + e] + double(small_v[pc.bias_off + e]) : probs_d[z0 + e];
          if (q > first) {
            second = first;
            first = q;
          } else if (q > second) {
            second = q;
          }
        }
        const double score = ((pc.flags & CALL_GROUP_MAX) != 0u || size < 2u) ? first : first + second;
        if (best == G || score > best_score) {
          best = g;
          best_score = score;
        }
      }
      kept_groups |= 1u << best;
    }
  }

  double prev_q = 0.0LF, chosen_sum = 0.0LF;
  uint prev = 0u;
  const uint size = E / max(G, 1u);
  for (uint j = 0u; j < K; ++j) {
    uint best = E;
    double best_q = 0.0LF;
    for (uint e = 0u; e < E; ++e) {
      if (G > 1u && (kept_groups & (1u << (e / size))) == 0u) continue;
      const double q = biased ? probs_d[z0 + e] + double(small_v[pc.bias_off + e]) : probs_d[z0 + e];
      if (j > 0u && !after(q, e, prev_q, prev)) continue;
      if (best == E || q > best_q) {
        best = e;
        best_q = q;
      }
    }
    route[pc.route_ids + t * K + j] = int(best);
    chosen_sum += probs_d[z0 + best];
    prev = best;
    prev_q = best_q;
  }
  route[tok + TOK_TOP1] = floatBitsToInt(float(probs_d[z0 + uint(route[pc.route_ids + t * K])]));
  const double scale = (pc.flags & CALL_RENORM) != 0u ? 1.0LF / (sigmoid ? chosen_sum + 1e-20LF : chosen_sum) : 1.0LF;
  const double scaling = push_double(pc.scaling_lo, pc.scaling_hi);
  for (uint j = 0u; j < K; ++j) {
    const uint e = uint(route[pc.route_ids + t * K + j]);
    route[pc.route_w + t * K + j] = floatBitsToInt(float(probs_d[z0 + e] * scale * scaling));
  }
}
