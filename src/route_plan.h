/* SPDX-License-Identifier: MIT */
// What routing decided for one forward call (RouteResult), and the dispatch plan the host router makes of it
// (RoutePlan). Data only: the router's scratch is private to routing (router.h), and each type counts its own bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pimoe {

// Capacity in bytes of a vector's storage.
template <typename T>
size_t vector_bytes(const std::vector<T> &v) {
  return v.capacity() * sizeof(T);
}

// The routing of one call, whoever routed it (the host router, or a backend's device in route_and_run).
struct RouteResult {
  int64_t tokens = 0;
  int64_t top_k = 0;  // routing slots per token (num_experts with expert choice)
  int64_t num_experts = 0;

  // Per assignment a = t*top_k + j (slot j of token t, slots in descending probability).
  std::vector<int32_t> expert;   // chosen expert
  std::vector<float> weight;     // combine weight; 0 when dropped
  std::vector<uint8_t> dropped;  // 1 when the capacity limit dropped it

  std::vector<int64_t> loads;  // [E] kept assignments per expert, callback experts included
  std::vector<float> scores;   // [T, E] router scores c[t][e] (softmax p or sigmoid s); host routing only

  // Sums the losses are made of (routing_losses() in router.h turns them into aux_loss and z_loss).
  int64_t dropped_count = 0;
  double balance = 0.0;  // sum over experts of f_e * P_e: f_e choices of e / T, P_e sum of e's probabilities / T
  double z_sum = 0.0;    // sum over tokens of logsumexp(logits)^2
  double top1_probability_sum = 0.0;
  double aux_loss = 0.0;
  double z_loss = 0.0;

  size_t bytes() const {
    return vector_bytes(expert) + vector_bytes(weight) + vector_bytes(dropped) + vector_bytes(loads) +
           vector_bytes(scores);
  }

  // The routing of a call of no tokens.
  void set_empty(int64_t slots, int64_t experts) {
    tokens = 0;
    top_k = slots;
    num_experts = experts;
    expert.clear();
    weight.clear();
    dropped.clear();
    loads.assign(static_cast<size_t>(experts), 0);
    dropped_count = 0;
    balance = z_sum = top1_probability_sum = 0.0;
  }
};

// RouteResult::balance from per-expert choice counts and probability sums over a call of `tokens` tokens: the sum
// over e of (choices_e / T) * (probability_sum_e / T). The host router and a device's routing both use it.
template <typename Count>
double routing_balance(const Count *choices, const double *probability_sum, int64_t num_experts, int64_t tokens) {
  double balance = 0.0;
  const double T = static_cast<double>(tokens);
  for (int64_t e = 0; e < num_experts; ++e) {
    balance += (static_cast<double>(choices[e]) / T) * (probability_sum[e] / T);
  }
  return balance;
}

// The host router's plan: the routing plus a counting sort of the kept assignments by expert, which is what a
// backend's run_experts() consumes.
struct RoutePlan : RouteResult {
  std::vector<int64_t> position;  // [T*top_k] index of the assignment in `order`, or -1 when dropped
  // Counting sort of the kept assignments by expert: expert e owns order[offsets[e] .. offsets[e+1]).
  std::vector<int64_t> counts;   // [E]
  std::vector<int64_t> offsets;  // [E+1]
  std::vector<int64_t> order;    // kept assignment indices, grouped by expert, token order inside a group

  // Kept assignments to callback experts: not in `order` (position -1, weight kept), listed here grouped by expert,
  // token order inside a group; the model runs them.
  std::vector<int64_t> callback_order;
  // [E] choices per expert before the capacity limit (the load average of dynamic capacity follows them).
  std::vector<double> choice_count;

  int64_t kept() const { return offsets.empty() ? 0 : offsets.back(); }

  size_t bytes() const {
    return RouteResult::bytes() + vector_bytes(position) + vector_bytes(counts) + vector_bytes(offsets) +
           vector_bytes(order) + vector_bytes(callback_order) + vector_bytes(choice_count);
  }
};

}  // namespace pimoe
