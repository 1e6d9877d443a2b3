/* SPDX-License-Identifier: MIT */
// The GPU the backend runs on: whether it can, what it is. The backend uses the process's first CUDA device only.
#pragma once

#include <string>

namespace pimoe::cuda {

constexpr int kDevice = 0;

// Makes kDevice current on the calling thread; every entry point of the backend starts with it.
void select_device();

// 1 when the backend can run on kDevice, else 0 (pimoe_backend_device_count("cuda") as pimoe.h documents it: a
// device the backend cannot use is not counted).
int device_count();

// Whether kDevice can run the backend; `why` receives the reason when not (driver missing, no device, compute
// capability below 8.0). Probed once per process.
bool device_usable(std::string &why);

// "cuda: NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)"; "" when the device is not usable.
std::string device_description();

// The major compute capability of kDevice (throws when it cannot be read).
int compute_capability_major();

}  // namespace pimoe::cuda
