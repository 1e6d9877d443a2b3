#include "model.h"

#include <algorithm>
#include <chrono>

#include "dtype.h"
#include "error.h"
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
      stats_(config_.router.num_experts),
      // The front end's passes over a large input: no more threads than the model was told to use.
      host_parallel_(static_cast<int>(config_.threads > 0 ? std::min<int64_t>(config_.threads, kHostPassThreads)
                                                          : kHostPassThreads)) {
  if (config_.router.adaptive_bias_rate > 0.0) initial_bias_ = weights_.selection_bias;
  if (config_.router.dynamic_capacity) initial_ema_ = weights_.load_ema;
}

std::unique_ptr<Backend> Model::fill_then_create_backend(const WeightFiller &fill) {
  if (fill) {
    fill(tensors_);
  } else {
    initialize_weights(config_.seed, tensors_);
  }
  round_expert_matrices(config_, weights_);
  return create_backend(config_.backend, config_, weights_);
}

bool Model::is_adaptive_state(const NamedTensor &t) const {
  return (t.data == &weights_.selection_bias && config_.router.adaptive_bias_rate > 0.0) ||
         (t.data == &weights_.load_ema && config_.router.dynamic_capacity);
}

void Model::read_tensor(const NamedTensor &t, float *out) const {
  if (backend_->holds_weight(t)) return backend_->read_weight(t, out);
  if (is_adaptive_state(t)) {
    std::lock_guard<std::mutex> lock(adaptive_mutex_);
    std::copy(t.data->begin(), t.data->end(), out);
    return;
  }
  std::copy(t.data->begin(), t.data->end(), out);
}

void Model::set_callback(int32_t expert, const ExpertCallback &callback) {
  const int64_t E = config_.router.num_experts;
  if (expert < 0 || expert >= E || !config_.experts[static_cast<size_t>(expert)].callback) {
    fail(PIMOE_ERR_INVALID_ARGUMENT, "pimoe_model_set_expert_callback: expert ", expert,
         " is not a callback expert of this model");
  }
  config_.callbacks[static_cast<size_t>(expert)] = callback;
}

void Model::reset_adaptive_state() {
  std::lock_guard<std::mutex> lock(adaptive_mutex_);
  if (config_.router.adaptive_bias_rate > 0.0) weights_.selection_bias = initial_bias_;
  if (config_.router.dynamic_capacity) weights_.load_ema = initial_ema_;
}

void Model::forward(const float *x, int64_t batch, int64_t seq, float *y, const RoutingOutputs &out) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t T = batch * seq;
  const RouterConfig &rc = config_.router;
  Workspace &w = workspaces_.acquire();
  struct Release {
    WorkspacePool &pool;
    Workspace &w;
    ~Release() { pool.release(w); }
  } release{workspaces_, w};

  // A GPU backend may run the whole layer on its device (routing fused into its kernels) when the layer's routing is
  // one it implements and nobody asked for the router's probabilities; otherwise routing is done here.
  if (!rc.needs_host_routing() && !out.probabilities && backend_->forward_fused(x, T, y, w.plan, *w.scratch, nullptr)) {
    w.plan.loads.assign(w.plan.counts.begin(), w.plan.counts.end());
  } else {
    route_on_host(x, batch, seq, y, w);
  }

  const RoutePlan &plan = w.plan;
  if (out.ids) std::copy(plan.expert.begin(), plan.expert.end(), out.ids);
  if (out.weights) std::copy(plan.weight.begin(), plan.weight.end(), out.weights);
  if (out.dropped) std::copy(plan.dropped.begin(), plan.dropped.end(), out.dropped);
  if (out.probabilities) std::copy(plan.scores.begin(), plan.scores.end(), out.probabilities);
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  stats_.record(plan, elapsed.count());
  if (rc.adaptive_bias_rate > 0.0 || rc.dynamic_capacity) update_adaptive_state(plan);
}

// Routing on the host (every router and feature), then the backend's experts, the callbacks and the combine.
void Model::route_on_host(const float *x, int64_t batch, int64_t seq, float *y, Workspace &w) {
  const int64_t T = batch * seq, H = config_.hidden, E = config_.router.num_experts;
  const RouterConfig &rc = config_.router;
  const float *router_in = x;
  if (rc.attention_heads > 0) {
    w.router_input.resize(static_cast<size_t>(T * H));
    attention_router_input(config_, weights_, x, batch, seq, w.router_input.data(), w.attention);
    router_in = w.router_input.data();
  }
  w.logits.resize(static_cast<size_t>(T * E));
  backend_->router_logits(router_in, T, w.logits.data(), *w.scratch);

  const float *bias = weights_.selection_bias.data(), *ema = weights_.load_ema.data();
  if (rc.adaptive_bias_rate > 0.0 || rc.dynamic_capacity) {  // this call routes with the state as it is now
    std::lock_guard<std::mutex> lock(adaptive_mutex_);
    w.bias_snapshot = weights_.selection_bias;
    w.ema_snapshot = weights_.load_ema;
    bias = w.bias_snapshot.data();
    ema = w.ema_snapshot.data();
  }
  build_route_plan(rc, w.logits.data(), T, w.plan, bias, ema);
  for (int64_t a : w.plan.callback_order) {
    const int32_t e = w.plan.expert[a];
    if (!config_.callbacks[static_cast<size_t>(e)].fn) {
      fail(PIMOE_ERR_CALLBACK, "pimoe_forward: expert ", e,
           " is a callback expert with no callback set (pimoe_model_set_expert_callback)");
    }
  }

  if (rc.combine_attention_dim > 0) {
    combine_with_attention(x, w, y);
  } else {
    backend_->run_experts(w.plan, x, y, *w.scratch);
    if (!w.plan.callback_order.empty()) run_callbacks(w.plan, x, w, y, true);
  }
}

// Calls each callback expert once on its gathered rows; callback_out row i holds the output for callback_order[i].
// With `accumulate`, adds weight * output into y.
void Model::run_callbacks(const RoutePlan &plan, const float *x, Workspace &w, float *y, bool accumulate) {
  const int64_t H = config_.hidden, k = plan.top_k;
  const auto rows = static_cast<int64_t>(plan.callback_order.size());
  w.callback_in.resize(static_cast<size_t>(rows * H));
  w.callback_out.assign(static_cast<size_t>(rows * H), 0.0f);
  for (int64_t i = 0; i < rows; ++i) {
    const float *src = x + (plan.callback_order[i] / k) * H;
    std::copy(src, src + H, w.callback_in.data() + i * H);
  }
  for (int64_t begin = 0; begin < rows;) {
    const int32_t e = plan.expert[plan.callback_order[begin]];
    int64_t end = begin;
    while (end < rows && plan.expert[plan.callback_order[end]] == e) ++end;
    const ExpertCallback &cb = config_.callbacks[static_cast<size_t>(e)];
    const int status =
        cb.fn(cb.user_data, e, w.callback_in.data() + begin * H, end - begin, H, w.callback_out.data() + begin * H);
    if (status != 0) fail(PIMOE_ERR_CALLBACK, "pimoe_forward: the callback of expert ", e, " returned ", status);
    begin = end;
  }
  if (!accumulate) return;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t a = plan.callback_order[i];
    const float wt = plan.weight[a];
    const float *src = w.callback_out.data() + i * H;
    float *dst = y + (a / k) * H;
    for (int64_t c = 0; c < H; ++c) dst[c] += wt * src[c];
  }
}

// The attention combine (pimoe.h, COMBINE_ATTENTION_DIM): every kept assignment's expert output alone (one backend
// pass over the gathered rows, weight 1, no shared expert), the shared expert alone, then per token the combine
// weights from attention and the weighted sum. Reported weights become w'.
void Model::combine_with_attention(const float *x, Workspace &w, float *y) {
  RoutePlan &plan = w.plan;
  const int64_t H = config_.hidden, E = config_.router.num_experts, T = plan.tokens, S = plan.top_k;
  const int64_t N = plan.kept();

  RoutePlan &sp = w.slot_plan;
  sp.tokens = N;
  sp.top_k = 1;
  sp.num_experts = E;
  sp.include_shared = false;
  sp.expert.resize(static_cast<size_t>(N));
  sp.weight.assign(static_cast<size_t>(N), 1.0f);
  sp.dropped.assign(static_cast<size_t>(N), 0);
  sp.position.resize(static_cast<size_t>(std::max(N, E)));
  sp.order.resize(static_cast<size_t>(N));
  sp.counts = plan.counts;
  sp.offsets = plan.offsets;
  sp.loads = plan.loads;
  w.gathered.resize(static_cast<size_t>(N * H));
  w.slot_out.resize(static_cast<size_t>(N * H));
  for (int64_t i = 0; i < N; ++i) {  // plan.order is grouped by expert, so the identity order of sp is too
    const int64_t a = plan.order[i];
    sp.expert[i] = plan.expert[a];
    sp.order[i] = i;
    sp.position[i] = i;
    const float *src = x + (a / S) * H;
    std::copy(src, src + H, w.gathered.data() + i * H);
  }
  if (N > 0) backend_->run_experts(sp, w.gathered.data(), w.slot_out.data(), *w.scratch);
  if (!plan.callback_order.empty()) run_callbacks(plan, x, w, nullptr, false);

  if (config_.shared.width > 0) {
    RoutePlan &shp = w.shared_plan;
    shp.tokens = T;
    shp.top_k = 0;
    shp.num_experts = E;
    shp.include_shared = true;
    shp.counts.assign(static_cast<size_t>(E), 0);
    shp.offsets.assign(static_cast<size_t>(E + 1), 0);
    shp.loads.assign(static_cast<size_t>(E), 0);
    backend_->run_experts(shp, x, y, *w.scratch);
  } else {
    std::fill(y, y + T * H, 0.0f);
  }

  // Row of each callback assignment in callback_out.
  w.kept_per_expert.assign(static_cast<size_t>(T * S), -1);
  for (size_t i = 0; i < plan.callback_order.size(); ++i) w.kept_per_expert[plan.callback_order[i]] = i;
  w.slot_outputs.resize(static_cast<size_t>(S));
  w.slot_weights.resize(static_cast<size_t>(S));
  w.combined.resize(static_cast<size_t>(S));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j < S; ++j) {
      const int64_t a = t * S + j;
      const float *o = nullptr;
      if (plan.position[a] >= 0) {
        o = w.slot_out.data() + plan.position[a] * H;
      } else if (w.kept_per_expert[a] >= 0) {
        o = w.callback_out.data() + w.kept_per_expert[a] * H;
      }
      w.slot_outputs[j] = o;
      w.slot_weights[j] = o ? plan.weight[a] : 0.0f;
    }
    attention_combine_weights(config_, weights_, x + t * H, w.slot_outputs.data(), w.slot_weights.data(), S,
                              w.combined.data(), w.combine_q, w.combine_logit);
    float *dst = y + t * H;
    for (int64_t j = 0; j < S; ++j) {
      const int64_t a = t * S + j;
      if (w.slot_outputs[j]) plan.weight[a] = w.combined[j];
      if (!(w.combined[j] > 0.0f)) continue;
      const float *o = w.slot_outputs[j];
      for (int64_t c = 0; c < H; ++c) dst[c] += w.combined[j] * o[c];
    }
  }
}

void Model::update_adaptive_state(const RoutePlan &plan) {
  const RouterConfig &rc = config_.router;
  std::lock_guard<std::mutex> lock(adaptive_mutex_);
  if (rc.adaptive_bias_rate > 0.0) adaptive_bias_step(rc.adaptive_bias_rate, plan.loads, weights_.selection_bias);
  if (rc.dynamic_capacity) {
    load_ema_step(rc.capacity_momentum, plan.choice_count, static_cast<double>(plan.tokens * plan.top_k),
                  weights_.load_ema);
  }
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
