/* SPDX-License-Identifier: MIT */
// A layer: immutable config and weights, the backend that runs them, per-call workspaces and statistics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend.h"
#include "layer_config.h"
#include "host_parallel.h"
#include "stats.h"
#include "weights.h"
#include "workspace.h"

namespace pimoe {

// What a caller wants back from a forward call besides the output (each may be null; host memory).
struct RoutingOutputs {
  int32_t *ids = nullptr;
  float *weights = nullptr;
  uint8_t *dropped = nullptr;
  float *probabilities = nullptr;
};

// Fills a model's freshly allocated tensors (all zero, in the documented order and shapes) before the backend takes
// them: the seeded initialisation, or a loader copying from a file. May throw pimoe::Error.
using WeightFiller = std::function<void(const std::vector<NamedTensor> &)>;

class Model {
 public:
  // Weights from config.seed (pimoe.h documents the scheme), or from `fill` when given.
  explicit Model(const LayerConfig &config, const WeightFiller &fill = nullptr);

  // The one forward pipeline (model.cpp): validated arguments only (the C shims check them). x and y are host
  // memory, or the backend's device memory when `device` is given (pimoe_forward_cuda); `fn` names the C call in
  // error messages.
  void forward(const float *x, int64_t batch, int64_t seq, float *y, const RoutingOutputs &out,
               const DeviceCall *device = nullptr, const char *fn = "pimoe_forward");

  // Callback experts (pimoe_model_set_expert_callback). Not synchronised with forward (the header says so).
  void set_callback(int32_t expert, const ExpertCallback &callback);
  // Restores the adaptive bias and the load average to their values at creation/load.
  void reset_adaptive_state();

  const LayerConfig &config() const { return config_; }
  const Backend &backend() const { return *backend_; }
  const std::vector<NamedTensor> &tensors() const { return tensors_; }
  const NamedTensor *find_tensor(const std::string &name) const;
  // Copies a tensor (nn.Linear layout) into out, which holds element_count(t) floats.
  void read_tensor(const NamedTensor &t, float *out) const;
  // A compact matrix (t.format.compact()) exactly as stored (interchange layout, the codes the layer computes with).
  CompactMatrix read_compact(const NamedTensor &t) const;
  size_t weight_bytes() const;
  // The expert matrices' quantisation error against the fp32 weights they came from (pimoe.h defines it).
  const QuantError &quant_error() const { return weights_.quant_error; }
  size_t workspace_bytes() const { return workspaces_.bytes(); }
  Stats &stats() { return stats_; }
  const Stats &stats() const { return stats_; }
  // Threads for the front end's passes over a call's whole input (the finite check).
  const HostParallel &host_parallel() const { return host_parallel_; }

  void record_error(const char *message) noexcept;  // keeps what fits when memory is exhausted
  std::string last_error() const;

 private:
  // The backend takes the weights as they are when it is created, so they are filled first.
  std::unique_ptr<Backend> fill_then_create_backend(const WeightFiller &fill);

  bool is_adaptive_state(const NamedTensor &t) const;
  // The pipeline's steps (model.cpp), and the host experts (host_experts.cpp).
  void route_on_host(const float *x, int64_t batch, int64_t seq, Workspace &w);
  void run_routed(const float *x, float *y, const DeviceCall *device, Workspace &w);
  void run_callbacks(const float *x, Workspace &w);
  void add_callback_outputs(const RoutePlan &plan, const HostExtrasScratch &extras, float *y) const;
  void combine_with_attention(const float *x, Workspace &w, float *y);
  void run_scaled_input(const float *x, Workspace &w, float *y);
  void update_adaptive_state(const RoutePlan &plan);

  LayerConfig config_;
  LayerWeights weights_;
  std::vector<NamedTensor> tensors_;
  std::unique_ptr<Backend> backend_;
  WorkspacePool workspaces_;
  Stats stats_;
  HostParallel host_parallel_;
  // Adaptive routing state (selection bias, load average): read at the start of a call, updated at its end.
  mutable std::mutex adaptive_mutex_;
  std::vector<float> initial_bias_, initial_ema_;
  mutable std::mutex error_mutex_;
  std::string last_error_;
};

}  // namespace pimoe

struct pimoe_model {
  explicit pimoe_model(const pimoe::LayerConfig &config, const pimoe::WeightFiller &fill = nullptr)
      : model(config, fill) {}
  pimoe::Model model;
};
