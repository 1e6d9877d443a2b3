/* SPDX-License-Identifier: MIT */
/** \file
 * libpimoe public API: the model (create, forward, routing, save, load, Hugging Face import).
 *
 * Part of the public interface that <pimoe/pimoe.h> gathers (include that one); pimoe.h states the rules every call
 * follows (threading, ownership, errors, tensors). This header compiles alone as strict C99.
 */
#ifndef PIMOE_MODEL_H
#define PIMOE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <pimoe/pimoe_export.h>
#include <pimoe/pimoe_options.h>
#include <pimoe/pimoe_status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================= model ============================================= */

/** A model: one routed MoE layer (its weights, settings, statistics and adaptive routing state), made by
 * pimoe_create(), pimoe_load() or pimoe_import_hf() and destroyed by pimoe_destroy(). Opaque. */
typedef struct pimoe_model pimoe_model;

/** Creates a model from options, weights initialised from PIMOE_OPT_SEED. options may be NULL (all defaults).
 * *out is set only on success; on failure pimoe_last_error() names the offending option. */
PIMOE_API pimoe_status pimoe_create(const pimoe_options *options, pimoe_model **out);
/** Destroys a model and everything it owns. NULL is a no-op. Must not race with other calls on the same model. */
PIMOE_API void pimoe_destroy(pimoe_model *model);

/** The last failure recorded on this model from any thread, or "". Valid until this thread's next pimoe_* call. */
PIMOE_API const char *pimoe_model_last_error(const pimoe_model *model);

/** Layer dimensions and routing settings of a model. Any out-pointer may be NULL. */
PIMOE_API pimoe_status pimoe_model_dims(const pimoe_model *model, int64_t *hidden, int32_t *num_experts,
                                        int32_t *top_k);
/** Resolved spec of one expert (after presets and overrides). Any out-pointer may be NULL. A callback expert
 * reports intermediate 0 and pre_norm 0. */
PIMOE_API pimoe_status pimoe_model_expert(const pimoe_model *model, int32_t expert, pimoe_activation *activation,
                                          int64_t *intermediate, int32_t *pre_norm);
/** Name of the backend this model runs on ("cpu", ...). Static string. */
PIMOE_API const char *pimoe_model_backend(const pimoe_model *model);

/** Runs the MoE layer on input [batch, seq, hidden] into output of the same shape.
 *   input_count and output_count are the buffers' element counts and must equal batch*seq*hidden.
 *   expert_ids / expert_weights (both NULL, or both non-NULL with routing_count == batch*seq*top_k elements)
 *   receive, per token t and slot j (index t*top_k + j, slots in descending router probability, or selection score
 *   with a selection bias), the chosen expert and the weight its output was combined with (routed experts only;
 *   the shared expert is not reported); a slot dropped by the capacity limit reports its expert with weight 0.
 *   With expert-choice routing there are num_experts slots per token: routing_count == batch*seq*
 *   pimoe_model_routing_slots() (see PIMOE_OPT_ROUTING_MODE); pimoe_forward_routing() also reports dropped flags and
 *   the router's probabilities.
 *   Every token is routed independently: one token's result does not depend on the others in the call, except
 *   through the capacity limit (when set), expert-choice routing (the whole call) and the attention router (the
 *   token's sequence); with adaptive bias or dynamic capacity it also depends on earlier calls.
 * Input with NaN or Inf is rejected (PIMOE_ERR_NON_FINITE_INPUT, naming the first bad element) before any work.
 * On failure the output and routing buffers may hold partial results; the model and its statistics are unchanged. */
PIMOE_API pimoe_status pimoe_forward(pimoe_model *model, const float *input, size_t input_count, int64_t batch,
                                     int64_t seq, float *output, size_t output_count, int32_t *expert_ids,
                                     float *expert_weights, size_t routing_count);

/** Routing slots per token in the routing outputs: top_k, or num_experts with expert-choice routing. 0 for NULL. */
PIMOE_API int64_t pimoe_model_routing_slots(const pimoe_model *model);

/** The full routing of one call (introspection). Versioned by its first field: set struct_size = sizeof(pimoe_routing);
 * fields may only be appended. Every pointer may be NULL (not wanted). With T = batch*seq,
 * S = pimoe_model_routing_slots():
 *   expert_ids, weights, dropped hold T*S elements each (slot_count must equal T*S when any is non-NULL): per token t
 *   and slot j (index t*S + j) the expert (-1 for an unused expert-choice slot), the weight its output was combined
 *   with (0 when dropped or unused; the attention combine's w' when on), and 1 when the capacity limit dropped it.
 *   probabilities holds T*E elements (probability_count must equal T*E when non-NULL): the router scores c of every
 *   token and expert (softmax p or sigmoid s, before any bias or group mask). */
typedef struct pimoe_routing {
  size_t struct_size;       /**< sizeof(pimoe_routing), set by the caller */
  int32_t *expert_ids;      /**< [T*S] the expert of each slot (-1: an unused expert-choice slot), or NULL */
  float *weights;           /**< [T*S] the weight each slot's output was combined with, or NULL */
  uint8_t *dropped;         /**< [T*S] 1 when the capacity limit dropped the slot, else 0; or NULL */
  size_t slot_count;        /**< elements of expert_ids, weights and dropped: T*S when any is non-NULL */
  float *probabilities;     /**< [T*E] the router scores c of every token and expert, or NULL */
  size_t probability_count; /**< elements of probabilities: T*E when it is non-NULL */
} pimoe_routing;

/** pimoe_forward with the full routing (routing may be NULL: same as pimoe_forward without routing outputs). */
PIMOE_API pimoe_status pimoe_forward_routing(pimoe_model *model, const float *input, size_t input_count, int64_t batch,
                                             int64_t seq, float *output, size_t output_count, pimoe_routing *routing);

/** Sets or replaces the callback of a callback expert (see pimoe_expert_fn), e.g. after pimoe_load. Errors:
 * PIMOE_ERR_INVALID_ARGUMENT when expert is not a callback expert of this model, PIMOE_ERR_NULL_POINTER for fn.
 * Must not race with pimoe_forward on the same model. */
PIMOE_API pimoe_status pimoe_model_set_expert_callback(pimoe_model *model, int32_t expert, pimoe_expert_fn fn,
                                                       void *user_data);

/** Restores the adaptive routing state to its value at creation or load: the selection bias of ADAPTIVE_BIAS_RATE and
 * the load average of DYNAMIC_CAPACITY. A no-op for a layer without them. Thread-safe. */
PIMOE_API pimoe_status pimoe_model_reset_adaptive_state(pimoe_model *model);

/** Saves a model to `path` in libpimoe's native format: a safetensors file whose "__metadata__" holds every
 * layer-defining setting (hidden, num_experts, top_k, temperature, renormalize, capacity_factor, aux_loss_coef,
 * layer_norm_eps, the router extensions and shared expert (router_scoring ... shared_gate, router_logit_bias,
 * swiglu_alpha and swiglu_limit, written when not at their defaults), and per expert: activation, width, pre_norm,
 * bias, and the storage formats when not fp32) and whose tensors are the model's weights, named as listed at
 * pimoe_tensor_count(): fp32, except expert and shared-expert matrices of a compact WEIGHT_DTYPE, written in their
 * format as the layer holds them (values, plus "<name>.scales" and "<name>.zeros" where the format has them).
 * docs/format.md documents the keys, the byte layouts and the validation rules. The file declares format version 1,
 * or 2 when a gated expert has biases (version 1 gave a SwiGLU expert with bias a down bias only: pimoe_load reads
 * such a file with zero gate and up biases).
 * The file appears only when complete (written next to it, then renamed); an existing file is replaced. It gets
 * the mode of any new file of the process (0666 less the umask: 0644 under umask 022).
 * Errors: PIMOE_ERR_IO (cannot create or write the file), with a message naming the file. */
PIMOE_API pimoe_status pimoe_save(const pimoe_model *model, const char *path);

/** Creates a model from a native file written by pimoe_save() (or by hand, following docs/format.md).
 *   - The layer comes from the file: hidden, num_experts, top_k, temperature, renormalize, capacity_factor,
 *     aux_loss_coef, layer_norm_eps, router_scoring, router_bias, routed_scaling_factor, num_groups, topk_groups,
 *     group_score, shared_width, shared_gate, router_logit_bias, swiglu_alpha, swiglu_limit, the routing features
 *     (routing_mode, group_levels, the attention router, adaptive_bias_rate, dynamic_capacity, capacity_momentum,
 *     combine_attention_dim; the adaptive state as saved), every expert's activation, width, pre_norm and bias, and
 *     which experts are callback slots (their functions are not saved: set them with pimoe_model_set_expert_callback).
 *     The same settings in `options` (and its per-expert overrides but pimoe_options_set_expert_weight_dtype's, and its
 *     callbacks) are ignored.
 *   - Runtime settings come from `options`: backend, threads, deterministic, cpu_gemm, activation_dtype, weight_dtype
 *     (seed is unused: the weights are the file's). options may be NULL: the defaults. deterministic with a file whose
 *     layer has adaptive routing or dynamic capacity fails with PIMOE_ERR_INVALID_OPTION, as pimoe_create would.
 *   - Storage formats: with WEIGHT_DTYPE "auto" (the default) every matrix keeps the file's format, its bytes used as
 *     stored; a format named by WEIGHT_DTYPE (with WEIGHT_GROUP_SIZE and WEIGHT_ZERO_POINT for int4) or by
 *     pimoe_options_set_expert_weight_dtype (for that expert, or every expert) that differs from the file's is
 *     made from the file's values dequantised to fp32. (An override for an expert the file lacks is ignored.)
 *   - Tensors stored as F32 load bit-exactly (save then load gives identical outputs), and so do matrices kept in
 *     their compact format (saving the loaded model writes the same bytes); BF16 and F16 fp32 tensors are converted
 *     to fp32.
 * The file is memory-mapped read-only and validated completely before anything is used (header size and JSON,
 * offsets, dtypes, shapes against the metadata, every required tensor present and no other, hyper-parameters in
 * range, weights finite, compact codes valid); then the weights are copied into the model (a matrix kept in its
 * compact format goes from the mapped file straight into the backend's form) and the file is unmapped.
 * Errors (the message names the file, and the tensor or metadata key): PIMOE_ERR_IO (missing, unreadable, a
 * symbolic link loop, not a regular file), PIMOE_ERR_FORMAT (malformed or inconsistent contents, not a native file;
 * a compact matrix whose scales, zero points, dtypes, packed shape or codes disagree with its format),
 * PIMOE_ERR_UNSUPPORTED (a newer format version, an fp32 tensor of a dtype other than F32/BF16/F16), and those of
 * pimoe_create() for the runtime options. *out is set only on success. The file must not be truncated by another
 * process while pimoe_load() runs. */
PIMOE_API pimoe_status pimoe_load(const char *path, const pimoe_options *options, pimoe_model **out);

/** Creates a model from the MoE block of decoder layer `layer` (0-based) of a Hugging Face checkpoint folder:
 * `checkpoint_dir` holds config.json and either model.safetensors or model.safetensors.index.json, whose
 * "weight_map" names the shard (a file in the same folder) of every tensor; only the shards holding the layer's
 * tensors are opened. config.json's "model_type" picks the family and its routing semantics:
 *
 * <pre>
 *   model_type    router                                               experts (SwiGLU, silu)   shared expert
 *   mixtral       softmax, top-k renormalised                          w1 = gate, w3 = up, w2    none
 *   qwen2_moe     softmax, renormalised iff norm_topk_prob (def. 0)    gate/up/down_proj         gated by sigmoid
 *   qwen3_moe     softmax, renormalised iff norm_topk_prob (def. 0)    gate/up/down_proj         none
 *   olmoe         softmax, renormalised iff norm_topk_prob (def. 0)    gate/up/down_proj         none
 *   deepseek_v2   softmax; topk_method greedy or group_limited_greedy  gate/up/down_proj         n_shared_experts
 *                 (group score = max); renormalised iff norm_topk_prob                           x moe_intermediate
 *                 and k > 1, else scaled by routed_scaling_factor
 *   deepseek_v3   sigmoid, e_score_correction_bias for selection,      gate/up/down_proj         n_shared_experts
 *                 n_group/topk_group (group score = sum of top 2),                                x moe_intermediate
 *                 renormalised iff norm_topk_prob, x routed_scaling_factor
 *   gpt_oss       router.weight + router.bias (ROUTER_LOGIT_BIAS), the  SWIGLU_OAI with biases:    none
 *                 softmax of the top-k logits (= softmax,               fused MXFP4 *_blocks/
 *                 renormalised); k = num_experts_per_tok (or            *_scales, gate = even rows
 *                 experts_per_token)                                    of gate_up, up = odd rows;
 *                                                                       swiglu_limit from config
 *                                                                       (def. 7), swiglu_alpha 1.702
 *   granitemoe    softmax of the top-k logits (= softmax,               fused: input_linear        none
 *                 renormalised)                                         [E, 2I, H], gate = rows
 *                                                                       [0, I), up = [I, 2I);
 *                                                                       output_linear [E, H, I]
 *   dbrx          softmax, top-k divided by their p-norm, p =           fused [E*I, H]: w1 = gate, none
 *                 ffn_config.moe_normalize_expert_weights: 1            v1 = up, w2 = down
 *                 (= renormalised, the default) or null (not)           transposed
 *   glm4_moe      as deepseek_v3 (noaux_tc, group score = sum of        gate/up/down_proj         n_shared_experts
 *                 top 2); norm_topk_prob def. 1, routed_scaling                                   x moe_intermediate
 *                 def. 1
 *   dots1         as glm4_moe, norm_topk_prob def. 0                    gate/up/down_proj         as glm4_moe
 *   ernie4_5_moe  softmax p; top-k of p + e_score_correction_bias       gate/up/down_proj         moe_num_shared_
 *                 (ROUTER_BIAS); weights p / their sum                                            experts (def. 2)
 *                                                                                                 x moe_intermediate
 *   hunyuan_v1_moe softmax, top-k renormalised; k = moe_topk, one       gate/up/down_proj,        shared_mlp, ungated,
 *                 value or one per layer                                width intermediate_size   intermediate_size
 *   jamba         softmax, top-k, not renormalised                      gate/up/down_proj         none
 *   qwen3_next    as qwen2_moe, norm_topk_prob def. 1                   gate/up/down_proj         gated by sigmoid
 *   minimax       softmax, top-k renormalised                           w1 = gate, w3 = up, w2    none
 *   minimax_m2    sigmoid s; top-k of s + e_score_correction_bias       w1 = gate, w3 = up, w2    none
 *                 (ROUTER_BIAS); weights s / their sum
 *   bailing_hybrid as deepseek_v3 (sigmoid, expert_bias for selection, gate/up/down_proj         num_shared_experts
 *                 num_expert_group/topk_group, moe_renormalize def. 1,                            x moe_intermediate
 *                 routed_scaling def. 2.5); layers whose SwiGLU clamp
 *                 (expert_swiglu_limit_list) is non-zero are refused
 *   phimoe        sparsemixer (SPARSEMIXER_EPS = router_jitter_noise,   w1 = gate, w3 = up, w2    none
 *                 def. 0.01): 2 experts, each weighted by the softmax
 *                 of the logits within 2 eps (relative) of it
 *   llama4_text   top-k of the logits, w = sigmoid(logit), not           fused: gate_up_proj         shared_expert,
 *   (llama4: its  renormalised; EXPERT_INPUT_SCALING: each chosen        [E, H, 2I] (x @ W: gate =   ungated,
 *   text_config,  expert runs on w * x, its output added                 columns [0, I), up =        intermediate_size
 *   tensors under unweighted                                             [I, 2I)), down_proj
 *   language_model.)                                                     [E, I, H]
 * </pre>
 *
 * Which layers are MoE layers follows each family's decoder layer: qwen2_moe, qwen3_moe, qwen3_next: not in
 * mlp_only_layers and (layer + 1) % decoder_sparse_step == 0; deepseek_v2/v3: layer >= first_k_dense_replace and
 * layer % moe_layer_freq == 0; glm4_moe (def. 1), dots1 (def. 0): layer >= first_k_dense_replace; ernie4_5_moe:
 * (layer + 1) % moe_layer_interval == 0 and moe_layer_start_index <= layer <= moe_layer_end_index (-1: the last);
 * jamba: layer % expert_layer_period == expert_layer_offset (and more than one expert); bailing_hybrid:
 * mlp_layer_types[layer] == "sparse", else layer >= first_k_dense_replace (def. 2); llama4_text / llama4: in
 * moe_layers, else (layer + 1) % interleave_moe_layer_step == 0; the others: every layer.
 *
 * A setting config.json may spell in several ways is read under every spelling the family's transformers config
 * class accepts (its attribute_map): the routed-expert count is num_local_experts or num_experts (mixtral, qwen3_moe,
 * olmoe, gpt_oss, jamba, hunyuan_v1_moe, minimax, minimax_m2), num_experts only (qwen2_moe, qwen3_next),
 * num_local_experts only (granitemoe), n_routed_experts or num_experts (deepseek_v2), n_routed_experts or
 * num_local_experts (deepseek_v3, glm4_moe, dots1), moe_num_experts or num_experts (ernie4_5_moe), num_experts or
 * num_local_experts (bailing_hybrid, whose top_k is num_experts_per_token or num_experts_per_tok, and whose shared
 * experts, groups and renormalisation are num_shared_experts, num_expert_group, moe_renormalize or DeepSeek's names),
 * ffn_config.moe_num_experts (dbrx); top_k is moe_k (ernie4_5_moe) or moe_topk (hunyuan_v1_moe) or
 * num_experts_per_tok, ffn_config.moe_top_k (dbrx); dbrx's hidden size is d_model or hidden_size and its layer count
 * n_layers or num_hidden_layers. Two spellings that disagree are PIMOE_ERR_FORMAT, and when none is present the
 * message names every key looked for.
 * The README's "Loading a Hugging Face MoE layer" lists the exact tensor names. Weights stored as F32 load exactly,
 * BF16 and F16 ones are converted to fp32. Pre-quantised checkpoints load as they ship, named by config.json's
 * quantization_config: "fp8" (fmt e4m3, weight_block_size [128, 128], activation_scheme dynamic: DeepSeek-V3,
 * Qwen3-FP8), whose expert and shared-expert matrices are F8_E4M3 with an F32 (or BF16/F16) weight_scale_inv
 * [ceil(out/128), ceil(in/128)], and "mxfp4" (gpt_oss only, which needs it). With WEIGHT_DTYPE "auto" (the default)
 * those matrices are held as fp8_e4m3 / mxfp4, copied from the file without an fp32 copy (their values are exactly
 * the checkpoint's dequantised ones; a matrix an fp8 checkpoint keeps in F32/BF16/F16 is rounded to fp8_e4m3); any
 * other WEIGHT_DTYPE dequantises each matrix, then stores it in that format. The router and biases are fp32. Runtime
 * settings come from `runtime_options` (backend, threads, deterministic, cpu_gemm, activation_dtype, weight_dtype,
 * weight_group_size, weight_zero_point; NULL: the defaults), every layer setting from config.json (capacity_factor is
 * 0: dropless; aux_loss_coef is config.json's router_aux_loss_coef, else 1.0). A gpt_oss layer runs on the cpu
 * backend only, a compact format on the cpu, cuda and vulkan backends (another backend refuses them with
 * PIMOE_ERR_UNSUPPORTED).
 * Errors (the message names the file, and the config key or tensor): PIMOE_ERR_IO (no such folder, no config.json,
 * neither model.safetensors nor an index, an unreadable shard, any of these files not a regular file: a directory,
 * FIFO or device), PIMOE_ERR_FORMAT (config.json or the index larger than 64 MiB, invalid JSON, a missing or
 * mistyped config key, a missing tensor, a tensor whose shape contradicts config.json, a non-finite weight, a
 * malformed safetensors file; quantised: missing scales, scales whose shape contradicts their matrix, an fp8 NaN
 * code, a NaN or E8M0 0xff scale, a scale whose values overflow fp32), PIMOE_ERR_UNSUPPORTED (an unknown
 * model_type, hidden_act (dbrx: ffn_config.ffn_act_fn.name) other than silu, an unsupported topk_method or
 * scoring_func, dbrx's moe_normalize_expert_weights other than 1 or null, ernie4_5_moe's use_bias true, a
 * quantization_config other
 * than the two above (another quant_method, fmt, weight_block_size or activation_scheme; gpt_oss without mxfp4), a
 * tensor dtype other than F32/BF16/F16 and the quantised ones above), PIMOE_ERR_INVALID_ARGUMENT
 * (layer out of range, or a dense layer by the rules above; the message states the rule with its values and lists
 * the checkpoint's MoE layers), and those of pimoe_create() for the runtime options.
 * *out is set only on success. */
PIMOE_API pimoe_status pimoe_import_hf(const char *checkpoint_dir, int32_t layer, const pimoe_options *runtime_options,
                                       pimoe_model **out);

/* ============================================ pruning ============================================ */

/** What pimoe_prune() removes. */
typedef enum pimoe_prune_method {
  /** Routed experts with the least routing mass on the calibration tokens (the sum of the weights the router gave
   * each expert over every token and slot, dropped assignments excluded); ties drop the higher index. */
  PIMOE_PRUNE_EXPERTS_BY_MASS = 0,
  /** Routed experts chosen at random from `seed` (the baseline the routing-mass rule is measured against). */
  PIMOE_PRUNE_EXPERTS_RANDOM = 1,
  /** In every routed expert, the intermediate channels (rows of gate and up, columns of down, entries of the gate
   * and up biases) whose weight norm is smallest: channel j scores |gate_j| * |up_j| * |down_:,j| (|up_j| * |down_:,j|
   * for ungated experts), Euclidean norms; ties drop the higher index. Experts keep at least one channel. */
  PIMOE_PRUNE_CHANNELS_BY_NORM = 2
} pimoe_prune_method;

/** What pimoe_prune() did. Versioned like pimoe_stats_snapshot: the caller sets struct_size to
 * sizeof(pimoe_prune_report) of its header; fields are only ever appended. */
typedef struct pimoe_prune_report {
  uint32_t struct_size;          /**< sizeof(pimoe_prune_report), set by the caller */
  int32_t experts_before;        /**< routed experts of `model` */
  int32_t experts_after;         /**< routed experts of the copy */
  int64_t channels_before;       /**< the routed experts' intermediate widths, summed, in `model` */
  int64_t channels_after;        /**< the same in the copy */
  uint64_t weight_bytes_before;  /**< `model`'s weight bytes, as pimoe_stats reports them */
  uint64_t weight_bytes_after;   /**< the copy's */
  /** RMS(copy's output - model's output) / RMS(model's output) over the calibration tokens (0 when both are 0). */
  double output_error;
} pimoe_prune_report;

/** Makes a pruned copy of `model` (offline and deterministic: the same model, arguments and calibration give the same
 * pruned layer): the fraction `fraction` (in (0, 1)) of the routed experts, rounded to the nearest count and at least
 * one, or of each routed expert's channels, is removed as `method` says, and the rest is copied exactly (a compact
 * matrix keeps its codes). Dropping experts renumbers the others in order and removes their router rows (and their
 * router.bias, router.selection_bias and router.load_ema entries): the softmax then spreads each token's probability
 * over the experts that remain. The copy runs on the same backend with the same runtime settings; pimoe_save() writes
 * it like any model, and saving is how a pruned layer is kept.
 * `calibration` holds `tokens` rows of H floats (calibration_count = tokens * H). They run once through `model` (an
 * ordinary forward call: it counts in the model's statistics and moves an adaptive layer's state) and once through the
 * copy, for the routing mass and for report->output_error. report may be NULL.
 * Errors: PIMOE_ERR_NULL_POINTER (model, calibration or out NULL), PIMOE_ERR_INVALID_ARGUMENT (fraction outside (0,
 * 1); tokens < 1 or calibration_count != tokens * H; a non-finite calibration value; an unknown method; dropping
 * experts would leave fewer than top_k; report->struct_size below the first version's), PIMOE_ERR_UNSUPPORTED
 * (dropping experts from a layer with group-limited routing (num_groups > 1 or group_levels), whose groups it would
 * break, or with callback experts; dropping channels from a layer whose routed experts hold int8, int4, fp8_e4m3 or
 * mxfp4, whose scales cover the channels together), and those of pimoe_create(). *out and *report are written only on
 * success. */
PIMOE_API pimoe_status pimoe_prune(pimoe_model *model, pimoe_prune_method method, double fraction, uint64_t seed,
                                   const float *calibration, size_t calibration_count, int64_t tokens,
                                   pimoe_model **out, pimoe_prune_report *report);

#ifdef __cplusplus
}
#endif

#endif /* PIMOE_MODEL_H */
