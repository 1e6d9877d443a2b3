/* SPDX-License-Identifier: MIT */
// Element-wise expert activations over rows of the hidden layer, with the projection bias fused in.
#pragma once

#include <cstdint>

#include "pimoe/pimoe.h"

namespace pimoe::cpu {

// h[i] = act(h[i] + bias[i % width]) for n elements (bias may be NULL). Not for SwiGLU.
void activate(pimoe_activation activation, float *h, const float *bias, int64_t n, int64_t width);

// h[i] = silu(gate[i]) * h[i] for n elements: SwiGLU's combination of its gate and up projections.
void swiglu(const float *gate, float *h, int64_t n);

// A gated expert's combination of its gate and up projections, their biases (each may be NULL) added first, for n
// elements: SWIGLU h = silu(g) * u; SWIGLU_OAI h = (clamp(u, -limit, limit) + 1) * m * sigmoid(alpha * m) with
// m = min(g, limit) (pimoe.h), where g = gate[i] + gate_bias[i], u = h[i] + up_bias[i].
void glu(pimoe_activation activation, const float *gate, float *h, int64_t n, const float *gate_bias,
         const float *up_bias, float alpha, float limit);

}  // namespace pimoe::cpu
