/* SPDX-License-Identifier: MIT */
/** \file
 * libpimoe's CUDA entry point: the forward of a model created with backend "cuda", with input and output already in
 * GPU memory and the work ordered on the caller's CUDA stream, so a CUDA application pays no host copies.
 *
 * This header needs no CUDA header: the stream is passed as void * (a cudaStream_t; NULL is the legacy default
 * stream). Every build of libpimoe exports the function; without the CUDA backend it fails with PIMOE_ERR_UNSUPPORTED.
 */
#ifndef PIMOE_CUDA_H
#define PIMOE_CUDA_H

#include "pimoe.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The forward of a model created with backend "cuda", on buffers in GPU memory, in order on cuda_stream.
 *
 * Contract of pimoe_forward_cuda (otherwise as pimoe_forward in pimoe.h, whose shape and routing rules apply):
 *   - d_input and d_output are device pointers (cudaMalloc'd, or managed) on the CUDA device the model runs on
 *     (device 0), holding input_count and output_count floats; both counts must equal batch*seq*hidden. The input is
 *     read and the output written in stream order on cuda_stream: the call waits for work queued on the stream
 *     before it, and work queued after it sees the output.
 *   - The call returns when the output is complete (it synchronises cuda_stream once, at the end, to read the few
 *     routing results that pimoe_stats() and expert_ids/expert_weights report). It makes no host copy of the input
 *     or output for layers routed on the GPU; layers that need the host router (pimoe.h lists the routing options
 *     computed on the host) are staged through host memory.
 *   - expert_ids and expert_weights are HOST buffers of routing_count = batch*seq*top_k elements, or both NULL.
 *   - The input is checked for NaN and Inf on the device: such an input fails with PIMOE_ERR_NON_FINITE_INPUT
 *     naming the first bad element, and d_output then holds no result (its contents are unspecified).
 *   - Threads: as pimoe_forward. Concurrent calls on one model may use the same or different streams.
 *   - Errors: PIMOE_ERR_NULL_POINTER, PIMOE_ERR_INVALID_ARGUMENT, PIMOE_ERR_SIZE_MISMATCH (as pimoe_forward),
 *     PIMOE_ERR_UNSUPPORTED (the model does not run on the CUDA backend, or this build has none),
 *     PIMOE_ERR_NON_FINITE_INPUT, PIMOE_ERR_OUT_OF_MEMORY (device scratch memory), PIMOE_ERR_INTERNAL (a CUDA call or
 *     kernel failed; the message names it). A pointer that is not device memory of this device is a caller error that
 *     CUDA may report as PIMOE_ERR_INTERNAL or not detect. */
PIMOE_API pimoe_status pimoe_forward_cuda(pimoe_model *model, const float *d_input, size_t input_count,
                                          int64_t batch, int64_t seq, float *d_output, size_t output_count,
                                          int32_t *expert_ids, float *expert_weights, size_t routing_count,
                                          void *cuda_stream);

#ifdef __cplusplus
}
#endif

#endif /* PIMOE_CUDA_H */
