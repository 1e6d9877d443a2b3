// SPDX-License-Identifier: MIT
// C shim of pimoe_prune (pimoe_model.h): the arguments checked before any work, then prune_layer (prune.cpp).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "api_guard.h"
#include "pimoe/pimoe.h"
#include "prune.h"

using namespace pimoe;

extern "C" {

pimoe_status pimoe_prune(pimoe_model *model, pimoe_prune_method method, double fraction, uint64_t seed,
                         const float *calibration, size_t calibration_count, int64_t tokens, pimoe_model **out,
                         pimoe_prune_report *report) {
  return guarded(model, [&] {
    require(model, "pimoe_prune", "model");
    require(calibration, "pimoe_prune", "calibration");
    require(out, "pimoe_prune", "out");
    const int raw_method = raw_value(method);
    if (raw_method != PIMOE_PRUNE_EXPERTS_BY_MASS && raw_method != PIMOE_PRUNE_EXPERTS_RANDOM &&
        raw_method != PIMOE_PRUNE_CHANNELS_BY_NORM) {
      fail(PIMOE_ERR_INVALID_ARGUMENT, "pimoe_prune: method ", raw_method, " is not a pimoe_prune_method");
    }
    if (!(fraction > 0.0 && fraction < 1.0)) {
      fail(PIMOE_ERR_INVALID_ARGUMENT, "pimoe_prune: fraction ", fraction, " is not in (0, 1)");
    }
    const int64_t H = model->model.config().hidden;
    if (tokens < 1) fail(PIMOE_ERR_INVALID_ARGUMENT, "pimoe_prune: tokens (", tokens, ") < 1");
    if (tokens > INT64_MAX / H) fail(PIMOE_ERR_INVALID_ARGUMENT, "pimoe_prune: tokens (", tokens, ") * H overflows");
    if (calibration_count != static_cast<size_t>(tokens * H)) {
      fail(PIMOE_ERR_INVALID_ARGUMENT, "pimoe_prune: calibration_count (", calibration_count, ") != tokens * H (",
           tokens, " * ", H, ")");
    }
    for (size_t i = 0; i < calibration_count; ++i) {
      if (!std::isfinite(calibration[i])) {
        fail(PIMOE_ERR_INVALID_ARGUMENT, "pimoe_prune: calibration[", i, "] is not finite (", calibration[i], ")");
      }
    }
    constexpr size_t kMinimum = offsetof(pimoe_prune_report, output_error) + sizeof(double);
    if (report && report->struct_size < kMinimum) {
      fail(PIMOE_ERR_INVALID_ARGUMENT, "pimoe_prune: report->struct_size (", report->struct_size,
           ") is below the minimum of ", kMinimum, " bytes; set it to sizeof(pimoe_prune_report)");
    }
    PruneRequest request;
    request.method = static_cast<pimoe_prune_method>(raw_method);
    request.fraction = fraction;
    request.seed = seed;
    request.calibration = calibration;
    request.tokens = tokens;
    pimoe_prune_report full{};
    std::unique_ptr<pimoe_model> pruned = prune_layer(model->model, request, full);
    if (report) {  // the fields the caller's version of the struct has
      const size_t size = std::min<size_t>(report->struct_size, sizeof full);
      full.struct_size = static_cast<uint32_t>(size);
      std::memcpy(report, &full, size);
    }
    *out = pruned.release();
  });
}

}  // extern "C"
