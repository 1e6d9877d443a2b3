// SPDX-License-Identifier: MIT
#include "cuda_device.h"

#include <cuda_runtime_api.h>

#include <cstdio>
#include <mutex>

#include "cuda_check.h"

namespace pimoe::cuda {
namespace {

struct Probe {
  bool usable = false;
  std::string reason;  // why not, when not usable
};

// Asked once per process: the answer does not change, and the first CUDA call loads the driver.
const Probe &probe() {
  static std::once_flag once;
  static Probe p;
  std::call_once(once, [] {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      cudaGetLastError();
      p.reason = std::string("backend 'cuda': no usable CUDA driver or device (") + cudaGetErrorName(e) + ": " +
                 cudaGetErrorString(e) + ")";
      return;
    }
    if (count == 0) {
      p.reason = "backend 'cuda': no CUDA device found";
      return;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, kDevice) != cudaSuccess) {
      cudaGetLastError();
      p.reason = "backend 'cuda': cannot read the properties of CUDA device 0";
      return;
    }
    if (prop.major < 8) {
      p.reason = std::string("backend 'cuda': device 0 (") + prop.name + ") has compute capability " +
                 std::to_string(prop.major) + "." + std::to_string(prop.minor) +
                 "; the CUDA backend needs 8.0 (Ampere) or newer";
      return;
    }
    p.usable = true;
  });
  return p;
}

}  // namespace

void select_device() {
  check(cudaSetDevice(kDevice), "selecting the device");
}

int device_count() {
  return probe().usable ? 1 : 0;
}

bool device_usable(std::string &why) {
  const Probe &p = probe();
  if (!p.usable) why = p.reason;
  return p.usable;
}

std::string device_description() {
  std::string why;
  if (!device_usable(why)) return "";
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, kDevice) != cudaSuccess) {
    cudaGetLastError();
    return "cuda: device 0";
  }
  char memory[32];
  std::snprintf(memory, sizeof memory, "%.1f GiB", static_cast<double>(prop.totalGlobalMem) / (1u << 30));
  return std::string("cuda: ") + prop.name + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
         std::to_string(prop.multiProcessorCount) + " SMs, " + memory + ")";
}

int compute_capability_major() {
  int major = 0;
  check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, kDevice), "reading the device");
  return major;
}

}  // namespace pimoe::cuda
