// SPDX-License-Identifier: MIT
#include "cuda_call_plan.h"

#include <cstring>

#include "grouped_gemm.cuh"

namespace pimoe::cuda {
namespace {

size_t align16(size_t n) {
  return (n + 15) & ~size_t{15};
}

// The groups' schedules from their offsets: the groups with rows (the GEMV's list) and the row tiles (the GEMMs').
void write_schedules(const DevicePlan &p, const CallShape &shape) {
  const int64_t step = tile_rows(shape.path);
  int32_t active = 0, tiles = 0;
  for (int64_t g = 0; g < shape.groups; ++g) {
    const int32_t count = p.offsets[g + 1] - p.offsets[g];
    if (count > 0) p.active[active++] = static_cast<int32_t>(g);
    for (int32_t r = 0; r < count; r += static_cast<int32_t>(step)) {
      p.tiles[2 * tiles] = static_cast<int32_t>(g);
      p.tiles[2 * tiles + 1] = r;
      ++tiles;
    }
  }
  *p.active_count = active;
  *p.tile_count = tiles;
}

// The shared expert's rows (group E = shape.groups - 1) from row `first` on: every token in order.
void write_shared_tail(const DevicePlan &p, const CallShape &shape, int64_t first) {
  const auto group = static_cast<int32_t>(shape.groups - 1);
  p.offsets[shape.groups] = static_cast<int32_t>(first + shape.tokens);
  for (int64_t t = 0; t < shape.tokens; ++t) {
    p.row_token[first + t] = static_cast<int32_t>(t);
    p.row_group[first + t] = group;
  }
}

}  // namespace

int64_t tile_rows(Path path) {
  return path == Path::Mma ? kMmaTileRows : kSimtTileRows;
}

CallShape::CallShape(int64_t tokens_, int64_t top_k_, int64_t rows_, int64_t experts, bool shared_, Path path_)
    : tokens(tokens_), top_k(top_k_), rows(rows_), groups(experts + (shared_ ? 1 : 0)), shared(shared_), path(path_) {
  const int64_t step = tile_rows(path);
  tiles_bound = (rows + step - 1) / step + groups;
}

CallLayout::CallLayout(int64_t E, const CallShape &shape) {
  const int64_t T = shape.tokens, A = shape.assignments(), G = shape.groups;
  size_t at = 0;
  auto take = [&at](size_t bytes) {
    const size_t here = at;
    at = align16(at + bytes);
    return here;
  };
  prob_sum = take(sizeof(double) * E);
  call_stats = take(sizeof(double) * 2);
  flag = take(sizeof(unsigned long long));
  counts = take(sizeof(int32_t) * E);
  expert = take(sizeof(int32_t) * A);
  weight = take(sizeof(float) * A);
  result_end = at;
  token_z = take(sizeof(double) * T);
  token_top1 = take(sizeof(double) * T);
  position = take(sizeof(int32_t) * A);
  row_token = take(sizeof(int32_t) * shape.rows);
  row_group = take(sizeof(int32_t) * shape.rows);
  offsets = take(sizeof(int32_t) * (G + 1));
  active = take(sizeof(int32_t) * G);
  active_count = take(sizeof(int32_t));
  tiles = take(sizeof(int32_t) * 2 * shape.tiles_bound);
  tile_count = take(sizeof(int32_t));
  total = at;
}

DevicePlan CallLayout::plan(char *base) const {
  DevicePlan p;
  p.expert = reinterpret_cast<int32_t *>(base + expert);
  p.weight = reinterpret_cast<float *>(base + weight);
  p.position = reinterpret_cast<int32_t *>(base + position);
  p.row_token = reinterpret_cast<int32_t *>(base + row_token);
  p.row_group = reinterpret_cast<int32_t *>(base + row_group);
  p.offsets = reinterpret_cast<int32_t *>(base + offsets);
  p.active = reinterpret_cast<int32_t *>(base + active);
  p.active_count = reinterpret_cast<int32_t *>(base + active_count);
  p.tiles = reinterpret_cast<int32_t *>(base + tiles);
  p.tile_count = reinterpret_cast<int32_t *>(base + tile_count);
  return p;
}

void write_route_plan(const RoutePlan &plan, const CallShape &shape, const CallLayout &layout, char *host) {
  const DevicePlan p = layout.plan(host);
  const int64_t k = shape.top_k, A = shape.assignments(), kept = plan.kept();
  const int64_t E = shape.groups - (shape.shared ? 1 : 0);
  for (int64_t a = 0; a < A; ++a) {
    p.expert[a] = plan.expert[a];
    p.weight[a] = plan.weight[a];
    p.position[a] = static_cast<int32_t>(plan.position[a]);
  }
  for (int64_t r = 0; r < kept; ++r) {
    const int64_t a = plan.order[r];
    p.row_token[r] = static_cast<int32_t>(a / k);
    p.row_group[r] = plan.expert[a];
  }
  for (int64_t g = 0; g <= E; ++g) p.offsets[g] = static_cast<int32_t>(plan.offsets[g]);
  if (shape.shared) write_shared_tail(p, shape, kept);
  write_schedules(p, shape);
}

void write_expert_rows(const ExpertRows &rows, const CallShape &shape, const CallLayout &layout, char *host) {
  const DevicePlan p = layout.plan(host);
  const int64_t E = shape.groups;
  for (int64_t e = 0; e <= E; ++e) p.offsets[e] = static_cast<int32_t>(rows.offsets[e]);
  for (int64_t e = 0; e < E; ++e) {
    for (int64_t i = rows.offsets[e]; i < rows.offsets[e + 1]; ++i) {
      p.expert[i] = static_cast<int32_t>(e);
      p.weight[i] = 1.0f;
      p.position[i] = static_cast<int32_t>(i);
      p.row_token[i] = static_cast<int32_t>(rows.token[i]);
      p.row_group[i] = static_cast<int32_t>(e);
    }
  }
  write_schedules(p, shape);
}

void write_shared_rows(const CallShape &shape, const CallLayout &layout, char *host) {
  const DevicePlan p = layout.plan(host);
  for (int64_t g = 0; g < shape.groups; ++g) p.offsets[g] = 0;
  write_shared_tail(p, shape, 0);
  write_schedules(p, shape);
}

void read_route_result(const char *host, const CallLayout &layout, const CallShape &shape, int64_t E,
                       RouteResult &route) {
  const int64_t T = shape.tokens, k = shape.top_k, A = shape.assignments();
  route.tokens = T;
  route.top_k = k;
  route.num_experts = E;
  route.expert.resize(A);
  route.weight.resize(A);
  route.dropped.assign(A, 0);
  route.loads.resize(E);
  std::memcpy(route.expert.data(), host + layout.expert, sizeof(int32_t) * A);
  std::memcpy(route.weight.data(), host + layout.weight, sizeof(float) * A);
  const auto *counts = reinterpret_cast<const int32_t *>(host + layout.counts);
  const auto *prob_sum = reinterpret_cast<const double *>(host + layout.prob_sum);
  const auto *call_stats = reinterpret_cast<const double *>(host + layout.call_stats);
  for (int64_t e = 0; e < E; ++e) route.loads[e] = counts[e];
  route.dropped_count = 0;
  route.balance = routing_balance(counts, prob_sum, E, T);  // f_e = counts_e / T: every choice is kept
  route.z_sum = call_stats[0];
  route.top1_probability_sum = call_stats[1];
}

}  // namespace pimoe::cuda
