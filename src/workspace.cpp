// SPDX-License-Identifier: MIT
#include "workspace.h"

namespace pimoe {

size_t HostExtrasScratch::bytes() const {
  return vector_bytes(router_input) + vector_bytes(attention.q) + vector_bytes(attention.k) +
         vector_bytes(attention.v) + vector_bytes(attention.context) + vector_bytes(attention.score) +
         vector_bytes(bias_snapshot) + vector_bytes(ema_snapshot) + vector_bytes(row_token) +
         vector_bytes(row_offsets) + vector_bytes(row_out) + vector_bytes(callback_in) + vector_bytes(callback_out) +
         vector_bytes(callback_row) + vector_bytes(slot_outputs) + vector_bytes(slot_weights) +
         vector_bytes(combined) + vector_bytes(combine_q) + vector_bytes(combine_logit) + vector_bytes(host_x) +
         vector_bytes(host_y);
}

Workspace &WorkspacePool::acquire() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      const size_t i = idle_.back();
      idle_.pop_back();
      return *all_[i].workspace;
    }
  }
  auto fresh = std::make_unique<Workspace>();
  fresh->scratch = backend_.make_scratch();
  std::lock_guard<std::mutex> lock(mutex_);
  all_.push_back(Slot{std::move(fresh), 0});
  idle_.reserve(all_.size());  // so that release() never allocates
  return *all_.back().workspace;
}

void WorkspacePool::release(Workspace &w) {
  const size_t bytes = w.bytes();
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < all_.size(); ++i) {
    if (all_[i].workspace.get() != &w) continue;
    all_[i].bytes_when_idle = bytes;
    idle_.push_back(i);
    return;
  }
}

size_t WorkspacePool::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t total = vector_bytes(all_) + vector_bytes(idle_);
  for (const Slot &s : all_) total += s.bytes_when_idle;
  return total;
}

}  // namespace pimoe
