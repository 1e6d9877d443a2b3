/* SPDX-License-Identifier: MIT */
// Offline pruning of a layer (pimoe_prune in pimoe_model.h documents the rules): which experts or channels go, and the
// pruned copy built from the original's tensors.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model.h"
#include "pimoe/pimoe.h"

namespace pimoe {

struct PruneRequest {
  pimoe_prune_method method = PIMOE_PRUNE_EXPERTS_BY_MASS;
  double fraction = 0.0;
  uint64_t seed = 0;
  const float *calibration = nullptr;  // [tokens, H], validated by the caller
  int64_t tokens = 0;
};

// The routed experts kept (ascending) when `drop` of them go by routing mass: `mass[e]` summed over the calibration;
// the least go first, ties the higher index first.
std::vector<int64_t> experts_kept_by_mass(const std::vector<double> &mass, int64_t drop);
// The same for experts drawn at random from `seed` (a Fisher-Yates shuffle over SplitMix64: the same on every
// platform).
std::vector<int64_t> experts_kept_at_random(int64_t experts, int64_t drop, uint64_t seed);
// The channels of one expert kept (ascending) when `drop` go by their score (the lowest first, ties the higher index
// first).
std::vector<int64_t> channels_kept_by_score(const std::vector<double> &score, int64_t drop);

// The pruned copy of `source` (pimoe_prune). Runs the calibration through `source` and through the copy; fills
// `report` (struct_size left to the caller).
std::unique_ptr<pimoe_model> prune_layer(Model &source, const PruneRequest &request, pimoe_prune_report &report);

}  // namespace pimoe
