#include "model.h"

#include <algorithm>
#include <chrono>

#include "dtype.h"
#include "router.h"

namespace pimoe {

Workspace &WorkspacePool::acquire() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      Workspace *w = idle_.back();
      idle_.pop_back();
      return *w;
    }
  }
  auto fresh = std::make_unique<Workspace>();
  fresh->scratch = backend_.make_scratch();
  std::lock_guard<std::mutex> lock(mutex_);
  all_.push_back(std::move(fresh));
  idle_.reserve(all_.size());  // so that release() never allocates
  return *all_.back();
}

void WorkspacePool::release(Workspace &w) {
  const RoutePlan &p = w.plan;
  const size_t plan_bytes =
      (p.expert.capacity() + p.weight.capacity()) * 4 + p.dropped.capacity() +
      (p.position.capacity() + p.counts.capacity() + p.offsets.capacity() + p.order.capacity()) * 8 +
      (p.probability.capacity() + p.probability_sum.capacity() + p.choice_count.capacity() + p.selection.capacity() +
       p.group_score.capacity()) *
          8 +
      p.group_ids.capacity() * 4;
  const size_t bytes = plan_bytes + w.logits.capacity() * sizeof(float) + w.scratch->bytes();
  std::lock_guard<std::mutex> lock(mutex_);
  w.bytes_when_idle = bytes;
  idle_.push_back(&w);
}

size_t WorkspacePool::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t total = 0;
  for (const auto &w : all_) total += w->bytes_when_idle;
  return total;
}

Model::Model(const LayerConfig &config, const WeightFiller &fill)
    : config_(config),
      tensors_(allocate_weights(config_, weights_)),
      backend_(fill_then_create_backend(fill)),
      workspaces_(*backend_),
      stats_(config_.router.num_experts) {}

std::unique_ptr<Backend> Model::fill_then_create_backend(const WeightFiller &fill) {
  if (fill) {
    fill(tensors_);
  } else {
    initialize_weights(config_.seed, tensors_);
  }
  round_expert_matrices(config_, weights_);
  return create_backend(config_.backend, config_, weights_);
}

void Model::read_tensor(const NamedTensor &t, float *out) const {
  if (backend_->holds_weight(t)) return backend_->read_weight(t, out);
  std::copy(t.data->begin(), t.data->end(), out);
}

void Model::forward(const float *x, int64_t tokens, float *y, int32_t *ids, float *weights) {
  const auto start = std::chrono::steady_clock::now();
  Workspace &w = workspaces_.acquire();
  struct Release {
    WorkspacePool &pool;
    Workspace &w;
    ~Release() { pool.release(w); }
  } release{workspaces_, w};

  // A backend that routes on its device does the whole layer in one go; everything else routes here.
  if (config_.router.needs_host_routing() || !backend_->forward_fused(x, tokens, y, w.plan, *w.scratch)) {
    w.logits.resize(static_cast<size_t>(tokens * config_.router.num_experts));
    backend_->router_logits(x, tokens, w.logits.data(), *w.scratch);
    build_route_plan(config_.router, w.logits.data(), tokens, w.plan, weights_.selection_bias.data());
    backend_->run_experts(w.plan, x, y, *w.scratch);
  }

  if (ids) std::copy(w.plan.expert.begin(), w.plan.expert.end(), ids);
  if (weights) std::copy(w.plan.weight.begin(), w.plan.weight.end(), weights);
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  stats_.record(w.plan, elapsed.count());
}

const NamedTensor *Model::find_tensor(const std::string &name) const {
  for (const NamedTensor &t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

size_t Model::weight_bytes() const {
  size_t total = backend_->weight_bytes();
  for (const NamedTensor &t : tensors_) total += t.data->size() * sizeof(float);
  return total;
}

void Model::record_error(const std::string &message) {
  std::lock_guard<std::mutex> lock(error_mutex_);
  last_error_ = message;
}

std::string Model::last_error() const {
  std::lock_guard<std::mutex> lock(error_mutex_);
  return last_error_;
}

}  // namespace pimoe
