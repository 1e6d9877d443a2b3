// The dispatch plan of one forward call: which experts each token goes to, with which weights, grouped by expert.
#pragma once

#include <cstdint>
#include <vector>

namespace pimoe {

struct RoutePlan {
  int64_t tokens = 0;
  int64_t top_k = 0;
  int64_t num_experts = 0;
  // Whether run_experts adds the shared expert (when the layer has one). The model clears it for the extra passes
  // that need the routed experts' outputs alone (attention combine).
  bool include_shared = true;

  // Per assignment a = t*top_k + j (slot j of token t, slots in descending probability).
  std::vector<int32_t> expert;    // chosen expert
  std::vector<float> weight;      // combine weight; 0 when dropped
  std::vector<uint8_t> dropped;   // 1 when the capacity limit dropped it
  std::vector<int64_t> position;  // index of the assignment in `order`, or -1 when dropped

  // Counting sort of the kept assignments by expert: expert e owns order[offsets[e] .. offsets[e+1]).
  std::vector<int64_t> counts;   // [E]
  std::vector<int64_t> offsets;  // [E+1]
  std::vector<int64_t> order;    // kept assignment indices, grouped by expert, token order inside a group

  // Router scores c[t][e] (softmax p or sigmoid s) of every token, [T, E].
  std::vector<float> scores;

  // Kept assignments to callback experts: not in `order` (position -1, weight kept), listed here grouped by expert,
  // token order inside a group; the model runs them.
  std::vector<int64_t> callback_order;
  std::vector<int64_t> loads;  // [E] kept assignments per expert, callback experts included

  // Per-call routing statistics.
  int64_t dropped_count = 0;
  double aux_loss = 0.0;
  double z_loss = 0.0;
  double top1_probability_sum = 0.0;

  // Scratch of the router, kept here so that a reused plan allocates nothing.
  std::vector<double> probability;      // [E] one token's probabilities
  std::vector<double> probability_sum;  // [E]
  std::vector<double> choice_count;     // [E]
  std::vector<double> selection;        // [E] one token's selection scores (biased, masked to the kept groups)
  std::vector<double> group_score;      // [G]
  std::vector<int32_t> group_ids;       // [G] kept groups of one token
  std::vector<int64_t> capacity;        // [E] per-expert capacity of this call (dynamic capacity)
  std::vector<uint8_t> group_alive;     // [E] group tree: expert still inside a kept group
  std::vector<double> ec_scores;        // [T] expert choice: one expert's column of scores
  std::vector<int64_t> ec_tokens;       // [T] expert choice: token order by that column
  std::vector<uint8_t> ec_chosen;       // [T, E] expert choice: expert e took token t

  int64_t kept() const { return offsets.empty() ? 0 : offsets.back(); }
};

}  // namespace pimoe
