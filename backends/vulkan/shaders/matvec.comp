// SPDX-License-Identifier: MIT
#version 450
// The small-row (decode) path of the grouped projections: for segments of at most MV_MAX_ROWS rows, each weight row
// is streamed once and dotted with every row of the segment. A workgroup owns MV_NPW output columns of one segment
// (workgroup z = segment), 32 lanes per column reading consecutive uvec4 words (coalesced), then a tree reduction
// over the lanes in shared memory (a lane's step is one unit of VW weights: compact_codes.glsl for the compact
// formats). Bound by weight bandwidth, which is what a 1-token call is about.
//   MODE_UP     hidden[r, n] = act(rows[r] . up[n] + up_bias[n]), or silu(rows[r] . gate[n]) * (rows[r] . up[n])
//   MODE_DOWN   out[r, n]    = hidden[r] . down[n]
// X_DIRECT (MODE_UP, decode steps routed by route_small, no pre-norm experts, H a multiple of 4): row r of a segment
// is read straight from x at its token (route_rowtok()), which is what gather would have copied, so the gather pass
// and its barrier are skipped and the sums see the same values.
// (The router's logits for such calls: router_small.comp.)
// On an H100 (bench/vulkan/RESULTS.md, decode path): this plain loop (one word per lane per step) and five-level tree
// beat both four words loaded ahead per lane (2.2 times slower for shape C's up projection at one token) and a
// two-step lane reduction through a register array (1.4 to 1.8 times slower): keep the loop simple.
// The lanes' partial sums are added in a fixed tree, so results repeat exactly from call to call; they differ in
// the last bits from the tiled kernel's, which is why deterministic mode never uses this path.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = MV_THREADS) in;

BUFFER_ROUTE(readonly)
BUFFER_WEIGHTS
#include "compact_codes.glsl"
// The rows (up) and hidden activations (down) are read four floats at a time: their rows are padded to 16 floats.
#if defined(MODE_UP) && defined(X_DIRECT)
layout(set = 0, binding = B_X) readonly buffer X4 { vec4 in4[]; };
BUFFER_HIDDEN(writeonly)
#define NACC 2
#elif defined(MODE_UP)
layout(set = 0, binding = B_ROWS) readonly buffer Rows4 { vec4 in4[]; };
BUFFER_HIDDEN(writeonly)
#define NACC 2
#elif defined(MODE_DOWN)
layout(set = 0, binding = B_HIDDEN) readonly buffer Hidden4 { vec4 in4[]; };
BUFFER_OUT(writeonly)
#define NACC 1
#endif

shared float partial[MV_MAX_ROWS * NACC][MV_THREADS];

void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint lane = tid % 32u, col = tid / 32u;
  const uint n = gl_WorkGroupID.x * MV_NPW + col;
  const uint s = uint(route[pc.route_active + gl_WorkGroupID.z]);  // the z-th segment that has rows
  const uint seg = uint(pc.route_seg) + s * SEG_STRIDE;
  const uint rows = min(uint(route[seg + SEG_COUNT]), uint(MV_MAX_ROWS));
  const uint row0 = uint(route[seg + SEG_ROW]);
  const uint hid0 = uint(route[seg + SEG_HIDDEN]);
  const uint I = meta_of(s, META_I), Ip = meta_of(s, META_IP);
  const uint ar = meta_of(s, META_ARENA);
#if defined(MODE_UP)
  const uint N = I, NP = Ip, K = pc.hidden_pad;
  const uint wbase = meta_of(s, META_UP), gbase = meta_of(s, META_GATE), wstride = meta_of(s, META_UP_STRIDE);
  const bool gated = (meta_of(s, META_FLAGS) & EXPERT_GATED) != 0u;
#if defined(COMPACT)
  const uint cols = pc.hidden, group = meta_of(s, META_GROUP);
  const uint wscale = meta_of(s, META_UP_SCALE), gscale = meta_of(s, META_GATE_SCALE);
  const uint wzero = meta_of(s, META_UP_ZERO), gzero = meta_of(s, META_GATE_ZERO);
#endif
#else
  const uint N = pc.hidden, NP = pc.hidden, K = Ip;
  const uint wbase = meta_of(s, META_DOWN), gbase = 0u, wstride = meta_of(s, META_DOWN_STRIDE);
  const bool gated = false;
#if defined(COMPACT)
  const uint cols = I, group = meta_of(s, META_GROUP);
  const uint wscale = meta_of(s, META_DOWN_SCALE), gscale = META_NONE;
  const uint wzero = meta_of(s, META_DOWN_ZERO), gzero = META_NONE;
#endif
#endif
  if (rows == 0u || gl_WorkGroupID.x * MV_NPW >= NP) return;  // whole workgroup

  float acc[MV_MAX_ROWS], accg[MV_MAX_ROWS];
  for (uint r = 0u; r < MV_MAX_ROWS; ++r) {
    acc[r] = 0.0;
    accg[r] = 0.0;
  }
#if defined(X_DIRECT)
  uint x4row[MV_MAX_ROWS];  // where each row's token starts in x, in vec4s
  for (uint r = 0u; r < MV_MAX_ROWS; ++r) {
    x4row[r] = r < rows ? uint(route[route_rowtok() + row0 + r]) * (pc.hidden / 4u) : 0u;
  }
#endif
  if (n < N) {
    const uint words = K / VW;
    for (uint q = lane; q < words; q += 32u) {
      float wv[VW], gv[VW];
#if defined(COMPACT)
      weight_unit(ar, wbase, wstride, wscale, wzero, n, q, cols, group, wv);
      if (gated) weight_unit(ar, gbase, wstride, gscale, gzero, n, q, cols, group, gv);
#else
      decode(arena[ar].w[wbase + n * wstride + q], wv);
      if (gated) decode(arena[ar].w[gbase + n * wstride + q], gv);
#endif
      for (uint r = 0u; r < MV_MAX_ROWS; ++r) {
        if (r >= rows) break;
        float a[VW];
#if defined(X_DIRECT)
        for (uint v = 0u; v < VW / 4u; ++v) {  // x is not padded: what lies past H reads as gather's zeros
          const uint k = q * VW + 4u * v;
          const vec4 x4 = k < pc.hidden ? in4[x4row[r] + k / 4u] : vec4(0.0);
          a[4u * v] = x4.x;
          a[4u * v + 1u] = x4.y;
          a[4u * v + 2u] = x4.z;
          a[4u * v + 3u] = x4.w;
        }
#else
#if defined(MODE_UP)
        const uint base4 = ((row0 + r) * K + q * VW) / 4u;
#else
        const uint base4 = (hid0 + r * K + q * VW) / 4u;
#endif
        for (uint v = 0u; v < VW / 4u; ++v) {
          const vec4 x4 = in4[base4 + v];
          a[4u * v] = x4.x;
          a[4u * v + 1u] = x4.y;
          a[4u * v + 2u] = x4.z;
          a[4u * v + 3u] = x4.w;
        }
#endif
        for (uint i = 0u; i < VW; ++i) {
          acc[r] = fma(wv[i], a[i], acc[r]);
          if (gated) accg[r] = fma(gv[i], a[i], accg[r]);
        }
      }
    }
  }
  // Tree reduction over each column's 32 lanes, for the segment's rows only (rows is the same for the whole
  // workgroup, so the barriers stay in uniform control flow).
  for (uint r = 0u; r < rows; ++r) {
    partial[r * NACC][tid] = acc[r];
#if defined(MODE_UP)
    partial[r * NACC + 1u][tid] = accg[r];
#endif
  }
  barrier();
  for (uint stride = 16u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      for (uint r = 0u; r < rows * NACC; ++r) partial[r][tid] += partial[r][tid + stride];
    }
    barrier();
  }
  if (lane != 0u || n >= NP) return;

#if defined(MODE_UP)
  const uint act = meta_of(s, META_ACT), up_b = meta_of(s, META_UP_B);
#endif
  for (uint r = 0u; r < rows; ++r) {
    const float v = partial[r * NACC][tid];
#if defined(MODE_UP)
    float h = 0.0;
    if (n < N) {
      if (gated) {
        h = silu_f(partial[r * NACC + 1u][tid]) * v;
      } else {
        h = activate(act, up_b == META_NONE ? v : v + small_v[up_b + n]);
      }
    }
    hidden_v[hid0 + r * Ip + n] = h;
#else
    out_v[(row0 + r) * N + n] = v;
#endif
  }
}
