// The internal interface every compute backend implements. A backend sees this header, the layer config, the
// weights and the plan it is handed; nothing else of src/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "expert_spec.h"
#include "route_plan.h"
#include "weights.h"

namespace pimoe {

// Per-call scratch memory of a backend. The model keeps a pool of these so a steady stream of calls allocates
// nothing, and hands each concurrent call its own.
class BackendScratch {
 public:
  virtual ~BackendScratch() = default;
  virtual size_t bytes() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual const char *name() const = 0;
  virtual std::string device_description() const = 0;

  virtual std::unique_ptr<BackendScratch> make_scratch() const = 0;

  // Weights a backend keeps in its own form (packed, on a device). The model frees its host copy of each tensor the
  // backend holds, and reads it back through read_weight() (nn.Linear layout) when asked.
  virtual bool holds_weight(const NamedTensor &) const { return false; }
  virtual void read_weight(const NamedTensor &, float *) const {}
  virtual size_t weight_bytes() const { return 0; }

  // logits[T, E] = x[T, H] * router_weight^T.
  virtual void router_logits(const float *x, int64_t tokens, float *logits, BackendScratch &scratch) const = 0;

  // y[T, H] = sum over each token's kept assignments of weight * expert(x_token).
  virtual void run_experts(const RoutePlan &plan, const float *x, float *y, BackendScratch &scratch) const = 0;

  // ---- Optional: the whole forward on the backend's device, routing included (GPU backends).
  // A device-pointer call (pimoe_forward_cuda): x and y are device memory, work is ordered on `stream`.
  struct DeviceCall {
    void *stream = nullptr;
  };
  // Runs router, routing, experts and combine for a layer whose routing the model does not need to do itself
  // (the model asks only when !config.router.needs_host_routing()). Fills plan's routing results for the statistics
  // and the caller's ids/weights: tokens, top_k, num_experts, expert, weight, dropped, counts, offsets, dropped_count,
  // aux_loss, z_loss, top1_probability_sum (not order/position). Returns false, having done nothing, when it does
  // not run this layer that way (the model then takes the router_logits + run_experts path).
  virtual bool forward_fused(const float * /*x*/, int64_t /*tokens*/, float * /*y*/, RoutePlan & /*plan*/,
                             BackendScratch & /*scratch*/, const DeviceCall * /*device*/) const {
    return false;
  }
  // Whether forward_fused and copy_device take device pointers (DeviceCall) at all.
  virtual bool accepts_device_pointers() const { return false; }
  // Copies bytes between the device and the host, ordered on call.stream, complete on return.
  virtual void copy_device(void * /*dst*/, const void * /*src*/, size_t /*bytes*/, bool /*to_host*/,
                           const DeviceCall & /*call*/) const {}
};

// Creates the backend a name asks for ("auto", "cpu", ...) over the given config and weights (which outlive it).
// A backend that keeps its own form of a weight (holds_weight) frees the host vector once it has taken it, one
// tensor at a time, so a model never holds two full copies of its weights.
// Throws PIMOE_ERR_BACKEND_UNAVAILABLE with the reason when it cannot run here.
std::unique_ptr<Backend> create_backend(const std::string &name, const LayerConfig &config, LayerWeights &weights);

}  // namespace pimoe
