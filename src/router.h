// Softmax top-k routing with temperature, renormalisation and Switch capacity (pimoe.h documents the math).
#pragma once

#include "expert_spec.h"
#include "route_plan.h"

namespace pimoe {

// Builds the plan from router logits [tokens, E]. Reuses plan's storage (no allocation once it has grown).
// probabilities is scratch of at least E floats per token.
void build_route_plan(const RouterConfig &config, const float *logits, int64_t tokens, RoutePlan &plan);

}  // namespace pimoe
