// SPDX-License-Identifier: MIT
// Double-precision helpers of routing on the device (route_token.glsl, route_small.comp): the host router's
// arithmetic needs exp in double, which GLSL lacks. Kernels that include this need the device's shaderFloat64.

// exp(x) in double, within about 1 ulp: x = n ln2 + r with |r| <= ln2/2 (ln2 in two parts, so n*ln2_hi is exact),
// exp(r) by its Taylor series to r^13 (truncation below 1e-17 relative), then scaled by 2^n.
double exp_d(double x) {
  if (x > 709.78LF) return 1.0LF / 0.0LF;
  if (x < -745.2LF) return 0.0LF;
  const double n = roundEven(x * 1.4426950408889634LF);
  double r = fma(-n, 6.93147180369123816490e-01LF, x);
  r = fma(-n, 1.90821492927058770002e-10LF, r);
  double p = 1.0LF / 6227020800.0LF;  // 1/13!
  p = fma(p, r, 1.0LF / 479001600.0LF);
  p = fma(p, r, 1.0LF / 39916800.0LF);
  p = fma(p, r, 1.0LF / 3628800.0LF);
  p = fma(p, r, 1.0LF / 362880.0LF);
  p = fma(p, r, 1.0LF / 40320.0LF);
  p = fma(p, r, 1.0LF / 5040.0LF);
  p = fma(p, r, 1.0LF / 720.0LF);
  p = fma(p, r, 1.0LF / 120.0LF);
  p = fma(p, r, 1.0LF / 24.0LF);
  p = fma(p, r, 1.0LF / 6.0LF);
  p = fma(p, r, 0.5LF);
  p = fma(p, r, 1.0LF);
  p = fma(p, r, 1.0LF);
  // 2^n in two steps, so that n near the ends of the range does not overflow the exponent of one factor.
  const int half_n = int(n) / 2;
  return ldexp(ldexp(p, half_n), int(n) - half_n);
}

double push_double(uint lo, uint hi) { return packDouble2x32(uvec2(lo, hi)); }

// (value, index) comes after (pv, pi) in descending-value, ascending-index order.
bool after(double v, uint i, double pv, uint pi) { return v < pv || (v == pv && i > pi); }
