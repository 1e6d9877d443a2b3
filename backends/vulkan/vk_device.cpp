// SPDX-License-Identifier: MIT
#include "vk_device.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

#include "src/error.h"
#include "vk_shaders.h"

#include "shaders/layout.h"

namespace pimoe::vk {

Buffer &Buffer::operator=(Buffer &&other) noexcept {
  if (this != &other) {
    reset();
    device_ = other.device_;
    buffer_ = other.buffer_;
    memory_ = other.memory_;
    size_ = other.size_;
    mapped_ = other.mapped_;
    other.device_ = nullptr;
    other.buffer_ = VK_NULL_HANDLE;
    other.memory_ = VK_NULL_HANDLE;
    other.size_ = 0;
    other.mapped_ = nullptr;
  }
  return *this;
}

void Buffer::reset() {
  if (!device_) return;
  const VolkDeviceTable &fn = device_->fn();
  if (buffer_ != VK_NULL_HANDLE) fn.vkDestroyBuffer(device_->handle(), buffer_, nullptr);
  if (memory_ != VK_NULL_HANDLE) fn.vkFreeMemory(device_->handle(), memory_, nullptr);  // unmaps too
  device_ = nullptr;
  buffer_ = VK_NULL_HANDLE;
  memory_ = VK_NULL_HANDLE;
  size_ = 0;
  mapped_ = nullptr;
}

std::shared_ptr<Device> Device::get(int index, const BackendTuning &tuning) {
  std::string why;
  std::shared_ptr<Instance> instance = Instance::get(&why, tuning.vulkan_validation);
  if (!instance) throw Error(PIMOE_ERR_BACKEND_UNAVAILABLE, why);
  const int count = static_cast<int>(instance->devices().size());
  if (index < 0) {
    index = instance->preferred_device(true);
    if (index < 0) {
      fail(PIMOE_ERR_BACKEND_UNAVAILABLE, "vulkan: none of the ", count,
           " Vulkan devices can run this backend (vulkan:0: ", instance->devices()[0].unusable_reason, ")");
    }
  }
  if (index >= count) {
    fail(PIMOE_ERR_BACKEND_UNAVAILABLE, "vulkan:", index, ": no such device (this machine has ", count,
         " Vulkan device", count == 1 ? "" : "s", ")");
  }
  const PhysicalDevice &physical = instance->devices()[static_cast<size_t>(index)];
  if (!physical.unusable_reason.empty()) {
    fail(PIMOE_ERR_BACKEND_UNAVAILABLE, "vulkan:", index, " (", physical.properties.deviceName,
         ") cannot run this backend: ", physical.unusable_reason);
  }
  // Devices live until the process exits (or until the last model using one is gone, whichever is later): a model
  // created after another one reuses the device and its compiled pipelines. Destroying them at exit lets the
  // validation layer report any object the backend failed to release.
  static std::mutex mutex;
  static std::map<int, std::shared_ptr<Device>> devices;
  std::lock_guard<std::mutex> lock(mutex);
  std::shared_ptr<Device> &slot = devices[index];
  if (!slot) slot.reset(new Device(instance, index, tuning.vulkan_coopmat_n));
  return slot;
}

Device::Device(std::shared_ptr<Instance> instance, int index, VulkanCoopmatN coopmat_n)
    : instance_(std::move(instance)), index_(index), physical_(instance_->devices()[static_cast<size_t>(index)]) {
  vkGetPhysicalDeviceMemoryProperties(physical_.handle, &memory_);
  uint32_t families = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(physical_.handle, &families, nullptr);
  std::vector<VkQueueFamilyProperties> family(families);
  vkGetPhysicalDeviceQueueFamilyProperties(physical_.handle, &families, family.data());
  // A compute queue family, preferring one without graphics (a dedicated compute family where there is one).
  uint32_t chosen = families;
  for (uint32_t i = 0; i < families; ++i) {
    if (!(family[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
    if (chosen == families || !(family[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) chosen = i;
    if (!(family[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) break;
  }
  queue_family_ = chosen;
  timestamp_bits_ = family[chosen].timestampValidBits;

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo queue{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  queue.queueFamilyIndex = queue_family_;
  queue.queueCount = 1;
  queue.pQueuePriorities = &priority;
  VkPhysicalDeviceFeatures available;
  vkGetPhysicalDeviceFeatures(physical_.handle, &available);
  float64_ = available.shaderFloat64 == VK_TRUE;
  VkPhysicalDeviceFeatures features{};
  features.shaderStorageBufferArrayDynamicIndexing = VK_TRUE;  // the weight arenas are indexed per expert
  features.shaderFloat64 = available.shaderFloat64;            // routing on the device, in the host router's doubles
  VkDeviceCreateInfo info{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  info.queueCreateInfoCount = 1;
  info.pQueueCreateInfos = &queue;
  info.pEnabledFeatures = &features;
  // The tensor-core kernels, where the device runs them (PhysicalDevice::coopmat_n) and this build has them (glslc
  // compiled GL_NV_cooperative_matrix): the extension and the features their SPIR-V declares.
  const char *coop_ext = "VK_NV_cooperative_matrix";
  VkPhysicalDeviceCooperativeMatrixFeaturesNV coop{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
  VkPhysicalDeviceVulkan12Features v12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  VkPhysicalDeviceFeatures2 features2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  // experimental.vulkan_coopmat_n (PIMOE_VULKAN_COOPMAT_N) = 8|16 picks the fragment width among those the device has.
  uint32_t width = physical_.coopmat_n;
  const uint32_t want = coopmat_n == VulkanCoopmatN::N8 ? 8u : coopmat_n == VulkanCoopmatN::N16 ? 16u : 0u;
  if (want != 0 && (physical_.coopmat_widths & want)) width = want;
  if (width == 0) {
    coopmat_missing_ = physical_.coopmat_missing;
  } else if (!find_shader("matmul_coop_up_n" + std::to_string(width))) {
    coopmat_missing_ = "this build's glslc did not compile GL_NV_cooperative_matrix";
  } else {
    coopmat_n_ = width;
    coop.cooperativeMatrix = VK_TRUE;
    v12.pNext = &coop;
    v12.shaderFloat16 = VK_TRUE;
    v12.vulkanMemoryModel = VK_TRUE;
    v12.vulkanMemoryModelDeviceScope = VK_TRUE;
    features2.pNext = &v12;
    features2.features = features;
    info.pNext = &features2;
    info.pEnabledFeatures = nullptr;
    info.enabledExtensionCount = 1;
    info.ppEnabledExtensionNames = &coop_ext;
  }
  check(vkCreateDevice(physical_.handle, &info, nullptr, &device_), "vkCreateDevice");
  volkLoadDeviceTable(&fn_, device_);
  fn_.vkGetDeviceQueue(device_, queue_family_, 0, &queue_);

  // From here on, a failure must not leak what was made: the destructor releases whatever is set.
  try {
    VkDescriptorSetLayoutBinding bindings[NUM_BINDINGS];
    for (uint32_t b = 0; b < NUM_BINDINGS; ++b) {
      bindings[b] = VkDescriptorSetLayoutBinding{};
      bindings[b].binding = b;
      bindings[b].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      bindings[b].descriptorCount = b == B_WEIGHTS ? MAX_ARENAS : 1;
      bindings[b].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    }
    VkDescriptorSetLayoutCreateInfo set_info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
    set_info.bindingCount = NUM_BINDINGS;
    set_info.pBindings = bindings;
    check(fn_.vkCreateDescriptorSetLayout(device_, &set_info, nullptr, &set_layout_), "vkCreateDescriptorSetLayout");
    VkPushConstantRange push{VK_SHADER_STAGE_COMPUTE_BIT, 0, 4 * PUSH_WORDS};
    VkPipelineLayoutCreateInfo layout_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
    layout_info.setLayoutCount = 1;
    layout_info.pSetLayouts = &set_layout_;
    layout_info.pushConstantRangeCount = 1;
    layout_info.pPushConstantRanges = &push;
    check(fn_.vkCreatePipelineLayout(device_, &layout_info, nullptr, &pipeline_layout_), "vkCreatePipelineLayout");
    VkPipelineCacheCreateInfo cache_info{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    check(fn_.vkCreatePipelineCache(device_, &cache_info, nullptr, &pipeline_cache_), "vkCreatePipelineCache");

    VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pool_info.queueFamilyIndex = queue_family_;
    check(fn_.vkCreateCommandPool(device_, &pool_info, nullptr, &copy_pool_), "vkCreateCommandPool");
    VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    alloc.commandPool = copy_pool_;
    alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    alloc.commandBufferCount = 1;
    check(fn_.vkAllocateCommandBuffers(device_, &alloc, &copy_cmd_), "vkAllocateCommandBuffers");
    VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    check(fn_.vkCreateFence(device_, &fence_info, nullptr, &copy_fence_), "vkCreateFence");
  } catch (...) {
    release();
    throw;
  }
}

Device::~Device() {
  release();
}

void Device::release() {
  if (device_ == VK_NULL_HANDLE) return;
  fn_.vkDeviceWaitIdle(device_);
  for (auto &entry : pipelines_) fn_.vkDestroyPipeline(device_, entry.second, nullptr);
  pipelines_.clear();
  if (copy_fence_) fn_.vkDestroyFence(device_, copy_fence_, nullptr);
  if (copy_pool_) fn_.vkDestroyCommandPool(device_, copy_pool_, nullptr);
  if (pipeline_cache_) fn_.vkDestroyPipelineCache(device_, pipeline_cache_, nullptr);
  if (pipeline_layout_) fn_.vkDestroyPipelineLayout(device_, pipeline_layout_, nullptr);
  if (set_layout_) fn_.vkDestroyDescriptorSetLayout(device_, set_layout_, nullptr);
  fn_.vkDestroyDevice(device_, nullptr);
  device_ = VK_NULL_HANDLE;
}

VkDeviceSize Device::max_binding() const {
  // One allocation per buffer: also bounded by what one allocation may hold (Vulkan 1.1 maintenance3).
  VkPhysicalDeviceMaintenance3Properties m3{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
  VkPhysicalDeviceProperties2 props{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  props.pNext = &m3;
  vkGetPhysicalDeviceProperties2(physical_.handle, &props);
  return std::min<VkDeviceSize>(limits().maxStorageBufferRange, m3.maxMemoryAllocationSize);
}

std::string Device::describe() const {
  return "vulkan:" + std::to_string(index_) + ": " + physical_.describe() +
         (validation() ? " [validation layer on]" : "");
}

std::string Device::describe_coopmat() const {
  if (coopmat_n_ == 0) return "no tensor-core GEMM (" + coopmat_missing_ + ")";
  return "tensor-core GEMM (VK_NV_cooperative_matrix 16x" + std::to_string(coopmat_n_) +
         "x16; device shapes: " + physical_.coopmat_shapes + "; " + std::to_string(shared_memory() / 1024) +
         " KiB shared memory)";
}

uint32_t Device::memory_type(uint32_t allowed, Memory kind) const {
  VkMemoryPropertyFlags need = 0, want = 0, avoid = 0;
  switch (kind) {
    case Memory::Device:
      want = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
      break;
    case Memory::Upload:
      need = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
      avoid = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;  // a discrete GPU's small BAR window is kept for others
      break;
    case Memory::Readback:
      need = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
      want = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
      avoid = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
      break;
  }
  int best = -1, best_score = -1;
  for (uint32_t i = 0; i < memory_.memoryTypeCount; ++i) {
    if (!(allowed & (1u << i))) continue;
    const VkMemoryPropertyFlags flags = memory_.memoryTypes[i].propertyFlags;
    if ((flags & need) != need) continue;
    const int score = ((flags & want) == want ? 2 : 0) + ((flags & avoid) == 0 ? 1 : 0);
    if (score > best_score) {
      best = static_cast<int>(i);
      best_score = score;
    }
  }
  if (best < 0) fail(PIMOE_ERR_INTERNAL, "vulkan: ", physical_.properties.deviceName, " has no suitable memory type");
  return static_cast<uint32_t>(best);
}

Buffer Device::make_buffer(VkDeviceSize size, VkBufferUsageFlags usage, Memory kind, const char *what) const {
  size = std::max<VkDeviceSize>(size, 16);
  const double mib = static_cast<double>(size) / (1024.0 * 1024.0);
  if (size > max_binding()) {
    fail(PIMOE_ERR_UNSUPPORTED, "vulkan: ", what, " needs ", mib, " MiB in one buffer, more than ",
         physical_.properties.deviceName, " binds (", static_cast<double>(max_binding()) / (1024.0 * 1024.0),
         " MiB); split the call into fewer tokens");
  }
  Buffer b;
  b.device_ = this;
  b.size_ = size;
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.size = size;
  info.usage = usage;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  check(fn_.vkCreateBuffer(device_, &info, nullptr, &b.buffer_), "vkCreateBuffer");
  VkMemoryRequirements req;
  fn_.vkGetBufferMemoryRequirements(device_, b.buffer_, &req);
  VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  alloc.allocationSize = req.size;
  alloc.memoryTypeIndex = memory_type(req.memoryTypeBits, kind);
  const VkResult r = fn_.vkAllocateMemory(device_, &alloc, nullptr, &b.memory_);
  if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) {
    fail(PIMOE_ERR_OUT_OF_MEMORY, "vulkan: out of ", r == VK_ERROR_OUT_OF_DEVICE_MEMORY ? "device" : "host",
         " memory allocating ", mib, " MiB for ", what, " on ", physical_.properties.deviceName);
  }
  check(r, "vkAllocateMemory");
  check(fn_.vkBindBufferMemory(device_, b.buffer_, b.memory_, 0), "vkBindBufferMemory");
  if (kind != Memory::Device) check(fn_.vkMapMemory(device_, b.memory_, 0, VK_WHOLE_SIZE, 0, &b.mapped_), "vkMapMemory");
  return b;
}

VkPipeline Device::pipeline(const std::string &name) {
  std::lock_guard<std::mutex> lock(pipeline_mutex_);
  auto found = pipelines_.find(name);
  if (found != pipelines_.end()) return found->second;
  const ShaderBlob *blob = find_shader(name);
  if (!blob) fail(PIMOE_ERR_INTERNAL, "vulkan: no shader variant '", name, "' in this build");
  VkShaderModuleCreateInfo module_info{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  module_info.codeSize = blob->bytes;
  module_info.pCode = blob->code;
  VkShaderModule module = VK_NULL_HANDLE;
  check(fn_.vkCreateShaderModule(device_, &module_info, nullptr, &module), "vkCreateShaderModule");
  VkComputePipelineCreateInfo info{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  info.stage = VkPipelineShaderStageCreateInfo{VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
  info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  info.stage.module = module;
  info.stage.pName = "main";
  info.layout = pipeline_layout_;
  VkPipeline pipeline = VK_NULL_HANDLE;
  const VkResult r = fn_.vkCreateComputePipelines(device_, pipeline_cache_, 1, &info, nullptr, &pipeline);
  fn_.vkDestroyShaderModule(device_, module, nullptr);
  check(r, ("vkCreateComputePipelines (" + name + ")").c_str());
  pipelines_[name] = pipeline;
  return pipeline;
}

void Device::check_alive() const {
  if (lost_.load()) {
    fail(PIMOE_ERR_BACKEND_UNAVAILABLE, "vulkan:", index_, " (", physical_.properties.deviceName,
         ") was lost earlier in this process; create the model on another backend");
  }
}

void Device::submit_and_wait(VkCommandBuffer cmd, VkFence fence) {
  check_alive();
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &cmd;
  VkResult r;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);  // vkQueueSubmit needs external synchronisation of the queue
    r = fn_.vkQueueSubmit(queue_, 1, &submit, fence);
  }
  // A short call (a decode step: 0.1 to 1 ms on an H100) finishes soon: poll the fence for a while before blocking,
  // since the blocking wait's wake-up alone costs tens of microseconds. Longer calls block after 1 ms of polling (at
  // 100 us, the limit before, calls such as a 1-token step of 128 experts on an H100 ended in the blocking wait).
  if (r == VK_SUCCESS) {
    const auto start = std::chrono::steady_clock::now();
    do {
      r = fn_.vkGetFenceStatus(device_, fence);
    } while (r == VK_NOT_READY && std::chrono::steady_clock::now() - start < std::chrono::microseconds(1000));
    if (r == VK_NOT_READY) r = fn_.vkWaitForFences(device_, 1, &fence, VK_TRUE, UINT64_MAX);
  }
  if (r == VK_SUCCESS) r = fn_.vkResetFences(device_, 1, &fence);
  if (r == VK_ERROR_DEVICE_LOST) lost_.store(true);
  check(r, "running the layer's command buffer");
}

void Device::copy(const std::vector<Copy> &copies) {
  if (copies.empty()) return;
  std::lock_guard<std::mutex> lock(copy_mutex_);
  check(fn_.vkResetCommandBuffer(copy_cmd_, 0), "vkResetCommandBuffer");
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(fn_.vkBeginCommandBuffer(copy_cmd_, &begin), "vkBeginCommandBuffer");
  for (const Copy &c : copies) fn_.vkCmdCopyBuffer(copy_cmd_, c.src->handle(), c.dst->handle(), 1, &c.region);
  full_barrier(*this, copy_cmd_, true);  // the copy's writes are visible to whatever reads dst next, host included
  check(fn_.vkEndCommandBuffer(copy_cmd_), "vkEndCommandBuffer");
  submit_and_wait(copy_cmd_, copy_fence_);
}

void full_barrier(const Device &device, VkCommandBuffer cmd, bool to_host) {
  VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                          VK_ACCESS_TRANSFER_WRITE_BIT | VK_ACCESS_INDIRECT_COMMAND_READ_BIT |
                          (to_host ? static_cast<VkAccessFlags>(VK_ACCESS_HOST_READ_BIT) : 0u);
  device.fn().vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT |
                                       VK_PIPELINE_STAGE_DRAW_INDIRECT_BIT |
                                       (to_host ? static_cast<VkPipelineStageFlags>(VK_PIPELINE_STAGE_HOST_BIT) : 0u),
                                   0, 1, &barrier, 0, nullptr, 0, nullptr);
}

}  // namespace pimoe::vk
