/* SPDX-License-Identifier: MIT */
// Included once per instruction set by activation_<isa>.cpp, with PIMOE_ISA naming the namespace, so that each
// copy is compiled (and vectorised) for its own target; activation.cpp picks one at run time.
#include <cmath>
#include <cstring>

#include "activation.h"

namespace pimoe::cpu::PIMOE_ISA {
namespace {

// A fused multiply-add where the target has one; without FMA hardware std::fma is a slow library call.
__attribute__((always_inline)) inline float madd(float a, float b, float c) {
#ifdef __FMA__
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// exp(x) for |x| <= 87, within about 2 ulp, written so that the compiler vectorises loops over it (libm's expf is
// a call, which does not vectorise without -ffast-math): x = n ln2 + r, exp(r) by a degree-6 polynomial.
__attribute__((always_inline)) inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 87.0f ? 87.0f : x);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = madd(n, -0.693145751953125f, madd(n, -1.428606765330187e-06f, x));
  float p = 1.0f / 720.0f;
  p = madd(p, r, 1.0f / 120.0f);
  p = madd(p, r, 1.0f / 24.0f);
  p = madd(p, r, 1.0f / 6.0f);
  p = madd(p, r, 0.5f);
  p = madd(p, r, 1.0f);
  p = madd(p, r, 1.0f);
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

__attribute__((always_inline)) inline float sigmoid(float x) {
  return 1.0f / (1.0f + fast_exp(-x));
}
__attribute__((always_inline)) inline float silu(float x) {
  return x * sigmoid(x);
}
// tanh(x) = 2 sigmoid(2x) - 1: absolute error near 1e-7, which is what matters once it is scaled into the output.
__attribute__((always_inline)) inline float fast_tanh(float x) {
  return 2.0f * sigmoid(2.0f * x) - 1.0f;
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7), vectorisable.
__attribute__((always_inline)) inline float fast_erf(float x) {
  const float sign = x < 0.0f ? -1.0f : 1.0f;
  const float ax = std::fabs(x);
  const float t = 1.0f / madd(0.3275911f, ax, 1.0f);
  float poly = 1.061405429f;
  poly = madd(poly, t, -1.453152027f);
  poly = madd(poly, t, 1.421413741f);
  poly = madd(poly, t, -0.284496736f);
  poly = madd(poly, t, 0.254829592f);
  return sign * (1.0f - poly * t * fast_exp(-ax * ax));
}

__attribute__((always_inline)) inline float gelu(float x) {
  return 0.5f * x * (1.0f + fast_erf(x * 0.70710678118654752f));
}
__attribute__((always_inline)) inline float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + fast_tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
}
__attribute__((always_inline)) inline float relu(float x) {
  return x > 0.0f ? x : 0.0f;
}

template <typename Fn>
__attribute__((always_inline)) inline void apply(float *h, const float *bias, int64_t n, int64_t width, Fn fn) {
  if (bias) {
    for (int64_t row = 0; row < n; row += width) {
      for (int64_t i = 0; i < width; ++i) h[row + i] = fn(h[row + i] + bias[i]);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) h[i] = fn(h[i]);
  }
}

}  // namespace

void activate(pimoe_activation activation, float *h, const float *bias, int64_t n, int64_t width) {
  switch (activation) {
    case PIMOE_ACT_GELU:
      return apply(h, bias, n, width, [](float v) { return gelu(v); });
    case PIMOE_ACT_GELU_TANH:
      return apply(h, bias, n, width, [](float v) { return gelu_tanh(v); });
    case PIMOE_ACT_SILU:
      return apply(h, bias, n, width, [](float v) { return silu(v); });
    case PIMOE_ACT_RELU:
      return apply(h, bias, n, width, [](float v) { return relu(v); });
    case PIMOE_ACT_TANH:
      return apply(h, bias, n, width, [](float v) { return fast_tanh(v); });
    case PIMOE_ACT_SWIGLU:
    case PIMOE_ACT_SWIGLU_OAI:
      return;  // gated: handled by swiglu() / glu()
  }
}

void swiglu(const float *gate, float *h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] *= silu(gate[i]);
}

void glu(pimoe_activation activation, const float *gate, float *h, int64_t n, const float *gate_bias,
         const float *up_bias, float alpha, float limit) {
  if (activation == PIMOE_ACT_SWIGLU_OAI) {
    // Loops without the bias branches, so that each vectorises.
    auto oai = [alpha, limit](float g, float u) {
      const float m = g < limit ? g : limit;
      const float c = u < -limit ? -limit : (u > limit ? limit : u);
      return (c + 1.0f) * m * sigmoid(alpha * m);
    };
    if (gate_bias && up_bias) {
      for (int64_t i = 0; i < n; ++i) h[i] = oai(gate[i] + gate_bias[i], h[i] + up_bias[i]);
    } else {
      for (int64_t i = 0; i < n; ++i)
        h[i] = oai(gate[i] + (gate_bias ? gate_bias[i] : 0.0f), h[i] + (up_bias ? up_bias[i] : 0.0f));
    }
    return;
  }
  if (!gate_bias && !up_bias) return swiglu(gate, h, n);
  for (int64_t i = 0; i < n; ++i) {
    h[i] = silu(gate[i] + (gate_bias ? gate_bias[i] : 0.0f)) * (h[i] + (up_bias ? up_bias[i] : 0.0f));
  }
}

}  // namespace pimoe::cpu::PIMOE_ISA
