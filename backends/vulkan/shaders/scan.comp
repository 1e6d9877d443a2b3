#version 450
// The last step of routing on the device, in one workgroup: every segment's first row, row count and hidden-block
// offset (an exclusive scan of the kept counts; the shared expert's segment holds every token after the routed
// rows), the projections' indirect dispatch sizes (the row-tile count of the largest segment), and the call's
// statistics: kept assignments, aux loss alpha * E * sum_e f_e * P_e, z-loss mean(lse^2), sum of top-1 scores.
// Sums over tokens run in a fixed order, so they repeat exactly from call to call.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = COUNT_THREADS) in;

BUFFER_ROUTE(restrict)

shared float sum_z[COUNT_THREADS];
shared float sum_top1[COUNT_THREADS];

void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint T = pc.tokens, E = pc.experts;

  float z = 0.0, top1 = 0.0;
  for (uint t = tid; t < T; t += COUNT_THREADS) {
    const uint tok = pc.route_tok + t * TOK_STRIDE;
    const float lse = intBitsToFloat(route[tok + TOK_LSE]);
    z += lse * lse;
    top1 += intBitsToFloat(route[tok + TOK_TOP1]);
  }
  sum_z[tid] = z;
  sum_top1[tid] = top1;
  barrier();
  for (uint stride = COUNT_THREADS / 2u; stride > 0u; stride >>= 1u) {
    if (tid < stride) {
      sum_z[tid] += sum_z[tid + stride];
      sum_top1[tid] += sum_top1[tid + stride];
    }
    barrier();
  }
  if (tid != 0u) return;

  int row = 0, hidden = 0, max_rows = 0, nactive = 0;
  float aux = 0.0;
  for (uint e = 0u; e < E; ++e) {
    const uint c = pc.route_ecount + e * ECOUNT_STRIDE;
    const int kept = route[c + ECOUNT_KEPT];
    const uint seg = pc.route_seg + e * SEG_STRIDE;
    route[seg + SEG_ROW] = row;
    route[seg + SEG_COUNT] = kept;
    route[seg + SEG_HIDDEN] = hidden;
    if (kept > 0) route[pc.route_active + nactive++] = int(e);
    row += kept;
    hidden += kept * int(meta_of(e, META_IP));
    max_rows = max(max_rows, kept);
    aux += (float(route[c + ECOUNT_CHOSEN]) / float(T)) * (intBitsToFloat(route[c + ECOUNT_PSUM]) / float(T));
  }
  const int kept_total = row;
  if ((pc.flags & CALL_SHARED) != 0u) {
    const uint seg = pc.route_seg + E * SEG_STRIDE;
    route[seg + SEG_ROW] = row;
    route[seg + SEG_COUNT] = int(T);
    route[seg + SEG_HIDDEN] = hidden;
    max_rows = max(max_rows, int(T));
    route[pc.route_active + nactive++] = int(E);
  }
  const uint st = pc.route_stats;
  route[st + STATS_KEPT] = kept_total;
  route[st + STATS_MAX_ROWS] = max_rows;
  route[st + STATS_AUX] = floatBitsToInt(pc.aux_coef * float(E) * aux);
  route[st + STATS_ZLOSS] = floatBitsToInt(sum_z[0] / float(T));
  route[st + STATS_TOP1] = floatBitsToInt(sum_top1[0]);

  // Row tiles of the largest segment (the small-row kernels take all of a segment's rows in one workgroup).
  const uint y = (pc.flags & CALL_MATVEC) != 0u ? 1u : (uint(max_rows) + pc.row_tile - 1u) / pc.row_tile;
  const uint d = pc.route_disp;
  route[d + DISP_UP + 0u] = int(pc.up_grid_x);
  route[d + DISP_UP + 1u] = int(max(y, 1u));
  route[d + DISP_UP + 2u] = nactive;
  route[d + DISP_DOWN + 0u] = int(pc.down_grid_x);
  route[d + DISP_DOWN + 1u] = int(max(y, 1u));
  route[d + DISP_DOWN + 2u] = nactive;
}
