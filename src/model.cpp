// SPDX-License-Identifier: MIT
#include "model.h"

#include <algorithm>
#include <chrono>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cmath>

#include "backend_registry.h"
#include "error.h"
#include "router.h"

namespace pimoe {

Model::Model(const LayerConfig &config, const WeightFiller &fill)
    : config_(config),
      tensors_(allocate_weights(config_, weights_)),
      backend_(fill_then_create_backend(fill)),
      workspaces_(*backend_),
      stats_(config_.router.num_experts),
      // The front end's passes over a large input: no more threads than the model was told to use.
      host_parallel_(host_pass_threads(config_.threads)) {
  if (config_.router.adaptive_bias_rate > 0.0) initial_bias_ = weights_.selection_bias;
  if (config_.router.dynamic_capacity) initial_ema_ = weights_.load_ema;
}

std::unique_ptr<Backend> Model::fill_then_create_backend(const WeightFiller &fill) {
  if (fill) {
    fill(tensors_);
  } else {
    initialize_weights(config_.seed, tensors_);
  }
  compact_matrices(tensors_);
  std::unique_ptr<Backend> backend = create_backend(config_.backend, config_, weights_);
#if defined(__GLIBC__)
  // Filling, quantising and packing freed the fp32 and interchange copies; glibc keeps freed heap pages resident
  // unless asked, and a loaded layer should cost its packed weights only.
  malloc_trim(0);
#endif
  return backend;
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
  if (t.compact && !t.compact->empty()) return t.compact->dequantize_rows(0, t.compact->rows, out);
  std::copy(t.data->begin(), t.data->end(), out);
}

CompactMatrix Model::read_compact(const NamedTensor &t) const {
  if (!t.format.compact()) fail(PIMOE_ERR_INTERNAL, "read_compact: tensor '", t.name, "' is fp32");
  CompactMatrix m;
  if (backend_->holds_weight(t) && backend_->read_compact_weight(t, m)) return m;
  if (!backend_->holds_weight(t) && t.compact && !t.compact->empty()) return *t.compact;
  // A backend that holds the values only (fp32, or its own bf16/fp16 type): bf16 and fp16 values convert back
  // exactly. The other formats never reach such a backend (expand_for_float_backend refuses them).
  if (t.format.dtype != WeightDtype::BF16 && t.format.dtype != WeightDtype::F16) {
    fail(PIMOE_ERR_INTERNAL, "tensor '", t.name, "' (", t.format.name(), ") is held without its codes");
  }
  std::vector<float> values(static_cast<size_t>(t.element_count()));
  read_tensor(t, values.data());
  return quantize_matrix(values.data(), t.shape[0], t.shape[1], t.format);
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
  // Element by element into the same storage: a vector assignment also rewrites the vector's own pointers, which
  // pimoe_stats reads without this lock (weight_bytes: the tensors' sizes, which never change).
  if (config_.router.adaptive_bias_rate > 0.0) {
    std::copy(initial_bias_.begin(), initial_bias_.end(), weights_.selection_bias.begin());
  }
  if (config_.router.dynamic_capacity) std::copy(initial_ema_.begin(), initial_ema_.end(), weights_.load_ema.begin());
}

// The one forward pipeline: route (on the device when the backend routes this layer there, else router logits and
// the host router), run the experts, add what runs on the host (callback experts, attention combine), hand out the
// routing, compute the losses, record the statistics. The backend keeps the call's input where set_input put it, so
// a GPU backend receives x once; a device-pointer call routed on the host moves x to the host once and y at most
// once each way.
void Model::forward(const float *x, int64_t batch, int64_t seq, float *y, const RoutingOutputs &out,
                    const DeviceCall *device, const char *fn) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t T = batch * seq;
  const RouterConfig &rc = config_.router;
  if (device && !backend_->takes_device_pointers()) {
    fail(PIMOE_ERR_UNSUPPORTED, fn, ": the model runs on backend '", backend_->name(),
         "', which takes no device pointers (create the model with backend \"cuda\")");
  }
  Workspace &w = workspaces_.acquire();
  struct Release {
    WorkspacePool &pool;
    Workspace &w;
    ~Release() { pool.release(w); }
  } release{workspaces_, w};

  backend_->set_input(x, T, *w.scratch, device);
  // The router's probabilities exist only on the host router's path.
  if (backend_->routes_on_device() && !out.probabilities) {
    backend_->route_and_run(y, w.plan, *w.scratch);
  } else {
    const float *host_x = x;
    if (device) {  // the host router, the finite check and the host experts read x on the host
      const auto n = static_cast<size_t>(T * config_.hidden);
      w.extras.host_x.resize(n);
      backend_->copy_to_host(w.extras.host_x.data(), x, n * sizeof(float), *w.scratch);
      host_x = w.extras.host_x.data();
      const size_t bad = host_parallel_.first_non_finite(host_x, n);
      if (bad < n) {
        const auto i = static_cast<int64_t>(bad);
        fail(PIMOE_ERR_NON_FINITE_INPUT, fn, ": input[", i, "] (token ", i / config_.hidden, ", feature ",
             i % config_.hidden, ") is ", std::isnan(host_x[bad]) ? "NaN" : "Inf");
      }
    }
    route_on_host(host_x, batch, seq, w);
    run_routed(host_x, y, device, w);
  }
  routing_losses(rc, w.plan);

  const RouteResult &route = w.plan;
  if (out.ids) std::copy(route.expert.begin(), route.expert.end(), out.ids);
  if (out.weights) std::copy(route.weight.begin(), route.weight.end(), out.weights);
  if (out.dropped) std::copy(route.dropped.begin(), route.dropped.end(), out.dropped);
  if (out.probabilities) std::copy(route.scores.begin(), route.scores.end(), out.probabilities);
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  stats_.record(route, elapsed.count());
  if (rc.adaptive_bias_rate > 0.0 || rc.dynamic_capacity) update_adaptive_state(w.plan);
}

// Router logits from the backend (of x, or of x + attention context), then the host router's plan.
void Model::route_on_host(const float *x, int64_t batch, int64_t seq, Workspace &w) {
  const int64_t T = batch * seq, H = config_.hidden, E = config_.router.num_experts;
  const RouterConfig &rc = config_.router;
  const float *router_input = nullptr;  // the call's input, as the backend holds it
  if (rc.attention_heads > 0) {
    w.extras.router_input.resize(static_cast<size_t>(T * H));
    attention_router_input(config_, weights_, x, batch, seq, w.extras.router_input.data(), w.extras.attention);
    router_input = w.extras.router_input.data();
  }
  w.logits.resize(static_cast<size_t>(T * E));
  backend_->router_logits(router_input, w.logits.data(), *w.scratch);
  if (rc.logit_bias) {  // z = W_g x + c: the router's own bias, before any scoring
    const float *c = weights_.router_logit_bias.data();
    for (int64_t t = 0; t < T; ++t) {
      float *z = w.logits.data() + t * E;
      for (int64_t e = 0; e < E; ++e) z[e] += c[e];
    }
  }

  const float *bias = weights_.selection_bias.data(), *ema = weights_.load_ema.data();
  if (rc.adaptive_bias_rate > 0.0 || rc.dynamic_capacity) {  // this call routes with the state as it is now
    std::lock_guard<std::mutex> lock(adaptive_mutex_);
    w.extras.bias_snapshot = weights_.selection_bias;
    w.extras.ema_snapshot = weights_.load_ema;
    bias = w.extras.bias_snapshot.data();
    ema = w.extras.ema_snapshot.data();
  }
  build_route_plan(rc, w.logits.data(), T, w.plan, w.router, bias, ema);
  for (int64_t a : w.plan.callback_order) {
    const int32_t e = w.plan.expert[a];
    if (!config_.callbacks[static_cast<size_t>(e)].fn) {
      fail(PIMOE_ERR_CALLBACK, "pimoe_forward: expert ", e,
           " is a callback expert with no callback set (pimoe_model_set_expert_callback)");
    }
  }
}

// The experts of a host-routed call: the backend's, then those that run on the host. y is device memory for a
// device-pointer call; the host parts then work on a host copy of y, sent back once.
void Model::run_routed(const float *x, float *y, const DeviceCall *device, Workspace &w) {
  const RoutePlan &plan = w.plan;
  const bool callbacks = !plan.callback_order.empty();
  const size_t bytes = static_cast<size_t>(plan.tokens * config_.hidden) * sizeof(float);
  if (callbacks) run_callbacks(x, w);  // first: a failing callback leaves y untouched
  if (config_.router.combine_attention_dim > 0 || config_.router.scale_input) {
    float *host_y = y;
    if (device) {
      w.extras.host_y.resize(bytes / sizeof(float));
      host_y = w.extras.host_y.data();
    }
    if (config_.router.scale_input) {
      run_scaled_input(x, w, host_y);
    } else {
      combine_with_attention(x, w, host_y);
    }
    if (device) backend_->copy_to_device(y, host_y, bytes, *w.scratch);
    return;
  }
  backend_->run_experts(plan, y, *w.scratch);
  if (!callbacks) return;
  if (!device) {
    add_callback_outputs(plan, w.extras, y);
    return;
  }
  w.extras.host_y.resize(bytes / sizeof(float));
  backend_->copy_to_host(w.extras.host_y.data(), y, bytes, *w.scratch);
  add_callback_outputs(plan, w.extras, w.extras.host_y.data());
  backend_->copy_to_device(y, w.extras.host_y.data(), bytes, *w.scratch);
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
  for (const NamedTensor &t : tensors_) {
    total += t.data->size() * sizeof(float);
    if (t.compact) total += t.compact->bytes();
  }
  return total;
}

void Model::record_error(const char *message) noexcept {
  std::lock_guard<std::mutex> lock(error_mutex_);
  assign_without_throwing(last_error_, message);
}

std::string Model::last_error() const {
  std::lock_guard<std::mutex> lock(error_mutex_);
  return last_error_;
}

}  // namespace pimoe
