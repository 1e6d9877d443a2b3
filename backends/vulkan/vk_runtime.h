/* SPDX-License-Identifier: MIT */
// The process's Vulkan instance and the devices it sees. The loader (libvulkan.so.1) is opened on first use; where
// it, a driver or a device is missing, callers get the reason instead of a crash, and the rest of libpimoe works.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/option_table.h"
#include "vk_api.h"

namespace pimoe::vk {

// Throws pimoe::Error naming `what` and the result when r is not VK_SUCCESS: out-of-memory results give
// PIMOE_ERR_OUT_OF_MEMORY, a lost device PIMOE_ERR_BACKEND_UNAVAILABLE, anything else PIMOE_ERR_INTERNAL.
void check(VkResult r, const char *what);
const char *result_name(VkResult r);

// What the backend needs of a device (checked before a device is offered): Vulkan 1.1, a compute queue, the
// descriptor counts and shared memory of its kernels, dynamically indexed storage buffer arrays.
struct PhysicalDevice {
  VkPhysicalDevice handle = VK_NULL_HANDLE;
  VkPhysicalDeviceProperties properties{};
  uint32_t subgroup_size = 0;
  uint64_t device_local_bytes = 0;
  std::string driver;           // driver name and version where the device reports them
  std::string unusable_reason;  // empty when the backend can run on it
  // Tensor-core GEMM (VK_NV_cooperative_matrix, shaders/matmul_coop.comp): the fragment width N of the
  // 16 x N x 16 fp16 * fp16 + fp32 subgroup shape used (16 or 8), 0 when the device cannot run those kernels.
  // coopmat_shapes lists every shape the device reports; coopmat_missing says what is missing when coopmat_n is 0.
  uint32_t coopmat_n = 0;
  uint32_t coopmat_widths = 0;  // bit N set for each fragment width N (8, 16) the device has in that shape
  std::string coopmat_shapes, coopmat_missing;

  bool software() const { return properties.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU; }
  const char *type_name() const;
  // "NVIDIA H100 80GB HBM3 (discrete GPU, 79.6 GiB device-local, Vulkan 1.3.277, NVIDIA 550.54.15)"
  std::string describe() const;
};

class Instance {
 public:
  // The process's instance, or nullptr with the reason in *why (no loader, no driver, no Vulkan 1.1, a requested
  // validation layer missing). The outcome of the first call is kept: the environment is read once.
  // The process's instance, made on first use with `validation` (later calls' choice does not count).
  static std::shared_ptr<Instance> get(std::string *why, pimoe::VulkanValidation validation);

  Instance(const Instance &) = delete;
  Instance &operator=(const Instance &) = delete;
  ~Instance();

  VkInstance handle() const { return instance_; }
  const std::vector<PhysicalDevice> &devices() const { return devices_; }
  // PIMOE_VULKAN_VALIDATION=1 (or "sync" for synchronisation validation too) turns on the Khronos validation layer;
  // its errors are printed to stderr as "pimoe vulkan validation error: ..." and counted.
  bool validation() const { return messenger_ != VK_NULL_HANDLE; }
  static uint64_t validation_errors();

  // The device "vulkan" without an index means: the first usable discrete GPU, else integrated, else virtual, else
  // (only when allow_software) a CPU implementation such as lavapipe. -1 when there is none.
  int preferred_device(bool allow_software) const;

 private:
  Instance() = default;
  void create(std::string *why, pimoe::VulkanValidation validation);

  VkInstance instance_ = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger_ = VK_NULL_HANDLE;
  std::vector<PhysicalDevice> devices_;
};

}  // namespace pimoe::vk
