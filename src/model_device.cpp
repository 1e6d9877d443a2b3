// Model::forward_device: the forward of pimoe_forward_cuda, with input and output in the backend's device memory.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "error.h"
#include "model.h"

namespace pimoe {

void Model::forward_device(const float *x, int64_t batch, int64_t seq, float *y, void *stream, int32_t *ids,
                           float *weights) {
  const int64_t tokens = batch * seq;
  if (!backend_->accepts_device_pointers()) {
    fail(PIMOE_ERR_UNSUPPORTED, "pimoe_forward_cuda: the model runs on backend '", backend_->name(),
         "', which takes no device pointers (create the model with backend \"cuda\")");
  }
  const auto start = std::chrono::steady_clock::now();
  Backend::DeviceCall call;
  call.stream = stream;
  if (!config_.router.needs_host_routing()) {
    Workspace &w = workspaces_.acquire();
    struct Release {
      WorkspacePool &pool;
      Workspace &w;
      ~Release() { pool.release(w); }
    } release{workspaces_, w};
    if (backend_->forward_fused(x, tokens, y, w.plan, *w.scratch, &call)) {
      w.plan.loads.assign(w.plan.counts.begin(), w.plan.counts.end());
      if (ids) std::copy(w.plan.expert.begin(), w.plan.expert.end(), ids);
      if (weights) std::copy(w.plan.weight.begin(), w.plan.weight.end(), weights);
      const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
      stats_.record(w.plan, elapsed.count());
      return;
    }
  }
  // A layer whose routing only the host implements: through host memory, with the checks pimoe_forward makes.
  const auto n = static_cast<size_t>(tokens * config_.hidden);
  std::vector<float> hx(n), hy(n);
  backend_->copy_device(hx.data(), x, n * sizeof(float), true, call);
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(hx[i])) {
      const auto index = static_cast<int64_t>(i);
      fail(PIMOE_ERR_NON_FINITE_INPUT, "pimoe_forward_cuda: input[", index, "] (token ", index / config_.hidden,
           ", feature ", index % config_.hidden, ") is ", std::isnan(hx[i]) ? "NaN" : "Inf");
    }
  }
  RoutingOutputs out;
  out.ids = ids;
  out.weights = weights;
  forward(hx.data(), batch, seq, hy.data(), out);
  backend_->copy_device(y, hy.data(), n * sizeof(float), false, call);
}

}  // namespace pimoe
