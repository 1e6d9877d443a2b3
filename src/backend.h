/* SPDX-License-Identifier: MIT */
// The internal interface every compute backend implements, and the family object through which the registry finds
// it (registry -> family -> backend, in the spirit of ggml-backend).
//
// What a backend may include from src/: this header and what it includes (the layer config, the weights, the routing
// data), and the runtime helpers error.h, dtype.h, thread_pool.h and host_parallel.h. Nothing else of src/, and no
// other backend (tests/test_layering checks both by scanning includes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "layer_config.h"
#include "route_plan.h"
#include "weights.h"

namespace pimoe {

// Per-call scratch memory of a backend. The model keeps a pool of these so a steady stream of calls allocates
// nothing, and hands each concurrent call its own.
class BackendScratch {
 public:
  virtual ~BackendScratch() = default;
  // Host bytes this scratch holds (the object itself included), as reported in pimoe_stats' workspace_bytes.
  virtual size_t bytes() const = 0;
};

// A call whose input and output are the backend's own device memory (pimoe_forward_cuda): `stream` is the queue the
// call's work is ordered on (a cudaStream_t for CUDA).
struct DeviceCall {
  void *stream = nullptr;
};

// Rows to run through given experts (the attention combine): out row i = expert(input row token[i]), for the
// experts' rows in groups: rows offsets[e] .. offsets[e+1] go through expert e. No weights, no shared expert.
struct ExpertRows {
  int64_t count = 0;
  const int64_t *token = nullptr;    // [count]
  const int64_t *offsets = nullptr;  // [E + 1]
};

// One forward call, as the model drives it (src/model.cpp):
//   set_input once, then either
//   route_and_run                                   when routes_on_device() (routing fused into device kernels), or
//   router_logits, then run_experts (or run_rows + run_shared for the attention combine)   otherwise,
// all with the same scratch. The input stays where set_input put it (on the device for a GPU backend) for every
// step of the call, so a call copies its input to the device once.
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
  // A held compact matrix (t.compact set) in the interchange layout of its format (compact_matrix.h), exactly the
  // one the backend was given: true when the backend can give it (pimoe_save writes it), false when it holds only
  // values (the model then rebuilds bf16/fp16 from read_weight, which is exact).
  virtual bool read_compact_weight(const NamedTensor &, CompactMatrix &) const { return false; }
  virtual size_t weight_bytes() const { return 0; }

  // ---- Capabilities, decided once when the backend is created for its layer.
  // route_and_run() can run this layer, routing included (the router's scoring, groups and top-k on the device).
  virtual bool routes_on_device() const { return false; }
  // Calls may pass a DeviceCall: input and output in the backend's device memory (copy_to_host/copy_to_device work).
  virtual bool takes_device_pointers() const { return false; }

  // ---- The steps of a call.
  // The call's input x[T, H]: host memory, or device memory when `device` is given (takes_device_pointers() only).
  virtual void set_input(const float *x, int64_t tokens, BackendScratch &scratch, const DeviceCall *device) const = 0;

  // logits[T, E] (host memory) = in * router_weight^T, where `in` is the call's input, or `router_input` (host
  // memory, [T, H]) when it is not null: the attention router's x + context.
  virtual void router_logits(const float *router_input, float *logits, BackendScratch &scratch) const = 0;

  // y[T, H] = sum over each token's kept assignments of weight * expert(x_token), plus the shared expert (when the
  // layer has one). y is device memory when the call's input was (set_input with a DeviceCall), else host memory.
  virtual void run_experts(const RoutePlan &plan, float *y, BackendScratch &scratch) const = 0;

  // The rows' outputs alone (host memory, [rows.count, H]); see ExpertRows.
  virtual void run_rows(const ExpertRows &rows, float *out, BackendScratch &scratch) const = 0;

  // y[T, H] (host memory) = the shared expert's output alone; zeros when the layer has none.
  virtual void run_shared(float *y, BackendScratch &scratch) const = 0;

  // The whole layer on the device (routes_on_device() only): routing, experts, combine. y is where run_experts would
  // write it. Fills `route`'s data (every field of RouteResult but scores, aux_loss and z_loss: the model computes
  // those from the sums). Throws PIMOE_ERR_NON_FINITE_INPUT, having written nothing of y, when a device-pointer
  // input holds NaN or Inf.
  virtual void route_and_run(float *y, RouteResult &route, BackendScratch &scratch) const;

  // Copies between the call's device memory and the host, ordered after the call's earlier work, complete on return
  // (takes_device_pointers() only).
  virtual void copy_to_host(void *dst, const void *src, size_t bytes, BackendScratch &scratch) const;
  virtual void copy_to_device(void *dst, const void *src, size_t bytes, BackendScratch &scratch) const;
};

// A backend family: one per backend folder, found through the registry (backend_registry.cpp, the only file that
// names them). Devices are numbered from 0; device -1 means the family's preferred device.
struct BackendFamily {
  const char *name;        // "cpu", "cuda", ...: the backend option's value ("name:N" for device N where the
                           // registry's table says the backend numbers its devices)
  int (*device_count)();   // what pimoe_backend_device_count() reports: devices seen (the family says which count)
  // Whether the device can run the backend; `why` receives the reason when it cannot.
  bool (*usable)(int device, std::string &why);
  // "cuda: NVIDIA H100 80GB HBM3 (sm_90, ...)"; "" when unusable.
  std::string (*describe)(int device);
  // The family's bid for "auto": the device it would use in *device and a rank (higher wins), or a negative rank
  // when "auto" must never pick it (no device, or only a software one).
  int (*auto_rank)(int *device);
  // Throws PIMOE_ERR_BACKEND_UNAVAILABLE (with the reason) or PIMOE_ERR_OUT_OF_MEMORY.
  std::unique_ptr<Backend> (*create)(const LayerConfig &config, LayerWeights &weights, int device);
  // What pimoe_build_info() adds for this family ("cpu_gemm=packed,openblas blas=..."); null: nothing.
  std::string (*build_info)();
};

}  // namespace pimoe
