/* SPDX-License-Identifier: MIT */
// The argument checks of the forward calls (pimoe_forward, pimoe_forward_routing, pimoe_forward_cuda): one set of
// checks and messages for host and device calls.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model.h"

namespace pimoe {

// Checks everything the forward calls promise to check, before any work is done, and returns batch*seq. `device`:
// input and output are device memory (named d_input/d_output; their values are checked on the device).
int64_t validate_forward(const Model &m, const float *input, size_t input_count, int64_t batch, int64_t seq,
                         const float *output, size_t output_count, const int32_t *ids, const float *weights,
                         size_t routing_count, const char *fn, bool device);

}  // namespace pimoe
