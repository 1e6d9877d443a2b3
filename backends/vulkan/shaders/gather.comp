// SPDX-License-Identifier: MIT
#version 450
// Gathers the input row of every kept (token, slot) assignment, and of every token for the shared expert, into
// B_ROWS grouped by segment, applying the expert's pre-LayerNorm when it has one; pads each row with zeros to
// hidden_pad. One workgroup per assignment: a = t*slots + j for the routed slots, then slots*T + t for the shared
// expert. With routing on the device (CALL_FUSED), arow[a] holds the assignment's rank inside its expert (or -1 when
// dropped); the row is the expert's first row plus that rank, and it is written back to arow for the combine.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = ROW_THREADS) in;

BUFFER_X
BUFFER_ROUTE(restrict)
#if defined(ROWS_F16)
// The rows as fp16 (for matmul_coop.comp's A_F16 variants), two to a word: the same element offsets, half the bytes.
layout(set = 0, binding = B_ROWS) writeonly buffer RowsH { uint rows_h[]; };
#else
BUFFER_ROWS(writeonly)
#endif

shared float red[ROW_THREADS];

// Sum of v over the workgroup, in a fixed tree (the same order on every call).
float workgroup_sum(float v) {
  const uint tid = gl_LocalInvocationIndex;
  red[tid] = v;
  barrier();
  for (uint stride = ROW_THREADS / 2u; stride > 0u; stride >>= 1u) {
    if (tid < stride) red[tid] += red[tid + stride];
    barrier();
  }
  const float total = red[0];
  barrier();
  return total;
}

void main() {
  const uint a = flat_group();
  const uint T = pc.tokens, K = pc.slots, H = pc.hidden, Hp = pc.hidden_pad;
  const uint routed = T * K;
  const bool shared_slot = a >= routed;
  if (shared_slot && ((pc.flags & CALL_SHARED) == 0u || a >= routed + T)) return;

  uint t, segment;
  int row;
  if (shared_slot) {
    t = a - routed;
    segment = pc.experts;
    row = route[pc.route_seg + segment * SEG_STRIDE + SEG_ROW] + int(t);
  } else {
    t = a / K;
    segment = uint(route[pc.route_ids + a]);
    row = route[pc.route_arow + a];
    if (row < 0) return;  // dropped by the capacity limit
    if ((pc.flags & CALL_FUSED) != 0u) {
      row += route[pc.route_seg + segment * SEG_STRIDE + SEG_ROW];
      barrier();  // every invocation has read the rank before it is replaced by the row
      if (gl_LocalInvocationIndex == 0u) route[pc.route_arow + a] = row;
    }
  }

  const uint tid = gl_LocalInvocationIndex;
  const uint src = t * H, dst = uint(row) * Hp;
  const bool norm = !shared_slot && (meta_of(segment, META_FLAGS) & EXPERT_PRE_NORM) != 0u;
  if (!norm) {
#if defined(ROWS_F16)
    for (uint i = 2u * tid; i < Hp; i += 2u * ROW_THREADS) {
      rows_h[(dst + i) / 2u] = packHalf2x16(vec2(i < H ? x_v[src + i] : 0.0, i + 1u < H ? x_v[src + i + 1u] : 0.0));
    }
#else
    for (uint i = tid; i < Hp; i += ROW_THREADS) rows_v[dst + i] = i < H ? x_v[src + i] : 0.0;
#endif
    return;
  }
  // LayerNorm in two passes (mean, then the variance of the centred values), as the CPU backend.
  float s = 0.0;
  for (uint i = tid; i < H; i += ROW_THREADS) s += x_v[src + i];
  const float mean = workgroup_sum(s) / float(H);
  float q = 0.0;
  for (uint i = tid; i < H; i += ROW_THREADS) {
    const float d = x_v[src + i] - mean;
    q += d * d;
  }
  const float var = workgroup_sum(q) / float(H);
  const float inv = 1.0 / sqrt(var + pc.eps);
  const uint nw = meta_of(segment, META_NORM_W), nb = meta_of(segment, META_NORM_B);
#if defined(ROWS_F16)
  for (uint i = 2u * tid; i < Hp; i += 2u * ROW_THREADS) {
    const float v0 = i < H ? (x_v[src + i] - mean) * inv * small_v[nw + i] + small_v[nb + i] : 0.0;
    const float v1 = i + 1u < H ? (x_v[src + i + 1u] - mean) * inv * small_v[nw + i + 1u] + small_v[nb + i + 1u] : 0.0;
    rows_h[(dst + i) / 2u] = packHalf2x16(vec2(v0, v1));
  }
#else
  for (uint i = tid; i < Hp; i += ROW_THREADS) {
    rows_v[dst + i] = i < H ? (x_v[src + i] - mean) * inv * small_v[nw + i] + small_v[nb + i] : 0.0;
  }
#endif
}
