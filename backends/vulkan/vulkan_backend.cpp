// SPDX-License-Identifier: MIT
// The Vulkan backend's choices for its layer (kernels, tiles, whether it routes on the device) and the steps of a
// call: set_input, then route_and_run, or router_logits and the passes routed on the host (run_experts, or run_rows
// and run_shared for the attention combine). Each step is one command buffer and one submission.
#include "vulkan_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "src/dtype.h"
#include "src/error.h"

namespace pimoe {

using vk::Buffer;
using vk::Device;
using Clock = VulkanProfile::Clock;

VulkanBackend::VulkanBackend(const LayerConfig &config, LayerWeights &weights, int device_index)
    : config_(config),
      device_(Device::get(device_index, config.tuning)),
      dtype_(config.weight_format.dtype),
      wtype_(vulkan_weight_type(config.weight_format.dtype)),
      variant_(wtype_.variant) {
  // The experimental options (pimoe.h; their environment variables already applied in config.tuning).
  const BackendTuning &tuning = config.tuning;
  host_routing_only_ = tuning.vulkan_routing == VulkanRouting::Host;
  const char *tiles = enum_name(tuning.vulkan_tiles);
  const CoopTiles *coop = nullptr;
  if (tuning.vulkan_tiles == VulkanTiles::Small) tiles_ = Tiles::Small;
  if (tuning.vulkan_tiles == VulkanTiles::Large) tiles_ = Tiles::Large;
  if (tuning.vulkan_tiles == VulkanTiles::Fma) tiles_ = Tiles::Fma;
  for (const CoopTiles &c : kCoopTiles) {
    if (std::strcmp(tiles, c.choice) == 0) {
      tiles_ = Tiles::Coopmat;
      coop = &c;
    }
  }
  if (tiles_ == Tiles::Auto) coop = &kCoopTiles[0];
  // The tensor-core kernels: fp16 weights (VK_NV_cooperative_matrix multiplies fp16 only; fp32 and bf16 weights
  // keep the FMA tiles), never in deterministic mode (the FMA tiles' fixed order per output is what makes a
  // token's bits independent of the call), never with PIMOE_VULKAN_TILES=small|large|fma, and only tiles that fit
  // the device's shared memory.
  const uint32_t n = device_->coopmat_n();
  if (n != 0 && dtype_ == WeightDtype::F16 && !config.deterministic && coop != nullptr &&
      coop->shared_bytes(n) <= device_->shared_memory()) {
    coop_ = coop;
    coop_up_ = std::string(coop->kernel) + "up_n" + std::to_string(n);
    coop_down_ = std::string(coop->kernel) + "down_n" + std::to_string(n);
  }
  profile_ = std::make_unique<VulkanProfile>(tuning.vulkan_profile);
  bool callbacks = false;
  for (const ExpertSpec &e : config.experts) {
    any_pre_norm_ = any_pre_norm_ || e.pre_norm;
    callbacks = callbacks || e.callback;
  }
  // Routing on the device: where the router needs nothing only the host router has, with at most 32 groups
  // (route.comp keeps a token's kept groups in one 32-bit mask), no callback experts (the host runs those), and a
  // device with doubles (the device repeats the host router's double arithmetic, so both give the same bits).
  routes_on_device_ = !host_routing_only_ && !config.router.needs_host_routing() && config.router.num_groups <= 32 &&
                      device_->float64() && !callbacks;
  upload_weights(weights);
}

VulkanBackend::~VulkanBackend() {
  profile_->print(device_->describe() + ", H=" + std::to_string(config_.hidden) +
                  " E=" + std::to_string(config_.router.num_experts));
}

std::string VulkanBackend::device_description() const {
  const std::string coop = device_->describe_coopmat();
  return device_->describe() + ", weights " + enum_name(dtype_) + ", " +
         (dtype_ == WeightDtype::F16 || device_->coopmat_n() == 0 ? coop : coop + " for fp16 weights only") +
         (coop_ == nullptr ? "" : std::string(", in use (") + coop_->choice + ": " + coop_->activations + ")") +
         (host_routing_only_ ? ", routing on the host (PIMOE_VULKAN_ROUTING=host)" : "");
}

std::unique_ptr<BackendScratch> VulkanBackend::make_scratch() const {
  return std::make_unique<VkScratch>(*device_, layer_bindings(), profile_->on());
}

void VulkanBackend::set_input(const float *x, int64_t tokens, BackendScratch &base, const DeviceCall *device) const {
  if (device) fail(PIMOE_ERR_UNSUPPORTED, "vulkan: the input must be host memory (no device-pointer calls)");
  auto &s = static_cast<VkScratch &>(base);
  s.started = Clock::now();
  const VkDeviceSize x_bytes = static_cast<VkDeviceSize>(std::max<int64_t>(tokens, 0) * config_.hidden) * 4;
  // Straight into the upload staging buffer (write-combined memory: written once, in order, never read here). The
  // steps of the call copy it into kX once, in their first command buffer.
  Buffer &up = s.ensure(kUpload, x_bytes);
  s.ensure(kX, x_bytes);
  host_copy(up.mapped(), x, x_bytes);
  s.input_staged(tokens);
  profile_->host_step("set_input", "input to staging", s.started);
}

void VulkanBackend::router_logits(const float *router_input, float *logits, BackendScratch &base) const {
  auto &s = static_cast<VkScratch &>(base);
  const int64_t T = s.tokens(), H = config_.hidden, E = config_.router.num_experts;
  if (T <= 0) return;
  check_call_size(T, 1);
  const VkDeviceSize x_bytes = static_cast<VkDeviceSize>(T * H) * 4;
  const VkDeviceSize z_bytes = static_cast<VkDeviceSize>(T * E) * 4;
  Buffer &down = s.ensure(kDownload, z_bytes);
  Buffer &zb = s.ensure(kLogits, z_bytes);
  if (router_input) host_copy(s.ensure(kUploadStep, x_bytes).mapped(), router_input, x_bytes);
  s.bind_input(kX);

  VkCommandBuffer cmd = s.begin();
  if (router_input) {
    // The attention router's input (x + context) takes kX's place for this one dispatch, so the next step copies x
    // into kX again from the staging buffer, where set_input left it.
    record_copy(cmd, s.buffer(kUploadStep), 0, s.buffer(kX), 0, x_bytes);
    s.input_overwritten();
  } else {
    record_input_upload(cmd, s);
  }
  vk::full_barrier(*device_, cmd);
  s.mark(cmd, "upload");
  Push push = base_push(T, 1);
  record_router(cmd, s, push, T);
  record_copy(cmd, zb, 0, down, 0, z_bytes);
  vk::full_barrier(*device_, cmd, true);
  s.mark(cmd, "download");
  submit(s, "router_logits", T);
  std::memcpy(logits, down.mapped(), z_bytes);
}

int32_t *VulkanBackend::stage_route(VkScratch &s, const RouteLayout &layout) const {
  return static_cast<int32_t *>(s.ensure(kUploadStep, static_cast<VkDeviceSize>(layout.ecount) * 4).mapped());
}

void VulkanBackend::run_host_pass(VkScratch &s, const HostPass &pass, int32_t *route, float *out) const {
  const int64_t T = pass.tokens, K = pass.slots, E = config_.router.num_experts, H = config_.hidden;
  const RouteLayout layout(T, K, E);
  const int64_t kept = pass.offsets ? pass.offsets[E] : 0, R = kept + (pass.shared ? T : 0);

  // Per segment its first row, row count and hidden block, the segments that have rows, and the projections' grid
  // sizes (the caller wrote every assignment's expert, weight and row).
  int64_t hidden_total = 0, max_rows = 0, max_ip = PAD;
  int32_t active = 0;
  for (int64_t seg = 0; seg <= E; ++seg) {
    int32_t *g = route + layout.seg + seg * SEG_STRIDE;
    const bool is_shared = seg == E;
    const int64_t first = is_shared ? kept : pass.offsets ? pass.offsets[seg] : 0;
    const int64_t rows = is_shared ? (pass.shared ? T : 0) : pass.offsets ? pass.offsets[seg + 1] - first : 0;
    if (rows > 0) route[layout.active + active++] = static_cast<int32_t>(seg);
    g[SEG_ROW] = static_cast<int32_t>(first);
    g[SEG_COUNT] = static_cast<int32_t>(rows);
    g[SEG_HIDDEN] = static_cast<int32_t>(hidden_total);
    g[3] = 0;
    hidden_total += rows * padded_width(seg);
    max_rows = std::max(max_rows, rows);
    if (rows > 0) max_ip = std::max(max_ip, padded_width(seg));
  }
  // The kernels are chosen by the call's tokens, as on the device-routed path (which does not know the segments'
  // rows), so that routing on the host or on the device gives the same bits.
  const Projection proj = projection(T <= MV_MAX_ROWS ? max_rows : -1, max_ip);
  uint32_t *disp = reinterpret_cast<uint32_t *>(route + layout.disp);
  disp[DISP_UP + 0] = proj.up_x;
  disp[DISP_UP + 1] = std::max<uint32_t>(1, ceil_div(max_rows, proj.row_tile));
  disp[DISP_UP + 2] = static_cast<uint32_t>(active);
  disp[DISP_DOWN + 0] = proj.down_x;
  disp[DISP_DOWN + 1] = disp[DISP_UP + 1];
  disp[DISP_DOWN + 2] = static_cast<uint32_t>(active);

  const VkDeviceSize out_bytes = static_cast<VkDeviceSize>(T * H) * 4;
  const VkDeviceSize route_bytes = static_cast<VkDeviceSize>(layout.ecount) * 4;
  Buffer &yb = s.ensure(kY, out_bytes);
  Buffer &rb = s.ensure(kRoute, static_cast<VkDeviceSize>(layout.total) * 4);
  s.ensure(kRows, static_cast<VkDeviceSize>(R * round_up(H, PAD)) * 4);
  s.ensure(kHidden, static_cast<VkDeviceSize>(hidden_total) * 4);
  s.ensure(kOut, static_cast<VkDeviceSize>(R * H) * 4);
  Buffer &down = s.ensure(kDownload, out_bytes);
  if (pass.row_token) {
    // Row i's input is x[row_token[i]]: copied out of kX on the device, runs of consecutive tokens in one region.
    s.ensure(kXRows, out_bytes);
    s.row_copies.clear();
    const VkDeviceSize row_bytes = static_cast<VkDeviceSize>(H) * 4;
    for (int64_t i = 0; i < T; ++i) {
      const VkDeviceSize src = static_cast<VkDeviceSize>(pass.row_token[i]) * row_bytes;
      VkBufferCopy *last = s.row_copies.empty() ? nullptr : &s.row_copies.back();
      if (last && last->srcOffset + last->size == src && last->dstOffset + last->size == i * row_bytes) {
        last->size += row_bytes;
      } else {
        s.row_copies.push_back(VkBufferCopy{src, i * row_bytes, row_bytes});
      }
    }
  }
  s.bind_input(pass.row_token ? kXRows : kX);

  VkCommandBuffer cmd = s.begin();
  record_input_upload(cmd, s);
  record_copy(cmd, s.buffer(kUploadStep), 0, rb, 0, route_bytes);
  if (pass.row_token) {
    vk::full_barrier(*device_, cmd);  // kX complete before its rows are copied
    device_->fn().vkCmdCopyBuffer(cmd, s.buffer(kX).handle(), s.buffer(kXRows).handle(),
                                  static_cast<uint32_t>(s.row_copies.size()), s.row_copies.data());
  }
  vk::full_barrier(*device_, cmd);
  s.mark(cmd, "upload");
  Push push = base_push(T, K);
  push.segments = static_cast<uint32_t>(pass.shared ? E + 1 : E);
  if (pass.shared) push.flags |= CALL_SHARED;
  record_experts(cmd, s, push, T * K, proj, false);
  record_copy(cmd, yb, 0, down, 0, out_bytes);
  vk::full_barrier(*device_, cmd, true);
  s.mark(cmd, "download");
  submit(s, std::string(pass.path) + ", " + proj.label, T);
  host_copy(out, down.mapped(), out_bytes);
}

void VulkanBackend::run_experts(const RoutePlan &plan, float *y, BackendScratch &base) const {
  auto &s = static_cast<VkScratch &>(base);
  const int64_t T = plan.tokens, K = plan.top_k, A = T * K;
  if (T <= 0) return;
  if (T != s.tokens() || plan.num_experts != config_.router.num_experts) {
    fail(PIMOE_ERR_INTERNAL, "vulkan: run_experts' plan (", T, " tokens, ", plan.num_experts,
         " experts) does not match the call (", s.tokens(), " tokens, ", config_.router.num_experts, " experts)");
  }
  check_call_size(T, K);
  const RouteLayout layout(T, K, plan.num_experts);
  // Per assignment its expert, weight and row (-1: dropped, or a callback expert's, which the model runs).
  int32_t *route = stage_route(s, layout);
  for (int64_t a = 0; a < A; ++a) {
    route[layout.ids + a] = plan.expert[a];
    std::memcpy(&route[layout.w + a], &plan.weight[a], 4);
    route[layout.arow + a] = static_cast<int32_t>(plan.position[a]);
  }
  HostPass pass;
  pass.tokens = T;
  pass.slots = K;
  pass.offsets = plan.offsets.data();
  pass.shared = config_.shared.width > 0;
  pass.path = "run_experts";
  run_host_pass(s, pass, route, y);
}

void VulkanBackend::run_rows(const ExpertRows &rows, float *out, BackendScratch &base) const {
  auto &s = static_cast<VkScratch &>(base);
  const int64_t R = rows.count, E = config_.router.num_experts;
  if (R <= 0) return;
  check_call_size(R, 1);
  const RouteLayout layout(R, 1, E);
  // One assignment per row, weight 1: the rows come grouped by expert, so row i of B_ROWS is row i of the output,
  // and the combine writes each row's output alone (with its expert's down bias, as run_experts adds it).
  int32_t *route = stage_route(s, layout);
  const float one = 1.0f;
  for (int64_t e = 0; e < E; ++e) {
    if (rows.offsets[e + 1] > rows.offsets[e] && spec(e).callback) {
      fail(PIMOE_ERR_INTERNAL, "vulkan: run_rows was given rows of callback expert ", e);
    }
    for (int64_t i = rows.offsets[e]; i < rows.offsets[e + 1]; ++i) {
      if (rows.token[i] < 0 || rows.token[i] >= s.tokens()) {
        fail(PIMOE_ERR_INTERNAL, "vulkan: run_rows' row ", i, " names token ", rows.token[i], " of ", s.tokens());
      }
      route[layout.ids + i] = static_cast<int32_t>(e);
      std::memcpy(&route[layout.w + i], &one, 4);
      route[layout.arow + i] = static_cast<int32_t>(i);
    }
  }
  HostPass pass;
  pass.tokens = R;
  pass.slots = 1;
  pass.offsets = rows.offsets;
  pass.row_token = rows.token;
  pass.path = "run_rows";
  run_host_pass(s, pass, route, out);
}

void VulkanBackend::run_shared(float *y, BackendScratch &base) const {
  auto &s = static_cast<VkScratch &>(base);
  const int64_t T = s.tokens(), H = config_.hidden;
  if (T <= 0) return;
  if (config_.shared.width == 0) {
    std::fill(y, y + T * H, 0.0f);
    return;
  }
  check_call_size(T, 0);
  const RouteLayout layout(T, 0, config_.router.num_experts);  // no routed assignments: the shared rows alone
  HostPass pass;
  pass.tokens = T;
  pass.shared = true;
  pass.path = "run_shared";
  run_host_pass(s, pass, stage_route(s, layout), y);
}

void VulkanBackend::route_and_run(float *y, RouteResult &result, BackendScratch &base) const {
  auto &s = static_cast<VkScratch &>(base);
  const RouterConfig &r = config_.router;
  const int64_t T = s.tokens(), K = r.top_k, E = r.num_experts, H = config_.hidden, A = T * K;
  if (!routes_on_device_) fail(PIMOE_ERR_INTERNAL, "vulkan: route_and_run on a layer routed on the host");
  if (T <= 0) return result.set_empty(K, E);
  result.tokens = T;
  result.top_k = K;
  result.num_experts = E;
  check_call_size(T, K);
  const bool shared = config_.shared.width > 0;
  const int64_t R = A + (shared ? T : 0);  // rows if nothing is dropped: the most there can be
  int64_t hidden_max = 0;
  for (int64_t e = 0; e < E; ++e) hidden_max = std::max(hidden_max, padded_width(e));
  hidden_max = hidden_max * A + (shared ? padded_width(E) * T : 0);
  const RouteLayout layout(T, K, E);

  const VkDeviceSize x_bytes = static_cast<VkDeviceSize>(T * H) * 4;
  const VkDeviceSize route_offset = static_cast<VkDeviceSize>(round_up(static_cast<int64_t>(x_bytes), 256));
  const VkDeviceSize back_bytes = static_cast<VkDeviceSize>(layout.tok) * 4;
  Buffer &up = s.buffer(kUpload);
  Buffer &down = s.ensure(kDownload, route_offset + back_bytes);
  Buffer &xb = s.buffer(kX);
  Buffer &yb = s.ensure(kY, x_bytes);
  Buffer &rb = s.ensure(kRoute, static_cast<VkDeviceSize>(layout.total) * 4);
  s.ensure(kRows, static_cast<VkDeviceSize>(R * round_up(H, PAD)) * 4);
  s.ensure(kHidden, static_cast<VkDeviceSize>(hidden_max) * 4);
  s.ensure(kOut, static_cast<VkDeviceSize>(R * H) * 4);
  s.ensure(kLogits, static_cast<VkDeviceSize>(T * E) * 4);
  s.ensure(kProbs, static_cast<VkDeviceSize>(T * E) * 8);  // doubles
  s.bind_input(kX);

  Push push = base_push(T, K);
  const int64_t nseg = shared ? E + 1 : E;
  int64_t max_ip = PAD;
  for (int64_t seg = 0; seg < nseg; ++seg) max_ip = std::max(max_ip, padded_width(seg));
  // A segment holds at most T rows (a token picks an expert once); the counts themselves stay on the device.
  const Projection proj = projection(T <= MV_MAX_ROWS ? T : -1, max_ip);
  push.segments = static_cast<uint32_t>(nseg);
  // route_small writes every assignment's row; route + count + scan write ranks that gather turns into rows.
  const bool small = small_routing(T);
  push.flags |= (small ? 0u : CALL_FUSED) | (shared ? CALL_SHARED : 0u) | (proj.matvec ? CALL_MATVEC : 0u);
  if (r.capacity_factor > 0.0) {
    push.capacity = static_cast<int32_t>(
        std::ceil(static_cast<double>(T * K) * r.capacity_factor / static_cast<double>(E)));
  }
  push.up_grid_x = proj.up_x;
  push.down_grid_x = proj.down_x;
  push.row_tile = proj.row_tile;
  const std::string path = std::string("route_and_run, ") + proj.label;

  Clock::time_point t0 = Clock::now();
  // The recording always copies the input (a re-used one must hold the copy): this is the call's one step.
  s.take_input_upload();
  if (!s.reusable(T)) {  // else the commands recorded for the last call of T tokens (see VkScratch::reusable)
    VkCommandBuffer cmd = s.begin();
    record_copy(cmd, up, 0, xb, 0, x_bytes);
    vk::full_barrier(*device_, cmd);
    s.mark(cmd, "upload");
    record_router(cmd, s, push, T);
    if (small) {  // a decode step: routing, counting and offsets in one workgroup, one launch
      dispatch(cmd, s, "route_small", push, 1, 1, 1);
    } else {
      dispatch(cmd, s, "route", push, ceil_div(T, ROUTE_THREADS), 1, 1);
      dispatch(cmd, s, "count", push, static_cast<uint32_t>(E), 1, 1);
      dispatch(cmd, s, "scan", push, 1, 1, 1);
    }
    record_experts(cmd, s, push, A, proj, small);
    record_copy(cmd, yb, 0, down, 0, x_bytes);
    record_copy(cmd, rb, 0, down, route_offset, back_bytes);
    vk::full_barrier(*device_, cmd, true);
    s.mark(cmd, "download");
    s.recorded(T);
  }
  profile_->host_step(path, "recording", t0);
  submit(s, path, T);
  t0 = Clock::now();
  // Straight out of the read-back staging buffer (host-cached memory, Memory::Readback) into the caller's output.
  host_copy(y, down.mapped(), x_bytes);
  profile_->host_step(path, "output from staging", t0);
  t0 = Clock::now();

  // The routing as the host router would have reported it; the model turns the sums into the losses.
  const auto *route = reinterpret_cast<const int32_t *>(static_cast<const char *>(down.mapped()) + route_offset);
  result.expert.resize(static_cast<size_t>(A));
  result.weight.resize(static_cast<size_t>(A));
  result.dropped.resize(static_cast<size_t>(A));
  result.loads.resize(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) result.loads[e] = route[layout.seg + e * SEG_STRIDE + SEG_COUNT];
  for (int64_t a = 0; a < A; ++a) {
    result.expert[a] = route[layout.ids + a];
    std::memcpy(&result.weight[a], &route[layout.w + a], 4);
    result.dropped[a] = static_cast<uint8_t>(route[layout.arow + a] < 0 ? 1 : 0);
  }
  const int32_t *stats = route + layout.stats;
  float balance, z_sum, top1;
  std::memcpy(&balance, &stats[STATS_AUX], 4);
  std::memcpy(&z_sum, &stats[STATS_ZLOSS], 4);
  std::memcpy(&top1, &stats[STATS_TOP1], 4);
  result.dropped_count = A - stats[STATS_KEPT];
  result.balance = balance;
  result.z_sum = z_sum;
  result.top1_probability_sum = top1;
  profile_->host_step(path, "routing from the device", t0);
  profile_->whole_call(VulkanProfile::key(path.c_str(), T), s.started);
}

}  // namespace pimoe
