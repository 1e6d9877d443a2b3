/* SPDX-License-Identifier: MIT */
/** \file
 * libpimoe public API: a model's weight tensors (names, shapes, values).
 *
 * Part of the public interface that <pimoe/pimoe.h> gathers (include that one); pimoe.h states the rules every call
 * follows (threading, ownership, errors, tensors). This header compiles alone as strict C99.
 */
#ifndef PIMOE_TENSORS_H
#define PIMOE_TENSORS_H

#include <stddef.h>
#include <stdint.h>

#include <pimoe/pimoe_export.h>
#include <pimoe/pimoe_model.h>
#include <pimoe/pimoe_status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================ tensors ============================================ */

/** The model's weight tensors, read as fp32 (an expert or shared-expert matrix held in a compact WEIGHT_DTYPE reads as
 * its dequantised values, the values the layer computes with), in this order and with these names (e in [0, E),
 * I_e the expert's width):
 * <pre>
 *   "router.weight"               [E, H]
 *   "router.bias"                 [E]      only with PIMOE_OPT_ROUTER_LOGIT_BIAS (seeded like a bias of fan_in H)
 *   "router.selection_bias"       [E]      only with PIMOE_OPT_ROUTER_BIAS or ADAPTIVE_BIAS_RATE > 0 (seeded like
 *                                          a bias of fan_in H; with adaptive routing: its current value)
 *   "router.load_ema"             [E]      only with DYNAMIC_CAPACITY (not seeded: 1/E each; its current value)
 *   "router.attention.q.weight"   [nh*dh, H] only with ATTENTION_HEADS = nh > 0 (dh = ATTENTION_HEAD_DIM)
 *   "router.attention.k.weight"   [nh*dh, H] only with ATTENTION_HEADS > 0
 *   "router.attention.v.weight"   [nh*dh, H] only with ATTENTION_HEADS > 0
 *   "router.attention.o.weight"   [H, nh*dh] only with ATTENTION_HEADS > 0
 *   "experts.<e>.norm.weight"     [H]      only for experts with pre-LayerNorm
 *   "experts.<e>.norm.bias"       [H]      only for experts with pre-LayerNorm
 *   "experts.<e>.gate.weight"     [I_e, H] only for gated experts (SWIGLU, SWIGLU_OAI)
 *   "experts.<e>.gate.bias"       [I_e]    only for gated experts with PIMOE_OPT_EXPERT_BIAS
 *   "experts.<e>.up.weight"       [I_e, H]
 *   "experts.<e>.up.bias"         [I_e]    only with PIMOE_OPT_EXPERT_BIAS
 *   "experts.<e>.down.weight"     [H, I_e]
 *   "experts.<e>.down.bias"       [H]      only with PIMOE_OPT_EXPERT_BIAS
 *   "shared.gate.weight"          [Is, H]  only with PIMOE_OPT_SHARED_WIDTH = Is > 0
 *   "shared.up.weight"            [Is, H]  only with PIMOE_OPT_SHARED_WIDTH > 0
 *   "shared.down.weight"          [H, Is]  only with PIMOE_OPT_SHARED_WIDTH > 0
 *   "shared.score.weight"         [1, H]   only with PIMOE_OPT_SHARED_GATE
 *   "combine.q.weight"            [d_c, H] only with COMBINE_ATTENTION_DIM = d_c > 0
 *   "combine.k.weight"            [d_c, H] only with COMBINE_ATTENTION_DIM > 0
 * </pre>
 * (The shared expert has no biases. A callback expert has no tensors.) */
PIMOE_API int64_t pimoe_tensor_count(const pimoe_model *model);
/** Name of tensor i, or NULL when i is out of range. Valid for the model's lifetime. */
PIMOE_API const char *pimoe_tensor_name(const pimoe_model *model, int64_t index);
/** Shape of a tensor: *ndim receives the rank (1 or 2), dims[0 .. rank-1] its extents; dims must hold 4 values. */
PIMOE_API pimoe_status pimoe_tensor_shape(const pimoe_model *model, const char *name, int32_t *ndim,
                                          int64_t dims[4]);
/** Copies a tensor's values (row-major fp32; a compact matrix dequantised) into out; count must equal the tensor's
 * element count. */
PIMOE_API pimoe_status pimoe_tensor_read(const pimoe_model *model, const char *name, float *out, size_t count);

#ifdef __cplusplus
}
#endif

#endif /* PIMOE_TENSORS_H */
