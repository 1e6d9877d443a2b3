// SPDX-License-Identifier: MIT
#version 450
// The last step of routing on the device (calls of many tokens), in one workgroup: the sums over tokens of lse^2
// (z-loss) and of the top-1 scores, in a fixed tree so that they repeat exactly, then finish_routing() (routing.glsl):
// segments, the list of segments with rows, indirect dispatch sizes and the call's statistics.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = COUNT_THREADS) in;

BUFFER_ROUTE(restrict)
#include "routing.glsl"

shared float sum_z[COUNT_THREADS];
shared float sum_top1[COUNT_THREADS];

void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint T = pc.tokens;

  float z = 0.0, top1 = 0.0;
  for (uint t = tid; t < T; t += COUNT_THREADS) {
    const uint tok = pc.route_tok + t * TOK_STRIDE;
    const float lse = intBitsToFloat(route[tok + TOK_LSE]);
    z += lse * lse;
    top1 += intBitsToFloat(route[tok + TOK_TOP1]);
  }
  sum_z[tid] = z;
  sum_top1[tid] = top1;
  barrier();
  for (uint stride = COUNT_THREADS / 2u; stride > 0u; stride >>= 1u) {
    if (tid < stride) {
      sum_z[tid] += sum_z[tid + stride];
      sum_top1[tid] += sum_top1[tid + stride];
    }
    barrier();
  }
  if (tid == 0u) finish_routing(sum_z[0], sum_top1[0]);
}
