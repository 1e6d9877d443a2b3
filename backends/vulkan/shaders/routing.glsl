// SPDX-License-Identifier: MIT
// Routing on the device, shared by scan.comp (calls of many tokens) and route_small.comp (calls of at most
// MV_MAX_ROWS tokens, one workgroup): the serial end of routing. The including kernel declares B_ROUTE.

// The serial end of routing (one invocation), given the sums over tokens of lse^2 and of the top-1 scores: every
// segment's first row, row count and hidden block (the shared expert's segment holds every token after the routed
// rows), the list of segments that have rows, the projections' indirect dispatch sizes, and the call's statistics.
void finish_routing(float sum_z, float sum_top1) {
  const uint T = pc.tokens, E = pc.experts;
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
  route[st + STATS_AUX] = floatBitsToInt(aux);
  route[st + STATS_ZLOSS] = floatBitsToInt(sum_z);
  route[st + STATS_TOP1] = floatBitsToInt(sum_top1);

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
