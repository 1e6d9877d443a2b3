#version 450
// y[t] = sum over the token's slots j, in slot order, of w[t, j] * (out[row(t, j)] + down_bias[expert]), plus
// g * shared_out[t] when the call includes the shared expert (g = 1, or sigmoid(shared.score.weight . x_t)). One
// workgroup per token; slots dropped by the capacity limit (row -1) add nothing.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = ROW_THREADS) in;

BUFFER_X
BUFFER_Y
BUFFER_ROUTE(readonly)
BUFFER_OUT(readonly)

shared float red[ROW_THREADS];

void main() {
  const uint t = flat_group();
  const uint T = pc.tokens, K = pc.slots, H = pc.hidden;
  if (t >= T) return;
  const uint tid = gl_LocalInvocationIndex;
  const bool with_shared = (pc.flags & CALL_SHARED) != 0u;

  float g = 1.0;
  if (with_shared && (pc.flags & CALL_SHARED_GATE) != 0u) {
    float s = 0.0;
    for (uint i = tid; i < H; i += ROW_THREADS) s = fma(small_v[pc.score_off + i], x_v[t * H + i], s);
    red[tid] = s;
    barrier();
    for (uint stride = ROW_THREADS / 2u; stride > 0u; stride >>= 1u) {
      if (tid < stride) red[tid] += red[tid + stride];
      barrier();
    }
    g = sigmoid_f(red[0]);
  }
  const uint shared_row =
      with_shared ? uint(route[pc.route_seg + pc.experts * SEG_STRIDE + SEG_ROW]) + t : 0u;

  for (uint h = tid; h < H; h += ROW_THREADS) {
    float v = 0.0;
    for (uint j = 0u; j < K; ++j) {
      const uint a = t * K + j;
      const int row = route[pc.route_arow + a];
      if (row < 0) continue;
      const float w = intBitsToFloat(route[pc.route_w + a]);
      const uint db = meta_of(uint(route[pc.route_ids + a]), META_DOWN_B);
      const float o = out_v[uint(row) * H + h];
      v += w * (db == META_NONE ? o : o + small_v[db + h]);
    }
    if (with_shared) v += g * out_v[shared_row * H + h];
    y_v[t * H + h] = v;
  }
}
