// The CPU backend: OpenBLAS (or the built-in GEMM) for the projections, a thread pool for everything else.
#pragma once

#include <memory>

#include "src/backend.h"

namespace pimoe {

std::unique_ptr<Backend> make_cpu_backend(const LayerConfig &config, const LayerWeights &weights);

}  // namespace pimoe
