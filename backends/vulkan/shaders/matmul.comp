// SPDX-License-Identifier: MIT
#version 450
// The grouped GEMM of the layer: one dispatch per projection covers every segment (workgroup z = segment: the
// routed experts, then the shared expert), each workgroup one BM x BN output tile of its segment; tiles past a
// segment's rows or columns exit at once (the grid is sized for the largest segment). Two tile configurations
// (TILE_LARGE: 128-row tiles and 8 x 8 or 8 x 4 outputs per thread, for segments of many rows; else 64 x 64 tiles
// and 4 x 4 outputs per thread), each 256 threads; the next depth step is loaded into registers while the current
// one is multiplied from shared memory.
//   MODE_ROUTER  logits[T, E] = x[T, H] * router^T                      (one segment, fp32 weights)
//   MODE_UP      hidden[r, n] = act(rows[r] . up[n] + up_bias[n]), or silu(rows[r] . gate[n]) * (rows[r] . up[n])
//   MODE_DOWN    out[r, n]    = hidden[r] . down[n]                     (the down bias is added in the combine)
// Every output element is accumulated by one thread over k in ascending order with fma, whatever the tile
// configuration, the tile's position or the number of rows: a token's result does not depend on the others in
// the call, and both configurations give the same bits (deterministic mode relies on it).
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
#include "compact_codes.glsl"
#if defined(MODE_UP)
BUFFER_ROWS(readonly)
BUFFER_HIDDEN(writeonly)
#else
BUFFER_HIDDEN(readonly)
BUFFER_OUT(writeonly)
#endif
#endif

#if defined(TILE_LARGE)
#define BM MM_BM_LARGE
#define TM 8
#if defined(MODE_UP)
#define BN 64
#define TN 4
#else
#define BN MM_BN_LARGE
#define TN 8
#endif
#else
#define BM MM_BM
#define BN MM_BN
#define TM 4
#define TN 4
#endif
#define TX (BN / TN)  // threads along the output columns
#define TY (BM / TM)  // threads along the rows; TX * TY == MM_THREADS
#define A_PER (BM * MM_BK / MM_THREADS)                  // A elements each thread loads per depth step
#define B_WORDS (BN * (MM_BK / VW))                      // weight words per matrix per depth step
#define B_PER ((B_WORDS + MM_THREADS - 1) / MM_THREADS)  // ... per thread

shared float a_tile[MM_BK][BM];
shared float b_tile[MM_BK][BN];
#if defined(MODE_UP)
shared float g_tile[MM_BK][BN];
#endif

#if defined(COMPACT)
// The segment's compact matrices (main sets them): their scales and zero points, columns and int4 group. With VW = 16
// = MM_BK, a weight row's depth step is one unit of codes and one scale.
uint wscale, gscale, wzero, gzero, wcols, wgroup;
#endif

// Loads depth step k0 from global memory into registers: A is BM rows x MM_BK depth (rows past the segment read
// as 0; the router's x is not padded, so its depth is bounded too), B is BN weight rows as uvec4 words of VW weights
// (rows past N read as 0; weight rows are zero padded to a multiple of MM_BK).
void load_step(uint k0, uint m0, uint n0, uint rows, uint N, uint K, uint row0, uint hid0, uint Ip, uint ar,
               uint wbase, uint gbase, uint wstride, bool gated, out float a_reg[A_PER], out uvec4 b_reg[B_PER],
               out uvec4 g_reg[B_PER]
#if defined(COMPACT)
               , out UnitScale b_scale[B_PER], out UnitScale g_scale[B_PER]
#endif
               ) {
  const uint tid = gl_LocalInvocationIndex;
  for (uint q = 0u; q < A_PER; ++q) {
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
    a_reg[q] = v;
  }
  for (uint q = 0u; q < B_PER; ++q) {
    const uint word = tid + q * MM_THREADS;
    const uint r = word / (MM_BK / VW), c = word % (MM_BK / VW);
    const uint n = n0 + r;
    b_reg[q] = uvec4(0u);
    g_reg[q] = uvec4(0u);
#if defined(COMPACT)
    b_scale[q] = UnitScale(0.0, 0.0);  // rows past N decode to zeros
    g_scale[q] = UnitScale(0.0, 0.0);
#endif
    if (word < B_WORDS && n < N) {
#if defined(MODE_ROUTER)
      b_reg[q] = router_w[n * wstride + k0 / 4u + c];
#elif defined(COMPACT)
      b_reg[q] = unit_codes(ar, wbase, wstride, n, k0 / VW);
      b_scale[q] = unit_scale(ar, wscale, wzero, n, k0 / VW, wcols, wgroup);
      if (gated) {
        g_reg[q] = unit_codes(ar, gbase, wstride, n, k0 / VW);
        g_scale[q] = unit_scale(ar, gscale, gzero, n, k0 / VW, wcols, wgroup);
      }
#else
      b_reg[q] = arena[ar].w[wbase + n * wstride + k0 / VW + c];
      if (gated) g_reg[q] = arena[ar].w[gbase + n * wstride + k0 / VW + c];
#endif
    }
  }
}

void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint tx = tid % TX, ty = tid / TX;
  const uint n0 = gl_WorkGroupID.x * BN, m0 = gl_WorkGroupID.y * BM;
#if defined(MODE_ROUTER)
  const uint s = 0u;
#else
  const uint s = uint(route[pc.route_active + gl_WorkGroupID.z]);  // the z-th segment that has rows
#endif

#if defined(MODE_ROUTER)
  const uint rows = pc.tokens, N = pc.experts, NP = N, K = pc.hidden;
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
#if defined(COMPACT)
  wcols = pc.hidden;
  wscale = meta_of(s, META_UP_SCALE);
  gscale = meta_of(s, META_GATE_SCALE);
  wzero = meta_of(s, META_UP_ZERO);
  gzero = meta_of(s, META_GATE_ZERO);
#endif
#else
  const uint N = pc.hidden, NP = pc.hidden, K = Ip;
  const uint wbase = meta_of(s, META_DOWN), wstride = meta_of(s, META_DOWN_STRIDE);
#if defined(COMPACT)
  wcols = I;
  wscale = meta_of(s, META_DOWN_SCALE);
  wzero = meta_of(s, META_DOWN_ZERO);
#endif
#endif
#if defined(COMPACT)
  wgroup = meta_of(s, META_GROUP);
#endif
#endif
  if (m0 >= rows || n0 >= NP) return;  // whole workgroup: past this segment's rows or columns

  float acc[TM][TN];
#if defined(MODE_UP)
  float accg[TM][TN];
#endif
  for (uint i = 0u; i < TM; ++i) {
    for (uint j = 0u; j < TN; ++j) {
      acc[i][j] = 0.0;
#if defined(MODE_UP)
      accg[i][j] = 0.0;
#endif
    }
  }

  // One depth step's inputs, held in registers between the global loads and the stores to shared memory: the
  // next step is loaded while the current one is multiplied.
  float a_reg[A_PER];
  uvec4 b_reg[B_PER], g_reg[B_PER];
#if defined(COMPACT)
  UnitScale b_scale[B_PER], g_scale[B_PER];
#define SCALES , b_scale, g_scale
#else
#define SCALES
#endif
#if defined(MODE_ROUTER)
  const uint row0 = 0u, hid0 = 0u, Ip = 0u, ar = 0u, wbase = 0u, gbase = 0u;
  const bool gated = false;
#elif defined(MODE_DOWN)
  const uint gbase = 0u;
  const bool gated = false;
#endif
  load_step(0u, m0, n0, rows, N, K, row0, hid0, Ip, ar, wbase, gbase, wstride, gated, a_reg, b_reg, g_reg SCALES);

  for (uint k0 = 0u; k0 < K; k0 += MM_BK) {
    barrier();  // the previous step's multiplications are done with the shared tiles
    for (uint q = 0u; q < A_PER; ++q) {
      const uint idx = tid + q * MM_THREADS;
      a_tile[idx % MM_BK][idx / MM_BK] = a_reg[q];
    }
    for (uint q = 0u; q < B_PER; ++q) {
      const uint word = tid + q * MM_THREADS;
      if (word >= B_WORDS) continue;
      const uint r = word / (MM_BK / VW), c = word % (MM_BK / VW);
      float v[VW];
#if defined(COMPACT)
      decode_codes(b_reg[q], b_scale[q], v);
#else
      decode(b_reg[q], v);
#endif
      for (uint i = 0u; i < VW; ++i) b_tile[c * VW + i][r] = v[i];
#if defined(MODE_UP)
      if (gated) {
#if defined(COMPACT)
        decode_codes(g_reg[q], g_scale[q], v);
#else
        decode(g_reg[q], v);
#endif
        for (uint i = 0u; i < VW; ++i) g_tile[c * VW + i][r] = v[i];
      }
#endif
    }
    barrier();
    if (k0 + MM_BK < K) {
      load_step(k0 + MM_BK, m0, n0, rows, N, K, row0, hid0, Ip, ar, wbase, gbase, wstride, gated, a_reg, b_reg, g_reg
                SCALES);
    }
    for (uint kk = 0u; kk < MM_BK; ++kk) {
      float a[TM], b[TN];
      for (uint i = 0u; i < TM; ++i) a[i] = a_tile[kk][ty + TY * i];
      for (uint j = 0u; j < TN; ++j) b[j] = b_tile[kk][tx + TX * j];
      for (uint i = 0u; i < TM; ++i) {
        for (uint j = 0u; j < TN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
      }
#if defined(MODE_UP)
      if (gated) {
        for (uint j = 0u; j < TN; ++j) b[j] = g_tile[kk][tx + TX * j];
        for (uint i = 0u; i < TM; ++i) {
          for (uint j = 0u; j < TN; ++j) accg[i][j] = fma(a[i], b[j], accg[i][j]);
        }
      }
#endif
    }
  }

#if defined(MODE_UP)
  const uint act = meta_of(s, META_ACT), up_b = meta_of(s, META_UP_B);
#endif
  for (uint i = 0u; i < TM; ++i) {
    const uint m = m0 + ty + TY * i;
    if (m >= rows) continue;
    for (uint j = 0u; j < TN; ++j) {
      const uint n = n0 + tx + TX * j;
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
