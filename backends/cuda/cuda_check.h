/* SPDX-License-Identifier: MIT */
// Turning the CUDA runtime's errors into pimoe errors (PIMOE_ERR_OUT_OF_MEMORY, PIMOE_ERR_BACKEND_UNAVAILABLE,
// PIMOE_ERR_INTERNAL) whose message names what the backend was doing.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

#include "src/error.h"

namespace pimoe::cuda {

pimoe_status status_of(cudaError_t e);

// Throws for a failed CUDA call, naming what was being done. The thread's non-sticky error is cleared so that the
// model stays usable after, say, an allocation failure. (A kernel fault is sticky: CUDA itself then refuses every
// further call in this process, which the message says.)
void check(cudaError_t e, const char *what);

// The launch error of the kernel just queued (bad configuration, missing kernel image for this GPU).
void check_launch(const char *kernel);

// "12 MiB", rounded up: sizes in the messages.
std::string mib(size_t bytes);

}  // namespace pimoe::cuda
