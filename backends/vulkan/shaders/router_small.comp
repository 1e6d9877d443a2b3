// SPDX-License-Identifier: MIT
#version 450
// Router logits for calls of at most MV_MAX_ROWS tokens: logits[t, e] = x[t] . router[e] (fp32), one workgroup per
// expert with the depth (H) split over its ROUTER_THREADS invocations, then a fixed tree over them. A decode step
// thus reads the router over E workgroups instead of a few (E / 8 for the old column-per-subgroup kernel, one
// workgroup for 8 experts). Both routing paths use this kernel for such calls, so they see the same logits.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = ROUTER_THREADS) in;

BUFFER_ROUTER
BUFFER_X
BUFFER_LOGITS(writeonly)

shared float part[MV_MAX_ROWS][ROUTER_THREADS];

void main() {
  const uint e = gl_WorkGroupID.x, tid = gl_LocalInvocationIndex;
  const uint rows = min(pc.tokens, uint(MV_MAX_ROWS)), H = pc.hidden, words = pc.hidden_pad / 4u;
  float acc[MV_MAX_ROWS];
  for (uint r = 0u; r < MV_MAX_ROWS; ++r) acc[r] = 0.0;
  for (uint q = tid; q < words; q += ROUTER_THREADS) {
    const vec4 wv = uintBitsToFloat(router_w[e * words + q]);
    const uint k = q * 4u;
    for (uint r = 0u; r < rows; ++r) {
      const uint x0 = r * H + k;  // x is not padded
      acc[r] = fma(wv.x, k < H ? x_v[x0] : 0.0, acc[r]);
      acc[r] = fma(wv.y, k + 1u < H ? x_v[x0 + 1u] : 0.0, acc[r]);
      acc[r] = fma(wv.z, k + 2u < H ? x_v[x0 + 2u] : 0.0, acc[r]);
      acc[r] = fma(wv.w, k + 3u < H ? x_v[x0 + 3u] : 0.0, acc[r]);
    }
  }
  for (uint r = 0u; r < rows; ++r) part[r][tid] = acc[r];
  barrier();
  for (uint stride = ROUTER_THREADS / 2u; stride > 0u; stride >>= 1u) {
    if (tid < stride) {
      for (uint r = 0u; r < rows; ++r) part[r][tid] += part[r][tid + stride];
    }
    barrier();
  }
  if (tid < rows) logits_v[tid * pc.experts + e] = part[tid][0];
}
