// SPDX-License-Identifier: MIT
// The CUDA backend's family: one device (the process's first), which "auto" prefers over every other backend when
// it is usable.
#include <string>

#include "cuda_backend.h"
#include "cuda_device.h"
#include "src/error.h"

namespace pimoe {
namespace {

// "auto" takes a usable CUDA device before any other backend: no other family bids this high.
constexpr int kAutoRank = 100;

bool usable(int device, std::string &why) {
  if (device != -1 && device != cuda::kDevice) {
    why = "backend 'cuda' runs on device 0 only (got device " + std::to_string(device) + ")";
    return false;
  }
  return cuda::device_usable(why);
}

std::string describe(int device) {
  std::string why;
  return usable(device, why) ? cuda::device_description() : std::string();
}

int auto_rank(int *device) {
  std::string why;
  if (!cuda::device_usable(why)) return -1;
  *device = cuda::kDevice;
  return kAutoRank;
}

std::unique_ptr<Backend> create(const LayerConfig &config, LayerWeights &weights, int device) {
  std::string why;
  if (!usable(device, why)) fail(PIMOE_ERR_BACKEND_UNAVAILABLE, why);
  refuse_cpu_only_expert_features(config, "cuda");
  // Every weight_dtype runs on the device in its own form (compact matrices stay compact, compact_codec.cuh), one
  // format per layer; bf16 and fp16 layers are held from their fp32 values as before.
  const WeightDtype d = config.weight_format.dtype;
  if (d == WeightDtype::F32 || d == WeightDtype::BF16 || d == WeightDtype::F16) {
    expand_for_float_backend(config, weights, "cuda");
  } else {
    require_one_format_per_layer(config, "cuda");
  }
  return cuda::create_backend(config, weights);
}

}  // namespace

const BackendFamily &cuda_backend_family() {
  // No build_info: pimoe_build_info() names the backend, and nothing of its build varies.
  static const BackendFamily family{"cuda", cuda::device_count, usable, describe, auto_rank, create, nullptr};
  return family;
}

}  // namespace pimoe
