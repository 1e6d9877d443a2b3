// SPDX-License-Identifier: MIT
#include "api_validate.h"

#include <cmath>

#include "api_guard.h"

namespace pimoe {
namespace {

constexpr int64_t kMaxTokensPerCall = int64_t{1} << 24;

}  // namespace

int64_t validate_forward(const Model &m, const float *input, size_t input_count, int64_t batch, int64_t seq,
                         const float *output, size_t output_count, const int32_t *ids, const float *weights,
                         size_t routing_count, const char *fn, bool device) {
  require(input, fn, device ? "d_input" : "input");
  require(output, fn, device ? "d_output" : "output");
  if (batch < 1) fail(PIMOE_ERR_INVALID_ARGUMENT, fn, ": batch (", batch, ") must be >= 1");
  if (seq < 1) fail(PIMOE_ERR_INVALID_ARGUMENT, fn, ": seq (", seq, ") must be >= 1");
  if (batch > kMaxTokensPerCall / seq) {
    fail(PIMOE_ERR_INVALID_ARGUMENT, fn, ": batch*seq (", batch, "*", seq, ") exceeds the limit of ",
         kMaxTokensPerCall, " tokens per call");
  }
  const int64_t tokens = batch * seq;
  const int64_t H = m.config().hidden;
  const auto expected = static_cast<size_t>(tokens * H);
  if (input_count != expected) {
    fail(PIMOE_ERR_SIZE_MISMATCH, fn, ": input_count (", input_count, ") != batch*seq*hidden (", batch, "*",
         seq, "*", H, " = ", expected, ")");
  }
  if (output_count != expected) {
    fail(PIMOE_ERR_SIZE_MISMATCH, fn, ": output_count (", output_count, ") != batch*seq*hidden (", expected,
         ")");
  }
  if ((ids == nullptr) != (weights == nullptr)) {
    fail(PIMOE_ERR_INVALID_ARGUMENT, fn, ": expert_ids and expert_weights must both be NULL or both set (",
         ids ? "expert_weights" : "expert_ids", " is NULL)");
  }
  if (ids) {
    const auto routing_expected = static_cast<size_t>(tokens * m.config().router.slots());
    if (routing_count != routing_expected) {
      fail(PIMOE_ERR_SIZE_MISMATCH, fn, ": routing_count (", routing_count, ") != batch*seq*",
           m.config().router.expert_choice ? "num_experts (expert-choice slots)" : "top_k", " (", routing_expected,
           ")");
    }
  }
  if (device) return tokens;  // the values are on the device: the forward checks them there (or on its host copy)
  // Split over the model's host threads for large inputs (HostParallel): one thread's scan of a 4096-token input
  // takes milliseconds, as long as a GPU backend's whole layer.
  const size_t i = m.host_parallel().first_non_finite(input, expected);
  if (i < expected) {
    fail(PIMOE_ERR_NON_FINITE_INPUT, fn, ": input[", i, "] (token ", static_cast<int64_t>(i) / H, ", feature ",
         static_cast<int64_t>(i) % H, ") is ", std::isnan(input[i]) ? "NaN" : "Inf");
  }
  return tokens;
}

}  // namespace pimoe
