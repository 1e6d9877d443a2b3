// SPDX-License-Identifier: MIT
#include "vulkan_profile.h"

#include <cstdio>

#include "shaders/layout.h"

namespace pimoe {

std::string VulkanProfile::key(const char *path, int64_t tokens) {
  return tokens <= MV_MAX_ROWS ? std::string(path) + ", " + std::to_string(tokens) + " token" + (tokens > 1 ? "s" : "")
                               : std::string(path);
}

void VulkanProfile::add(List &list, const std::string &key, double ns) {
  for (auto &e : list) {
    if (e.first == key) {
      e.second.ns += ns;
      ++e.second.count;
      return;
    }
  }
  list.emplace_back(key, Entry{ns, 1});
}

void VulkanProfile::submission(const std::string &key, double wall_ns,
                               const std::vector<std::pair<const char *, double>> &marks) {
  if (!on_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  add(calls_, key + ": submit to fence", wall_ns);
  for (const auto &m : marks) add(steps_, key + " / " + m.first, m.second);
}

void VulkanProfile::whole_call(const std::string &key, Clock::time_point start) {
  if (!on_) return;
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
  std::lock_guard<std::mutex> lock(mutex_);
  add(calls_, key + ": whole backend call", ns);
}

void VulkanProfile::host_step(const std::string &path, const char *step, Clock::time_point since) {
  if (!on_) return;
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - since).count();
  std::lock_guard<std::mutex> lock(mutex_);
  add(host_, path + " / " + step, ns);
}

void VulkanProfile::print(const std::string &header) const {
  if (!on_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  std::fprintf(stderr, "pimoe vulkan profile (%s): mean per call\n", header.c_str());
  auto mean_us = [](const Entry &e) { return e.ns / 1e3 / static_cast<double>(e.count); };
  for (const auto &c : calls_) {
    std::fprintf(stderr, "  %-60s %8.1f us wall, %llu calls\n", c.first.c_str(), mean_us(c.second),
                 static_cast<unsigned long long>(c.second.count));
  }
  for (const auto &e : steps_) std::fprintf(stderr, "  %-60s %8.1f us GPU\n", e.first.c_str(), mean_us(e.second));
  for (const auto &e : host_) std::fprintf(stderr, "  %-60s %8.1f us host\n", e.first.c_str(), mean_us(e.second));
}

}  // namespace pimoe
