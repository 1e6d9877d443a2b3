// Element-wise expert activations over rows of the hidden layer, with the projection bias fused in.
#pragma once

#include <cstdint>

#include "pimoe/pimoe.h"

namespace pimoe::cpu {

// h[i] = act(h[i] + bias[i % width]) for n elements (bias may be NULL). Not for SwiGLU.
void activate(pimoe_activation activation, float *h, const float *bias, int64_t n, int64_t width);

// h[i] = silu(gate[i]) * h[i] for n elements: SwiGLU's combination of its gate and up projections.
void swiglu(const float *gate, float *h, int64_t n);

}  // namespace pimoe::cpu
