/* SPDX-License-Identifier: MIT */
// The shape of one call's grouped work, where its plan and routing results live in the call buffer (CallLayout),
// and the host side of the device plan: written from the host router's RoutePlan, from ExpertRows or for the shared
// expert alone, and the routing the device made read back into a RouteResult.
#pragma once

#include <cstddef>
#include <cstdint>

#include "device_types.h"
#include "src/backend.h"

namespace pimoe::cuda {

// The kernels of a call's projections: GEMV (decode-sized calls), the fp32 tiled GEMM, or the tensor-core one.
enum class Path { Gemv, Simt, Mma };

// Rows per tile of the grouped GEMM that `path` runs (the tile list of the plan is cut by it).
int64_t tile_rows(Path path);

struct CallShape {
  int64_t tokens = 0;  // rows of the combined output: the call's tokens (run_rows: the rows)
  int64_t top_k = 0;   // slots per token: tokens * top_k assignments
  int64_t rows = 0;    // rows of the grouped buffers: kept assignments, plus the tokens again for the shared expert
  int64_t groups = 0;  // E, plus the shared expert (group E) when the call runs it
  bool shared = false;
  Path path = Path::Simt;
  int64_t tiles_bound = 0;  // row tiles at most: every group's last tile may be partial

  CallShape(int64_t tokens, int64_t top_k, int64_t rows, int64_t experts, bool shared, Path path);
  int64_t assignments() const { return tokens * top_k; }
};

// Where each array of one call's plan and routing results lives in one buffer. The routing results the host reads
// back (losses, counts, ids, weights) come first, so that one small copy fetches them all.
struct CallLayout {
  size_t prob_sum, call_stats, flag, counts, expert, weight, result_end;
  size_t token_z, token_top1, position, row_token, row_group, offsets, active, active_count, tiles, tile_count, total;

  CallLayout(int64_t experts, const CallShape &shape);
  DevicePlan plan(char *base) const;
};

// Device plans written on the host into `host` (page-locked, laid out by `layout`), for one copy to the device.
// The host router's plan: its assignments and counting sort, and the shared expert's rows when shape.shared.
void write_route_plan(const RoutePlan &plan, const CallShape &shape, const CallLayout &layout, char *host);
// ExpertRows: one row per assignment (the row's expert, weight 1) reading input row rows.token[i], no shared expert.
void write_expert_rows(const ExpertRows &rows, const CallShape &shape, const CallLayout &layout, char *host);
// The shared expert alone over every token.
void write_shared_rows(const CallShape &shape, const CallLayout &layout, char *host);

// The routing the device made (results copied back to `host`) as a RouteResult: no capacity, so nothing is dropped
// and every choice is kept (loads are the counts).
void read_route_result(const char *host, const CallLayout &layout, const CallShape &shape, int64_t experts,
                       RouteResult &route);

}  // namespace pimoe::cuda
