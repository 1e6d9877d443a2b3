// SPDX-License-Identifier: MIT
#include "vulkan_scratch.h"

#include <algorithm>

#include "call_layout.h"

namespace pimoe {
namespace {

using vk::Buffer;
using vk::Memory;

struct SlotInfo {
  int binding;  // -1: not bound when created (host staging, or bound on demand: kXRows)
  Memory memory;
  VkBufferUsageFlags usage;
  const char *what;
};
constexpr VkBufferUsageFlags kStorage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
constexpr VkBufferUsageFlags kSrc = VK_BUFFER_USAGE_TRANSFER_SRC_BIT, kDst = VK_BUFFER_USAGE_TRANSFER_DST_BIT;
const SlotInfo kSlotInfo[kSlots] = {
    {B_X, Memory::Device, kStorage | kDst | kSrc, "the call's input"},
    {B_Y, Memory::Device, kStorage | kSrc, "the call's output"},
    {B_ROUTE, Memory::Device, kStorage | kSrc | kDst | VK_BUFFER_USAGE_INDIRECT_BUFFER_BIT, "the call's routing"},
    {B_ROWS, Memory::Device, kStorage, "the gathered rows"},
    {B_HIDDEN, Memory::Device, kStorage, "the experts' hidden activations"},
    {B_OUT, Memory::Device, kStorage, "the experts' outputs"},
    {B_LOGITS, Memory::Device, kStorage | kSrc, "the router logits"},
    {B_PROBS, Memory::Device, kStorage, "the router scores"},
    {-1, Memory::Device, kStorage | kDst, "the rows' inputs"},
    {-1, Memory::Upload, kSrc, "the input staging buffer"},
    {-1, Memory::Upload, kSrc, "the upload staging buffer"},
    {-1, Memory::Readback, kDst, "the read-back staging buffer"},
};

}  // namespace

VkScratch::VkScratch(vk::Device &device, const LayerBindings &layer, bool profile) : device_(device) {
  const VolkDeviceTable &fn = device.fn();
  const VkDevice d = device.handle();
  try {
    VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pool_info.queueFamilyIndex = device.queue_family();
    vk::check(fn.vkCreateCommandPool(d, &pool_info, nullptr, &pool_), "vkCreateCommandPool");
    VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    alloc.commandPool = pool_;
    alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    alloc.commandBufferCount = 1;
    vk::check(fn.vkAllocateCommandBuffers(d, &alloc, &cmd_), "vkAllocateCommandBuffers");
    VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    vk::check(fn.vkCreateFence(d, &fence_info, nullptr, &fence_), "vkCreateFence");

    const VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, NUM_BINDINGS - 1 + MAX_ARENAS};
    VkDescriptorPoolCreateInfo dp{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
    dp.maxSets = 1;
    dp.poolSizeCount = 1;
    dp.pPoolSizes = &size;
    vk::check(fn.vkCreateDescriptorPool(d, &dp, nullptr, &descriptor_pool_), "vkCreateDescriptorPool");
    VkDescriptorSetAllocateInfo set_alloc{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    set_alloc.descriptorPool = descriptor_pool_;
    set_alloc.descriptorSetCount = 1;
    const VkDescriptorSetLayout layout = device.set_layout();
    set_alloc.pSetLayouts = &layout;
    vk::check(fn.vkAllocateDescriptorSets(d, &set_alloc, &set_), "vkAllocateDescriptorSets");

    // The layer's buffers, then a minimal buffer in every per-call slot so that every binding is valid.
    VkDescriptorBufferInfo layer_infos[3 + MAX_ARENAS];
    VkWriteDescriptorSet writes[4];
    const Buffer *layer_buffers[3] = {layer.meta, layer.small, layer.router};
    const uint32_t layer_bindings[3] = {B_META, B_SMALL, B_ROUTER};
    for (int i = 0; i < 3; ++i) {
      layer_infos[i] = {layer_buffers[i]->handle(), 0, VK_WHOLE_SIZE};
      writes[i] = VkWriteDescriptorSet{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
      writes[i].dstSet = set_;
      writes[i].dstBinding = layer_bindings[i];
      writes[i].descriptorCount = 1;
      writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      writes[i].pBufferInfo = &layer_infos[i];
    }
    for (uint32_t a = 0; a < MAX_ARENAS; ++a) layer_infos[3 + a] = {layer.arena[a]->handle(), 0, VK_WHOLE_SIZE};
    writes[3] = VkWriteDescriptorSet{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    writes[3].dstSet = set_;
    writes[3].dstBinding = B_WEIGHTS;
    writes[3].descriptorCount = MAX_ARENAS;
    writes[3].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[3].pBufferInfo = &layer_infos[3];
    fn.vkUpdateDescriptorSets(d, 4, writes, 0, nullptr);
    for (int slot = 0; slot < kSlots; ++slot) ensure(static_cast<Slot>(slot), 256);
    if (profile && device.timestamp_bits() > 0) {
      VkQueryPoolCreateInfo q{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
      q.queryType = VK_QUERY_TYPE_TIMESTAMP;
      q.queryCount = kMaxMarks + 1;
      vk::check(fn.vkCreateQueryPool(d, &q, nullptr, &queries_), "vkCreateQueryPool");
      labels_.reserve(kMaxMarks);
    }
  } catch (...) {
    release();
    throw;
  }
}

VkScratch::~VkScratch() {
  release();
}

void VkScratch::release() {
  const VolkDeviceTable &fn = device_.fn();
  const VkDevice d = device_.handle();
  for (Buffer &b : buffers_) b.reset();
  if (queries_) fn.vkDestroyQueryPool(d, queries_, nullptr);
  queries_ = VK_NULL_HANDLE;
  if (descriptor_pool_) fn.vkDestroyDescriptorPool(d, descriptor_pool_, nullptr);  // frees the set
  if (fence_) fn.vkDestroyFence(d, fence_, nullptr);
  if (pool_) fn.vkDestroyCommandPool(d, pool_, nullptr);  // frees the command buffer
  descriptor_pool_ = VK_NULL_HANDLE;
  fence_ = VK_NULL_HANDLE;
  pool_ = VK_NULL_HANDLE;
}

size_t VkScratch::bytes() const {
  size_t total = sizeof(*this) + row_copies.capacity() * sizeof(VkBufferCopy);
  for (const Buffer &b : buffers_) total += static_cast<size_t>(b.size());
  return total;
}

Buffer &VkScratch::ensure(Slot slot, VkDeviceSize bytes) {
  Buffer &b = buffers_[slot];
  if (b && b.size() >= bytes) return b;
  const SlotInfo &info = kSlotInfo[slot];
  // Grow by half again, so that calls of slowly growing size do not reallocate every time.
  const VkDeviceSize grown = std::max<VkDeviceSize>(bytes, b.size() + b.size() / 2);
  const VkDeviceSize size = std::min<VkDeviceSize>(std::max(grown, bytes), std::max(bytes, device_.max_binding()));
  b.reset();
  ++generation_;
  b = device_.make_buffer(static_cast<VkDeviceSize>(round_up(static_cast<int64_t>(size), 256)), info.usage,
                          info.memory, info.what);
  if (info.binding >= 0) write_binding(static_cast<uint32_t>(info.binding), slot);
  if (slot == input_binding_ && slot != kX) write_binding(B_X, slot);
  return b;
}

void VkScratch::bind_input(Slot slot) {
  if (slot == input_binding_) return;
  input_binding_ = slot;
  ++generation_;
  write_binding(B_X, slot);
}

void VkScratch::write_binding(uint32_t binding, Slot slot) {
  if (binding == B_X && slot != input_binding_) return;  // kX is reallocated while kXRows is bound: bound later
  const VkDescriptorBufferInfo buffer{buffers_[slot].handle(), 0, VK_WHOLE_SIZE};
  VkWriteDescriptorSet write{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
  write.dstSet = set_;
  write.dstBinding = binding;
  write.descriptorCount = 1;
  write.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
  write.pBufferInfo = &buffer;
  device_.fn().vkUpdateDescriptorSets(device_.handle(), 1, &write, 0, nullptr);
}

VkCommandBuffer VkScratch::begin() {
  device_.check_alive();
  recorded_tokens_ = -1;
  vk::check(device_.fn().vkResetCommandBuffer(cmd_, 0), "vkResetCommandBuffer");
  VkCommandBufferBeginInfo info{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};  // no ONE_TIME_SUBMIT: it may be re-used
  vk::check(device_.fn().vkBeginCommandBuffer(cmd_, &info), "vkBeginCommandBuffer");
  recording_ = true;
  device_.fn().vkCmdBindDescriptorSets(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, device_.pipeline_layout(), 0, 1, &set_,
                                       0, nullptr);
  if (queries_) {
    labels_.clear();
    device_.fn().vkCmdResetQueryPool(cmd_, queries_, 0, kMaxMarks + 1);
    device_.fn().vkCmdWriteTimestamp(cmd_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_, 0);
  }
  return cmd_;
}

void VkScratch::mark(VkCommandBuffer cmd, const char *label) {
  if (!queries_ || labels_.size() >= kMaxMarks) return;
  labels_.push_back(label);
  device_.fn().vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_,
                                   static_cast<uint32_t>(labels_.size()));
}

std::vector<std::pair<const char *, double>> VkScratch::marks() {
  std::vector<std::pair<const char *, double>> out;
  if (!queries_ || labels_.empty()) return out;
  uint64_t stamps[kMaxMarks + 1];
  const auto n = static_cast<uint32_t>(labels_.size() + 1);
  vk::check(device_.fn().vkGetQueryPoolResults(device_.handle(), queries_, 0, n, sizeof stamps, stamps,
                                               sizeof(uint64_t), VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
            "vkGetQueryPoolResults");
  for (uint32_t i = 1; i < n; ++i) {
    out.emplace_back(labels_[i - 1], static_cast<double>(stamps[i] - stamps[i - 1]) * device_.timestamp_period());
  }
  return out;
}

void VkScratch::submit() {
  if (recording_) {
    recording_ = false;
    vk::check(device_.fn().vkEndCommandBuffer(cmd_), "vkEndCommandBuffer");
  }
  device_.submit_and_wait(cmd_, fence_);
}

}  // namespace pimoe
