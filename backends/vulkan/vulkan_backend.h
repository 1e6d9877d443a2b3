// The Vulkan compute backend: expert and router weights in device-local memory (fp32, bf16 or fp16), the layer as
// one command buffer per call (gather, grouped GEMMs with fused activation, weighted combine) and, for layers whose
// routing the device can do, routing and per-expert counting on the device too (forward_fused).
#pragma once

#include <memory>
#include <string>

#include "src/backend.h"

namespace pimoe {

// device: N of "vulkan:N", or -1 for the preferred device. Throws PIMOE_ERR_BACKEND_UNAVAILABLE with the reason.
std::unique_ptr<Backend> make_vulkan_backend(const LayerConfig &config, LayerWeights &weights, int device);

// For the backend registry and the device queries of the C API.
bool vulkan_usable(int device, std::string &why);    // "vulkan" (-1) or "vulkan:N"; why: the reason when not
int vulkan_auto_device();                            // the hardware device "auto" picks, or -1 (never a software one)
std::string vulkan_device_description(int device);   // "" when unusable
int vulkan_device_count();                           // Vulkan devices seen (software ones included); 0 without Vulkan

}  // namespace pimoe
