// SPDX-License-Identifier: MIT
#include "quant_error.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "compact_matrix.h"

namespace pimoe {

void QuantError::add(const float *w, const CompactMatrix &q) {
  // Dequantised a few rows at a time: the layer is being filled one matrix at a time to keep its peak memory at one
  // fp32 matrix, and a second full fp32 copy here would double that.
  constexpr int64_t kRowsPerPass = 64;
  std::vector<float> deq(static_cast<size_t>(std::min(q.rows, kRowsPerPass) * q.cols));
  for (int64_t r0 = 0; r0 < q.rows; r0 += kRowsPerPass) {
    const int64_t r1 = std::min(q.rows, r0 + kRowsPerPass);
    q.dequantize_rows(r0, r1, deq.data());
    const float *src = w + r0 * q.cols;
    for (int64_t i = 0; i < (r1 - r0) * q.cols; ++i) {
      const double x = src[i], e = x - static_cast<double>(deq[static_cast<size_t>(i)]);
      error_squares_ += e * e;
      weight_squares_ += x * x;
      max_abs_ = std::max(max_abs_, std::fabs(e));
    }
  }
}

double QuantError::rel_rms() const {
  if (unknown_) return std::numeric_limits<double>::quiet_NaN();
  // No error is 0 even when every weight is 0 (0/0): nothing was lost.
  return error_squares_ == 0.0 ? 0.0 : std::sqrt(error_squares_ / weight_squares_);
}

double QuantError::max_abs() const { return unknown_ ? std::numeric_limits<double>::quiet_NaN() : max_abs_; }

}  // namespace pimoe
