#version 450
// Routing on the device for calls of at most MV_MAX_ROWS tokens, in one workgroup and one dispatch (instead of
// route, count and scan: for a decode step the launches cost more than the work): every token routed by one
// invocation (route_token), every expert counted by one invocation (count_expert_serial), then finish_routing().
// Routing and counting follow the same code and rules as the kernels for many tokens.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = COUNT_THREADS) in;

BUFFER_LOGITS(readonly)
layout(set = 0, binding = B_PROBS) coherent buffer Probs { double probs_d[]; };
layout(set = 0, binding = B_ROUTE) coherent buffer Route { int route[]; };
#include "route_token.glsl"
#include "routing.glsl"

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
    psum += float(probs_d[t * pc.experts + e]) * intBitsToFloat(route[pc.route_tok + t * TOK_STRIDE + TOK_PSCALE]);
  }
  return admitted;
}


void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint T = pc.tokens, E = pc.experts;
  if (tid < T) route_token(tid);
  memoryBarrierBuffer();
  barrier();
  for (uint e = tid; e < E; e += COUNT_THREADS) {
    uint chosen;
    float psum;
    const uint kept = count_expert_serial(e, chosen, psum);
    const uint c = pc.route_ecount + e * ECOUNT_STRIDE;
    route[c + ECOUNT_KEPT] = int(kept);
    route[c + ECOUNT_CHOSEN] = int(chosen);
    route[c + ECOUNT_PSUM] = floatBitsToInt(psum);
  }
  memoryBarrierBuffer();
  barrier();
  if (tid != 0u) return;
  float sum_z = 0.0, sum_top1 = 0.0;
  for (uint t = 0u; t < T; ++t) {
    const float lse = intBitsToFloat(route[pc.route_tok + t * TOK_STRIDE + TOK_LSE]);
    sum_z += lse * lse;
    sum_top1 += intBitsToFloat(route[pc.route_tok + t * TOK_STRIDE + TOK_TOP1]);
  }
  finish_routing(sum_z, sum_top1);
}
