/* SPDX-License-Identifier: MIT */
// The per-call working memory of a model, pooled so that concurrent calls each get their own and a steady stream of
// calls allocates nothing. Every object counts its own bytes; the pool's total is what pimoe_stats reports.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "backend.h"
#include "route_plan.h"
#include "router.h"
#include "routing_features.h"

namespace pimoe {

// What the host steps around the backend need: the attention router and combine, callback experts, the adaptive
// state's snapshot, and a device-pointer call's host copies. Empty for a plain layer.
struct HostExtrasScratch {
  std::vector<float> router_input;                  // [T, H] x + attention context
  AttentionScratch attention;                       // the attention router's
  std::vector<float> bias_snapshot, ema_snapshot;   // adaptive state as of this call's start
  std::vector<int64_t> row_token, row_offsets;      // attention combine: ExpertRows of every kept assignment
  std::vector<float> row_out;                       // [kept, H] each kept assignment's expert output alone
  std::vector<float> callback_in, callback_out;     // [rows, H]
  std::vector<int64_t> callback_row;                // [T*slots] row of an assignment in callback_out, or -1
  std::vector<const float *> slot_outputs;          // [slots] one token's expert outputs
  std::vector<float> slot_weights, combined;        // [slots]
  std::vector<double> combine_q, combine_logit;     // attention combine's per-token scratch
  std::vector<float> host_x, host_y;                // device-pointer call routed on the host: x and y on the host

  size_t bytes() const;
};

struct Workspace {
  RoutePlan plan;  // the host router's plan, or (RouteResult part only) what the device's routing decided
  RouterScratch router;
  std::vector<float> logits;  // [T, E]
  std::unique_ptr<BackendScratch> scratch;
  HostExtrasScratch extras;

  size_t bytes() const {
    return sizeof(Workspace) + plan.bytes() + router.bytes() + vector_bytes(logits) + scratch->bytes() +
           extras.bytes();
  }
};

class WorkspacePool {
 public:
  explicit WorkspacePool(const Backend &backend) : backend_(backend) {}
  Workspace &acquire();
  void release(Workspace &workspace);
  // Host bytes of every workspace, as of its last release (a workspace in use counts as it was before the call).
  size_t bytes() const;

 private:
  struct Slot {
    std::unique_ptr<Workspace> workspace;
    size_t bytes_when_idle = 0;
  };
  const Backend &backend_;
  mutable std::mutex mutex_;
  std::vector<Slot> all_;
  std::vector<size_t> idle_;  // indices into all_
};

}  // namespace pimoe
