/* SPDX-License-Identifier: MIT */
// The CPU backend: OpenBLAS (or the built-in GEMM) for the projections, a thread pool for everything else.
#pragma once

#include <memory>

#include "src/backend.h"

namespace pimoe {

std::unique_ptr<Backend> make_cpu_backend(const LayerConfig &config, LayerWeights &weights);

// What a CPU backend with `threads` pool threads (0 = the machine's cores) runs on, with the packed GEMM or OpenBLAS.
std::string cpu_device_description(int64_t threads, bool openblas);

}  // namespace pimoe
