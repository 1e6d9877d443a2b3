#version 450
// The grouped GEMM of the layer: one dispatch per projection covers every segment (workgroup z = segment: the
// routed experts, then the shared expert), each workgroup one MM_BM x MM_BN output tile of its segment; tiles past
// a segment's rows or columns exit at once (the grid is sized for the largest segment).
//   MODE_ROUTER  logits[T, E] = x[T, H] * router^T                      (one segment, fp32 weights)
//   MODE_UP      hidden[r, n] = act(rows[r] . up[n] + up_bias[n]), or silu(rows[r] . gate[n]) * (rows[r] . up[n])
//   MODE_DOWN    out[r, n]    = hidden[r] . down[n]                     (the down bias is added in the combine)
// Every output element is accumulated by one thread over k in ascending order, whatever the tile's position or the
// number of rows: a token's result does not depend on the others in the call (deterministic mode relies on it).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = MM_THREADS) in;

#if defined(MODE_ROUTER)
BUFFER_ROUTER
BUFFER_X
BUFFER_LOGITS(writeonly)
#else
BUFFER_ROUTE(readonly)
BUFFER_WEIGHTS
#if defined(MODE_UP)
BUFFER_ROWS(readonly)
BUFFER_HIDDEN(writeonly)
#else
BUFFER_HIDDEN(readonly)
BUFFER_OUT(writeonly)
#endif
#endif

shared float a_tile[MM_BK][MM_BM];
shared float b_tile[MM_BK][MM_BN];
#if defined(MODE_UP)
shared float g_tile[MM_BK][MM_BN];
#endif

void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint tx = tid % 16u, ty = tid / 16u;
  const uint n0 = gl_WorkGroupID.x * MM_BN, m0 = gl_WorkGroupID.y * MM_BM;
  const uint s = gl_WorkGroupID.z;

#if defined(MODE_ROUTER)
  const uint rows = pc.tokens, N = pc.experts, K = pc.hidden;
  const uint wstride = pc.hidden_pad / 4u;
#else
  const uint seg = uint(pc.route_seg) + s * SEG_STRIDE;
  const uint rows = uint(route[seg + SEG_COUNT]);
  const uint row0 = uint(route[seg + SEG_ROW]);
  const uint hid0 = uint(route[seg + SEG_HIDDEN]);
  const uint I = meta_of(s, META_I), Ip = meta_of(s, META_IP);
  const uint ar = meta_of(s, META_ARENA);
#if defined(MODE_UP)
  // Output columns run to Ip: the padding columns are written as zeros (the down projection reads them).
  const uint N = I, NP = Ip, K = pc.hidden_pad;
  const uint wbase = meta_of(s, META_UP), gbase = meta_of(s, META_GATE), wstride = meta_of(s, META_UP_STRIDE);
  const bool gated = (meta_of(s, META_FLAGS) & EXPERT_GATED) != 0u;
#else
  const uint N = pc.hidden, NP = pc.hidden, K = Ip;
  const uint wbase = meta_of(s, META_DOWN), wstride = meta_of(s, META_DOWN_STRIDE);
#endif
#endif
#if defined(MODE_ROUTER)
  const uint NP = N;
#endif
  if (m0 >= rows || n0 >= NP) return;  // whole workgroup: past this segment's rows or columns

  float acc[4][4];
#if defined(MODE_UP)
  float accg[4][4];
#endif
  for (uint i = 0u; i < 4u; ++i) {
    for (uint j = 0u; j < 4u; ++j) {
      acc[i][j] = 0.0;
#if defined(MODE_UP)
      accg[i][j] = 0.0;
#endif
    }
  }

  for (uint k0 = 0u; k0 < K; k0 += MM_BK) {
    // A tile: MM_BM rows x MM_BK depth, four elements per thread.
    for (uint q = 0u; q < 4u; ++q) {
      const uint idx = tid + q * MM_THREADS;
      const uint r = idx / MM_BK, kk = idx % MM_BK;
      const uint m = m0 + r, k = k0 + kk;
      float v = 0.0;
#if defined(MODE_ROUTER)
      if (m < rows && k < K) v = x_v[m * K + k];
#elif defined(MODE_UP)
      if (m < rows) v = rows_v[(row0 + m) * pc.hidden_pad + k];
#else
      if (m < rows) v = hidden_v[hid0 + m * Ip + k];
#endif
      a_tile[kk][r] = v;
    }
    // B tile: MM_BN weight rows x MM_BK depth, read as uvec4 words of VW weights.
    const uint words = MM_BN * (MM_BK / VW);
    if (tid < words) {
      const uint r = tid / (MM_BK / VW), q = tid % (MM_BK / VW);
      const uint n = n0 + r;
      float v[VW];
#if defined(MODE_ROUTER)
      if (n < N) {
        decode(router_w[n * wstride + k0 / 4u + q], v);
      } else {
        for (uint i = 0u; i < VW; ++i) v[i] = 0.0;
      }
#else
      if (n < N) {
        decode(arena[ar].w[wbase + n * wstride + k0 / VW + q], v);
      } else {
        for (uint i = 0u; i < VW; ++i) v[i] = 0.0;
      }
#endif
      for (uint i = 0u; i < VW; ++i) b_tile[q * VW + i][r] = v[i];
#if defined(MODE_UP)
      if (gated && n < N) {
        decode(arena[ar].w[gbase + n * wstride + k0 / VW + q], v);
      }
      if (gated) {
        for (uint i = 0u; i < VW; ++i) g_tile[q * VW + i][r] = v[i];
      }
#endif
    }
    barrier();
    for (uint kk = 0u; kk < MM_BK; ++kk) {
      float a[4], b[4];
      for (uint i = 0u; i < 4u; ++i) a[i] = a_tile[kk][ty + 16u * i];
      for (uint j = 0u; j < 4u; ++j) b[j] = b_tile[kk][tx + 16u * j];
      for (uint i = 0u; i < 4u; ++i) {
        for (uint j = 0u; j < 4u; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
      }
#if defined(MODE_UP)
      if (gated) {
        for (uint j = 0u; j < 4u; ++j) b[j] = g_tile[kk][tx + 16u * j];
        for (uint i = 0u; i < 4u; ++i) {
          for (uint j = 0u; j < 4u; ++j) accg[i][j] = fma(a[i], b[j], accg[i][j]);
        }
      }
#endif
    }
    barrier();
  }

#if defined(MODE_UP)
  const uint act = meta_of(s, META_ACT), up_b = meta_of(s, META_UP_B);
#endif
  for (uint i = 0u; i < 4u; ++i) {
    const uint m = m0 + ty + 16u * i;
    if (m >= rows) continue;
    for (uint j = 0u; j < 4u; ++j) {
      const uint n = n0 + tx + 16u * j;
      if (n >= NP) continue;
#if defined(MODE_ROUTER)
      logits_v[m * N + n] = acc[i][j];
#elif defined(MODE_UP)
      float v = 0.0;
      if (n < N) {
        if (gated) {
          v = silu_f(accg[i][j]) * acc[i][j];
        } else {
          v = activate(act, up_b == META_NONE ? acc[i][j] : acc[i][j] + small_v[up_b + n]);
        }
      }
      hidden_v[hid0 + m * Ip + n] = v;
#else
      out_v[(row0 + m) * N + n] = acc[i][j];
#endif
    }
  }
}
