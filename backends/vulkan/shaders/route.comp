#version 450
// Routing on the device (fused path), one invocation per token, following pimoe.h's "Routing of one token, in
// full": scores c (softmax of z/tau, or sigmoid of z/tau), selection scores q = c + b, group-limited selection
// (the topk_groups best groups by the sum of their 2 best q, or their best; ties to the lower group), the k largest
// q among the kept experts (ties to the lower index; slots in descending q), weights c of the chosen (renormalised,
// + 1e-20 for sigmoid scores), times the routed scaling factor. Also the token's log-sum-exp of z (z-loss), top-1
// score and the factor that makes its scores the aux loss's P. Capacity is applied afterwards (count.comp).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = ROUTE_THREADS) in;

BUFFER_LOGITS(readonly)
BUFFER_PROBS(restrict)
BUFFER_ROUTE(restrict)

// (value, index) comes after (pv, pi) in descending-value, ascending-index order.
bool after(float v, uint i, float pv, uint pi) { return v < pv || (v == pv && i > pi); }

void main() {
  const uint t = gl_GlobalInvocationID.x;
  const uint T = pc.tokens, E = pc.experts, K = pc.slots;
  if (t >= T) return;
  const bool sigmoid = (pc.flags & CALL_SIGMOID) != 0u;
  const bool biased = (pc.flags & CALL_SELECTION_BIAS) != 0u;
  const uint z0 = t * E;

  float zmax = logits_v[z0];
  for (uint e = 1u; e < E; ++e) zmax = max(zmax, logits_v[z0 + e]);
  float sum_raw = 0.0, sum_score = 0.0;
  for (uint e = 0u; e < E; ++e) {
    const float z = logits_v[z0 + e];
    sum_raw += exp(z - zmax);
    const float c = sigmoid ? 1.0 / (1.0 + exp(-z * pc.inv_tau)) : exp((z - zmax) * pc.inv_tau);
    probs_v[z0 + e] = c;
    sum_score += c;
  }
  if (!sigmoid) {
    for (uint e = 0u; e < E; ++e) probs_v[z0 + e] /= sum_score;
  }
  const uint tok = pc.route_tok + t * TOK_STRIDE;
  route[tok + TOK_LSE] = floatBitsToInt(zmax + log(sum_raw));
  route[tok + TOK_PSCALE] = floatBitsToInt(sigmoid ? 1.0 / sum_score : 1.0);

  // Group limit: a bit per kept group (at most 32 groups on this path; the host router serves more).
  uint kept_groups = 0xffffffffu;
  const uint G = pc.groups;
  if (G > 1u) {
    const uint size = E / G;
    kept_groups = 0u;
    for (uint pick = 0u; pick < pc.topk_groups; ++pick) {
      float best_score = 0.0;
      uint best = G;
      for (uint g = 0u; g < G; ++g) {
        if ((kept_groups & (1u << g)) != 0u) continue;
        float first = -1.0 / 0.0, second = -1.0 / 0.0;
        for (uint i = 0u; i < size; ++i) {
          const uint e = g * size + i;
          const float q = probs_v[z0 + e] + (biased ? small_v[pc.bias_off + e] : 0.0);
          if (q > first) {
            second = first;
            first = q;
          } else if (q > second) {
            second = q;
          }
        }
        const float score = ((pc.flags & CALL_GROUP_MAX) != 0u || size < 2u) ? first : first + second;
        if (best == G || score > best_score) {
          best = g;
          best_score = score;
        }
      }
      kept_groups |= 1u << best;
    }
  }

  float prev_q = 0.0;
  uint prev = 0u;
  float chosen_sum = 0.0;
  const uint size = E / max(G, 1u);
  for (uint j = 0u; j < K; ++j) {
    uint best = E;
    float best_q = 0.0;
    for (uint e = 0u; e < E; ++e) {
      if (G > 1u && (kept_groups & (1u << (e / size))) == 0u) continue;
      const float q = probs_v[z0 + e] + (biased ? small_v[pc.bias_off + e] : 0.0);
      if (j > 0u && !after(q, e, prev_q, prev)) continue;
      if (best == E || q > best_q) {
        best = e;
        best_q = q;
      }
    }
    route[pc.route_ids + t * K + j] = int(best);
    chosen_sum += probs_v[z0 + best];
    prev = best;
    prev_q = best_q;
  }
  route[tok + TOK_TOP1] = floatBitsToInt(probs_v[z0 + uint(route[pc.route_ids + t * K])]);
  const float scale =
      ((pc.flags & CALL_RENORM) != 0u ? 1.0 / (sigmoid ? chosen_sum + 1e-20 : chosen_sum) : 1.0) * pc.scaling;
  for (uint j = 0u; j < K; ++j) {
    const uint e = uint(route[pc.route_ids + t * K + j]);
    route[pc.route_w + t * K + j] = floatBitsToInt(probs_v[z0 + e] * scale);
  }
}
