// SPDX-License-Identifier: MIT
// The CUDA backend's orchestration: the steps of a call (backend.h) as launches of the kernels (routing.cu,
// elementwise.cu, gemv.cu, grouped_gemm.cu) on the call's stream, over the scratch's buffers and the weights on the
// device. Compiled by the C++ compiler against the CUDA runtime API (linked statically, so libpimoe needs only the
// driver, and only when this backend is used).
#include "cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "cuda_call_plan.h"
#include "cuda_check.h"
#include "cuda_device.h"
#include "cuda_scratch.h"
#include "cuda_tuning.h"
#include "cuda_weights.h"
#include "elementwise.cuh"
#include "gemv.cuh"
#include "grouped_gemm.cuh"
#if PIMOE_HAVE_SM90A
#include "grouped_gemm_sm90.cuh"
#endif
#include "routing.cuh"
#include "src/error.h"
#include "src/host_parallel.h"

namespace pimoe::cuda {
namespace {

// Fails with the reason when the device cannot run the backend, else makes it current. Returns config, so that the
// constructor runs it before its other initialisers (reading the device, uploading the weights).
const LayerConfig &on_usable_device(const LayerConfig &config) {
  std::string why;
  if (!device_usable(why)) fail(PIMOE_ERR_BACKEND_UNAVAILABLE, why);
  select_device();
  return config;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(const LayerConfig &config, LayerWeights &weights)
      : config_(on_usable_device(config)),
        wtype_(wtype_of(config.weight_format)),
        H_(static_cast<int32_t>(config.hidden)),
        E_(static_cast<int32_t>(config.router.num_experts)),
        shared_(config.shared.width > 0),
        description_(cuda::device_description()),  // the device's, not this class's
        pdl_(compute_capability_major() >= 9),
        tuning_(tuning_from_config(config.tuning)),
        weights_(config, weights, wtype_, !tuning_.no_wgmma),
        shapes_(weights_.shapes()),
        sm90_(weights_.tensor_maps() != nullptr),
        routes_on_device_(device_routing_implements_layer()) {}

  const char *name() const override { return "cuda"; }
  std::string device_description() const override { return description_; }

  std::unique_ptr<BackendScratch> make_scratch() const override { return make_cuda_scratch(H_); }

  bool holds_weight(const NamedTensor &t) const override { return weights_.holds(t); }
  void read_weight(const NamedTensor &t, float *out) const override { weights_.read(t, out); }
  bool read_compact_weight(const NamedTensor &t, CompactMatrix &out) const override {
    return weights_.read_compact(t, out);
  }
  size_t weight_bytes() const override { return weights_.bytes(); }

  bool routes_on_device() const override { return routes_on_device_; }
  bool takes_device_pointers() const override { return true; }

  // A host input is copied to the scratch's device buffer here, once for the whole call; a device input stays where
  // the caller has it, and the call's work is ordered on the caller's stream.
  void set_input(const float *x, int64_t tokens, BackendScratch &base, const DeviceCall *device) const override {
    auto &s = static_cast<CudaScratch &>(base);
    select_device();
    s.tokens = tokens;
    s.device_io = device != nullptr;
    if (device) {
      s.input = x;
      s.call_stream = static_cast<cudaStream_t>(device->stream);
      return;
    }
    s.call_stream = s.stream;
    const size_t xb = sizeof(float) * tokens * H_;
    s.x.reserve(xb, "the call's input");
    s.staging.copy_input(host_threads_, s.x.get(), x, xb, s.stream);
    s.input = s.x.as<float>();
  }

  void router_logits(const float *router_input, float *logits, BackendScratch &base) const override {
    auto &s = static_cast<CudaScratch &>(base);
    const int64_t T = s.tokens;
    if (T == 0) return;
    select_device();
    const size_t lb = sizeof(float) * T * E_;
    s.logits.reserve(lb, "router logits");
    const float *in = s.input;
    if (router_input) {
      const size_t xb = sizeof(float) * T * H_;
      s.router_input.reserve(xb, "the router's input");
      s.staging.copy_input(host_threads_, s.router_input.get(), router_input, xb, s.call_stream);
      in = s.router_input.as<float>();
    }
    launch_router(in, T, s.logits.as<float>(), s.call_stream);
    check(cudaMemcpyAsync(logits, s.logits.get(), lb, cudaMemcpyDeviceToHost, s.call_stream),
          "copying router logits back");
    check(cudaStreamSynchronize(s.call_stream), "router logits");
  }

  void run_experts(const RoutePlan &plan, float *y, BackendScratch &base) const override {
    auto &s = static_cast<CudaScratch &>(base);
    const int64_t T = plan.tokens;
    if (T == 0) return;
    if (T != s.tokens)
      fail(PIMOE_ERR_INTERNAL, "cuda: run_experts on a plan of ", T, " tokens after an input of ", s.tokens);
    select_device();
    const CallShape shape(T, plan.top_k, plan.kept() + (shared_ ? T : 0), E_, shared_, choose_path(T));
    const CallLayout layout(E_, shape);
    reserve_call(s, shape, layout.total, layout.total, s.device_io ? 0 : T);
    write_route_plan(plan, shape, layout, s.host_call.as<char>());
    if (s.device_io) {
      run_planned(s, shape, layout, y);
      check(cudaStreamSynchronize(s.call_stream), "the expert kernels");
    } else {
      run_planned(s, shape, layout, s.y.as<float>());
      s.staging.copy_output(host_threads_, y, s.y.get(), sizeof(float) * T * H_, s.call_stream, "the expert kernels");
    }
  }

  // The rows are the device plan's assignments (one per row, weight 1, combined into an output row of their own),
  // read from the call's input in place: the combine kernels then write each row's output alone.
  void run_rows(const ExpertRows &rows, float *out, BackendScratch &base) const override {
    auto &s = static_cast<CudaScratch &>(base);
    const int64_t N = rows.count;
    if (N == 0) return;
    select_device();
    const CallShape shape(N, 1, N, E_, false, choose_path(N));
    const CallLayout layout(E_, shape);
    reserve_call(s, shape, layout.total, layout.total, N);
    write_expert_rows(rows, shape, layout, s.host_call.as<char>());
    run_planned(s, shape, layout, s.y.as<float>());
    s.staging.copy_output(host_threads_, out, s.y.get(), sizeof(float) * N * H_, s.call_stream, "the expert kernels");
  }

  void run_shared(float *y, BackendScratch &base) const override {
    auto &s = static_cast<CudaScratch &>(base);
    const int64_t T = s.tokens;
    if (!shared_) {
      std::fill(y, y + T * H_, 0.0f);
      return;
    }
    if (T == 0) return;
    select_device();
    const CallShape shape(T, 0, T, E_, true, choose_path(T));
    const CallLayout layout(E_, shape);
    reserve_call(s, shape, layout.total, layout.total, T);
    write_shared_rows(shape, layout, s.host_call.as<char>());
    run_planned(s, shape, layout, s.y.as<float>());
    s.staging.copy_output(host_threads_, y, s.y.get(), sizeof(float) * T * H_, s.call_stream, "the expert kernels");
  }

  void route_and_run(float *y, RouteResult &route, BackendScratch &base) const override {
    auto &s = static_cast<CudaScratch &>(base);
    const int64_t T = s.tokens, k = config_.router.top_k;
    if (T == 0) {
      route.set_empty(k, E_);
      return;
    }
    select_device();
    const CallShape shape(T, k, T * k + (shared_ ? T : 0), E_, shared_, choose_path(T));
    const CallLayout layout(E_, shape);
    const cudaStream_t st = s.call_stream;
    reserve_call(s, shape, layout.total, layout.result_end, s.device_io ? 0 : T);
    float *yd = s.device_io ? y : s.y.as<float>();
    if (shape.path == Path::Gemv) {
      enqueue_decode(s, yd, layout, shape);
    } else {
      enqueue_fused(s, yd, s.device_io, layout, shape);
    }
    if (!s.device_io) s.staging.copy_output(host_threads_, y, yd, sizeof(float) * T * H_, st, "the forward kernels");
    check(cudaStreamSynchronize(st), "the forward kernels");

    const char *hc = s.host_call.as<char>();
    if (s.device_io) {
      unsigned long long bad;
      std::memcpy(&bad, hc + layout.flag, sizeof bad);
      if (bad != std::numeric_limits<unsigned long long>::max()) {
        float value = 0.0f;
        check(cudaMemcpy(&value, s.input + bad, sizeof value, cudaMemcpyDeviceToHost), "reading the bad input element");
        const auto i = static_cast<int64_t>(bad);
        fail(PIMOE_ERR_NON_FINITE_INPUT, "pimoe_forward_cuda: input[", i, "] (token ", i / H_, ", feature ", i % H_,
             ") is ", std::isnan(value) ? "NaN" : "Inf", "; the output holds no result");
      }
    }
    read_route_result(hc, layout, shape, E_, route);
  }

  void copy_to_host(void *dst, const void *src, size_t bytes, BackendScratch &base) const override {
    copy_between(dst, src, bytes, cudaMemcpyDeviceToHost, static_cast<CudaScratch &>(base).call_stream,
                 "copying device memory to the host");
  }
  void copy_to_device(void *dst, const void *src, size_t bytes, BackendScratch &base) const override {
    copy_between(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<CudaScratch &>(base).call_stream,
                 "copying host memory to the device");
  }

 private:
  void copy_between(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t st,
                    const char *what) const {
    select_device();
    check(cudaMemcpyAsync(dst, src, bytes, kind, st), what);
    check(cudaStreamSynchronize(st), "a copy between host and device");
  }

  // The on-device router implements softmax/sigmoid scoring, selection bias, single-level groups, top-k,
  // renormalisation and scaling, dropless. Everything else routes on the host (router_logits + run_experts).
  bool device_routing_implements_layer() const {
    const RouterConfig &r = config_.router;
    if (r.needs_host_routing() || r.capacity_factor > 0.0) return false;
    if (r.num_experts > kFusedMaxExperts || r.top_k > kFusedMaxTopK) return false;
    for (const ExpertSpec &e : config_.experts) {
      if (e.callback) return false;
    }
    return true;
  }

  // Compact weights: the streaming GEMV (decoded in registers) up to kDecodeTokens, else the SIMT GEMM (decoded into
  // its fp32 tiles); both compute in fp32 on exactly the stored values.
  Path choose_path(int64_t tokens) const {
    if (!config_.deterministic && tokens <= kDecodeTokens && !decode_gemm(tokens)) return Path::Gemv;
    if ((wtype_ == WType::BF16 || wtype_ == WType::F16) && shapes_.tensor_dims_ok) return Path::Mma;
    return Path::Simt;
  }

  bool decode_gemm(int64_t tokens) const {
    if (!sm90_ || tuning_.decode_gemm_rows <= 0.0) return false;
    return static_cast<double>(tokens * config_.router.top_k) >= tuning_.decode_gemm_rows * static_cast<double>(E_);
  }

  void launch_router(const float *x, int64_t tokens, float *logits, cudaStream_t st) const {
    ProjectionArgs a;
    a.dense_weight = weights_.router();
    a.dense_rows = static_cast<int32_t>(tokens);
    a.dense_k = H_;
    a.dense_n = E_;
    a.in = x;
    a.in_stride = H_;
    a.out = logits;
    a.out_stride = E_;
    a.streaming = tokens <= tuning_.stream_tokens;
    // The same kernel for every call size in deterministic mode, so a token's logits do not depend on the call.
    if (!config_.deterministic && tokens <= kDecodeTokens) {
      launch_gemv(a, WType::F32, false, st);
    } else {
      launch_simt_gemm(a, WType::F32, st);
    }
    check_launch("the router logits kernel");
  }

  // Every device buffer a call needs, allocated before its first kernel is queued: a failed allocation (out of
  // device memory) then leaves nothing half-done on the stream. output_rows: rows of the scratch's output buffer
  // (0 when the call writes the caller's device memory).
  void reserve_call(CudaScratch &s, const CallShape &shape, size_t plan_bytes, size_t host_bytes,
                    int64_t output_rows) const {
    const size_t es = wtype_size(shape.path == Path::Mma ? wtype_ : WType::F32);
    const size_t row_count = static_cast<size_t>(std::max<int64_t>(shape.rows, 1));
    s.call.reserve(plan_bytes, "the call's plan");
    s.host_call.reserve(host_bytes, "the call's plan");
    if (output_rows > 0) s.y.reserve(sizeof(float) * output_rows * H_, "the call's output");
    s.logits.reserve(sizeof(float) * shape.tokens * E_, "router logits");
    s.rows.reserve(es * row_count * H_, "gathered rows");
    s.hidden.reserve(es * row_count * shapes_.inter_stride, "expert hidden activations");
    s.out.reserve(sizeof(float) * row_count * H_, "expert outputs");
  }

  // A plan written on the host (page-locked host_call): one copy to the device, then the layer over it.
  void run_planned(CudaScratch &s, const CallShape &shape, const CallLayout &layout, float *y) const {
    check(cudaMemcpyAsync(s.call.get(), s.host_call.get(), layout.total, cudaMemcpyHostToDevice, s.call_stream),
          "copying the plan");
    run_layer(s, y, shape, layout.plan(s.call.as<char>()));
  }

  void run_layer(CudaScratch &s, float *y, const CallShape &shape, const DevicePlan &dp) const;
  void enqueue_fused(CudaScratch &s, float *yd, bool check_input, const CallLayout &layout,
                     const CallShape &shape) const;
  void enqueue_decode(CudaScratch &s, float *yd, const CallLayout &layout, const CallShape &shape) const;
  RouteArgs route_args(CudaScratch &s, const CallLayout &layout, int64_t T) const;
  SortArgs sort_args(CudaScratch &s, const CallLayout &layout, const CallShape &shape, const RouteArgs &r) const;

  const LayerConfig &config_;
  const WType wtype_;
  const int32_t H_, E_;
  const bool shared_;
  const std::string description_;
  const bool pdl_;  // programmatic dependent launch (sm_90 and newer)
  const Tuning tuning_;
  const DeviceWeights weights_;
  const ExpertShapes &shapes_;
  const bool sm90_;  // the tensor-core path runs the wgmma kernel (the weights hold its descriptors)
  const bool routes_on_device_;
  // Threads for the copies between callers' buffers and staging (the calling thread is one of them).
  HostParallel host_threads_{host_pass_threads(config_.threads)};
};

// gather -> up projection (+ activation) -> down projection -> combine into y, over the device plan dp, from the
// call's input. The GEMV path reads the tokens' rows in place when no expert normalises its input (no gather), and
// combines inside the down projection unless the shared expert is gated (the gate is a dot product over the whole
// input row).
void CudaBackend::run_layer(CudaScratch &s, float *y, const CallShape &shape, const DevicePlan &dp) const {
  const float *x = s.input;
  const cudaStream_t st = s.call_stream;
  const int64_t T = shape.tokens, rows = shape.rows;
  const auto G = static_cast<int32_t>(shape.groups);
  const bool shared = shape.shared;
  const Path path = shape.path;
  const WType act = path == Path::Mma ? wtype_ : WType::F32;
  const bool gemv = path == Path::Gemv;
  const bool gather = !gemv || shapes_.has_norm;
  const bool fused_combine = gemv && !(shared && config_.shared.gated);
  if (gather) {
    launch_gather(x, dp, weights_.groups(), G, rows, H_, static_cast<float>(config_.layer_norm_eps), s.rows.get(), act,
                  st);
    check_launch("the gather kernel");
  }

  ProjectionArgs up;
  up.groups = weights_.groups();
  up.offsets = dp.offsets;
  if (gemv) {
    up.list = dp.active;
    up.list_count = dp.active_count;
    up.max_list = static_cast<int32_t>(std::min<int64_t>(G, rows));
  } else {
    up.list = dp.tiles;
    up.list_count = dp.tile_count;
    up.max_list = static_cast<int32_t>(shape.tiles_bound);
  }
  up.up = true;
  up.streaming = T <= tuning_.stream_tokens;
  up.gated = shapes_.gated;
  up.inter_align = shapes_.inter_align;
  up.quant_group = static_cast<int32_t>(config_.weight_format.group);
  up.hidden = H_;
  up.max_n = shapes_.max_inter;
  up.in = gather ? s.rows.get() : x;
  up.in_stride = H_;
  up.in_rows = gather ? nullptr : dp.row_token;
  up.out = s.hidden.get();
  up.out_stride = shapes_.inter_stride;
  ProjectionArgs down = up;
  down.up = false;
  down.max_n = H_;
  down.in = s.hidden.get();
  down.in_stride = shapes_.inter_stride;
  down.out = s.out.get();
  down.out_stride = H_;
  down.in_rows = nullptr;
  if (fused_combine) {
    FusedCombine &c = down.combine;
    c.y = y;
    c.counters = s.decode_state()->combine_counters;
    c.position = dp.position;
    c.weight = dp.weight;
    c.expert = dp.expert;
    c.tokens = static_cast<int32_t>(T);
    c.top_k = static_cast<int32_t>(shape.top_k);
    c.experts = E_;
    c.shared = shared;
  }
  for (const ProjectionArgs *p : {&up, &down}) {
    switch (path) {
      case Path::Gemv:
        launch_gemv(*p, wtype_, pdl_, st);
        break;
      case Path::Simt:
        launch_simt_gemm(*p, wtype_, st);
        break;
      case Path::Mma:
#if PIMOE_HAVE_SM90A
        if (sm90_ && launch_sm90_gemm(*p, weights_.tensor_maps(), rows, wtype_, st)) break;
#endif
        launch_mma_gemm(*p, wtype_, st);
        break;
    }
    check_launch(p->up ? "the up projection kernel" : "the down projection kernel");
  }
  if (fused_combine) return;

  CombineArgs c;
  c.out = s.out.as<float>();
  c.plan = dp;
  c.groups = weights_.groups();
  c.tokens = static_cast<int32_t>(T);
  c.top_k = static_cast<int32_t>(shape.top_k);
  c.hidden = H_;
  c.experts = E_;
  c.shared = shared;
  c.shared_score = shared && config_.shared.gated ? weights_.shared_score() : nullptr;
  c.x = x;
  c.y = y;
  launch_combine(c, st);
  check_launch("the combine kernel");
}

// Everything of a device-routed call after set_input: input check (device-pointer calls), router, routing, sort,
// the layer, and the copy of the routing results to page-locked memory. Stream-ordered only.
void CudaBackend::enqueue_fused(CudaScratch &s, float *yd, bool check_input, const CallLayout &layout,
                                const CallShape &shape) const {
  const int64_t T = shape.tokens;
  const cudaStream_t st = s.call_stream;
  char *dc = s.call.as<char>();
  const DevicePlan dp = layout.plan(dc);
  auto *flag = reinterpret_cast<unsigned long long *>(dc + layout.flag);
  check(cudaMemsetAsync(flag, 0xff, sizeof *flag, st), "clearing the input check");
  if (check_input) {
    launch_find_non_finite(s.input, T * H_, flag, st);
    check_launch("the input check kernel");
  }
  launch_router(s.input, T, s.logits.as<float>(), st);
  const RouteArgs r = route_args(s, layout, T);
  launch_route(r, st);
  check_launch("the routing kernel");
  launch_sort(sort_args(s, layout, shape, r), st);
  check_launch("the sort kernel");

  run_layer(s, yd, shape, dp);
  check(cudaMemcpyAsync(s.host_call.get(), dc, layout.result_end, cudaMemcpyDeviceToHost, st),
        "copying the routing back");
}

// A decode-sized device-routed call: routing in one launch (which also writes the routing results to page-locked
// memory), then the two projections, the second with the combine fused. Three launches, each allowed to overlap
// the previous one's tail (sm_90), and no copies: at one token the layer is bound by launch latency otherwise.
void CudaBackend::enqueue_decode(CudaScratch &s, float *yd, const CallLayout &layout, const CallShape &shape) const {
  char *dc = s.call.as<char>();
  DecodeRouteArgs d;
  d.route = route_args(s, layout, shape.tokens);
  d.sort = sort_args(s, layout, shape, d.route);
  d.x = s.input;
  d.router = weights_.router();
  d.logits = s.logits.as<float>();
  d.hidden = H_;
  DecodeState *state = s.decode_state();
  d.flag = &state->flag;
  d.flag_out = reinterpret_cast<unsigned long long *>(dc + layout.flag);
  d.counter = &state->route_counter;
  d.results = dc;
  d.host_results = s.host_call.device();
  d.result_words = static_cast<int32_t>(layout.result_end / 4);
  launch_decode_route(d, pdl_, s.call_stream);
  check_launch("the decode routing kernel");
  run_layer(s, yd, shape, layout.plan(dc));
}

RouteArgs CudaBackend::route_args(CudaScratch &s, const CallLayout &layout, int64_t T) const {
  char *dc = s.call.as<char>();
  const DevicePlan dp = layout.plan(dc);
  const RouterConfig &rc = config_.router;
  RouteArgs r;
  r.logits = s.logits.as<float>();
  r.selection_bias = rc.selection_bias ? weights_.selection_bias() : nullptr;
  r.tokens = static_cast<int32_t>(T);
  r.experts = E_;
  r.top_k = static_cast<int32_t>(rc.top_k);
  r.sigmoid = rc.scoring == RouterScoring::Sigmoid;
  r.renormalize = rc.renormalize;
  r.group_max = rc.group_score == GroupScore::Max;
  r.num_groups = static_cast<int32_t>(rc.num_groups);
  r.topk_groups = static_cast<int32_t>(rc.topk_groups);
  r.inv_temperature = 1.0 / rc.temperature;
  r.routed_scaling = rc.routed_scaling_factor;
  r.expert = dp.expert;
  r.weight = dp.weight;
  r.prob_sum = reinterpret_cast<double *>(dc + layout.prob_sum);
  r.token_z = reinterpret_cast<double *>(dc + layout.token_z);
  r.token_top1 = reinterpret_cast<double *>(dc + layout.token_top1);
  return r;
}

SortArgs CudaBackend::sort_args(CudaScratch &s, const CallLayout &layout, const CallShape &shape,
                                const RouteArgs &r) const {
  char *dc = s.call.as<char>();
  SortArgs so;
  so.plan = layout.plan(dc);
  so.tokens = r.tokens;
  so.experts = E_;
  so.top_k = r.top_k;
  so.shared = shared_;
  so.tile_rows = static_cast<int32_t>(tile_rows(shape.path));
  so.token_z = r.token_z;
  so.token_top1 = r.token_top1;
  so.call_stats = reinterpret_cast<double *>(dc + layout.call_stats);
  so.counts = reinterpret_cast<int32_t *>(dc + layout.counts);
  return so;
}

}  // namespace

std::unique_ptr<Backend> create_backend(const LayerConfig &config, LayerWeights &weights) {
  arm_allocation_fault_from_environment();  // a test hook: see cuda_memory.h
  return std::make_unique<CudaBackend>(config, weights);
}

}  // namespace pimoe::cuda
