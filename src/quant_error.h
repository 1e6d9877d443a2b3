/* SPDX-License-Identifier: MIT */
// The quantisation error of a layer's expert and shared-expert matrices against the fp32 values they were quantised
// from: what pimoe_stats_snapshot's weight_quant_rel_rms_error and weight_quant_max_abs_error report (pimoe.h
// defines them).
#pragma once

#include <cstddef>

namespace pimoe {

struct CompactMatrix;

// Filled while a layer is filled (single-threaded, before the backend exists), read-only afterwards.
class QuantError {
 public:
  // One matrix quantised here: w holds its fp32 values (q.rows x q.cols, row-major), q their quantisation.
  void add(const float *w, const CompactMatrix &q);
  // A matrix arrived already quantised (a compact file, an FP8 or MXFP4 checkpoint): the fp32 weights it came from
  // are not known, so neither is the layer's error.
  void mark_unknown() { unknown_ = true; }

  // sqrt(sum (w - deq(q(w)))^2 / sum w^2) over the matrices added; 0 when nothing was lost (or none was added), NaN
  // when unknown.
  double rel_rms() const;
  // max |w - deq(q(w))| over the matrices added; 0 when none was, NaN when unknown.
  double max_abs() const;

 private:
  double error_squares_ = 0.0;  // sum (w - deq(q(w)))^2, in double: a layer holds up to billions of elements
  double weight_squares_ = 0.0;  // sum w^2
  double max_abs_ = 0.0;
  bool unknown_ = false;
};

}  // namespace pimoe
