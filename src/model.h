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
#include "expert_spec.h"
#include "stats.h"
#include "weights.h"

namespace pimoe {

// Everything one forward call needs besides the weights. Pooled, so concurrent calls each get their own and a steady
// stream of calls allocates nothing.
struct Workspace {
  RoutePlan plan;
  std::vector<float> logits;
  std::unique_ptr<BackendScratch> scratch;
  size_t bytes_when_idle = 0;
};

class WorkspacePool {
 public:
  explicit WorkspacePool(const Backend &backend) : backend_(backend) {}
  Workspace &acquire();
  void release(Workspace &workspace);
  size_t bytes() const;

 private:
  const Backend &backend_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Workspace>> all_;
  std::vector<Workspace *> idle_;
};

// Fills a model's freshly allocated tensors (all zero, in the documented order and shapes) before the backend takes
// them: the seeded initialisation, or a loader copying from a file. May throw pimoe::Error.
using WeightFiller = std::function<void(const std::vector<NamedTensor> &)>;

class Model {
 public:
  // Weights from config.seed (pimoe.h documents the scheme), or from `fill` when given.
  explicit Model(const LayerConfig &config, const WeightFiller &fill = nullptr);

  // Validated arguments only (api.cpp checks them). ids/weights may be null.
  void forward(const float *x, int64_t tokens, float *y, int32_t *ids, float *weights);
  // The same with x and y in the backend's device memory, work ordered on `stream` (pimoe_forward_cuda;
  // model_device.cpp). ids/weights are host memory and may be null.
  void forward_device(const float *x, int64_t tokens, float *y, void *stream, int32_t *ids, float *weights);

  const LayerConfig &config() const { return config_; }
  const Backend &backend() const { return *backend_; }
  const std::vector<NamedTensor> &tensors() const { return tensors_; }
  const NamedTensor *find_tensor(const std::string &name) const;
  // Copies a tensor (nn.Linear layout) into out, which holds element_count(t) floats.
  void read_tensor(const NamedTensor &t, float *out) const;
  size_t weight_bytes() const;
  size_t workspace_bytes() const { return workspaces_.bytes(); }
  Stats &stats() { return stats_; }
  const Stats &stats() const { return stats_; }

  void record_error(const std::string &message);
  std::string last_error() const;

 private:
  // The backend takes the weights as they are when it is created, so they are filled first.
  std::unique_ptr<Backend> fill_then_create_backend(const WeightFiller &fill);

  LayerConfig config_;
  LayerWeights weights_;
  std::vector<NamedTensor> tensors_;
  std::unique_ptr<Backend> backend_;
  WorkspacePool workspaces_;
  Stats stats_;
  mutable std::mutex error_mutex_;
  std::string last_error_;
};

}  // namespace pimoe

struct pimoe_model {
  explicit pimoe_model(const pimoe::LayerConfig &config, const pimoe::WeightFiller &fill = nullptr)
      : model(config, fill) {}
  pimoe::Model model;
};
