#include "activation.h"

#include <cmath>
#include <cstring>

namespace pimoe::cpu {
namespace {

// exp(x) for |x| <= 87, within about 2 ulp, written so that the compiler vectorises loops over it (libm's expf is
// a call, which does not vectorise without -ffast-math): x = n ln2 + r, exp(r) by a degree-6 polynomial.
inline float fast_exp(float x) {
  x = std::fmin(std::fmax(x, -87.0f), 87.0f);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = std::fma(n, -0.693145751953125f, std::fma(n, -1.428606765330187e-06f, x));
  float p = 1.0f / 720.0f;
  p = std::fma(p, r, 1.0f / 120.0f);
  p = std::fma(p, r, 1.0f / 24.0f);
  p = std::fma(p, r, 1.0f / 6.0f);
  p = std::fma(p, r, 0.5f);
  p = std::fma(p, r, 1.0f);
  p = std::fma(p, r, 1.0f);
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float sigmoid(float x) {
  return 1.0f / (1.0f + fast_exp(-x));
}
inline float silu(float x) {
  return x * sigmoid(x);
}
// tanh(x) = 2 sigmoid(2x) - 1: absolute error near 1e-7, which is what matters once it is scaled into the output.
inline float fast_tanh(float x) {
  return 2.0f * sigmoid(2.0f * x) - 1.0f;
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7), vectorisable.
inline float fast_erf(float x) {
  const float sign = x < 0.0f ? -1.0f : 1.0f;
  const float ax = std::fabs(x);
  const float t = 1.0f / std::fma(0.3275911f, ax, 1.0f);
  float poly = 1.061405429f;
  poly = std::fma(poly, t, -1.453152027f);
  poly = std::fma(poly, t, 1.421413741f);
  poly = std::fma(poly, t, -0.284496736f);
  poly = std::fma(poly, t, 0.254829592f);
  return sign * (1.0f - poly * t * fast_exp(-ax * ax));
}

inline float gelu(float x) {
  return 0.5f * x * (1.0f + fast_erf(x * 0.70710678118654752f));
}
inline float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + fast_tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
}
inline float relu(float x) {
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

__attribute__((target_clones("avx512f", "avx2,fma", "default"))) void activate(pimoe_activation activation, float *h,
                                                                               const float *bias, int64_t n,
                                                                               int64_t width) {
  switch (activation) {
    case PIMOE_ACT_GELU:
      return apply(h, bias, n, width, gelu);
    case PIMOE_ACT_GELU_TANH:
      return apply(h, bias, n, width, gelu_tanh);
    case PIMOE_ACT_SILU:
      return apply(h, bias, n, width, silu);
    case PIMOE_ACT_RELU:
      return apply(h, bias, n, width, relu);
    case PIMOE_ACT_TANH:
      return apply(h, bias, n, width, fast_tanh);
    case PIMOE_ACT_SWIGLU:
      return;  // handled by swiglu()
  }
}

__attribute__((target_clones("avx512f", "avx2,fma", "default"))) void swiglu(const float *gate, float *h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] *= silu(gate[i]);
}

}  // namespace pimoe::cpu
