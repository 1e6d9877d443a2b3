// Routing on the device, shared by route.comp / count.comp / scan.comp (calls of many tokens) and route_small.comp
// (calls of at most MV_MAX_ROWS tokens, one workgroup). The including kernel declares B_LOGITS, B_PROBS and B_ROUTE.

// (value, index) comes after (pv, pi) in descending-value, ascending-index order.
bool after(float v, uint i, float pv, uint pi) { return v < pv || (v == pv && i > pi); }

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

// Admission and ranks of expert e's assignments, by one invocation (calls of few tokens): the same rules as
// count.comp (first-choice-first admission up to the capacity; ranks in assignment order). Returns the admitted
// count; *chosen receives the choices before the capacity limit, *psum the expert's sum of normalised scores.
uint count_expert_serial(uint e, out uint chosen, out float psum) {
  const uint T = pc.tokens, K = pc.slots, A = T * K;
  const int cap = pc.capacity;
  uint admitted = 0u;
  chosen = 0u;
  for (uint i = 0u; i < A; ++i) {
    const uint a = (i % T) * K + i / T;  // first-choice-first order: i = j*T + t
    if (route[pc.route_ids + a] != int(e)) continue;
    ++chosen;
    if (cap < 0 || admitted < uint(cap)) {
      ++admitted;
      route[pc.route_arow + a] = -2;  // kept; ranked below
    } else {
      route[pc.route_arow + a] = -1;
      route[pc.route_w + a] = floatBitsToInt(0.0);
    }
  }
  uint rank = 0u;
  for (uint a = 0u; a < A; ++a) {
    if (route[pc.route_ids + a] == int(e) && route[pc.route_arow + a] == -2) route[pc.route_arow + a] = int(rank++);
  }
  psum = 0.0;
  for (uint t = 0u; t < T; ++t) {
    psum += probs_v[t * pc.experts + e] * intBitsToFloat(route[pc.route_tok + t * TOK_STRIDE + TOK_PSCALE]);
  }
  return admitted;
}

// The serial end of routing (one invocation), given the sums over tokens of lse^2 and of the top-1 scores: every
// segment's first row, row count and hidden block (the shared expert's segment holds every token after the routed
// rows), the list of segments that have rows, the projections' indirect dispatch sizes, and the call's statistics.
void finish_routing(float sum_z, float sum_top1) {
  const uint T = pc.tokens, E = pc.experts;
  int row = 0, hidden = 0, max_rows = 0, nactive = 0;
  float aux = 0.0;
  for (uint e = 0u; e < E; ++e) {
    const uint c = pc.route_ecount + e * ECOUNT_STRIDE;
    const int kept = route[c + ECOUNT_KEPT];
    const uint seg = pc.route_seg + e * SEG_STRIDE;
    route[seg + SEG_ROW] = row;
    route[seg + SEG_COUNT] = kept;
    route[seg + SEG_HIDDEN] = hidden;
    if (kept > 0) route[pc.route_active + nactive++] = int(e);
    row += kept;
    hidden += kept * int(meta_of(e, META_IP));
    max_rows = max(max_rows, kept);
    aux += (float(route[c + ECOUNT_CHOSEN]) / float(T)) * (intBitsToFloat(route[c + ECOUNT_PSUM]) / float(T));
  }
  const int kept_total = row;
  if ((pc.flags & CALL_SHARED) != 0u) {
    const uint seg = pc.route_seg + E * SEG_STRIDE;
    route[seg + SEG_ROW] = row;
    route[seg + SEG_COUNT] = int(T);
    route[seg + SEG_HIDDEN] = hidden;
    max_rows = max(max_rows, int(T));
    route[pc.route_active + nactive++] = int(E);
  }
  const uint st = pc.route_stats;
  route[st + STATS_KEPT] = kept_total;
  route[st + STATS_MAX_ROWS] = max_rows;
  route[st + STATS_AUX] = floatBitsToInt(pc.aux_coef * float(E) * aux);
  route[st + STATS_ZLOSS] = floatBitsToInt(sum_z / float(T));
  route[st + STATS_TOP1] = floatBitsToInt(sum_top1);

  // Row tiles of the largest segment (the small-row kernels take all of a segment's rows in one workgroup).
  const uint y = (pc.flags & CALL_MATVEC) != 0u ? 1u : (uint(max_rows) + pc.row_tile - 1u) / pc.row_tile;
  const uint d = pc.route_disp;
  route[d + DISP_UP + 0u] = int(pc.up_grid_x);
  route[d + DISP_UP + 1u] = int(max(y, 1u));
  route[d + DISP_UP + 2u] = nactive;
  route[d + DISP_DOWN + 0u] = int(pc.down_grid_x);
  route[d + DISP_DOWN + 1u] = int(max(y, 1u));
  route[d + DISP_DOWN + 2u] = nactive;
}
