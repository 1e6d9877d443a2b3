// The CUDA backend: expert matrices on one GPU (fp32, bf16 or fp16), routing either on the host (the plan the model
// builds) or fused on the device, grouped GEMMs over all experts, GEMV kernels for decode-sized calls.
// Plain C++: the registry and the model include it without the CUDA headers.
#pragma once

#include <memory>
#include <string>

#include "src/backend.h"

namespace pimoe {

// Throws PIMOE_ERR_BACKEND_UNAVAILABLE (no driver, no device) or PIMOE_ERR_OUT_OF_MEMORY (weights do not fit).
std::unique_ptr<Backend> make_cuda_backend(const LayerConfig &config, LayerWeights &weights);

// Whether a CUDA device can run the backend here; `why` receives the reason when not (driver missing, no device,
// compute capability too old).
bool cuda_backend_usable(std::string &why);

// "cuda: NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)" for device 0.
std::string cuda_device_description();

}  // namespace pimoe
