// SPDX-License-Identifier: MIT
#include "vk_runtime.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>

#include "src/error.h"

#include "shaders/layout.h"

namespace pimoe::vk {
namespace {

std::atomic<uint64_t> g_validation_errors{0};

VKAPI_ATTR VkBool32 VKAPI_CALL on_validation_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                      VkDebugUtilsMessageTypeFlagsEXT,
                                                      const VkDebugUtilsMessengerCallbackDataEXT *data, void *) {
  const bool error = (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) != 0;
  if (error) ++g_validation_errors;
  std::fprintf(stderr, "pimoe vulkan validation %s: %s\n", error ? "error" : "warning",
               data && data->pMessage ? data->pMessage : "(no message)");
  return VK_FALSE;  // the call goes on as it would without the layer
}

bool has_layer(const char *name) {
  uint32_t count = 0;
  if (vkEnumerateInstanceLayerProperties(&count, nullptr) != VK_SUCCESS) return false;
  std::vector<VkLayerProperties> layers(count);
  if (vkEnumerateInstanceLayerProperties(&count, layers.data()) != VK_SUCCESS) return false;
  for (const VkLayerProperties &l : layers) {
    if (std::strcmp(l.layerName, name) == 0) return true;
  }
  return false;
}

std::string version_text(uint32_t v) {
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) + "." +
         std::to_string(VK_API_VERSION_PATCH(v));
}

std::string gib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return text;
}

const char *component_name(VkComponentTypeNV t) {
  switch (t) {
    case VK_COMPONENT_TYPE_FLOAT16_NV: return "f16";
    case VK_COMPONENT_TYPE_FLOAT32_NV: return "f32";
    case VK_COMPONENT_TYPE_FLOAT64_NV: return "f64";
    case VK_COMPONENT_TYPE_SINT8_NV: return "s8";
    case VK_COMPONENT_TYPE_UINT8_NV: return "u8";
    case VK_COMPONENT_TYPE_SINT32_NV: return "s32";
    case VK_COMPONENT_TYPE_UINT32_NV: return "u32";
    default: return "?";
  }
}

// Whether the tensor-core kernels (matmul_coop.comp) can run on the device: VK_NV_cooperative_matrix with a
// 16 x N x 16 fp16 * fp16 + fp32 -> fp32 subgroup shape in compute shaders, the fp16 arithmetic and the Vulkan
// memory model (with device scope: the validation layer asks for it) that glslang's SPIR-V for it declares,
// subgroups of 32 (2 x 4 subgroups tile a workgroup of 256) and the kernels' 48 KiB of shared memory. Debian 12's
// glslc compiles the NV extension, not the KHR one.
void inspect_coopmat(PhysicalDevice &d) {
  if (d.properties.apiVersion < VK_API_VERSION_1_2) {
    d.coopmat_missing = "Vulkan 1.2 needed";
    return;
  }
  uint32_t count = 0;
  vkEnumerateDeviceExtensionProperties(d.handle, nullptr, &count, nullptr);
  std::vector<VkExtensionProperties> ext(count);
  vkEnumerateDeviceExtensionProperties(d.handle, nullptr, &count, ext.data());
  bool nv = false;
  for (const VkExtensionProperties &e : ext) {
    nv = nv || std::strcmp(e.extensionName, "VK_NV_cooperative_matrix") == 0;
  }
  if (!nv || !vkGetPhysicalDeviceCooperativeMatrixPropertiesNV) {
    d.coopmat_missing = "no VK_NV_cooperative_matrix";
    return;
  }
  VkPhysicalDeviceCooperativeMatrixFeaturesNV coop{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
  VkPhysicalDeviceVulkan12Features v12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  v12.pNext = &coop;
  VkPhysicalDeviceFeatures2 features{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  features.pNext = &v12;
  vkGetPhysicalDeviceFeatures2(d.handle, &features);
  VkPhysicalDeviceCooperativeMatrixPropertiesNV props{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_NV};
  VkPhysicalDeviceProperties2 props2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  props2.pNext = &props;
  vkGetPhysicalDeviceProperties2(d.handle, &props2);
  count = 0;
  vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(d.handle, &count, nullptr);
  std::vector<VkCooperativeMatrixPropertiesNV> shapes(count, {VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV});
  if (count > 0) vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(d.handle, &count, shapes.data());
  shapes.resize(count);
  bool n8 = false, n16 = false;
  for (const VkCooperativeMatrixPropertiesNV &p : shapes) {
    char text[96];
    std::snprintf(text, sizeof text, "%s%ux%ux%u %s*%s+%s=%s%s", d.coopmat_shapes.empty() ? "" : ", ", p.MSize,
                  p.NSize, p.KSize, component_name(p.AType), component_name(p.BType), component_name(p.CType),
                  component_name(p.DType), p.scope == VK_SCOPE_SUBGROUP_NV ? "" : " (not subgroup scope)");
    d.coopmat_shapes += text;
    const bool ours = p.MSize == 16 && p.KSize == 16 && p.AType == VK_COMPONENT_TYPE_FLOAT16_NV &&
                      p.BType == VK_COMPONENT_TYPE_FLOAT16_NV && p.CType == VK_COMPONENT_TYPE_FLOAT32_NV &&
                      p.DType == VK_COMPONENT_TYPE_FLOAT32_NV && p.scope == VK_SCOPE_SUBGROUP_NV;
    n8 = n8 || (ours && p.NSize == 8);
    n16 = n16 || (ours && p.NSize == 16);
  }
  std::ostringstream why;
  if (!coop.cooperativeMatrix) {
    why << "cooperativeMatrix feature off";
  } else if (!(props.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT)) {
    why << "cooperative matrices not in compute shaders";
  } else if (!n8 && !n16) {
    why << "no 16xNx16 f16*f16+f32 subgroup shape";
  } else if (!v12.shaderFloat16 || !v12.vulkanMemoryModel || !v12.vulkanMemoryModelDeviceScope) {
    why << "no shaderFloat16 / vulkanMemoryModel / vulkanMemoryModelDeviceScope";
  } else if (d.subgroup_size != 32) {
    why << "subgroup size " << d.subgroup_size << " (32 needed)";
  } else if (d.properties.limits.maxComputeSharedMemorySize < 49152) {
    why << "maxComputeSharedMemorySize " << d.properties.limits.maxComputeSharedMemorySize << " < 49152";
  }
  d.coopmat_missing = why.str();
  d.coopmat_widths = (n8 ? 8u : 0u) | (n16 ? 16u : 0u);
  // 16 x 16 fragments halve the B-fragment loads; the driver splits both into the same instructions where needed.
  if (d.coopmat_missing.empty()) d.coopmat_n = n16 ? 16 : 8;
}

// Fills everything but `handle` of one device, and why the backend cannot use it (if it cannot).
void inspect(PhysicalDevice &d) {
  vkGetPhysicalDeviceProperties(d.handle, &d.properties);
  VkPhysicalDeviceMemoryProperties memory;
  vkGetPhysicalDeviceMemoryProperties(d.handle, &memory);
  for (uint32_t i = 0; i < memory.memoryHeapCount; ++i) {
    if (memory.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) d.device_local_bytes += memory.memoryHeaps[i].size;
  }
  const VkPhysicalDeviceLimits &limits = d.properties.limits;
  std::ostringstream why;
  if (d.properties.apiVersion < VK_API_VERSION_1_1) {
    why << "Vulkan " << version_text(d.properties.apiVersion) << " (1.1 needed)";
  } else {
    VkPhysicalDeviceSubgroupProperties subgroup{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceProperties2 props2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    props2.pNext = &subgroup;
    if (d.properties.apiVersion >= VK_API_VERSION_1_2) subgroup.pNext = &driver;
    vkGetPhysicalDeviceProperties2(d.handle, &props2);
    d.subgroup_size = subgroup.subgroupSize;
    if (d.properties.apiVersion >= VK_API_VERSION_1_2 && driver.driverName[0] != '\0') {
      d.driver = std::string(driver.driverName) + (driver.driverInfo[0] ? std::string(" ") + driver.driverInfo : "");
    }
    VkPhysicalDeviceFeatures features;
    vkGetPhysicalDeviceFeatures(d.handle, &features);
    uint32_t families = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(d.handle, &families, nullptr);
    std::vector<VkQueueFamilyProperties> family(families);
    vkGetPhysicalDeviceQueueFamilyProperties(d.handle, &families, family.data());
    bool compute = false;
    for (const VkQueueFamilyProperties &f : family) compute = compute || (f.queueFlags & VK_QUEUE_COMPUTE_BIT);
    const uint32_t storage_needed = NUM_BINDINGS - 1 + MAX_ARENAS;
    if (!compute) {
      why << "no compute queue";
    } else if (limits.maxPerStageDescriptorStorageBuffers < storage_needed) {
      why << "maxPerStageDescriptorStorageBuffers " << limits.maxPerStageDescriptorStorageBuffers << " < "
          << storage_needed;
    } else if (!features.shaderStorageBufferArrayDynamicIndexing) {
      why << "no shaderStorageBufferArrayDynamicIndexing";
    } else if (limits.maxComputeSharedMemorySize < 16384) {
      why << "maxComputeSharedMemorySize " << limits.maxComputeSharedMemorySize << " < 16384";
    } else if (limits.maxComputeWorkGroupInvocations < 256 || limits.maxComputeWorkGroupSize[0] < 256) {
      why << "compute workgroups of 256 invocations unsupported";
    } else if (limits.maxPushConstantsSize < 4 * PUSH_WORDS) {
      why << "maxPushConstantsSize " << limits.maxPushConstantsSize << " < " << 4 * PUSH_WORDS;
    }
    if (why.str().empty()) inspect_coopmat(d);
  }
  d.unusable_reason = why.str();
}

}  // namespace

const char *result_name(VkResult r) {
  switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    default: return "VkResult error";
  }
}

void check(VkResult r, const char *what) {
  if (r == VK_SUCCESS) return;
  const std::string text = std::string("vulkan: ") + what + " failed: " + result_name(r) + " (" +
                           std::to_string(static_cast<int>(r)) + ")";
  switch (r) {
    case VK_ERROR_OUT_OF_HOST_MEMORY:
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
    case VK_ERROR_OUT_OF_POOL_MEMORY:
      throw Error(PIMOE_ERR_OUT_OF_MEMORY, text);
    case VK_ERROR_DEVICE_LOST:
      throw Error(PIMOE_ERR_BACKEND_UNAVAILABLE, text + ": the GPU reset or the driver gave up on this device");
    default:
      throw Error(PIMOE_ERR_INTERNAL, text);
  }
}

const char *PhysicalDevice::type_name() const {
  switch (properties.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU (software)";
    default: return "other";
  }
}

std::string PhysicalDevice::describe() const {
  std::string text = std::string(properties.deviceName) + " (" + type_name() + ", " + gib(device_local_bytes) +
                     " device-local, Vulkan " + version_text(properties.apiVersion);
  if (!driver.empty()) text += ", " + driver;
  // The cooperative-matrix shapes (tensor cores) where the device has the extension: which one the GEMM uses, or why
  // none.
  if (!coopmat_shapes.empty()) {
    text += ", VK_NV_cooperative_matrix " + coopmat_shapes + "; tensor-core GEMM " +
            (coopmat_n ? "16x" + std::to_string(coopmat_n) + "x16" : "unavailable: " + coopmat_missing);
  }
  return text + ")";
}

uint64_t Instance::validation_errors() {
  return g_validation_errors.load();
}

std::shared_ptr<Instance> Instance::get(std::string *why, VulkanValidation validation) {
  // One instance for the process, shared by every model, and never destroyed: tearing it down at exit would unload
  // the driver while its own exit handlers and threads may still run, and gains nothing (the devices, which own
  // every object the backend makes, are destroyed at exit; see Device::get). Kept behind a pointer so that no
  // static destructor touches it.
  static std::mutex mutex;
  static std::shared_ptr<Instance> *instance = nullptr;
  static std::string *failure = nullptr;
  std::lock_guard<std::mutex> lock(mutex);
  if (!instance) {
    instance = new std::shared_ptr<Instance>();
    failure = new std::string();
    std::shared_ptr<Instance> fresh(new Instance);
    fresh->create(failure, validation);
    if (failure->empty()) *instance = std::move(fresh);
  }
  if (!*instance && why) *why = *failure;
  return *instance;
}

void Instance::create(std::string *why, VulkanValidation validation) {
  VkResult r = volkInitialize();
  if (r != VK_SUCCESS) {
    *why = "vulkan: the Vulkan loader libvulkan.so.1 was not found (Debian: libvulkan1)";
    return;
  }
  const uint32_t loader_version = volkGetInstanceVersion();
  if (loader_version < VK_API_VERSION_1_1) {
    *why = "vulkan: the Vulkan loader is version " + version_text(loader_version) + "; 1.1 or later is needed";
    return;
  }
  const bool want_validation = validation != VulkanValidation::Off;
  const bool want_sync = validation == VulkanValidation::Sync;
  std::vector<const char *> layers, extensions;
  if (want_validation) {
    if (!has_layer("VK_LAYER_KHRONOS_validation")) {
      *why = "vulkan: PIMOE_VULKAN_VALIDATION is set but the layer VK_LAYER_KHRONOS_validation is not installed "
             "(Debian: vulkan-validationlayers)";
      return;
    }
    layers.push_back("VK_LAYER_KHRONOS_validation");
    extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  }
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "libpimoe";
  app.pEngineName = "libpimoe";
  app.apiVersion = VK_API_VERSION_1_2;  // the highest this backend uses where a device has it (driver properties)
  VkInstanceCreateInfo info{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  info.pApplicationInfo = &app;
  info.enabledLayerCount = static_cast<uint32_t>(layers.size());
  info.ppEnabledLayerNames = layers.data();
  info.enabledExtensionCount = static_cast<uint32_t>(extensions.size());
  info.ppEnabledExtensionNames = extensions.data();
  VkDebugUtilsMessengerCreateInfoEXT messenger{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
  messenger.messageSeverity =
      VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
  messenger.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                          VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                          VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
  messenger.pfnUserCallback = on_validation_message;
  const VkValidationFeatureEnableEXT sync_feature = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
  VkValidationFeaturesEXT features{VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
  features.enabledValidationFeatureCount = 1;
  features.pEnabledValidationFeatures = &sync_feature;
  if (want_validation) {
    // The messenger also hears vkCreateInstance / vkDestroyInstance themselves; the features struct goes in front
    // of it in the chain, so that the messenger struct can be used as is (pNext NULL) for the instance's messenger.
    info.pNext = &messenger;
    if (want_sync) {
      features.pNext = &messenger;
      info.pNext = &features;
    }
  }
  r = vkCreateInstance(&info, nullptr, &instance_);
  if (r != VK_SUCCESS) {
    *why = std::string("vulkan: no usable Vulkan driver (vkCreateInstance: ") + result_name(r) + ")";
    instance_ = VK_NULL_HANDLE;
    return;
  }
  volkLoadInstanceOnly(instance_);
  if (want_validation) {
    r = vkCreateDebugUtilsMessengerEXT(instance_, &messenger, nullptr, &messenger_);
    if (r != VK_SUCCESS) {
      *why = std::string("vulkan: the validation layer's messenger could not be created: ") + result_name(r);
      return;
    }
  }
  uint32_t count = 0;
  r = vkEnumeratePhysicalDevices(instance_, &count, nullptr);
  std::vector<VkPhysicalDevice> handles(count);
  if (r == VK_SUCCESS && count > 0) r = vkEnumeratePhysicalDevices(instance_, &count, handles.data());
  if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
    *why = std::string("vulkan: listing the devices failed: ") + result_name(r);
    return;
  }
  handles.resize(count);
  for (VkPhysicalDevice h : handles) {
    PhysicalDevice d;
    d.handle = h;
    inspect(d);
    devices_.push_back(std::move(d));
  }
  if (devices_.empty()) *why = "vulkan: the Vulkan driver reports no device";
}

Instance::~Instance() {
  if (instance_ == VK_NULL_HANDLE) return;
  if (messenger_ != VK_NULL_HANDLE) vkDestroyDebugUtilsMessengerEXT(instance_, messenger_, nullptr);
  vkDestroyInstance(instance_, nullptr);
}

int Instance::preferred_device(bool allow_software) const {
  const VkPhysicalDeviceType order[] = {VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU, VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU,
                                        VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU, VK_PHYSICAL_DEVICE_TYPE_OTHER,
                                        VK_PHYSICAL_DEVICE_TYPE_CPU};
  for (VkPhysicalDeviceType type : order) {
    if (type == VK_PHYSICAL_DEVICE_TYPE_CPU && !allow_software) break;
    for (size_t i = 0; i < devices_.size(); ++i) {
      if (devices_[i].properties.deviceType == type && devices_[i].unusable_reason.empty()) return static_cast<int>(i);
    }
  }
  return -1;
}

}  // namespace pimoe::vk
