/* SPDX-License-Identifier: MIT */
/** \file
 * libpimoe public API: a model's statistics.
 *
 * Part of the public interface that <pimoe/pimoe.h> gathers (include that one); pimoe.h states the rules every call
 * follows (threading, ownership, errors, tensors). This header compiles alone as strict C99.
 */
#ifndef PIMOE_STATS_H
#define PIMOE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include <pimoe/pimoe_export.h>
#include <pimoe/pimoe_model.h>
#include <pimoe/pimoe_status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================= stats ============================================= */

/** A snapshot of a model's statistics since creation or the last pimoe_stats_reset(). Versioned by its first field:
 * set struct_size = sizeof(pimoe_stats_snapshot) before the call; fields only ever get appended, and the library
 * fills exactly the fields that fit in struct_size, so old and new programs both work.
 *
 * Loads count (token, expert) assignments that were computed (dropped ones excluded), summed over calls. With
 * l_i the load of expert i, L = sum l_i, mean m = L/E and sd the population standard deviation of the l_i:
 * <pre>
 *   load_cv                 = sd / m                             (0 when L = 0)
 *   load_max_violation      = (max_i l_i - m) / m                (0 when L = 0)
 *   load_jain_index         = L^2 / (E * sum l_i^2)               in [1/E, 1]; 1 when L = 0
 *   load_normalized_entropy = -sum p_i log p_i / log E, p_i = l_i/L (0*log 0 = 0; 1 when E = 1; 0 when L = 0)
 *   expert_utilization      = fraction of experts with l_i > 0
 *   routing_confidence      = mean over tokens of the top-1 router probability (at the temperature); with sigmoid
 *                             scores, of the unbiased score of the token's first chosen expert
 * </pre>
 * Losses of the LAST call (reported, never trained on), with p = softmax(z/tau) per token and T the call's tokens:
 * <pre>
 *   aux_loss = alpha * E * sum_i f_i * P_i, f_i = (number of the call's (token, slot) choices of expert i) / T
 *              (before capacity drops, as Hugging Face's load_balancing_loss_func), P_i = mean over tokens of p_i
 *              (with sigmoid scores, of s_i / sum_j s_j: the scores normalised per token)
 *   z_loss   = mean over tokens of (logsumexp(z))^2, z the raw router logits (no temperature)
 * </pre>
 * Latency is wall time inside pimoe_forward; percentiles are over the most recent 1024 calls (nearest-rank).
 * tokens_per_second = tokens / (sum of latencies): throughput of forward time, not of wall time between calls.
 * Quantisation error of the weights (fixed at creation or load; pimoe_stats_reset keeps it), over every expert and
 * shared-expert matrix the library quantised from fp32 values w into a compact WEIGHT_DTYPE (or an expert's own
 * format), deq(q(w)) being the stored value (what pimoe_tensor_read returns), the sums accumulated in double:
 * <pre>
 *   weight_quant_rel_rms_error = sqrt(sum (w - deq(q(w)))^2 / sum w^2)   (0 when nothing was lost)
 *   weight_quant_max_abs_error = max |w - deq(q(w))|
 * </pre>
 * w are the seeded weights of pimoe_create, or the values of an F32 (or BF16/F16, converted exactly) tensor of a
 * native file or checkpoint. Matrices held in fp32 take no part; a layer whose expert matrices are all fp32 reports
 * 0 for both. When any expert or shared-expert matrix arrives already quantised, the fp32 weights behind it are
 * unknown and both fields are NaN: a native file holding compact matrices (whatever WEIGHT_DTYPE loads it, fp32
 * included), an FP8 or MXFP4 checkpoint (with any WEIGHT_DTYPE). */
typedef struct pimoe_stats_snapshot {
  uint32_t struct_size;     /**< sizeof(pimoe_stats_snapshot), set by the caller */
  uint32_t num_experts;     /**< E, the model's routed experts */
  uint64_t forward_calls;   /**< forward calls that succeeded */
  uint64_t tokens;          /**< tokens of those calls (batch*seq, summed) */
  uint64_t dropped_tokens;  /**< (token, slot) assignments dropped by the capacity limit */
  double latency_last_ms;   /**< wall time of the last call, in milliseconds */
  double latency_mean_ms;   /**< mean wall time of a call */
  double latency_p50_ms;    /**< median wall time of the most recent 1024 calls */
  double latency_p95_ms;    /**< 95th percentile of the same */
  double latency_p99_ms;    /**< 99th percentile of the same */
  double tokens_per_second; /**< tokens / (sum of latencies) */
  uint64_t weight_bytes;    /**< memory held by weights, in the backend's layout (the CPU backend's packed GEMM pads
                               each matrix's rows to a multiple of 16; cpu_gemm "openblas" keeps them as loaded) */
  uint64_t workspace_bytes; /**< scratch memory currently held for reuse by forward calls */
  double expert_utilization;      /**< fraction of experts with a load (see above) */
  double load_cv;                 /**< coefficient of variation of the loads (see above) */
  double load_max_violation;      /**< the largest load's excess over the mean (see above) */
  double load_jain_index;         /**< Jain's fairness index of the loads (see above) */
  double load_normalized_entropy; /**< entropy of the load distribution over log E (see above) */
  double routing_confidence;      /**< mean top-1 router probability (see above) */
  double aux_loss;                /**< load-balancing loss of the last call (see above) */
  double z_loss;                  /**< router z-loss of the last call (see above) */
  double weight_quant_rel_rms_error; /**< see above; NaN when unknown (weights loaded already quantised) */
  double weight_quant_max_abs_error; /**< see above; NaN when unknown */
} pimoe_stats_snapshot;

/** Fills the first out->struct_size bytes of *out (struct_size must be at least 8 bytes: the first two fields). */
PIMOE_API pimoe_status pimoe_stats(const pimoe_model *model, pimoe_stats_snapshot *out);
/** Per-expert loads (see above) into counts[0 .. num_experts-1]; count must be >= num_experts. */
PIMOE_API pimoe_status pimoe_stats_expert_loads(const pimoe_model *model, uint64_t *counts, size_t count);
/** Clears every statistic. Safe while forwards run (they land before or after the reset, never half). */
PIMOE_API pimoe_status pimoe_stats_reset(pimoe_model *model);

#ifdef __cplusplus
}
#endif

#endif /* PIMOE_STATS_H */
