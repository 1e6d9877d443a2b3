// SPDX-License-Identifier: MIT
#version 450
// Routing on the device for a decode step (at most MV_MAX_ROWS tokens; the other limits are in layout.h), in one
// workgroup and one dispatch, with every score in shared memory: for so few tokens the launches and global-memory
// round trips of route, count and scan cost more than the work.
//
// The arithmetic is route_token()'s (route_token.glsl: the host router's doubles, in its order), spread over the
// workgroup wherever the order cannot change a bit: one invocation per (token, expert) for the exps, the scores,
// their normalisation and the selection; the maximum of the logits over 32 invocations per token (a maximum is
// exact in any order). The sums the host adds in expert or slot order (the softmax denominators, the chosen scores)
// are added by one invocation per token in that order. Top-k by rank: an expert's slot is the number of experts
// that come before it (a higher selection score, or an equal one and a lower index), which is the host's repeated
// argmax (ties to the lower index) without its k passes.
//
// Capacity, counts and offsets follow count.comp's and finish_routing()'s rules (first-choice-first admission, ranks
// in assignment order), one invocation per expert. Unlike those kernels it writes each assignment's final row (not
// its rank) and every row's token (route_rowtok()), so a decode step needs no gather pass.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = RS_THREADS) in;

BUFFER_LOGITS(readonly)
BUFFER_ROUTE(restrict writeonly)
#include "dmath.glsl"

#define RS_PARTS (RS_THREADS / MV_MAX_ROWS)          // invocations per token for the maximum of its logits
#define RS_CHUNKS (RS_MAX_EXPERTS / RS_THREADS)      // experts per invocation in the counting

shared double sc[RS_MAX_SCORES];     // [t * E + e]: exp(z - zmax) for the log-sum-exp, then the scores c
shared int slot_e[RS_MAX_ASSIGN];    // per assignment a = t * K + j: its expert
shared int slot_row[RS_MAX_ASSIGN];  // its rank among the expert's rows, then its row; -1: dropped by the capacity
shared float slot_w[RS_MAX_ASSIGN];  // its weight
shared uint red_a[RS_THREADS], red_b[RS_THREADS], red_c[RS_THREADS];  // scans and trees; doubles as (a, b) halves
shared double tok_zmax[MV_MAX_ROWS], tok_sum[MV_MAX_ROWS];
shared float tok_pscale[MV_MAX_ROWS], tok_lse[MV_MAX_ROWS], tok_top1[MV_MAX_ROWS];
shared uint tok_groups[MV_MAX_ROWS];

void put_d(uint i, double v) {
  const uvec2 u = unpackDouble2x32(v);
  red_a[i] = u.x;
  red_b[i] = u.y;
}
double get_d(uint i) { return packDouble2x32(uvec2(red_a[i], red_b[i])); }

// The selection score q of expert e for token t: c + b, or -inf outside the token's kept groups (as the host router).
double selection(uint t, uint e, uint kept_groups, uint group_size) {
  if ((kept_groups & (1u << (e / group_size))) == 0u) return -1.0LF / 0.0LF;
  const double c = sc[t * pc.experts + e];
  return (pc.flags & CALL_SELECTION_BIAS) != 0u ? c + double(small_v[pc.bias_off + e]) : c;
}

void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint T = pc.tokens, E = pc.experts, K = pc.slots, TE = T * E, A = T * K;
  const bool sigmoid = (pc.flags & CALL_SIGMOID) != 0u;
  const double inv_tau = push_double(pc.inv_tau_lo, pc.inv_tau_hi);
  // Softmax at temperature 1: the scores are the log-sum-exp's exp(z - zmax) themselves (the same bits).
  const bool same_exp = !sigmoid && inv_tau == 1.0LF;

  // 1. Each token's largest logit.
  {
    const uint t = tid / RS_PARTS, part = tid % RS_PARTS;
    if (t < T) {
      double m = double(logits_v[t * E]);
      for (uint e = part; e < E; e += RS_PARTS) m = max(m, double(logits_v[t * E + e]));
      put_d(tid, m);
    }
  }
  barrier();
  if (tid < T) {
    double m = get_d(tid * RS_PARTS);
    for (uint p = 1u; p < RS_PARTS; ++p) m = max(m, get_d(tid * RS_PARTS + p));
    tok_zmax[tid] = m;
  }
  barrier();

  // 2. The log-sum-exp's sum (z-loss), then the scores and their sum, in expert order.
  if (!same_exp) {
    for (uint i = tid; i < TE; i += RS_THREADS) sc[i] = exp_d(double(logits_v[i]) - tok_zmax[i / E]);
    barrier();
    if (tid < T) {
      double s = 0.0LF;
      for (uint e = 0u; e < E; ++e) s += sc[tid * E + e];
      tok_sum[tid] = s;
    }
    barrier();
  }
  for (uint i = tid; i < TE; i += RS_THREADS) {
    const double z = double(logits_v[i]);
    sc[i] = sigmoid ? 1.0LF / (1.0LF + exp_d(-z * inv_tau)) : exp_d((z - tok_zmax[i / E]) * inv_tau);
  }
  barrier();
  if (tid < T) {
    double s = 0.0LF;
    for (uint e = 0u; e < E; ++e) s += sc[tid * E + e];
    const double sum_raw = same_exp ? s : tok_sum[tid];
    tok_lse[tid] = float(tok_zmax[tid]) + log(float(sum_raw));  // z-loss only: float is plenty
    tok_pscale[tid] = sigmoid ? float(1.0LF / s) : 1.0;
    tok_sum[tid] = s;
  }
  barrier();
  if (!sigmoid) {
    for (uint i = tid; i < TE; i += RS_THREADS) sc[i] /= tok_sum[i / E];
    barrier();
  }

  // 3. Group limit (at most RS_MAX_GROUPS groups): every (token, group) scored by one invocation, then each token's
  // topk_groups best groups (ties to the lower group) by one invocation, as route_token().
  const uint G = pc.groups;
  const uint group_size = G > 1u ? E / G : E + 1u;  // E + 1: every expert in group 0
  if (G > 1u) {
    if (tid < T * G) {
      const uint t = tid / G, g = tid % G;
      double first = -1.0LF / 0.0LF, second = -1.0LF / 0.0LF;
      for (uint i = 0u; i < group_size; ++i) {
        const double q = selection(t, g * group_size + i, 0xffffffffu, group_size);
        if (q > first) {
          second = first;
          first = q;
        } else if (q > second) {
          second = q;
        }
      }
      put_d(tid, ((pc.flags & CALL_GROUP_MAX) != 0u || group_size < 2u) ? first : first + second);
    }
    barrier();
    if (tid < T) {
      uint kept = 0u;
      for (uint pick = 0u; pick < pc.topk_groups; ++pick) {
        double best_score = 0.0LF;
        uint best = G;
        for (uint g = 0u; g < G; ++g) {
          if ((kept & (1u << g)) != 0u) continue;
          const double score = get_d(tid * G + g);
          if (best == G || score > best_score) {
            best = g;
            best_score = score;
          }
        }
        if (best < G) kept |= 1u << best;
      }
      tok_groups[tid] = kept;
    }
  } else if (tid < T) {
    tok_groups[tid] = 0xffffffffu;
  }
  for (uint a = tid; a < A; a += RS_THREADS) slot_e[a] = -1;
  barrier();

  // 4. Top-k by rank, one invocation per (token, expert).
  for (uint i = tid; i < TE; i += RS_THREADS) {
    const uint t = i / E, e = i - t * E, kept = tok_groups[t];
    const double q = selection(t, e, kept, group_size);
    uint rank = 0u;
    for (uint f = 0u; f < E && rank < K; ++f) {
      const double qf = selection(t, f, kept, group_size);
      if (qf > q || (qf == q && f < e)) ++rank;
    }
    if (rank < K) slot_e[t * K + rank] = int(e);
  }
  barrier();

  // 5. Each token's weights: the chosen scores added in slot order (renormalisation), times the routed scaling.
  if (tid < T) {
    const uint t = tid;
    double chosen = 0.0LF;
    for (uint j = 0u; j < K; ++j) {
      if (slot_e[t * K + j] < 0) slot_e[t * K + j] = 0;  // only NaN scores leave a slot empty: keep the id valid
      chosen += sc[t * E + uint(slot_e[t * K + j])];
    }
    tok_top1[t] = float(sc[t * E + uint(slot_e[t * K])]);
    const double scale =
        (pc.flags & CALL_RENORM) != 0u ? 1.0LF / (sigmoid ? chosen + 1e-20LF : chosen) : 1.0LF;
    const double scaling = push_double(pc.scaling_lo, pc.scaling_hi);
    for (uint j = 0u; j < K; ++j) slot_w[t * K + j] = float(sc[t * E + uint(slot_e[t * K + j])] * scale * scaling);
  }
  barrier();

  // 6. Per expert (one invocation each, RS_CHUNKS per invocation at most): first-choice-first admission up to the
  // capacity, ranks in assignment order, the aux loss's term.
  const int cap = pc.capacity;
  uint kept_c[RS_CHUNKS];
  float aux_part = 0.0;
  uint max_rows = 0u;
  for (uint c = 0u; c < RS_CHUNKS; ++c) {
    kept_c[c] = 0u;
    const uint e = tid + c * RS_THREADS;
    if (e >= E) continue;
    uint admitted = 0u, chosen = 0u;
    for (uint i = 0u; i < A; ++i) {
      const uint a = (i % T) * K + i / T;  // first-choice-first order: i = j*T + t
      if (slot_e[a] != int(e)) continue;
      ++chosen;
      if (cap < 0 || admitted < uint(cap)) {
        ++admitted;
        slot_row[a] = -2;  // kept; ranked below
      } else {
        slot_row[a] = -1;
        slot_w[a] = 0.0;
      }
    }
    uint rank = 0u;
    for (uint a = 0u; a < A; ++a) {
      if (slot_e[a] == int(e) && slot_row[a] == -2) slot_row[a] = int(rank++);
    }
    float psum = 0.0;
    for (uint t = 0u; t < T; ++t) psum += float(sc[t * E + e]) * tok_pscale[t];
    aux_part += (float(chosen) / float(T)) * (psum / float(T));
    kept_c[c] = admitted;
    max_rows = max(max_rows, admitted);
  }

  // 7. Offsets: exclusive scans over the experts of their rows, hidden blocks and "has rows" (the active list), a
  // chunk of RS_THREADS experts at a time; each expert's ranks become rows.
  const uint chunks = (E + RS_THREADS - 1u) / RS_THREADS;
  uint row_base = 0u, hid_base = 0u, act_base = 0u;
  for (uint c = 0u; c < chunks; ++c) {
    const uint e = tid + c * RS_THREADS;
    const uint kept = kept_c[c];
    const uint hid = e < E ? kept * meta_of(e, META_IP) : 0u;
    const uint act = kept > 0u ? 1u : 0u;
    red_a[tid] = kept;
    red_b[tid] = hid;
    red_c[tid] = act;
    barrier();
    for (uint off = 1u; off < RS_THREADS; off <<= 1u) {
      uvec3 add = uvec3(0u);
      if (tid >= off) add = uvec3(red_a[tid - off], red_b[tid - off], red_c[tid - off]);
      barrier();
      red_a[tid] += add.x;
      red_b[tid] += add.y;
      red_c[tid] += add.z;
      barrier();
    }
    const uint row0 = row_base + red_a[tid] - kept;
    if (e < E) {
      const uint seg = pc.route_seg + e * SEG_STRIDE;
      route[seg + SEG_ROW] = int(row0);
      route[seg + SEG_COUNT] = int(kept);
      route[seg + SEG_HIDDEN] = int(hid_base + red_b[tid] - hid);
      if (kept > 0u) {
        route[pc.route_active + act_base + red_c[tid] - act] = int(e);
        for (uint a = 0u; a < A; ++a) {  // this invocation's own assignments: no barrier needed
          if (slot_e[a] == int(e) && slot_row[a] >= 0) slot_row[a] += int(row0);
        }
      }
    }
    row_base += red_a[RS_THREADS - 1u];
    hid_base += red_b[RS_THREADS - 1u];
    act_base += red_c[RS_THREADS - 1u];
    barrier();
  }

  // 8. The sum of the aux loss's terms and the largest segment, in a fixed tree.
  red_a[tid] = floatBitsToUint(aux_part);
  red_c[tid] = max_rows;
  barrier();
  for (uint stride = RS_THREADS / 2u; stride > 0u; stride >>= 1u) {
    if (tid < stride) {
      red_a[tid] = floatBitsToUint(uintBitsToFloat(red_a[tid]) + uintBitsToFloat(red_a[tid + stride]));
      red_c[tid] = max(red_c[tid], red_c[tid + stride]);
    }
    barrier();
  }

  // 9. The assignments (experts, weights, rows) and every row's token.
  const bool with_shared = (pc.flags & CALL_SHARED) != 0u;
  const uint rowtok = route_rowtok();
  for (uint a = tid; a < A; a += RS_THREADS) {
    const int row = slot_row[a];
    route[pc.route_ids + a] = slot_e[a];
    route[pc.route_w + a] = floatBitsToInt(slot_w[a]);
    route[pc.route_arow + a] = row;
    if (row >= 0) route[rowtok + uint(row)] = int(a / K);
  }
  if (with_shared && tid < T) route[rowtok + row_base + tid] = int(tid);  // the shared expert: every token, in order
  if (tid != 0u) return;

  // 10. The shared expert's segment, the call's statistics and the projections' grid sizes (as finish_routing()).
  uint nactive = act_base, max_seg = red_c[0];
  if (with_shared) {
    const uint seg = pc.route_seg + E * SEG_STRIDE;
    route[seg + SEG_ROW] = int(row_base);
    route[seg + SEG_COUNT] = int(T);
    route[seg + SEG_HIDDEN] = int(hid_base);
    route[pc.route_active + nactive++] = int(E);
    max_seg = max(max_seg, T);
  }
  float sum_z = 0.0, sum_top1 = 0.0;
  for (uint t = 0u; t < T; ++t) {
    sum_z += tok_lse[t] * tok_lse[t];
    sum_top1 += tok_top1[t];
  }
  const uint st = pc.route_stats;
  route[st + STATS_KEPT] = int(row_base);
  route[st + STATS_MAX_ROWS] = int(max_seg);
  route[st + STATS_AUX] = floatBitsToInt(uintBitsToFloat(red_a[0]));
  route[st + STATS_ZLOSS] = floatBitsToInt(sum_z);
  route[st + STATS_TOP1] = floatBitsToInt(sum_top1);
  // Row tiles of the largest segment: at most MV_MAX_ROWS rows, one tile for every kernel.
  const uint y = (pc.flags & CALL_MATVEC) != 0u ? 1u : (max_seg + pc.row_tile - 1u) / pc.row_tile;
  const uint d = pc.route_disp;
  route[d + DISP_UP + 0u] = int(pc.up_grid_x);
  route[d + DISP_UP + 1u] = int(max(y, 1u));
  route[d + DISP_UP + 2u] = int(nactive);
  route[d + DISP_DOWN + 0u] = int(pc.down_grid_x);
  route[d + DISP_DOWN + 1u] = int(max(y, 1u));
  route[d + DISP_DOWN + 2u] = int(nactive);
}
