// SPDX-License-Identifier: MIT
// Recording a call's command buffer: the push constants every kernel reads, the choice of the projection kernels,
// the dispatches (one barrier after each), and the layer's size limits.
#include <algorithm>
#include <cstring>
#include <string>

#include "src/error.h"
#include "vulkan_backend.h"

namespace pimoe {

using vk::Buffer;

Push VulkanBackend::base_push(int64_t tokens, int64_t slots) const {
  const RouterConfig &r = config_.router;
  const RouteLayout layout(tokens, slots, r.num_experts);
  Push p;
  p.tokens = static_cast<uint32_t>(tokens);
  p.slots = static_cast<uint32_t>(slots);
  p.experts = static_cast<uint32_t>(r.num_experts);
  p.hidden = static_cast<uint32_t>(config_.hidden);
  p.hidden_pad = static_cast<uint32_t>(round_up(config_.hidden, PAD));
  p.route_ids = layout.ids;
  p.route_w = layout.w;
  p.route_arow = layout.arow;
  p.route_seg = layout.seg;
  p.route_disp = layout.disp;
  p.route_active = layout.active;
  p.route_ecount = layout.ecount;
  p.route_stats = layout.stats;
  p.route_tok = layout.tok;
  // Doubles as two 32-bit halves: the device computes routing with the host router's very numbers.
  const double inv_tau = 1.0 / r.temperature, scaling = r.routed_scaling_factor;
  uint32_t halves[2];
  std::memcpy(halves, &inv_tau, 8);
  p.inv_tau_lo = halves[0];
  p.inv_tau_hi = halves[1];
  std::memcpy(halves, &scaling, 8);
  p.scaling_lo = halves[0];
  p.scaling_hi = halves[1];
  p.capacity = -1;
  p.groups = static_cast<uint32_t>(r.num_groups);
  p.topk_groups = static_cast<uint32_t>(r.topk_groups);
  p.eps = static_cast<float>(config_.layer_norm_eps);
  p.score_off = score_off_;
  p.bias_off = bias_off_;
  p.flags = (r.scoring == RouterScoring::Sigmoid ? CALL_SIGMOID : 0u) | (r.renormalize ? CALL_RENORM : 0u) |
            (r.selection_bias ? CALL_SELECTION_BIAS : 0u) | (r.group_score == GroupScore::Max ? CALL_GROUP_MAX : 0u) |
            (config_.shared.gated ? CALL_SHARED_GATE : 0u);
  return p;
}

void VulkanBackend::dispatch(VkCommandBuffer cmd, VkScratch &s, const char *pipeline, Push &push, uint32_t x,
                             uint32_t y, uint32_t z) const {
  const VolkDeviceTable &fn = device_->fn();
  fn.vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, device_->pipeline(pipeline));
  fn.vkCmdPushConstants(cmd, device_->pipeline_layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(Push), &push);
  fn.vkCmdDispatch(cmd, x, y, z);
  vk::full_barrier(*device_, cmd);
  s.mark(cmd, pipeline);
}

void VulkanBackend::dispatch_flat(VkCommandBuffer cmd, VkScratch &s, const char *pipeline, Push &push,
                                  int64_t groups) const {
  if (groups <= 0) return;
  const int64_t x = std::min<int64_t>(groups, 32768);
  push.grid_x = static_cast<uint32_t>(x);
  dispatch(cmd, s, pipeline, push, static_cast<uint32_t>(x), ceil_div(groups, x), 1);
}

void VulkanBackend::dispatch_indirect(VkCommandBuffer cmd, VkScratch &s, const char *pipeline, Push &push,
                                      VkDeviceSize offset) const {
  const VolkDeviceTable &fn = device_->fn();
  fn.vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, device_->pipeline(pipeline));
  fn.vkCmdPushConstants(cmd, device_->pipeline_layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(Push), &push);
  fn.vkCmdDispatchIndirect(cmd, s.buffer(kRoute).handle(), offset);
  vk::full_barrier(*device_, cmd);
  s.mark(cmd, pipeline);
}

void VulkanBackend::record_copy(VkCommandBuffer cmd, const Buffer &src, VkDeviceSize src_offset, const Buffer &dst,
                                VkDeviceSize dst_offset, VkDeviceSize bytes) const {
  if (bytes == 0) return;
  const VkBufferCopy region{src_offset, dst_offset, bytes};
  device_->fn().vkCmdCopyBuffer(cmd, src.handle(), dst.handle(), 1, &region);
}

VulkanBackend::Projection VulkanBackend::projection(int64_t max_rows, int64_t max_ip) const {
  const int64_t H = config_.hidden;
  const bool small_rows = max_rows >= 0 && max_rows <= MV_MAX_ROWS;
  const bool automatic = tiles_ == Tiles::Auto || tiles_ == Tiles::Fma;
  if (automatic && small_rows && !config_.deterministic) {
    // Every segment's rows in one workgroup, each weight row streamed once. Its sums run in another order than the
    // tiled kernels', so deterministic mode (a token's bits independent of the call) never takes it.
    const bool direct = !any_pre_norm_ && H % 4 == 0;  // X_DIRECT reads x as vec4s
    return {up_mv_.c_str(), down_mv_.c_str(), true, ceil_div(max_ip, MV_NPW), ceil_div(H, MV_NPW),
            1, direct ? upx_mv_.c_str() : nullptr, "small-row kernels", "gather"};
  }
  if (coop_ != nullptr) {  // matmul_coop.comp: 128-row tiles of bn_up / bn_down output columns
    return {coop_up_.c_str(), coop_down_.c_str(), false, ceil_div(max_ip, coop_->bn_up), ceil_div(H, coop_->bn_down),
            MM_BM_LARGE, nullptr, "tensor cores", coop_->act16 ? "gather_h" : "gather"};
  }
  // The large tiles only on request: on an H100 (bench/vulkan/RESULTS.md) the small tiles ran the 4096-token calls of
  // shapes C and F 2.4 times faster.
  if (tiles_ == Tiles::Large) {
    return {up_large_.c_str(), down_large_.c_str(), false, ceil_div(max_ip, MM_BN),
            ceil_div(H, MM_BN_LARGE), MM_BM_LARGE, nullptr, "large tiles", "gather"};
  }
  return {up_mm_.c_str(), down_mm_.c_str(), false, ceil_div(max_ip, MM_BN), ceil_div(H, MM_BN), MM_BM, nullptr,
          "small tiles", "gather"};
}

void VulkanBackend::record_router(VkCommandBuffer cmd, VkScratch &s, Push &push, int64_t tokens) const {
  const int64_t E = config_.router.num_experts;
  if (projection(tokens <= MV_MAX_ROWS ? tokens : -1, PAD).matvec && E <= 65535) {
    dispatch(cmd, s, "matvec_router", push, static_cast<uint32_t>(E), 1, 1);  // a workgroup per expert
  } else {
    dispatch(cmd, s, "matmul_router", push, ceil_div(E, MM_BN), ceil_div(tokens, MM_BM), 1);
  }
}

void VulkanBackend::record_experts(VkCommandBuffer cmd, VkScratch &s, Push &push, int64_t assignments,
                                   const Projection &p, bool direct) const {
  const int64_t T = push.tokens;
  const bool shared = (push.flags & CALL_SHARED) != 0;
  direct = direct && p.up_direct != nullptr;
  if (!direct) dispatch_flat(cmd, s, p.gather, push, assignments + (shared ? T : 0));
  dispatch_indirect(cmd, s, direct ? p.up_direct : p.up, push, (push.route_disp + DISP_UP) * 4ull);
  dispatch_indirect(cmd, s, p.down, push, (push.route_disp + DISP_DOWN) * 4ull);
  dispatch_flat(cmd, s, "combine", push, T * ceil_div(config_.hidden, COMBINE_THREADS));
}

void VulkanBackend::record_input_upload(VkCommandBuffer cmd, VkScratch &s) const {
  if (!s.take_input_upload()) return;
  record_copy(cmd, s.buffer(kUpload), 0, s.buffer(kX), 0,
              static_cast<VkDeviceSize>(s.tokens() * config_.hidden) * 4);
}

bool VulkanBackend::small_routing(int64_t tokens) const {
  const RouterConfig &r = config_.router;
  return tokens <= MV_MAX_ROWS && tokens * r.num_experts <= RS_MAX_SCORES && tokens * r.top_k <= RS_MAX_ASSIGN &&
         r.num_experts <= RS_MAX_EXPERTS && r.num_groups <= RS_MAX_GROUPS;
}

void VulkanBackend::check_call_size(int64_t tokens, int64_t slots) const {
  // Offsets inside the shaders are 32-bit; the buffers themselves are checked against the device when they grow.
  const int64_t biggest = std::max({tokens * (slots + 1) * round_up(config_.hidden, PAD),
                                    tokens * (slots + 1) * max_ip_, tokens * config_.router.num_experts * 2});
  if (biggest >= (int64_t{1} << 31)) {
    fail(PIMOE_ERR_UNSUPPORTED, "vulkan: a call of ", tokens, " tokens is too large for this layer on the device (",
         biggest, " elements in one buffer); split it into smaller calls");
  }
}

void VulkanBackend::submit(VkScratch &s, const std::string &path, int64_t tokens) const {
  if (!profile_->on()) return s.submit();
  const auto start = VulkanProfile::Clock::now();
  s.submit();
  const double wall = std::chrono::duration<double, std::nano>(VulkanProfile::Clock::now() - start).count();
  profile_->submission(VulkanProfile::key(path.c_str(), tokens), wall, s.marks());
}

}  // namespace pimoe
