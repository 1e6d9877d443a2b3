/* SPDX-License-Identifier: MIT */
// PIMOE_VULKAN_PROFILE: per model, the mean GPU time of every step of its command buffers, the wall time of each
// submission and of each whole backend call, and the host time of a call's host steps, printed to stderr when the
// model is destroyed. Calls of few tokens are kept apart by their token count (their times differ by far).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace pimoe {

class VulkanProfile {
 public:
  using Clock = std::chrono::steady_clock;

  explicit VulkanProfile(bool on) : on_(on) {}
  bool on() const { return on_; }

  // The name of a call in the profile: its path and, for calls of at most MV_MAX_ROWS tokens, its tokens.
  static std::string key(const char *path, int64_t tokens);

  // One submission of `key`: its wall time from submit to fence, and its GPU steps (label, nanoseconds).
  void submission(const std::string &key, double wall_ns, const std::vector<std::pair<const char *, double>> &marks);
  // A whole backend call from `start` (host work included).
  void whole_call(const std::string &key, Clock::time_point start);
  // The host time of one step of a call since `since`.
  void host_step(const std::string &path, const char *step, Clock::time_point since);

  // header: what the lines are of ("device, H=.. E=..").
  void print(const std::string &header) const;

 private:
  struct Entry {
    double ns = 0.0;
    uint64_t count = 0;
  };
  using List = std::vector<std::pair<std::string, Entry>>;
  static void add(List &list, const std::string &key, double ns);

  const bool on_;
  mutable std::mutex mutex_;
  // In first-seen order: per call its submissions' and whole calls' wall times, "path / step" GPU times, host steps.
  List calls_, steps_, host_;
};

}  // namespace pimoe
