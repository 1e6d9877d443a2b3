// C shim of include/pimoe/pimoe_cuda.h: the forward with device pointers. Compiled into every build (so that an
// application links against any libpimoe); the model's backend decides whether it can take device pointers.
#include "api_guard.h"
#include "pimoe/pimoe_cuda.h"

using namespace pimoe;

namespace {

constexpr int64_t kMaxTokensPerCall = int64_t{1} << 24;  // as pimoe_forward (api.cpp)

int64_t validate_device_forward(const Model &m, const float *input, size_t input_count, int64_t batch, int64_t seq,
                                const float *output, size_t output_count, const int32_t *ids, const float *weights,
                                size_t routing_count) {
  require(input, "pimoe_forward_cuda", "d_input");
  require(output, "pimoe_forward_cuda", "d_output");
  if (batch < 1) fail(PIMOE_ERR_INVALID_ARGUMENT, "pimoe_forward_cuda: batch (", batch, ") must be >= 1");
  if (seq < 1) fail(PIMOE_ERR_INVALID_ARGUMENT, "pimoe_forward_cuda: seq (", seq, ") must be >= 1");
  if (batch > kMaxTokensPerCall / seq) {
    fail(PIMOE_ERR_INVALID_ARGUMENT, "pimoe_forward_cuda: batch*seq (", batch, "*", seq, ") exceeds the limit of ",
         kMaxTokensPerCall, " tokens per call");
  }
  const int64_t tokens = batch * seq;
  const auto expected = static_cast<size_t>(tokens * m.config().hidden);
  if (input_count != expected) {
    fail(PIMOE_ERR_SIZE_MISMATCH, "pimoe_forward_cuda: input_count (", input_count, ") != batch*seq*hidden (",
         expected, ")");
  }
  if (output_count != expected) {
    fail(PIMOE_ERR_SIZE_MISMATCH, "pimoe_forward_cuda: output_count (", output_count, ") != batch*seq*hidden (",
         expected, ")");
  }
  if ((ids == nullptr) != (weights == nullptr)) {
    fail(PIMOE_ERR_INVALID_ARGUMENT,
         "pimoe_forward_cuda: expert_ids and expert_weights must both be NULL or both set (",
         ids ? "expert_weights" : "expert_ids", " is NULL)");
  }
  if (ids && routing_count != static_cast<size_t>(tokens * m.config().router.slots())) {
    fail(PIMOE_ERR_SIZE_MISMATCH, "pimoe_forward_cuda: routing_count (", routing_count, ") != batch*seq*slots (",
         tokens * m.config().router.slots(), ")");
  }
  return tokens;
}

}  // namespace

extern "C" pimoe_status pimoe_forward_cuda(pimoe_model *model, const float *d_input, size_t input_count,
                                           int64_t batch, int64_t seq, float *d_output, size_t output_count,
                                           int32_t *expert_ids, float *expert_weights, size_t routing_count,
                                           void *cuda_stream) {
  return guarded(model, [&] {
    require(model, "pimoe_forward_cuda", "model");
    validate_device_forward(model->model, d_input, input_count, batch, seq, d_output, output_count, expert_ids,
                            expert_weights, routing_count);
    model->model.forward_device(d_input, batch, seq, d_output, cuda_stream, expert_ids, expert_weights);
  });
}
