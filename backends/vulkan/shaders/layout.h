/* SPDX-License-Identifier: MIT */
// The interface between the Vulkan backend's C++ side and its shaders, in the common subset of C++ and GLSL:
// descriptor bindings, the push-constant block, the per-expert metadata table, the sections of the per-call
// routing buffer and the kernels' tile sizes. Included by the backend (call_layout.h) and by common.glsl, so both
// sides always agree.
#ifndef PIMOE_VK_LAYOUT_H
#define PIMOE_VK_LAYOUT_H

// ---------------------------------------------------------------- descriptor set 0 (one set for every kernel)
#define B_META 0     // uint[]   per segment (routed experts, then the shared expert): META_* fields
#define B_SMALL 1    // float[]  norm weights/biases, expert biases, selection bias, shared score weight
#define B_ROUTER 2   // uvec4[]  router weight [E, Hp] fp32
#define B_X 3        // float[]  input [T, H]
#define B_Y 4        // float[]  output [T, H]
#define B_ROUTE 5    // int[]    per-call routing sections (ROUTE_* offsets in the push constants)
#define B_ROWS 6     // float[]  gathered (and normalised) input rows [R, Hp], zero padded
#define B_HIDDEN 7   // float[]  activations after the up projection, per segment [rows, Ip], zero padded
#define B_OUT 8      // float[]  expert outputs before weighting [R, H]
#define B_LOGITS 9   // float[]  router logits [T, E]
#define B_PROBS 10   // double[] router scores [T, E] (fused routing)
#define B_WEIGHTS 11 // uvec4[]  weight arenas [MAX_ARENAS]: expert and shared matrices, rows padded to 16 elements
#define MAX_ARENAS 12
#define NUM_BINDINGS 12

// ---------------------------------------------------------------- per-segment metadata (uint), META_STRIDE each
// A segment is one routed expert (0 .. E-1) or the shared expert (E). Offsets into arenas and row strides are in
// 16-byte units (one uvec4: 4 fp32, 8 fp16/bf16 weights, or 16 or 32 codes of a compact format); offsets into B_SMALL
// are in floats (NONE: absent).
#define META_STRIDE 24
#define META_I 0          // intermediate width I
#define META_IP 1         // I rounded up to a multiple of 16 (row stride of the hidden activations)
#define META_ACT 2        // pimoe_activation
#define META_FLAGS 3      // EXPERT_* bits
#define META_ARENA 4      // arena holding the expert's matrices
#define META_UP 5         // up weight [I, Hp]
#define META_GATE 6       // gate weight [I, Hp] (gated only)
#define META_DOWN 7       // down weight [H, Ip]
#define META_UP_STRIDE 8  // row stride of up/gate (Hp / VW)
#define META_DOWN_STRIDE 9  // row stride of down (Ip / VW)
#define META_NORM_W 10
#define META_NORM_B 11
#define META_UP_B 12
#define META_DOWN_B 13
// Compact formats (compact_codes.glsl): where each matrix's scales and int4 zero points start (NONE: none), and the
// int4 group size.
#define META_UP_SCALE 14
#define META_GATE_SCALE 15
#define META_DOWN_SCALE 16
#define META_UP_ZERO 17
#define META_GATE_ZERO 18
#define META_DOWN_ZERO 19
#define META_GROUP 20
#define META_NONE 0xffffffffu

#define EXPERT_GATED 1u
#define EXPERT_PRE_NORM 2u

// ---------------------------------------------------------------- per-segment routing results (int), SEG_STRIDE each
#define SEG_STRIDE 4
#define SEG_ROW 0     // first row of the segment in B_ROWS / B_OUT
#define SEG_COUNT 1   // its rows
#define SEG_HIDDEN 2  // where its block starts in B_HIDDEN (floats)

// Per expert counts written by the counting kernel (fused routing), ECOUNT_STRIDE ints each.
#define ECOUNT_STRIDE 4
#define ECOUNT_KEPT 0
#define ECOUNT_CHOSEN 1
#define ECOUNT_PSUM 2  // float bits: sum over tokens of the normalised scores (aux loss P_i * T)

// Per-call statistics written by the scan kernel (fused routing).
#define STATS_SIZE 8
#define STATS_KEPT 0        // int
#define STATS_MAX_ROWS 1    // int: the largest segment
#define STATS_AUX 2         // float bits: the balance sum over experts of f_e * P_e (the host applies the coefficient)
#define STATS_ZLOSS 3       // float bits: sum over tokens of lse^2 (the host divides by the tokens)
#define STATS_TOP1 4        // float bits: sum over tokens of the top-1 score

// Per token values of the fused router (float bits), TOK_STRIDE each.
#define TOK_STRIDE 4
#define TOK_LSE 0
#define TOK_TOP1 1
#define TOK_PSCALE 2  // factor that turns the token's scores into the aux loss's P (1 for softmax)

// After the tokens' values: per row of B_ROWS, the token it holds (route_small writes it; route_rowtok() in
// common.glsl), so that the up projection of a decode step reads its rows straight from x (no gather pass).

// The segments that have rows, in order (route_active, at most experts + 1 ints): the projections' workgroup z
// indexes this list, so a call touching few experts launches no workgroups for the others.

// Indirect dispatch arguments (uint x, y, z) written by the scan kernel.
#define DISP_UP 0
#define DISP_DOWN 3
#define DISP_SIZE 8

// ---------------------------------------------------------------- push constants (one block for every kernel)
// inv_tau and scaling are doubles (1 / temperature, the routed scaling factor), as two 32-bit halves.
#define PUSH_FIELDS(U, F, I)                                                                                        \
  U(tokens) U(slots) U(experts) U(hidden) U(segments) U(hidden_pad) U(route_ids) U(route_w) U(route_arow)         \
  U(route_seg) U(route_disp) U(route_ecount) U(route_stats) U(route_tok) U(flags) U(inv_tau_lo) U(inv_tau_hi)      \
  U(scaling_lo) U(scaling_hi)                                                                                        \
  I(capacity) U(groups) U(topk_groups) F(eps) U(score_off) U(bias_off) U(grid_x) U(up_grid_x)            \
  U(down_grid_x) U(row_tile) U(route_active)
#define PUSH_WORDS 30

// flags
#define CALL_SIGMOID 1u
#define CALL_RENORM 2u
#define CALL_SELECTION_BIAS 4u
#define CALL_GROUP_MAX 8u
#define CALL_SHARED 16u      // the call includes the shared expert (segment `experts`)
#define CALL_SHARED_GATE 32u
#define CALL_FUSED 64u       // routing ran on the device: B_ROUTE's arow holds ranks, not rows
#define CALL_MATVEC 128u     // the projections use the small-row kernels

// ---------------------------------------------------------------- kernels' tile sizes
#define MM_BM 64   // rows per GEMM tile (TILE_LARGE: MM_BM_LARGE)
#define MM_BN 64   // output columns per GEMM tile (TILE_LARGE: 64 for the up projection, MM_BN_LARGE for the down)
#define MM_BM_LARGE 128
#define MM_BN_LARGE 128
#define MM_BK 16   // depth per step (matrix rows are padded to a multiple of it)
#define MM_THREADS 256
#define MV_MAX_ROWS 8  // the small-row kernels serve segments of at most this many rows
#define MV_NPW 8       // output columns per small-row workgroup (32 lanes each)
#define MV_THREADS 256
#define ROW_THREADS 64  // gather and combine: threads per row
#define ROUTE_THREADS 64
// route_small: one workgroup routes every token of a decode step with its scores in shared memory. It serves calls
// of at most MV_MAX_ROWS tokens with tokens * experts <= RS_MAX_SCORES, tokens * slots <= RS_MAX_ASSIGN and at most
// RS_MAX_EXPERTS experts (its shared memory stays under the 16 KiB every usable device has); others take route,
// count and scan.
#define RS_THREADS 256
#define RS_MAX_SCORES 1024
#define RS_MAX_ASSIGN 256
#define RS_MAX_EXPERTS 1024
#define RS_MAX_GROUPS 32
// combine: invocations per workgroup, each one output element of a token (a token's row is split over workgroups).
#define COMBINE_THREADS 256
// matvec_router: one workgroup per router row (expert), its depth split over the invocations.
#define ROUTER_THREADS 256
#define COUNT_THREADS 256
#define PAD 16  // row padding of matrices and of B_ROWS / B_HIDDEN

#endif
