// Top-k routing: softmax or sigmoid scores with temperature, selection bias, group-limited selection,
// renormalisation, routed scaling and Switch capacity (pimoe.h documents the math).
#pragma once

#include "expert_spec.h"
#include "route_plan.h"

namespace pimoe {

// Builds the plan from router logits [tokens, E]. Reuses plan's storage (no allocation once it has grown).
// selection_bias holds E values when config.selection_bias is set, load_ema E values when config.dynamic_capacity is
// set (each ignored otherwise).
void build_route_plan(const RouterConfig &config, const float *logits, int64_t tokens, RoutePlan &plan,
                      const float *selection_bias = nullptr, const float *load_ema = nullptr);

}  // namespace pimoe
