// SPDX-License-Identifier: MIT
// The Vulkan backend family, as the registry sees it: the devices the Vulkan instance lists, which of them can run
// the backend, their descriptions, the device "auto" would take (a hardware one only), and creation.
#include <memory>
#include <string>

#include "src/backend.h"
#include "vk_runtime.h"
#include "vulkan_backend.h"

namespace pimoe {
namespace {

// The validation choice of the process's instance when a device query makes it (no model's options exist yet).
VulkanValidation process_validation() { return apply_tuning_environment(BackendTuning{}).vulkan_validation; }

int vulkan_device_count() {
  const std::shared_ptr<vk::Instance> instance = vk::Instance::get(nullptr, process_validation());
  return instance ? static_cast<int>(instance->devices().size()) : 0;
}

// device -1: the preferred device.
bool vulkan_usable(int device, std::string &why) {
  const std::shared_ptr<vk::Instance> instance = vk::Instance::get(&why, process_validation());
  if (!instance) return false;
  const auto &devices = instance->devices();
  const int count = static_cast<int>(devices.size());
  if (device < 0) {
    if (instance->preferred_device(true) >= 0) return true;
    why = "vulkan: none of the " + std::to_string(count) + " Vulkan devices can run this backend (vulkan:0 " +
          devices[0].properties.deviceName + ": " + devices[0].unusable_reason + ")";
    return false;
  }
  if (device >= count) {
    why = "vulkan:" + std::to_string(device) + ": no such device (this machine has " + std::to_string(count) +
          " Vulkan device" + (count == 1 ? "" : "s") + ")";
    return false;
  }
  const vk::PhysicalDevice &d = devices[static_cast<size_t>(device)];
  if (!d.unusable_reason.empty()) {
    why = "vulkan:" + std::to_string(device) + " (" + d.properties.deviceName +
          ") cannot run this backend: " + d.unusable_reason;
    return false;
  }
  return true;
}

std::string vulkan_describe(int device) {
  std::string why;
  if (!vulkan_usable(device, why)) return "";
  const std::shared_ptr<vk::Instance> instance = vk::Instance::get(nullptr, process_validation());
  const int index = device < 0 ? instance->preferred_device(true) : device;
  return "vulkan:" + std::to_string(index) + ": " + instance->devices()[static_cast<size_t>(index)].describe() +
         (instance->validation() ? " [validation layer on]" : "");
}

// A hardware device beats the CPU backend; a software one (lavapipe, SwiftShader) never does.
int vulkan_auto_rank(int *device) {
  const std::shared_ptr<vk::Instance> instance = vk::Instance::get(nullptr, process_validation());
  const int hardware = instance ? instance->preferred_device(false) : -1;
  *device = hardware;
  return hardware >= 0 ? 50 : -1;
}

std::unique_ptr<Backend> vulkan_create(const LayerConfig &config, LayerWeights &weights, int device) {
  refuse_cpu_only_expert_features(config, "vulkan");
  // bf16 and fp16 arrive as exact fp32 values (the kernels hold them as the model's type again); the other formats
  // keep their codes (compact_codes.glsl). One format per layer either way.
  if (vulkan_weight_type(config.weight_format.dtype).compact) {
    require_one_format_per_layer(config, "vulkan");
  } else {
    expand_for_float_backend(config, weights, "vulkan");
  }
  return std::make_unique<VulkanBackend>(config, weights, device);
}

}  // namespace

const BackendFamily &vulkan_backend_family() {
  static const BackendFamily family{"vulkan",         vulkan_device_count, vulkan_usable, vulkan_describe,
                                    vulkan_auto_rank, vulkan_create,       nullptr};
  return family;
}

}  // namespace pimoe
