#version 450
// Routing on the device (fused path, calls of many tokens), one invocation per token: see route_token() in
// routing.glsl. Capacity and counting follow in count.comp, offsets and statistics in scan.comp.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = ROUTE_THREADS) in;

BUFFER_LOGITS(readonly)
BUFFER_PROBS(restrict)
BUFFER_ROUTE(restrict)
#include "routing.glsl"

void main() {
  if (gl_GlobalInvocationID.x < pc.tokens) route_token(gl_GlobalInvocationID.x);
}
