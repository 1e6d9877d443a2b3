/* SPDX-License-Identifier: MIT */
// Top-k routing: softmax or sigmoid scores with temperature, selection bias, group-limited selection (one level or a
// tree), expert choice, renormalisation, routed scaling and Switch capacity (pimoe.h documents the math).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "layer_config.h"
#include "route_plan.h"

namespace pimoe {

// The router's working memory, private to routing: kept between calls so that a reused one allocates nothing.
struct RouterScratch {
  std::vector<double> probability;      // [E] one token's scores
  std::vector<double> probability_sum;  // [E] P_e of the aux loss, summed over the call's tokens
  std::vector<double> selection;        // [E] one token's selection scores (biased, masked to the kept groups)
  std::vector<double> group_score;      // [groups] one level's group scores
  std::vector<int32_t> group_ids;       // [groups] kept groups of one level
  std::vector<uint8_t> group_alive;     // [E] group tree: expert still inside a kept group
  std::vector<int64_t> capacity;        // [E] per-expert capacity of this call
  std::vector<double> capacity_fraction;  // [E] dynamic capacity: fractional quotas being shared out
  std::vector<int64_t> admitted;        // [E] capacity: assignments admitted so far
  std::vector<int64_t> cursor;          // [E] counting sort: next free place of each expert
  std::vector<int64_t> ec_tokens;       // [T] expert choice: token order by one expert's column of scores
  std::vector<uint8_t> ec_chosen;       // [T, E] expert choice: expert e took token t

  size_t bytes() const {
    return vector_bytes(probability) + vector_bytes(probability_sum) + vector_bytes(selection) +
           vector_bytes(group_score) + vector_bytes(group_ids) + vector_bytes(group_alive) + vector_bytes(capacity) +
           vector_bytes(capacity_fraction) + vector_bytes(admitted) + vector_bytes(cursor) +
           vector_bytes(ec_tokens) + vector_bytes(ec_chosen);
  }
};

// Builds the plan from router logits [tokens, E]. Reuses plan's and scratch's storage (no allocation once they have
// grown). selection_bias holds E values when config.selection_bias is set, load_ema E values when
// config.dynamic_capacity is set (each ignored otherwise). Leaves aux_loss and z_loss to routing_losses().
void build_route_plan(const RouterConfig &config, const float *logits, int64_t tokens, RoutePlan &plan,
                      RouterScratch &scratch, const float *selection_bias = nullptr, const float *load_ema = nullptr);

// The one place the losses are computed, from the sums whoever routed left in `route` (pimoe.h, AUX_LOSS_COEF):
// aux_loss = aux_loss_coef * E * balance, z_loss = z_sum / T.
void routing_losses(const RouterConfig &config, RouteResult &route);

}  // namespace pimoe
