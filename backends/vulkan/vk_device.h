/* SPDX-License-Identifier: MIT */
// One Vulkan device as the backend uses it: the logical device and its compute queue (submissions serialised),
// memory and buffers, the pipelines of the embedded shaders (created on first use, shared by every model on the
// device), and blocking copies for weight upload and read-back.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "vk_runtime.h"

namespace pimoe::vk {

class Device;

enum class Memory {
  Device,    // device-local: weights and every intermediate
  Upload,    // host-visible, coherent: the host writes, the device reads (copied to device-local first)
  Readback,  // host-visible, coherent, cached where possible: the device writes (by copy), the host reads
};

// A buffer and its own memory allocation. Move-only; destroyed with its memory.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Buffer &&other) noexcept { *this = std::move(other); }
  Buffer &operator=(Buffer &&other) noexcept;
  Buffer(const Buffer &) = delete;
  Buffer &operator=(const Buffer &) = delete;
  ~Buffer() { reset(); }
  void reset();

  VkBuffer handle() const { return buffer_; }
  VkDeviceSize size() const { return size_; }
  void *mapped() const { return mapped_; }  // host-visible kinds only
  explicit operator bool() const { return buffer_ != VK_NULL_HANDLE; }

 private:
  friend class Device;
  const Device *device_ = nullptr;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
  VkDeviceSize size_ = 0;
  void *mapped_ = nullptr;
};

class Device {
 public:
  // The device of index `index` in Instance::devices() (-1: the preferred one, software allowed), created on first
  // use and kept for the process's lifetime. Throws PIMOE_ERR_BACKEND_UNAVAILABLE with the reason.
  // Device `index` (-1: the preferred one), made on first use with `tuning`'s validation and fragment width.
  static std::shared_ptr<Device> get(int index, const BackendTuning &tuning);

  Device(const Device &) = delete;
  Device &operator=(const Device &) = delete;
  ~Device();

  int index() const { return index_; }
  VkDevice handle() const { return device_; }
  uint32_t queue_family() const { return queue_family_; }
  // Valid bits of the queue's timestamps (0: no timestamps) and nanoseconds per tick, for PIMOE_VULKAN_PROFILE.
  uint32_t timestamp_bits() const { return timestamp_bits_; }
  double timestamp_period() const { return limits().timestampPeriod; }
  const VolkDeviceTable &fn() const { return fn_; }
  const PhysicalDevice &physical() const { return physical_; }
  const VkPhysicalDeviceLimits &limits() const { return physical_.properties.limits; }
  bool validation() const { return instance_->validation(); }
  // Whether shaders may use doubles (shaderFloat64, enabled when the device has it): routing on the device needs it.
  bool float64() const { return float64_; }
  // The fragment width N of the tensor-core kernels (matmul_coop.comp, 16 x N x 16), 0 where they cannot run (the
  // device, or this build's glslc, lacks cooperative matrices); describe_coopmat() says which, or why not.
  uint32_t coopmat_n() const { return coopmat_n_; }
  // maxComputeSharedMemorySize: the tensor-core tile choices that need more are not offered.
  uint32_t shared_memory() const { return physical_.properties.limits.maxComputeSharedMemorySize; }
  std::string describe_coopmat() const;
  // The largest buffer the kernels can bind (maxStorageBufferRange, and what one allocation may hold).
  VkDeviceSize max_binding() const;
  std::string describe() const;

  // Throws PIMOE_ERR_OUT_OF_MEMORY naming `what` when the memory is not there.
  Buffer make_buffer(VkDeviceSize size, VkBufferUsageFlags usage, Memory kind, const char *what) const;

  VkDescriptorSetLayout set_layout() const { return set_layout_; }
  VkPipelineLayout pipeline_layout() const { return pipeline_layout_; }
  // The compute pipeline of shader variant `name` (see vulkan.cmake), created on first use.
  VkPipeline pipeline(const std::string &name);

  // Submits one command buffer and waits for it; submissions from all threads are serialised on the queue.
  // A lost device is remembered: every later call fails at once with the same status.
  void submit_and_wait(VkCommandBuffer cmd, VkFence fence);
  void check_alive() const;

  // Blocking copies between two buffers on the device's own transfer command buffer (weight upload, read-back).
  struct Copy {
    const Buffer *src, *dst;
    VkBufferCopy region;
  };
  void copy(const std::vector<Copy> &copies);

 private:
  Device(std::shared_ptr<Instance> instance, int index, VulkanCoopmatN coopmat_n);
  void release();
  uint32_t memory_type(uint32_t allowed, Memory kind) const;

  std::shared_ptr<Instance> instance_;
  int index_;
  const PhysicalDevice &physical_;
  VkPhysicalDeviceMemoryProperties memory_{};
  VkDevice device_ = VK_NULL_HANDLE;
  VolkDeviceTable fn_{};
  uint32_t queue_family_ = 0;
  uint32_t timestamp_bits_ = 0;
  bool float64_ = false;
  uint32_t coopmat_n_ = 0;
  std::string coopmat_missing_;
  VkQueue queue_ = VK_NULL_HANDLE;
  std::mutex queue_mutex_;
  std::atomic<bool> lost_{false};

  VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
  VkPipelineLayout pipeline_layout_ = VK_NULL_HANDLE;
  VkPipelineCache pipeline_cache_ = VK_NULL_HANDLE;
  std::mutex pipeline_mutex_;
  std::map<std::string, VkPipeline> pipelines_;

  std::mutex copy_mutex_;
  VkCommandPool copy_pool_ = VK_NULL_HANDLE;
  VkCommandBuffer copy_cmd_ = VK_NULL_HANDLE;
  VkFence copy_fence_ = VK_NULL_HANDLE;
};

// One memory barrier between any two steps of a command buffer: every earlier shader or transfer write is visible to
// every later shader, transfer or indirect-argument read (and, with to_host, to the host once the submission's fence
// has signalled: the last barrier of a command buffer whose results the host reads). Coarse on purpose: a command
// buffer of this backend is a short chain of dependent steps, and one helper used everywhere cannot miss a hazard.
void full_barrier(const Device &device, VkCommandBuffer cmd, bool to_host = false);

}  // namespace pimoe::vk
