// SPDX-License-Identifier: MIT
#include "stats.h"

#include <algorithm>
#include <cmath>

namespace pimoe {
namespace {

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double> &sorted, double q) {
  if (sorted.empty()) return 0.0;
  const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size(), std::max<size_t>(rank, 1)) - 1];
}

}  // namespace

Stats::Stats(int64_t num_experts) : loads_(static_cast<size_t>(num_experts), 0) {
  latency_window_.reserve(kLatencyWindow);
}

void Stats::record(const RouteResult &route, double latency_seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++calls_;
  tokens_ += static_cast<uint64_t>(route.tokens);
  dropped_ += static_cast<uint64_t>(route.dropped_count);
  latency_sum_ += latency_seconds;
  latency_last_ = latency_seconds;
  if (latency_window_.size() < kLatencyWindow) {
    latency_window_.push_back(latency_seconds);
  } else {
    latency_window_[latency_next_] = latency_seconds;
  }
  latency_next_ = (latency_next_ + 1) % kLatencyWindow;
  for (size_t e = 0; e < loads_.size(); ++e) loads_[e] += static_cast<uint64_t>(route.loads[e]);
  top1_sum_ += route.top1_probability_sum;
  aux_loss_ = route.aux_loss;
  z_loss_ = route.z_loss;
}

void Stats::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  calls_ = tokens_ = dropped_ = 0;
  latency_sum_ = latency_last_ = 0.0;
  latency_window_.clear();
  latency_next_ = 0;
  std::fill(loads_.begin(), loads_.end(), 0);
  top1_sum_ = aux_loss_ = z_loss_ = 0.0;
}

void Stats::expert_loads(uint64_t *out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::copy(loads_.begin(), loads_.end(), out);
}

pimoe_stats_snapshot Stats::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  pimoe_stats_snapshot s{};
  const auto E = static_cast<double>(loads_.size());
  s.num_experts = static_cast<uint32_t>(loads_.size());
  s.forward_calls = calls_;
  s.tokens = tokens_;
  s.dropped_tokens = dropped_;

  std::vector<double> sorted(latency_window_);
  std::sort(sorted.begin(), sorted.end());
  s.latency_last_ms = latency_last_ * 1e3;
  s.latency_mean_ms = calls_ ? latency_sum_ / static_cast<double>(calls_) * 1e3 : 0.0;
  s.latency_p50_ms = percentile(sorted, 0.50) * 1e3;
  s.latency_p95_ms = percentile(sorted, 0.95) * 1e3;
  s.latency_p99_ms = percentile(sorted, 0.99) * 1e3;
  s.tokens_per_second = latency_sum_ > 0.0 ? static_cast<double>(tokens_) / latency_sum_ : 0.0;

  double total = 0.0, squares = 0.0, max_load = 0.0, used = 0.0;
  for (uint64_t l : loads_) {
    const auto load = static_cast<double>(l);
    total += load;
    squares += load * load;
    max_load = std::max(max_load, load);
    used += l > 0 ? 1.0 : 0.0;
  }
  s.expert_utilization = used / E;
  if (total > 0.0) {
    const double mean = total / E;
    double variance = 0.0, entropy = 0.0;
    for (uint64_t l : loads_) {
      const auto load = static_cast<double>(l);
      variance += (load - mean) * (load - mean);
      if (l > 0) entropy -= (load / total) * std::log(load / total);
    }
    s.load_cv = std::sqrt(variance / E) / mean;
    s.load_max_violation = (max_load - mean) / mean;
    s.load_jain_index = total * total / (E * squares);
    s.load_normalized_entropy = loads_.size() > 1 ? entropy / std::log(E) : 1.0;
  } else {
    s.load_jain_index = 1.0;
  }
  s.routing_confidence = tokens_ ? top1_sum_ / static_cast<double>(tokens_) : 0.0;
  s.aux_loss = aux_loss_;
  s.z_loss = z_loss_;
  return s;
}

}  // namespace pimoe
