// SPDX-License-Identifier: MIT
#version 450
// The grouped GEMM of the two expert projections on tensor cores (VK_NV_cooperative_matrix), for fp16 weights: one
// dispatch per projection covers every segment with rows (workgroup z, as matmul.comp), each workgroup one output
// tile of BM rows x BN columns of its segment. WARPS_M x WARPS_N subgroups of 32 (defaults 2 x 4: 256 invocations),
// each holding an (FM * 16) x (BN / WARPS_N) block of fp32 accumulators as 16 x CM_N fragments; BM = WARPS_M * FM * 16.
//   MODE_UP    hidden[r, n] = act(rows[r] . up[n] + up_bias[n]), or silu(rows[r] . gate[n]) * (rows[r] . up[n])
//              (BN output columns, default 64: the tile holds BN up rows and, for gated experts, the BN matching
//              gate rows)
//   MODE_DOWN  out[r, n]    = hidden[r] . down[n]   (BN default 128; the down bias and routing weight are in the
//              combine)
// The multiplications take fp16 inputs and accumulate in fp32. The weights are fp16 already (exact). The
// activations: with A_F16 (the default tiles, coop_tiles.h) they are fp16 in memory already, rounded once by the
// gather (rows) and by the up projection's epilogue (the hidden layer): relative error 2^-11 per element, half the
// bytes and half the tensor-core work of the split. Without it they are fp32, converted on the way into shared
// memory: with SPLIT (PIMOE_VULKAN_TILES=coopmat-split) each is split into hi (x cut to 11 significant bits) and
// lo = fp16(x - hi) and both halves are multiplied, so that x is carried to about 21 bits (relative error about
// 2^-21, or an absolute error below 3e-8 where lo is a subnormal fp16) and the result stays close to fp32; without
// SPLIT they are rounded to fp16. Every way, |activations| beyond 65504 overflow fp16, which the fp32 FMA kernels
// do not.
// Depth steps of BK are staged in shared memory (A converted to fp16 on the way, B as stored), double buffered with
// one barrier per step: the next step's global loads are issued before the current step's multiplications, and
// stored into the other buffer after them.
#extension GL_GOOGLE_include_directive : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

// Tile geometry (defaults: the first version's 128 x 64 up / 128 x 128 down tiles of 2 x 4 subgroups): WARPS_M x
// WARPS_N subgroups, each FM fragments of 16 rows deep and BN / WARPS_N columns wide.
#if !defined(WARPS_M)
#define WARPS_M 2
#endif
#if !defined(WARPS_N)
#define WARPS_N 4
#endif
#if !defined(FM)
#define FM 4
#endif
#define THREADS (32 * WARPS_M * WARPS_N)
layout(local_size_x = THREADS) in;

#if !defined(WTYPE_F16)
#error matmul_coop.comp multiplies fp16 weights only
#endif
#if !defined(CM_N)
#define CM_N 8
#endif

BUFFER_ROUTE(readonly)
BUFFER_WEIGHTS
// The activations as vec4 (rows are padded to 16 elements and every row starts at a multiple of 16 floats), or with
// A_F16 as fp16, 8 to a uvec4 (gather.comp's ROWS_F16 rows; MODE_UP then writes the hidden layer as fp16 for the
// MODE_DOWN variant of the same kind): the same element offsets, half the bytes.
#if defined(A_F16) && defined(SPLIT)
#error matmul_coop.comp: A_F16 activations are fp16 already, there is nothing to split
#endif
#if defined(MODE_UP)
#if defined(A_F16)
layout(set = 0, binding = B_ROWS) readonly buffer Rows8 { uvec4 a8[]; };
layout(set = 0, binding = B_HIDDEN) writeonly buffer HiddenH { uint hidden_h[]; };
#else
layout(set = 0, binding = B_ROWS) readonly buffer Rows4 { vec4 a4[]; };
BUFFER_HIDDEN(writeonly)
#endif
#if !defined(BN)
#define BN 64
#endif
#define BNW (2 * BN)  // weight rows staged per step: BN up rows, then the BN matching gate rows
#else
#if defined(A_F16)
layout(set = 0, binding = B_HIDDEN) readonly buffer Hidden8 { uvec4 a8[]; };
#else
layout(set = 0, binding = B_HIDDEN) readonly buffer Hidden4 { vec4 a4[]; };
#endif
BUFFER_OUT(writeonly)
#if !defined(BN)
#define BN 128
#endif
#define BNW BN
#endif

#define BM (WARPS_M * FM * 16)
#if defined(BK)
#elif defined(SPLIT)
#define BK 16    // two A tiles (hi, lo) per step: the same multiplications per barrier as BK 32 without SPLIT
#else
#define BK 32
#endif
#define KC (BK / 8)       // 16-byte chunks (8 fp16) per staged row
#define SROW (KC + 1)     // shared row stride in chunks: one chunk of padding keeps the fragment loads off one bank
#define A_CHUNKS (BM * KC)
#define A_CH ((A_CHUNKS + THREADS - 1) / THREADS)  // A chunks per invocation per step (the last may be idle)
#define B_CH (BNW * KC / THREADS)                  // B chunks per invocation per step
#define WN (BN / WARPS_N) // output columns per subgroup
#define FN (WN / CM_N)    // fragments along the columns per subgroup
#if (BNW * KC) % THREADS != 0 || WN % CM_N != 0
#error matmul_coop.comp: tile geometry does not divide
#endif

// Shared tiles hold fp16 as uvec4 (8 values) and are read as fragments with offsets and strides in uvec4 units.
shared uvec4 a_hi[2 * BM * SROW];
#if defined(SPLIT)
shared uvec4 a_lo[2 * BM * SROW];
#endif
shared uvec4 b_sh[2 * BNW * SROW];
// One 16 x CM_N fp32 fragment per subgroup, for the bounded epilogue. STAGE_IN_B: in b_sh, which the epilogue no
// longer needs (the larger tiles would not fit 48 KiB of shared memory otherwise).
#define STAGE_FLOATS (THREADS / 32 * 16 * CM_N)
#if defined(STAGE_IN_B)
#if STAGE_FLOATS > 2 * BNW * SROW * 4
#error matmul_coop.comp: the epilogue stage does not fit b_sh
#endif
#define STAGE_STORE(m, st) coopMatStoreNV(m, b_sh, (st) / 4u, CM_N / 4u, false)
#define STAGE_READ(i) uintBitsToFloat(b_sh[(i) / 4u][(i) % 4u])
#else
shared float stage[STAGE_FLOATS];
#define STAGE_STORE(m, st) coopMatStoreNV(m, stage, st, CM_N, false)
#define STAGE_READ(i) stage[i]
#endif

#define FA fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define FB fcoopmatNV<16, gl_ScopeSubgroup, 16, CM_N>
#define FC fcoopmatNV<32, gl_ScopeSubgroup, 16, CM_N>

#if defined(A_F16)
#define A_PER_WORD 8u  // activations per a8 element
#else
#define A_PER_WORD 4u  // activations per a4 element
#endif

#if defined(MODE_UP)
// The hidden layer's value at column n from the up projection's sum v and, for gated experts, the gate's sum g:
// 0 in the padding columns past N.
float hidden_value(float v, float g, uint n, uint N, bool gated, uint act, uint up_b) {
  if (n >= N) return 0.0;
  return gated ? silu_f(g) * v : activate(act, up_b == META_NONE ? v : v + small_v[up_b + n]);
}
#endif
// The epilogue's elements per invocation and step: two neighbouring columns where the hidden layer is fp16 (written
// as one word), else one.
#if defined(MODE_UP) && defined(A_F16)
#define EPW 2u
#else
#define EPW 1u
#endif
#define EPI_STEPS (16u * CM_N / (32u * EPW))

void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint s = uint(route[pc.route_active + gl_WorkGroupID.z]);  // the z-th segment that has rows
  const uint seg = uint(pc.route_seg) + s * SEG_STRIDE;
  const uint rows = uint(route[seg + SEG_COUNT]);
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

  // Tile order: groups of 8 row tiles walk the column tiles together, so that a weight tile is read from memory
  // once while the 8 row tiles that need it run (the dispatch runs x fastest: row-major order would stream an
  // expert's whole up/gate weights once per row tile).
  const uint gx = gl_NumWorkGroups.x, gy = gl_NumWorkGroups.y;
  const uint lin = gl_WorkGroupID.y * gx + gl_WorkGroupID.x;
  const uint group = lin / (8u * gx), first = group * 8u, gsize = min(gy - first, 8u);
  const uint in_group = lin % (8u * gx);
  const uint m0 = (first + in_group % gsize) * BM, n0 = (in_group / gsize) * BN;
  if (m0 >= rows || n0 >= NP) return;  // whole workgroup: past this segment's rows or columns

  // Global addresses of this invocation's chunks (fixed over the depth steps but for k).
  uint a_off[A_CH];
  bool a_ok[A_CH];
  [[unroll]] for (uint q = 0u; q < A_CH; ++q) {
    const uint c = tid + q * THREADS, r = c / KC, kc = c % KC;
    const uint m = m0 + r;
    a_ok[q] = m < rows && c < A_CHUNKS;
#if defined(MODE_UP)
    a_off[q] = ((row0 + m) * pc.hidden_pad + kc * 8u) / A_PER_WORD;
#else
    a_off[q] = (hid0 + m * Ip + kc * 8u) / A_PER_WORD;
#endif
  }
  uint b_off[B_CH];
  bool b_ok[B_CH];
  [[unroll]] for (uint q = 0u; q < B_CH; ++q) {
    const uint c = tid + q * THREADS, r = c / KC, kc = c % KC;
#if defined(MODE_UP)
    const bool gate_row = r >= BN;
    const uint n = n0 + (gate_row ? r - BN : r);
    b_ok[q] = n < N && (!gate_row || gated);
    b_off[q] = (gate_row ? gbase : wbase) + n * wstride + kc;
#else
    const uint n = n0 + r;
    b_ok[q] = n < N;
    b_off[q] = wbase + n * wstride + kc;
#endif
  }

  // Two register sets for the depth steps in flight (PREFETCH2: loads are issued two steps before their step is
  // computed, so that twice the bytes are in flight per invocation; the loop below is unrolled by two so that both
  // sets stay in registers).
#if defined(A_F16)
  uvec4 a_reg[A_CH], a_reg2[A_CH];
#define LOAD_A(q, AR, ok, k0) AR[q] = (ok) ? a8[a_off[q] + (k0) / 8u] : uvec4(0u);
#else
  vec4 a_reg[A_CH][2], a_reg2[A_CH][2];
#define LOAD_A(q, AR, ok, k0)                                  \
  AR[q][0] = (ok) ? a4[a_off[q] + (k0) / 4u] : vec4(0.0);      \
  AR[q][1] = (ok) ? a4[a_off[q] + (k0) / 4u + 1u] : vec4(0.0);
#endif
  uvec4 b_reg[B_CH], b_reg2[B_CH];
  // Depth step k0 into registers AR, BR; depth past K (rows are padded to 16, a step may be 32) and rows or columns
  // past the segment read as 0.
#define LOAD_STEP_TO(k0, AR, BR)                                                          \
  [[unroll]] for (uint q = 0u; q < A_CH; ++q) {                                           \
    const uint kc = (tid + q * THREADS) % KC;                                          \
    LOAD_A(q, AR, a_ok[q] && (k0) + kc * 8u < K, k0)                                      \
  }                                                                                       \
  [[unroll]] for (uint q = 0u; q < B_CH; ++q) {                                           \
    const uint kc = (tid + q * THREADS) % KC;                                          \
    BR[q] = (b_ok[q] && (k0) + kc * 8u < K) ? arena[ar].w[b_off[q] + (k0) / 8u] : uvec4(0u); \
  }
#define LOAD_STEP(k0) LOAD_STEP_TO(k0, a_reg, b_reg)

  // Registers AR, BR into shared buffer `buf` (A rounded to fp16, and with SPLIT its remainder).
#define STORE_STEP_FROM(buf, AR, BR)                                                      \
  [[unroll]] for (uint q = 0u; q < A_CH; ++q) {                                           \
    const uint c = tid + q * THREADS, at = (buf) * BM * SROW + (c / KC) * SROW + c % KC; \
    if (A_CHUNKS % THREADS != 0 && c >= A_CHUNKS) break;                                  \
    STORE_A(at, AR[q])                                                                    \
  }                                                                                       \
  [[unroll]] for (uint q = 0u; q < B_CH; ++q) {                                           \
    const uint c = tid + q * THREADS;                                                     \
    b_sh[(buf) * BNW * SROW + (c / KC) * SROW + c % KC] = BR[q];                          \
  }
#define STORE_STEP(buf) STORE_STEP_FROM(buf, a_reg, b_reg)
#if defined(A_F16)
#define STORE_A(at, ar) a_hi[at] = ar;
#else
#define STORE_A(at, ar)                                                                                           \
  {                                                                                                               \
    const vec4 x0 = HI(ar[0]), x1 = HI(ar[1]);                                                                    \
    const uvec4 hi = uvec4(packHalf2x16(x0.xy), packHalf2x16(x0.zw), packHalf2x16(x1.xy), packHalf2x16(x1.zw));   \
    a_hi[at] = hi;                                                                                                \
    STORE_LO(at, ar[0], ar[1], hi)                                                                                \
  }
#endif
#if defined(SPLIT)
// hi: x with its significand cut to fp16's 11 bits by integer masking. A first version took lo as
// x - unpackHalf2x16(packHalf2x16(x)) and gave exactly the errors of plain fp16 on the H100: the split was folded
// away somewhere (the SPIR-V still had it), which masking leaves nothing to fold.
// It converts to fp16 exactly unless it is below fp16's normal range; lo = x - fp16(hi) then carries the rest.
#define HI(x) uintBitsToFloat(floatBitsToUint(x) & 0xffffe000u)
#define STORE_LO(at, x0, x1, hi)                                                                                  \
  {                                                                                                               \
    const vec4 r0 = x0 - vec4(unpackHalf2x16(hi.x), unpackHalf2x16(hi.y));                                        \
    const vec4 r1 = x1 - vec4(unpackHalf2x16(hi.z), unpackHalf2x16(hi.w));                                        \
    a_lo[at] = uvec4(packHalf2x16(r0.xy), packHalf2x16(r0.zw), packHalf2x16(r1.xy), packHalf2x16(r1.zw));         \
  }
#else
#define HI(x) (x)
#define STORE_LO(at, x0, x1, hi)
#endif

  const uint sg = tid / 32u;  // subgroup: WARPS_M along the rows x WARPS_N along the columns
  const uint wm = (sg / WARPS_N) * (FM * 16u), wn = (sg % WARPS_N) * WN;
  FC acc[FM][FN];
#if defined(MODE_UP)
  FC accg[FM][FN];
#endif
  [[unroll]] for (uint i = 0u; i < FM; ++i) {
    [[unroll]] for (uint j = 0u; j < FN; ++j) {
      acc[i][j] = FC(0.0);
#if defined(MODE_UP)
      accg[i][j] = FC(0.0);
#endif
    }
  }

  LOAD_STEP(0u)
  STORE_STEP(0u)
  barrier();
  uint buf = 0u;
#if defined(PREFETCH2)
  // Step k0 + BK is in a_reg/b_reg and step k0 + 2 BK in a_reg2/b_reg2 when step k0 is computed from shared
  // buffer `buf`; after the computation the older set goes to the other buffer and is reloaded two steps ahead.
  if (BK < K) {
    LOAD_STEP_TO(BK, a_reg, b_reg)
  }
  if (2u * BK < K) {
    LOAD_STEP_TO(2u * BK, a_reg2, b_reg2)
  }
  for (uint k0 = 0u; k0 < K; k0 += 2u * BK) {
    {
#include "matmul_coop_step.glsl"
    }
    if (k0 + BK < K) {
      STORE_STEP_FROM(buf ^ 1u, a_reg, b_reg)
    }
    barrier();  // the other buffer is written; this one is no longer read
    buf ^= 1u;
    if (k0 + BK >= K) break;
    if (k0 + 3u * BK < K) {
      LOAD_STEP_TO(k0 + 3u * BK, a_reg, b_reg)
    }
    {
#include "matmul_coop_step.glsl"
    }
    if (k0 + 2u * BK < K) {
      STORE_STEP_FROM(buf ^ 1u, a_reg2, b_reg2)
    }
    barrier();
    buf ^= 1u;
    if (k0 + 4u * BK < K) {
      LOAD_STEP_TO(k0 + 4u * BK, a_reg2, b_reg2)
    }
  }
#else
  for (uint k0 = 0u; k0 < K; k0 += BK) {
    const bool more = k0 + BK < K;
    if (more) {
      LOAD_STEP(k0 + BK)
    }
    {
#include "matmul_coop_step.glsl"
    }
    if (more) {
      STORE_STEP(buf ^ 1u)
    }
    barrier();  // the other buffer is written; this one is no longer read
    buf ^= 1u;
  }
#endif

  // Epilogue: each fragment goes through the subgroup's stage in shared memory, so that every element is written
  // with its row and column known (bounds, padding columns, bias and activation).
#if defined(STAGE_IN_B)
  barrier();  // every subgroup is done with b_sh
#endif
  const uint lane = tid % 32u, st = sg * 16u * CM_N;
#if defined(MODE_UP)
  const uint act = meta_of(s, META_ACT), up_b = meta_of(s, META_UP_B);
#endif
  [[unroll]] for (uint i = 0u; i < FM; ++i) {
    [[unroll]] for (uint j = 0u; j < FN; ++j) {
#if defined(MODE_UP)
      // The gate's values go through the stage first, into registers: SwiGLU element by element on the fragments
      // themselves (indexing their components) ran the up projection 4 times slower on an H100 once a subgroup held
      // more than one fragment column.
      float g[EPI_STEPS * EPW];
      if (gated) {
        STAGE_STORE(accg[i][j], st);
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        [[unroll]] for (uint r = 0u; r < EPI_STEPS; ++r) {
          [[unroll]] for (uint e = 0u; e < EPW; ++e) g[r * EPW + e] = STAGE_READ(st + (lane + 32u * r) * EPW + e);
        }
        subgroupBarrier();  // read before the up fragment overwrites it
      } else {
        [[unroll]] for (uint r = 0u; r < EPI_STEPS * EPW; ++r) g[r] = 0.0;  // unused without a gate
      }
#endif
      STAGE_STORE(acc[i][j], st);
      subgroupMemoryBarrierShared();
      subgroupBarrier();
      [[unroll]] for (uint r = 0u; r < EPI_STEPS; ++r) {
        const uint q = (lane + 32u * r) * EPW;
        const uint m = m0 + wm + i * 16u + q / CM_N, n = n0 + wn + j * CM_N + q % CM_N;
        if (m >= rows || n >= NP) continue;
#if defined(MODE_UP) && defined(A_F16)
        // n is even, and so is NP: both columns exist.
        const vec2 h = vec2(hidden_value(STAGE_READ(st + q), g[r * 2u], n, N, gated, act, up_b),
                            hidden_value(STAGE_READ(st + q + 1u), g[r * 2u + 1u], n + 1u, N, gated, act, up_b));
        hidden_h[(hid0 + m * Ip + n) / 2u] = packHalf2x16(h);
#elif defined(MODE_UP)
        hidden_v[hid0 + m * Ip + n] = hidden_value(STAGE_READ(st + q), g[r], n, N, gated, act, up_b);
#else
        out_v[(row0 + m) * N + n] = STAGE_READ(st + q);
#endif
      }
      subgroupBarrier();  // the stage is read before the next fragment overwrites it
    }
  }
}
