// SPDX-License-Identifier: MIT
// The CPU backend's family: one device (the host), always usable, "auto"'s last resort.
#include "cpu_backend.h"
#include "gemm.h"

namespace pimoe {
namespace {

int device_count() { return 1; }

bool usable(int device, std::string &why) {
  if (device <= 0) return true;
  why = "cpu:" + std::to_string(device) + ": no such device (the CPU backend has one device, cpu)";
  return false;
}

std::string describe(int device) { return device <= 0 ? cpu_device_description(0, false) : std::string(); }

int auto_rank(int *device) {
  *device = 0;
  return 0;
}

std::unique_ptr<Backend> create(const LayerConfig &config, LayerWeights &weights, int) {
  return make_cpu_backend(config, weights);
}

std::string build_info() {
  return std::string("cpu_gemm=packed") +
         (cpu::blas_available() ? ",openblas blas=" + cpu::blas_description() : std::string(" blas=none"));
}

}  // namespace

const BackendFamily &cpu_backend_family() {
  static const BackendFamily family{"cpu", device_count, usable, describe, auto_rank, create, build_info};
  return family;
}

}  // namespace pimoe
