/* SPDX-License-Identifier: MIT */
// The CUDA backend: expert matrices on one GPU (fp32, bf16 or fp16), routing either on the host (the plan the model
// builds) or fused on the device, grouped GEMMs over all experts, GEMV kernels for decode-sized calls.
// Plain C++ (no CUDA header), so that the registry can include it.
#pragma once

#include <memory>

#include "src/backend.h"

namespace pimoe {

// The family of the CUDA backend (cuda_family.cpp), as the registry finds it.
const BackendFamily &cuda_backend_family();

namespace cuda {

// The backend for one layer on device 0 (cuda_backend.cpp). Throws PIMOE_ERR_BACKEND_UNAVAILABLE (no driver, no
// usable device) or PIMOE_ERR_OUT_OF_MEMORY (the weights do not fit).
std::unique_ptr<Backend> create_backend(const LayerConfig &config, LayerWeights &weights);

}  // namespace cuda
}  // namespace pimoe
