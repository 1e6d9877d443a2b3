// SPDX-License-Identifier: MIT
#version 450
// Per-expert counting of the fused path, one workgroup per expert e:
//  1. capacity: the assignments choosing e are admitted first-choice-first (all tokens' slot 0 in token order, then
//     slot 1, ...) until C = capacity are in; later ones are dropped (arow -1, weight 0). Dropless: all admitted.
//  2. rank: each admitted assignment's rank among e's admitted ones in assignment order (a = t*slots + j), which is
//     its place in the expert's rows (the host router's counting sort gives the same order).
//  3. the expert's sum over tokens of its normalised score (the aux loss's P_e * T), in a fixed order.
// Every assignment belongs to exactly one expert, so workgroups never touch the same element.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = COUNT_THREADS) in;

layout(set = 0, binding = B_PROBS) readonly buffer Probs { double probs_d[]; };  // route.comp's scores
layout(set = 0, binding = B_ROUTE) coherent buffer Route { int route[]; };

shared uint scan_buf[COUNT_THREADS];
shared float sum_buf[COUNT_THREADS];

// Exclusive prefix sum of v over the workgroup; *total receives the sum.
uint exclusive_scan(uint v, out uint total) {
  const uint tid = gl_LocalInvocationIndex;
  scan_buf[tid] = v;
  barrier();
  for (uint offset = 1u; offset < COUNT_THREADS; offset <<= 1u) {
    const uint add = tid >= offset ? scan_buf[tid - offset] : 0u;
    barrier();
    scan_buf[tid] += add;
    barrier();
  }
  total = scan_buf[COUNT_THREADS - 1u];
  const uint inclusive = scan_buf[tid];
  barrier();
  return inclusive - v;
}

const int KEPT_MARK = -2;

void main() {
  const uint e = gl_WorkGroupID.x;
  const uint tid = gl_LocalInvocationIndex;
  const uint T = pc.tokens, K = pc.slots, A = T * K;
  const int cap = pc.capacity;

  uint admitted = 0u, chosen = 0u;
  for (uint base = 0u; base < A; base += COUNT_THREADS) {
    const uint i = base + tid;  // first-choice-first order: i = j*T + t
    uint a = 0u;
    bool mine = false;
    if (i < A) {
      a = (i % T) * K + i / T;
      mine = route[pc.route_ids + a] == int(e);
    }
    uint total;
    const uint before = exclusive_scan(mine ? 1u : 0u, total);
    if (mine) {
      if (cap < 0 || admitted + before < uint(cap)) {
        route[pc.route_arow + a] = KEPT_MARK;
      } else {
        route[pc.route_arow + a] = -1;
        route[pc.route_w + a] = floatBitsToInt(0.0);
      }
    }
    chosen += total;
    admitted = cap < 0 ? chosen : min(chosen, uint(cap));
  }
  memoryBarrierBuffer();
  barrier();

  uint rank = 0u;
  for (uint base = 0u; base < A; base += COUNT_THREADS) {
    const uint a = base + tid;
    const bool mine = a < A && route[pc.route_ids + a] == int(e) && route[pc.route_arow + a] == KEPT_MARK;
    uint total;
    const uint before = exclusive_scan(mine ? 1u : 0u, total);
    if (mine) route[pc.route_arow + a] = int(rank + before);
    rank += total;
  }

  float s = 0.0;
  for (uint t = tid; t < T; t += COUNT_THREADS) {
    s += float(probs_d[t * pc.experts + e]) * intBitsToFloat(route[pc.route_tok + t * TOK_STRIDE + TOK_PSCALE]);
  }
  sum_buf[tid] = s;
  barrier();
  for (uint stride = COUNT_THREADS / 2u; stride > 0u; stride >>= 1u) {
    if (tid < stride) sum_buf[tid] += sum_buf[tid + stride];
    barrier();
  }
  if (tid == 0u) {
    const uint c = pc.route_ecount + e * ECOUNT_STRIDE;
    route[c + ECOUNT_KEPT] = int(admitted);
    route[c + ECOUNT_CHOSEN] = int(chosen);
    route[c + ECOUNT_PSUM] = floatBitsToInt(sum_buf[0]);
  }
}
