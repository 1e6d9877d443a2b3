// SPDX-License-Identifier: MIT
// C shim of include/pimoe/pimoe_cuda.h: the forward with device pointers. Compiled into every build (so that an
// application links against any libpimoe); the model's backend decides whether it can take device pointers.
#include "api_guard.h"
#include "api_validate.h"
#include "pimoe/pimoe_cuda.h"

using namespace pimoe;

extern "C" pimoe_status pimoe_forward_cuda(pimoe_model *model, const float *d_input, size_t input_count,
                                           int64_t batch, int64_t seq, float *d_output, size_t output_count,
                                           int32_t *expert_ids, float *expert_weights, size_t routing_count,
                                           void *cuda_stream) {
  return guarded(model, [&] {
    const char *fn = "pimoe_forward_cuda";
    require(model, fn, "model");
    validate_forward(model->model, d_input, input_count, batch, seq, d_output, output_count, expert_ids,
                     expert_weights, routing_count, fn, true);
    RoutingOutputs out;
    out.ids = expert_ids;
    out.weights = expert_weights;
    DeviceCall call;
    call.stream = cuda_stream;
    model->model.forward(d_input, batch, seq, d_output, out, &call, fn);
  });
}
