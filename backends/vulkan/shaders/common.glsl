// SPDX-License-Identifier: MIT
// Declarations shared by every kernel: the bindings and push constants of layout.h, activations, helpers.
// A kernel declares the buffers it uses with the BUFFER_* macros below (unused bindings stay undeclared).
#extension GL_GOOGLE_include_directive : require
#include "layout.h"

#define U_FIELD(n) uint n;
#define F_FIELD(n) float n;
#define I_FIELD(n) int n;
layout(push_constant) uniform Push { PUSH_FIELDS(U_FIELD, F_FIELD, I_FIELD) } pc;

// Every kernel sees the per-segment metadata and the small per-layer vectors.
layout(set = 0, binding = B_META) readonly buffer Meta { uint meta[]; };
layout(set = 0, binding = B_SMALL) readonly buffer Small { float small_v[]; };
#define BUFFER_ROUTER layout(set = 0, binding = B_ROUTER) readonly buffer Router { uvec4 router_w[]; };
#define BUFFER_X layout(set = 0, binding = B_X) readonly buffer X { float x_v[]; };
#define BUFFER_Y layout(set = 0, binding = B_Y) writeonly buffer Y { float y_v[]; };
#define BUFFER_ROUTE(q) layout(set = 0, binding = B_ROUTE) q buffer Route { int route[]; };
#define BUFFER_ROWS(q) layout(set = 0, binding = B_ROWS) q buffer Rows { float rows_v[]; };
#define BUFFER_HIDDEN(q) layout(set = 0, binding = B_HIDDEN) q buffer Hidden { float hidden_v[]; };
#define BUFFER_OUT(q) layout(set = 0, binding = B_OUT) q buffer Out { float out_v[]; };
#define BUFFER_LOGITS(q) layout(set = 0, binding = B_LOGITS) q buffer Logits { float logits_v[]; };
#define BUFFER_WEIGHTS layout(set = 0, binding = B_WEIGHTS) readonly buffer Weights { uvec4 w[]; } arena[MAX_ARENAS];

uint meta_of(uint segment, uint field) { return meta[segment * META_STRIDE + field]; }

// Where B_ROUTE's row -> token section starts (after the tokens' TOK_* values).
uint route_rowtok() { return pc.route_tok + pc.tokens * TOK_STRIDE; }

// The index of a workgroup in a grid laid out as (grid_x, y) for counts beyond the 65535 of one dimension.
uint flat_group() { return gl_WorkGroupID.y * pc.grid_x + gl_WorkGroupID.x; }

// Activations, in the same forms as the CPU backend (backends/cpu/activation_impl.h): absolute errors near 1e-7.
float sigmoid_f(float x) { return 1.0 / (1.0 + exp(-x)); }
float silu_f(float x) { return x * sigmoid_f(x); }
float tanh_f(float x) { return 2.0 * sigmoid_f(2.0 * x) - 1.0; }  // GLSL's tanh overflows to NaN on some drivers
float erf_f(float x) {  // Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7 (GLSL has no erf)
  float ax = abs(x);
  float t = 1.0 / (1.0 + 0.3275911 * ax);
  float p = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
  float r = 1.0 - p * exp(-ax * ax);
  return x < 0.0 ? -r : r;
}
// pimoe_activation: GELU 0, GELU_TANH 1, SILU 2, RELU 3, TANH 4, SWIGLU 5 (handled by the caller).
float activate(uint act, float v) {
  switch (act) {
    case 0u: return 0.5 * v * (1.0 + erf_f(v * 0.70710678118654752));
    case 1u: return 0.5 * v * (1.0 + tanh_f(0.79788456080286536 * (v + 0.044715 * v * v * v)));
    case 2u: return silu_f(v);
    case 3u: return max(v, 0.0);
    case 4u: return tanh_f(v);
  }
  return v;
}

// Weights are stored in units of VW consecutive elements of a row: a uvec4 word of 4 fp32 or 8 fp16 / bf16 values,
// or, for the compact formats (WTYPE_I8, WTYPE_FP8: 16 bytes; WTYPE_I4, WTYPE_MXFP4: 16 nibbles, half a uvec4), 16
// codes that share one scale (and zero point). Rows start on a uvec4 word; `stride` is a row's length in words.
#if defined(WTYPE_I8) || defined(WTYPE_FP8) || defined(WTYPE_I4) || defined(WTYPE_MXFP4)
#define COMPACT 1
#define VW 16
#if defined(WTYPE_I4) || defined(WTYPE_MXFP4)
#define NIBBLES 1
#endif
#elif defined(WTYPE_F16) || defined(WTYPE_BF16)
#define VW 8
#else
#define VW 4
#endif

void decode(uvec4 q, out float v[VW]) {
#if defined(WTYPE_F16)
  vec2 a = unpackHalf2x16(q.x), b = unpackHalf2x16(q.y), c = unpackHalf2x16(q.z), d = unpackHalf2x16(q.w);
  v[0] = a.x; v[1] = a.y; v[2] = b.x; v[3] = b.y; v[4] = c.x; v[5] = c.y; v[6] = d.x; v[7] = d.y;
#elif defined(WTYPE_BF16)
  v[0] = uintBitsToFloat(q.x << 16); v[1] = uintBitsToFloat(q.x & 0xffff0000u);
  v[2] = uintBitsToFloat(q.y << 16); v[3] = uintBitsToFloat(q.y & 0xffff0000u);
  v[4] = uintBitsToFloat(q.z << 16); v[5] = uintBitsToFloat(q.z & 0xffff0000u);
  v[6] = uintBitsToFloat(q.w << 16); v[7] = uintBitsToFloat(q.w & 0xffff0000u);
#elif !defined(COMPACT)
  vec4 f = uintBitsToFloat(q);
  v[0] = f.x; v[1] = f.y; v[2] = f.z; v[3] = f.w;
#endif
}
