// SPDX-License-Identifier: MIT
// Fused on-device routing: scores, selection bias, group limit, top-k, renormalisation and scaling per token
// (route), then the counting sort of the (token, slot) pairs by expert with the row schedules of the projections
// (sort). Host-callable launchers; the kernels are in routing.cu.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "device_types.h"

namespace pimoe::cuda {

// The largest expert count and top_k the fused routing kernel takes (a warp holds 16 experts per lane); larger
// layers route on the host.
constexpr int32_t kFusedMaxExperts = 512;
constexpr int32_t kFusedMaxTopK = 32;

struct RouteArgs {
  const float *logits = nullptr;  // [T, E]
  const float *selection_bias = nullptr;  // [E] or null
  int32_t tokens = 0, experts = 0, top_k = 0;
  bool sigmoid = false, renormalize = true, group_max = false;
  int32_t num_groups = 1, topk_groups = 1;
  double inv_temperature = 1.0, routed_scaling = 1.0;
  int32_t *expert = nullptr;   // [T*k] out
  float *weight = nullptr;     // [T*k] out
  double *prob_sum = nullptr;  // [E] out, summed with atomics: zeroed by the launcher
  double *token_z = nullptr;     // [T] out: logsumexp(z)^2 of each token
  double *token_top1 = nullptr;  // [T] out: top-1 probability of each token
};
void launch_route(const RouteArgs &args, cudaStream_t stream);

struct SortArgs {
  DevicePlan plan;  // expert, weight in; position, row_token, row_group, offsets, active, tiles out
  int32_t tokens = 0, experts = 0, top_k = 0;
  bool shared = false;     // add the shared expert as group E over every token
  int32_t tile_rows = 64;  // rows per tile of the grouped GEMM that will run
  const double *token_z = nullptr, *token_top1 = nullptr;  // [T] in
  double *call_stats = nullptr;  // [2] out: sum of token_z, sum of token_top1 (fixed order)
  int32_t *counts = nullptr;     // [E] out: kept rows per routed expert
};
void launch_sort(const SortArgs &args, cudaStream_t stream);

// The most tokens the one-launch decode routing takes (its per-thread accumulators are sized by it).
constexpr int32_t kDecodeMaxTokens = 16;

// Router logits, input check, routing and sort of a decode-sized call in one launch of E blocks (routing.cu says
// how). route.prob_sum is written (not accumulated). flag and counter are device words that hold UINT64_MAX and 0
// between launches (set once when allocated; the launch restores them). The first result_words 4-byte words of
// `results` (the call buffer's head: the routing results, with flag_out among them) are copied to host_results, a
// page-locked host buffer the device can write.
struct DecodeRouteArgs {
  RouteArgs route;
  SortArgs sort;
  const float *x = nullptr;       // [T, H] the call's input
  const float *router = nullptr;  // [E, H] fp32
  float *logits = nullptr;        // [T, E] out (route.logits, writable)
  int32_t hidden = 0;
  unsigned long long *flag = nullptr;      // lowest index of a non-finite input element, UINT64_MAX when none
  unsigned long long *flag_out = nullptr;  // where that index is reported (inside the results)
  unsigned int *counter = nullptr;         // blocks finished
  const void *results = nullptr;
  void *host_results = nullptr;
  int32_t result_words = 0;
};
// pdl: let this launch overlap the tail of the previous kernel on the stream (programmatic dependent launch, sm_90).
void launch_decode_route(const DecodeRouteArgs &args, bool pdl, cudaStream_t stream);

}  // namespace pimoe::cuda
