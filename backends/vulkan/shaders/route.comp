// SPDX-License-Identifier: MIT
#version 450
// Routing on the device (fused path, calls of many tokens), one invocation per token: see route_token() in
// route_token.glsl. Capacity and counting follow in count.comp, offsets and statistics in scan.comp.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = ROUTE_THREADS) in;

BUFFER_LOGITS(readonly)
layout(set = 0, binding = B_PROBS) restrict buffer Probs { double probs_d[]; };
BUFFER_ROUTE(restrict)
#include "route_token.glsl"

void main() {
  if (gl_GlobalInvocationID.x < pc.tokens) route_token(gl_GlobalInvocationID.x);
}
