/* SPDX-License-Identifier: MIT */
// Running statistics of a model's forward calls (pimoe_stats_snapshot documents every field).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "pimoe/pimoe.h"
#include "route_plan.h"

namespace pimoe {

class Stats {
 public:
  explicit Stats(int64_t num_experts);

  // Adds one finished call. Thread-safe.
  void record(const RouteResult &route, double latency_seconds);
  void reset();

  // Every field but struct_size, weight_bytes, workspace_bytes and the weight_quant_* errors (the model's).
  pimoe_stats_snapshot snapshot() const;
  void expert_loads(uint64_t *out) const;

 private:
  static constexpr size_t kLatencyWindow = 1024;

  mutable std::mutex mutex_;
  uint64_t calls_ = 0;
  uint64_t tokens_ = 0;
  uint64_t dropped_ = 0;
  double latency_sum_ = 0.0;
  double latency_last_ = 0.0;
  std::vector<double> latency_window_;  // ring buffer of the most recent calls
  size_t latency_next_ = 0;
  std::vector<uint64_t> loads_;
  double top1_sum_ = 0.0;
  double aux_loss_ = 0.0;
  double z_loss_ = 0.0;
};

}  // namespace pimoe
