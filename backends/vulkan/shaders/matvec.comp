#version 450
// The small-row (decode) path of the grouped projections: for segments of at most MV_MAX_ROWS rows, each weight row
// is streamed once and dotted with every row of the segment. A workgroup owns MV_NPW output columns of one segment
// (workgroup z = segment), 32 lanes per column reading consecutive uvec4 words (coalesced), then a tree reduction
// over the lanes in shared memory. Bound by weight bandwidth, which is what a 1-token call is about.
//   MODE_UP    hidden[r, n] = act(rows[r] . up[n] + up_bias[n]), or silu(rows[r] . gate[n]) * (rows[r] . up[n])
//   MODE_DOWN  out[r, n]    = hidden[r] . down[n]
// The lanes' partial sums are added in a fixed tree, so results repeat exactly from call to call; they differ in
// the last bits from the tiled kernel's, which is why deterministic mode never uses this path.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = MV_THREADS) in;

BUFFER_ROUTE(readonly)
BUFFER_WEIGHTS
#if defined(MODE_UP)
BUFFER_ROWS(readonly)
BUFFER_HIDDEN(writeonly)
#define NACC 2
#else
BUFFER_HIDDEN(readonly)
BUFFER_OUT(writeonly)
#define NACC 1
#endif

shared float partial[MV_MAX_ROWS * NACC][MV_THREADS];

void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint lane = tid % 32u, col = tid / 32u;
  const uint s = gl_WorkGroupID.z;
  const uint n = gl_WorkGroupID.x * MV_NPW + col;

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
#else
  const uint N = pc.hidden, NP = pc.hidden, K = Ip;
  const uint wbase = meta_of(s, META_DOWN), gbase = 0u, wstride = meta_of(s, META_DOWN_STRIDE);
  const bool gated = false;
#endif
  if (rows == 0u || gl_WorkGroupID.x * MV_NPW >= NP) return;  // whole workgroup

  float acc[MV_MAX_ROWS], accg[MV_MAX_ROWS];
  for (uint r = 0u; r < MV_MAX_ROWS; ++r) {
    acc[r] = 0.0;
    accg[r] = 0.0;
  }
  if (n < N) {
    const uint words = K / VW;
    for (uint q = lane; q < words; q += 32u) {
      float wv[VW], gv[VW];
      decode(arena[ar].w[wbase + n * wstride + q], wv);
      if (gated) decode(arena[ar].w[gbase + n * wstride + q], gv);
      for (uint r = 0u; r < MV_MAX_ROWS; ++r) {
        if (r >= rows) break;
#if defined(MODE_UP)
        const uint base = (row0 + r) * K + q * VW;
#else
        const uint base = hid0 + r * K + q * VW;
#endif
        for (uint i = 0u; i < VW; ++i) {
#if defined(MODE_UP)
          const float a = rows_v[base + i];
#else
          const float a = hidden_v[base + i];
#endif
          acc[r] = fma(wv[i], a, acc[r]);
          if (gated) accg[r] = fma(gv[i], a, accg[r]);
        }
      }
    }
  }
  for (uint r = 0u; r < MV_MAX_ROWS; ++r) {
    partial[r * NACC][tid] = acc[r];
#if defined(MODE_UP)
    partial[r * NACC + 1u][tid] = accg[r];
#endif
  }
  barrier();
  for (uint stride = 16u; stride > 0u; stride >>= 1u) {
    if (lane < stride) {
      for (uint r = 0u; r < MV_MAX_ROWS * NACC; ++r) partial[r][tid] += partial[r][tid + stride];
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
