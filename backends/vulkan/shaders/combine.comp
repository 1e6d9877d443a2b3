// SPDX-License-Identifier: MIT
#version 450
// y[t] = sum over the token's slots j, in slot order, of w[t, j] * (out[row(t, j)] + down_bias[expert]), plus
// g * shared_out[t] when the call includes the shared expert (g = 1, or sigmoid(shared.score.weight . x_t)); slots
// dropped by the capacity limit (row -1) add nothing. One invocation per output element, a workgroup per (token,
// block of COMBINE_THREADS elements): a decode step's one token still spreads over H / COMBINE_THREADS workgroups
// instead of one workgroup walking H. Each element's sum runs in the same order whatever the grid.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = COMBINE_THREADS) in;

BUFFER_X
BUFFER_Y
BUFFER_ROUTE(readonly)
BUFFER_OUT(readonly)

shared float red[COMBINE_THREADS];

void main() {
  const uint T = pc.tokens, K = pc.slots, H = pc.hidden;
  const uint blocks = (H + COMBINE_THREADS - 1u) / COMBINE_THREADS;
  const uint group = flat_group(), t = group / blocks;
  if (t >= T) return;  // whole workgroup
  const uint tid = gl_LocalInvocationIndex, h = (group - t * blocks) * COMBINE_THREADS + tid;
  const bool with_shared = (pc.flags & CALL_SHARED) != 0u;

  float g = 1.0;
  if (with_shared && (pc.flags & CALL_SHARED_GATE) != 0u) {
    // Every workgroup of the token computes the gate over all of H in the same fixed tree: the same bits in each.
    float s = 0.0;
    for (uint i = tid; i < H; i += COMBINE_THREADS) s = fma(small_v[pc.score_off + i], x_v[t * H + i], s);
    red[tid] = s;
    barrier();
    for (uint stride = COMBINE_THREADS / 2u; stride > 0u; stride >>= 1u) {
      if (tid < stride) red[tid] += red[tid + stride];
      barrier();
    }
    g = sigmoid_f(red[0]);
  }
  if (h >= H) return;

  float v = 0.0;
  for (uint j = 0u; j < K; ++j) {
    const uint a = t * K + j;
    const int row = route[pc.route_arow + a];
    if (row < 0) continue;
    const float w = intBitsToFloat(route[pc.route_w + a]);
    const uint db = meta_of(uint(route[pc.route_ids + a]), META_DOWN_B);
    const float o = out_v[uint(row) * H + h];
    v += w * (db == META_NONE ? o : o + small_v[db + h]);
  }
  if (with_shared) v += g * out_v[(uint(route[pc.route_seg + pc.experts * SEG_STRIDE + SEG_ROW]) + t) * H + h];
  y_v[t * H + h] = v;
}
