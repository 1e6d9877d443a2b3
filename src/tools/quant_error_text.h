/* SPDX-License-Identifier: MIT */
// pimoe-info's wording of a loaded layer's quantisation error (pimoe_stats_snapshot's weight_quant_* fields), shared
// by the native-file and the checkpoint paths.
#pragma once

#include <pimoe/pimoe.h>

#include <cmath>
#include <cstdio>
#include <string>

inline std::string quant_error_text(const pimoe_model *model) {
  pimoe_stats_snapshot s{};
  s.struct_size = sizeof s;
  if (pimoe_stats(model, &s) != PIMOE_OK) return std::string("not available: ") + pimoe_last_error();
  if (std::isnan(s.weight_quant_rel_rms_error)) {
    return "unknown (the expert matrices came quantised: their fp32 weights are not in the source)";
  }
  char text[160];
  std::snprintf(text, sizeof text, "rel RMS %.4g, max abs %.4g (expert matrices against the source's fp32 values)",
                s.weight_quant_rel_rms_error, s.weight_quant_max_abs_error);
  return text;
}
