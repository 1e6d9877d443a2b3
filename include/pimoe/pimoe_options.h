/* SPDX-License-Identifier: MIT */
/** \file
 * libpimoe public API: options (activations, expert presets, every option key with its semantics, setters, callback
 * experts).
 *
 * Part of the public interface that <pimoe/pimoe.h> gathers (include that one); pimoe.h states the rules every call
 * follows (threading, ownership, errors, tensors). This header compiles alone as strict C99.
 */
#ifndef PIMOE_OPTIONS_H
#define PIMOE_OPTIONS_H

#include <stdint.h>

#include <pimoe/pimoe_export.h>
#include <pimoe/pimoe_status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================ options ============================================ */

/** Activation functions of an expert FFN: y = down(act(up(x))), or gated (SWIGLU, SWIGLU_OAI): y = down(glu(gate(x),
 * up(x))), with gate(x) = W_gate x (+ b_gate), up(x) = W_up x (+ b_up) (biases with PIMOE_OPT_EXPERT_BIAS). */
typedef enum pimoe_activation {
  PIMOE_ACT_GELU = 0,      /**< x/2 * (1 + erf(x/sqrt(2)))            (PyTorch GELU(approximate='none')) */
  PIMOE_ACT_GELU_TANH = 1, /**< x/2 * (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))   (approximate='tanh') */
  PIMOE_ACT_SILU = 2,      /**< x * sigmoid(x) */
  PIMOE_ACT_RELU = 3,      /**< max(x, 0) */
  PIMOE_ACT_TANH = 4,      /**< tanh(x) */
  PIMOE_ACT_SWIGLU = 5,    /**< gated: silu(gate(x)) * up(x); the expert has a third projection "gate" */
  PIMOE_ACT_SWIGLU_OAI = 6 /**< gated and clamped, gpt-oss's (named as ggml's swiglu_oai): with a = SWIGLU_ALPHA and
                              L = SWIGLU_LIMIT, g = min(gate(x), L), u = clamp(up(x), -L, L),
                              glu = (u + 1) * g * sigmoid(a * g) */
} pimoe_activation;

/** Named expert presets (the wishlist's expert types). Each is a fixed (activation, width, pre-LayerNorm) triple;
 * "width" is a multiple of the layer's intermediate size (PIMOE_OPT_INTERMEDIATE):
 *
 * <pre>
 *   preset         activation    width   pre-LayerNorm   why
 *   GENERIC        layer default  1x     layer default   whatever PIMOE_OPT_ACTIVATION / PIMOE_OPT_PRE_NORM say
 *   REASONING      GELU (erf)     1x     yes             normalised input, smooth activation (BERT/GPT-2 block)
 *   COMPUTATION    GELU (erf)     2x     no              the "wider" expert: twice the FLOPs and capacity
 *   MATHEMATICAL   SiLU           1x     no              smooth, non-saturating, unbounded above
 *   LOGICAL        tanh           1x     no              saturating, sign-like responses
 *   LANGUAGE       SwiGLU         1x     no              the gated FFN of current language models (Llama, Mixtral)
 *   CREATIVE       GELU (tanh)    1x     yes             the approximate GELU of GPT-2 with a normalised input
 *   ANALYTICAL     ReLU           1x     yes             sparse, piecewise-linear responses on a normalised input
 * </pre>
 */
typedef enum pimoe_expert_preset {
  PIMOE_PRESET_GENERIC = 0,
  PIMOE_PRESET_REASONING = 1,
  PIMOE_PRESET_COMPUTATION = 2,
  PIMOE_PRESET_MATHEMATICAL = 3,
  PIMOE_PRESET_LOGICAL = 4,
  PIMOE_PRESET_LANGUAGE = 5,
  PIMOE_PRESET_CREATIVE = 6,
  PIMOE_PRESET_ANALYTICAL = 7
} pimoe_expert_preset;

/** Layer-wide option keys. Each key has one type; setting it through the wrong typed setter is
 * PIMOE_ERR_INVALID_OPTION. New keys are only ever appended. The same options are settable by name (the name is
 * given in quotes) through pimoe_options_set_by_name(), which parses the value from a string.
 *
 * \code{.unparsed}
 *   key                          type    default   meaning
 *   HIDDEN "hidden"              int     512       model width H (1 .. 65536)
 *   NUM_EXPERTS "num_experts"    int     8         routed experts E (1 .. 4096)
 *   TOP_K "top_k"                int     2         experts per token k (1 .. E)
 *   INTERMEDIATE "intermediate"  int     2048      expert FFN width I (1 .. 262144); presets scale it
 *   ACTIVATION "activation"      int     GELU      pimoe_activation of GENERIC experts; by name: "gelu",
 *                                                  "gelu_tanh", "silu", "relu", "tanh", "swiglu", "swiglu_oai"
 *   SWIGLU_ALPHA "swiglu_alpha"  float   1.702     a of SWIGLU_OAI experts (1e-6 .. 1e6; gpt-oss's value)
 *   SWIGLU_LIMIT "swiglu_limit"  float   7.0       L of SWIGLU_OAI experts (1e-6 .. 1e6; gpt-oss's swiglu_limit)
 *   PRE_NORM "pre_norm"          int     0         1: GENERIC experts apply LayerNorm (eps below) to their input
 *   EXPERT_BIAS "expert_bias"    int     0         1: expert projections have bias vectors: up and down, and gate
 *                                                  too for gated experts (SWIGLU, SWIGLU_OAI; gpt-oss's experts).
 *                                                  GPU backends refuse a gated expert with biases and SWIGLU_OAI
 *                                                  (PIMOE_ERR_UNSUPPORTED): they run on the cpu backend
 *   TEMPERATURE "temperature"    float   1.0       router softmax temperature tau > 0: p = softmax(z / tau)
 *   RENORMALIZE "renormalize"    int     1         1: the k chosen weights are divided by their sum (Mixtral);
 *                                                  0: raw softmax probabilities (Qwen2-MoE, OLMoE)
 *   CAPACITY_FACTOR "capacity_factor" float 0.0    0: dropless. cf > 0: each expert takes at most
 *                                                  C = ceil(T*k*cf/E) (token, slot) assignments per call, T the
 *                                                  call's tokens; assignments are admitted first-choice-first (all
 *                                                  tokens' 1st choice in token order, then all 2nd choices, ...);
 *                                                  an assignment past C is dropped: it adds 0 to the output
 *                                                  (the kept weights are not renormalised) and is counted.
 *   AUX_LOSS_COEF "aux_loss_coef" float  1.0       alpha in the reported aux loss (see pimoe_stats_snapshot)
 *   LAYER_NORM_EPS "layer_norm_eps" float 1e-5     epsilon of the experts' LayerNorm
 *   SEED "seed"                  int     0         seed of the deterministic weight initialisation (see below)
 *   THREADS "threads"            int     0         CPU worker threads for this model; 0 = the machine's cores
 *                                                  (large host passes, the NaN/Inf check of a large input and a
 *                                                  GPU backend's staging copies, run on up to min(threads, 12)
 *                                                  threads; 12 when threads is 0)
 *   BACKEND "backend"            string  "auto"    "auto", "cpu", "cuda", "vulkan" or "vulkan:N"; "auto" picks the
 *                                                  best usable one and never a software Vulkan device
 *   DETERMINISTIC "deterministic" int  0         1: promise that a token's output bits depend neither on the other
 *                                                  tokens in the call nor on the thread count; creation fails if the
 *                                                  chosen GEMM cannot keep it. The CPU backend's packed GEMM always
 *                                                  keeps it; OpenBLAS's rounding depends on the number of rows.
 *   CPU_GEMM "cpu_gemm"          string  "packed"  the CPU backend's GEMM: "packed" (weights packed once at load for
 *                                                  libpimoe's own micro-kernels, all experts' tiles on the model's
 *                                                  thread pool; the fast default) or "openblas" (one cblas_sgemm per
 *                                                  expert and projection on the weights as loaded; needs a build
 *                                                  with OpenBLAS, and OpenBLAS's own threads)
 *   ROUTER_SCORING "router_scoring" string "softmax"  the router's scores from the logits z = W_g x:
 *                                                  "softmax": p = softmax(z/tau) (the formulas above);
 *                                                  "sigmoid": s_i = sigmoid(z_i/tau) (DeepSeek-V3)
 *   ROUTER_BIAS "router_bias"    int     0         1: a per-expert selection bias b (tensor "router.selection_bias"):
 *                                                  experts are SELECTED by score + b and WEIGHTED by the unbiased
 *                                                  score (DeepSeek-V3's e_score_correction_bias)
 *   ROUTER_LOGIT_BIAS "router_logit_bias" int 0    1: the router's nn.Linear has a bias c (tensor "router.bias" [E],
 *                                                  gpt-oss): the logits are z = W_g x + c, so c moves the scores
 *                                                  that experts are both selected and weighted by (and z_loss's z).
 *                                                  Combines with every other router option.
 *   ROUTED_SCALING "routed_scaling_factor" float 1.0  the final routed weights are multiplied by it (1e-6 .. 1e6)
 *   NUM_GROUPS "num_groups"      int     1         group-limited routing: the experts form G equal groups of
 *                                                  consecutive indices (E % G == 0); 1 = off
 *   TOPK_GROUPS "topk_groups"    int     1         groups kept per token (1 .. G); top-k is taken among the kept
 *                                                  groups' experts only, so k <= (E/G) * topk_groups
 *   GROUP_SCORE "group_score"    string "top2_sum" a group's score from its experts' selection scores (score + b):
 *                                                  "top2_sum": the sum of its 2 best (DeepSeek-V3; its best alone
 *                                                  when groups have one expert); "max": its best (DeepSeek-V2)
 *   SHARED_WIDTH "shared_width"  int     0         0: no shared expert; Is > 0: one always-on SwiGLU expert of width
 *                                                  Is on every token (no pre-norm, no biases, unaffected by capacity)
 *   SHARED_GATE "shared_gate"    int     0         1: the shared expert's output is scaled by sigmoid(w . x), w the
 *                                                  tensor "shared.score.weight" (Qwen2-MoE); needs shared_width > 0
 *   WEIGHT_DTYPE "weight_dtype"  string  "auto"    storage of the expert and shared-expert matrices (the router,
 *                                                  biases and norms stay fp32). A runtime setting like BACKEND: it
 *                                                  also applies to pimoe_load / pimoe_import_hf, which quantise on
 *                                                  load. "auto": fp32 for pimoe_create, the file's formats for
 *                                                  pimoe_load, the checkpoint's for pimoe_import_hf (fp8_e4m3 or
 *                                                  mxfp4 where it ships them, else fp32). The formats, each value
 *                                                  rounded to nearest (ties to even), deterministic:
 *                                                  "fp32".
 *                                                  "bf16", "fp16": 2 bytes a value.
 *                                                  "int8": q in [-127, 127] per element, one fp32 scale per output
 *                                                    row s = max|w|/127; value q*s. Error <= s/2 per element.
 *                                                  "int4": groups of WEIGHT_GROUP_SIZE elements along the input
 *                                                    dimension, one fp16 scale each: symmetric s = max|w|/7,
 *                                                    q in [-8, 7], value q*s; or with WEIGHT_ZERO_POINT, over
 *                                                    [min(w, 0), max(w, 0)]: s = range/15, zero point z in [0, 15],
 *                                                    u in [0, 15], value (u - z)*s. Error <= s/2 per element
 *                                                    (scales saturate at fp16's largest finite value).
 *                                                  "fp8_e4m3": e4m3fn values with one fp32 scale per 128x128 block
 *                                                    (DeepSeek-V3's weight_scale_inv): s = max|w|/448, value
 *                                                    e4m3(w/s)*s; relative error <= 2^-4 for normal values.
 *                                                  "mxfp4": OCP MX FP4 (gpt-oss): E2M1 values (0, 0.5, 1, 1.5, 2,
 *                                                    3, 4, 6 and negatives) with one power-of-two scale per 32
 *                                                    elements, 2^(floor(log2(max|w|)) - 2); values past 6 times
 *                                                    the scale saturate (the OCP rule).
 *                                                  The CPU backend holds every format at its size and computes in
 *                                                  fp32 with each value dequantised in registers (int8 and int4:
 *                                                  with ACTIVATION_DTYPE "fp32"; by default they multiply int8
 *                                                  activations, see there): a layer's output is bitwise that of
 *                                                  the fp32 layer whose weights are the dequantised values, which
 *                                                  pimoe_tensor_read returns. CUDA holds
 *                                                  every format at its size (one per layer) and computes in fp32
 *                                                  on the same dequantised values (ACTIVATION_DTYPE does not apply
 *                                                  there), and so does Vulkan. docs/format.md
 *                                                  gives the byte layouts.
 *                                                  (CPU_GEMM "openblas" takes fp32 only.) Every backend computes
 *                                                  with the same weight values, in fp32, except on the GPU
 *                                                  backends' tensor cores:
 *                                                  - CUDA (bf16/fp16 weights, H and every width a multiple of 8;
 *                                                    calls of more than 16 tokens, calls whose experts expect at
 *                                                    least 4 rows each (tokens * top_k >= 4 * experts) on compute
 *                                                    capability 9.0, every call in deterministic mode) rounds the
 *                                                    activations and the hidden layer to the weight type (fp32
 *                                                    accumulation): within 1e-2 of the output RMS, not 1e-5.
 *                                                  - Vulkan (fp16 weights, calls of more than 8 tokens, not in
 *                                                    deterministic mode, devices with VK_NV_cooperative_matrix)
 *                                                    rounds the activations and the hidden layer to fp16 (fp32
 *                                                    accumulation): within 1e-2 of the output RMS, not 1e-5.
 *                                                    The environment variable PIMOE_VULKAN_TILES=coopmat-split
 *                                                    (read when a model is made) multiplies each activation as
 *                                                    two fp16 parts instead (about 21 significant bits), at about
 *                                                    1.5x the time.
 *                                                  On both, activations beyond +-65504 overflow to inf with fp16
 *                                                  weights.
 *   WEIGHT_GROUP_SIZE "weight_group_size" int 32   int4's group: 32, 64 or 128 elements per scale.
 *   WEIGHT_ZERO_POINT "weight_zero_point" int 0    1: int4 groups carry a zero point (asymmetric); 0: symmetric.
 *   ACTIVATION_DTYPE "activation_dtype" string "auto"  what the CPU backend multiplies int8 and int4 expert
 *                                                  matrices with (other formats, other backends and the shared
 *                                                  expert always use fp32 activations). A runtime setting like
 *                                                  BACKEND (not saved). "auto": "int8".
 *                                                  "fp32": fp32 arithmetic on the dequantised weights (bitwise
 *                                                    the fp32 layer of those weights, as above).
 *                                                  "int8": each input row of an expert matrix (the layer input,
 *                                                    then the hidden layer) is quantised to int8 in blocks of 32
 *                                                    (ggml's Q8_0 granularity): a ~= q * m/127, q =
 *                                                    round(a * 127/m), m = max|a| over the block; the codes are
 *                                                    multiplied with exact integer sums per block (AVX2
 *                                                    vpmaddubsw), the scales applied in fp32. Each activation is
 *                                                    off by at most m/254, so an output of one matrix by at most
 *                                                    sum over blocks of (m/254) * sum_k |w_k|. Over whole layers
 *                                                    the largest error measured is 4e-2 of the output RMS; the
 *                                                    tests pin 6e-2.
 *
 * Routing features (docs/design.md, "The math"; all off by default, all saved by pimoe_save with the layer):
 *   ROUTING_MODE "routing_mode"  string "token_choice"  "token_choice": each token picks its k experts (above).
 *                                                  "expert_choice" (Zhou et al. 2022): scores c[t][e] (softmax over
 *                                                  experts of z/tau, or sigmoid) for the T tokens of the call; each
 *                                                  expert takes the C = min(T, ceil(T*cf/E)) tokens of largest
 *                                                  c[t][e] (ties to the lower token), cf = CAPACITY_FACTOR, or
 *                                                  top_k when it is 0 (same compute as top-k). A token gets 0..E
 *                                                  experts, weight c[t][e] * routed_scaling_factor (RENORMALIZE does
 *                                                  not apply); every expert gets exactly C tokens. NOT causal: a
 *                                                  token's experts depend on every other token in the call. The
 *                                                  routing outputs have E slots per token
 *                                                  (pimoe_model_routing_slots): the token's experts by descending
 *                                                  weight (ties to the lower expert),
 *                                                  then unused slots (expert -1, weight 0). Not combinable with
 *                                                  ROUTER_BIAS, groups, ADAPTIVE_BIAS_RATE or DYNAMIC_CAPACITY.
 *   GROUP_LEVELS "group_levels"  string ""         multi-level group-limited routing, "G1:K1,G2:K2,...": level 1
 *                                                  splits the experts into G1 groups of consecutive indices and
 *                                                  keeps the K1 best; level l splits every group kept at level l-1
 *                                                  into G_l subgroups of consecutive experts and keeps the K_l best of
 *                                                  all those K_(l-1)*G_l subgroups. A (sub)group's score is
 *                                                  GROUP_SCORE of its experts' selection scores q; ties go to the
 *                                                  group with the lower first expert. Experts outside the last kept
 *                                                  groups get q = -inf. Needs E % (G1*G2*...) == 0, K1 <= G1,
 *                                                  K_l <= K_(l-1)*G_l, k <= K_last*E/(G1*G2*...); "G:K" alone equals
 *                                                  NUM_GROUPS = G, TOPK_GROUPS = K (which must then stay 1).
 *   ATTENTION_HEADS "router_attention_heads" int 0  attention router: nh > 0 heads of self-attention over each
 *                                                  sequence of the call (the `seq` tokens of one batch row) give a
 *                                                  context u_t = W_o concat_h(sum_j a_h[t][j] v_h[j]), with
 *                                                  q_h = W_q,h x, k_h = W_k,h x, v_h = W_v,h x (tensors
 *                                                  "router.attention.{q,k,v}.weight" [nh*dh, H] and
 *                                                  "router.attention.o.weight" [H, nh*dh], head h = rows h*dh..),
 *                                                  a_h[t][.] = softmax over j of q_h[t].k_h[j] / sqrt(dh) (j <= t
 *                                                  when causal). The router logits are z = W_g (x + u). A token's
 *                                                  route therefore depends on its neighbours within its sequence in
 *                                                  the call (DETERMINISTIC still holds per sequence).
 *   ATTENTION_HEAD_DIM "router_attention_head_dim" int 16  dh, the attention router's head width
 *   ATTENTION_CAUSAL "router_attention_causal" int 0  1: token t attends to tokens 0..t of its sequence only
 *   ADAPTIVE_BIAS_RATE "adaptive_bias_rate" float 0 auxiliary-loss-free balancing (arXiv 2408.15664): u > 0 turns
 *                                                  ROUTER_BIAS on and, after each forward call, updates
 *                                                  b_i += u * sign(mean(c) - c_i), c_i the call's kept assignments
 *                                                  of expert i. Outputs then depend on the call history (calls are
 *                                                  serialised for the update only). The bias is saved with the model;
 *                                                  pimoe_model_reset_adaptive_state() restores its value at
 *                                                  creation/load.
 *   DYNAMIC_CAPACITY "dynamic_capacity" int 0     1 (needs CAPACITY_FACTOR > 0): the call's S = E*C slots (C as for
 *                                                  static capacity) are re-budgeted per expert from a moving average
 *                                                  m (tensor "router.load_ema" [E], starts at 1/E) of observed demand:
 *                                                  C_i = floor(S*m_i/sum(m) + 1e-9), the S - sum C_i remaining slots
 *                                                  one each to the experts of largest fractional part S*m_i/sum(m) -
 *                                                  C_i (ties to the lower index); admission as for static capacity.
 *                                                  After the call m_i = beta*m_i + (1-beta)*d_i, d_i = (assignments
 *                                                  that chose expert i, dropped or not) / (T*k). Saved with the
 *                                                  model; pimoe_model_reset_adaptive_state() sets m back to 1/E.
 *   CAPACITY_MOMENTUM "capacity_momentum" float 0.9  beta of DYNAMIC_CAPACITY, in [0, 1)
 *   COMBINE_ATTENTION_DIM "combine_attention_dim" int 0  cross-expert attention combine: d_c > 0 recomputes each
 *                                                  token's combine weights from attention between the token and
 *                                                  its experts' outputs o_j: q = W_q x, k_j = W_k o_j (tensors
 *                                                  "combine.q.weight", "combine.k.weight" [d_c, H]),
 *                                                  w'_j = softmax over the slots with w_j > 0 of
 *                                                  (q.k_j / sqrt(d_c) + log w_j); y = sum_j w'_j o_j + shared.
 *                                                  The routing outputs report w'. o_j includes the expert's biases.
 *                                                  w' sums to 1 over a token's kept slots, so routed_scaling_factor
 *                                                  and RENORMALIZE have no effect on the output with it.
 *   EXPERT_INPUT_SCALING "expert_input_scaling" int 0  1: each routed expert takes its token SCALED by the slot's
 *                                                  routing weight and its output is added unweighted:
 *                                                  y = sum_j expert_j(w_j * x) + g(x) * shared(x) (Llama 4's MoE:
 *                                                  sigmoid top-1, routed_in = x * score). Every routing option
 *                                                  applies to w_j as above; the routing outputs report w_j. Not
 *                                                  with COMBINE_ATTENTION_DIM or callback experts.
 *   SPARSEMIXER_EPS "sparsemixer_eps" float 0     > 0: sparsemixer routing at inference (Phi-3.5-MoE, its
 *                                                  router_jitter_noise eps; 0 = off; up to 1e6). With s = z/tau:
 *                                                  expert 1 = argmax s (m1 = its s), weight 1 = e^(m1) / sum of
 *                                                  e^(s_j) over the j with (m1 - s_j) / max(|s_j|, m1) <= 2 eps;
 *                                                  expert 2 = argmax of s without expert 1 (m2), weight 2 =
 *                                                  e^(m2) / sum of e^(s_j) over the j != expert 1 with
 *                                                  (m2 - s_j) / max(|s_j|, m2) <= 2 eps (the mask in fp32, as
 *                                                  transformers); ties to the lower index; weights then x
 *                                                  routed_scaling_factor (RENORMALIZE does not apply). Needs
 *                                                  top_k 2, softmax scoring, token choice, no selection bias and
 *                                                  no groups.
 * \endcode
 * Callback experts (pimoe_options_set_expert_callback) are routed like any expert; see pimoe_expert_fn.
 *
 * Experimental options (keys 1000 and up, names "experimental.*"): backend tuning knobs for comparisons, and a way
 * out should a kernel misbehave somewhere. EXPERIMENTAL: any of them may change or disappear in any release (a key
 * a release no longer knows fails with PIMOE_ERR_UNKNOWN_OPTION); the bindings reach them through the generic and
 * by-name setters only. Runtime settings like BACKEND (also taken by pimoe_load / pimoe_import_hf, never saved);
 * the other backends ignore them. Each was an environment variable first: the variable, when set to a non-empty
 * value, OVERRIDES the option (existing scripts keep working), read when a model is created or loaded; a value the
 * option would reject is ignored (a number is the non-negative number it starts with; "0" turns a 0/1 knob off and
 * any other value on).
 * <pre>
 *   EXPERIMENTAL_CUDA_NO_WGMMA "experimental.cuda_no_wgmma" int 0   env PIMOE_CUDA_NO_WGMMA. 1: CUDA keeps the
 *                                                  mma.sync grouped GEMM on compute capability 9.0 instead of the
 *                                                  Hopper wgmma one
 *   EXPERIMENTAL_CUDA_STREAM_TOKENS "experimental.cuda_stream_tokens" int 1   env PIMOE_CUDA_STREAM_TOKENS. CUDA
 *                                                  calls of at most this many tokens take the streaming GEMV kernel
 *                                                  (0 .. 2147483647)
 *   EXPERIMENTAL_CUDA_DECODE_GEMM_ROWS "experimental.cuda_decode_gemm_rows" float 4.0   env
 *                                                  PIMOE_CUDA_DECODE_GEMM_ROWS. A decode-sized CUDA call whose
 *                                                  experts expect at least this many rows each (tokens * top_k /
 *                                                  experts) takes the wgmma grouped GEMM; 0: never (0 .. 1e9)
 *   EXPERIMENTAL_VULKAN_COOPMAT_N "experimental.vulkan_coopmat_n" string "auto"   env PIMOE_VULKAN_COOPMAT_N.
 *                                                  Fragment width of Vulkan's tensor-core kernels: "auto" (16 where
 *                                                  the device has it), "8" or "16" (where the device has it). Per
 *                                                  device: it counts only when the process first opens the device
 *   EXPERIMENTAL_VULKAN_VALIDATION "experimental.vulkan_validation" string "off"   env PIMOE_VULKAN_VALIDATION
 *                                                  ("0": "off", "sync": "sync", else "on"). "on": the Khronos
 *                                                  validation layer, messages on stderr; "sync": with
 *                                                  synchronisation validation. Process-wide: it counts only when
 *                                                  the process's Vulkan instance is made (its first Vulkan use)
 *   EXPERIMENTAL_VULKAN_ROUTING "experimental.vulkan_routing" string "auto"   env PIMOE_VULKAN_ROUTING ("host":
 *                                                  "host", else "auto"). "host": Vulkan never takes the fused
 *                                                  on-device routing path
 *   EXPERIMENTAL_VULKAN_TILES "experimental.vulkan_tiles" string "auto"   env PIMOE_VULKAN_TILES. Vulkan's GEMM:
 *                                                  "auto" (the tensor cores where WEIGHT_DTYPE says), "small" /
 *                                                  "large" (always FMA tiles of that size), "fma" (the default
 *                                                  without tensor cores), "coopmat" / "coopmat-split" (the
 *                                                  tensor-core GEMM for every call it can run: the default tiles /
 *                                                  activations as two fp16 parts), or for comparison "coopmat-h8",
 *                                                  "coopmat-y", "coopmat-v", "coopmat-xh", "coopmat-wh",
 *                                                  "coopmat-x", "coopmat-fp16", "coopmat-n", "coopmat-w",
 *                                                  "coopmat-p1" (backends/vulkan/README.md)
 *   EXPERIMENTAL_VULKAN_PROFILE "experimental.vulkan_profile" int 0   env PIMOE_VULKAN_PROFILE. 1: Vulkan prints
 *                                                  the GPU time of every step of a call, per model, when the model
 *                                                  is destroyed
 * </pre>
 *
 * Routing of one token, in full: logits z = W_g x (+ c with ROUTER_LOGIT_BIAS); scores c_i (softmax p_i or sigmoid
 * s_i of z/tau); selection scores q_i = c_i + b_i (b = 0 without ROUTER_BIAS); with G > 1 groups, each group's score
 * from its q_i, the topk_groups best groups kept (ties to the lower group index) and q_i = -inf outside them; the k
 * experts of largest q_i are chosen (ties to the lower index), slots in descending q; slot weights w_j = c_(chosen j);
 * with RENORMALIZE w_j /= sum of the k chosen c (+ 1e-20 with sigmoid scores, as DeepSeek-V3); then
 * w_j *= routed_scaling_factor. The layer's output is y = sum_j w_j * expert_j(x) + g(x) * shared(x), expert_j(x)
 * including its down bias, shared(x) = down(silu(gate(x)) * up(x)), g = 1 or sigmoid(shared.score.weight . x). With
 * the defaults this is exactly the softmax top-k described above; softmax with RENORMALIZE is the softmax over the k
 * chosen logits (gpt-oss, Mixtral).
 *
 * Weight initialisation from SEED: every tensor is filled from its own stream of the SplitMix64 generator started at
 * seed XOR fnv1a64(tensor name); each 64-bit output u gives the float ((u >> 40) * 2^-24) in [0, 1), mapped to
 * U(-b, b) with b = 1/sqrt(fan_in) for linear weights and biases (as PyTorch's nn.Linear), and to
 * 1 + U(-0.1, 0.1) / U(-0.1, 0.1) for LayerNorm weight / bias. Same seed and options: same weights, on every
 * platform and backend. */
typedef enum pimoe_option {
  PIMOE_OPT_HIDDEN = 0,
  PIMOE_OPT_NUM_EXPERTS = 1,
  PIMOE_OPT_TOP_K = 2,
  PIMOE_OPT_INTERMEDIATE = 3,
  PIMOE_OPT_ACTIVATION = 4,
  PIMOE_OPT_PRE_NORM = 5,
  PIMOE_OPT_EXPERT_BIAS = 6,
  PIMOE_OPT_TEMPERATURE = 7,
  PIMOE_OPT_RENORMALIZE = 8,
  PIMOE_OPT_CAPACITY_FACTOR = 9,
  PIMOE_OPT_AUX_LOSS_COEF = 10,
  PIMOE_OPT_LAYER_NORM_EPS = 11,
  PIMOE_OPT_SEED = 12,
  PIMOE_OPT_THREADS = 13,
  PIMOE_OPT_BACKEND = 14,
  PIMOE_OPT_DETERMINISTIC = 15,
  PIMOE_OPT_CPU_GEMM = 16,
  PIMOE_OPT_ROUTER_SCORING = 17,
  PIMOE_OPT_ROUTER_BIAS = 18,
  PIMOE_OPT_ROUTED_SCALING = 19,
  PIMOE_OPT_NUM_GROUPS = 20,
  PIMOE_OPT_TOPK_GROUPS = 21,
  PIMOE_OPT_GROUP_SCORE = 22,
  PIMOE_OPT_SHARED_WIDTH = 23,
  PIMOE_OPT_SHARED_GATE = 24,
  PIMOE_OPT_WEIGHT_DTYPE = 25,
  PIMOE_OPT_ROUTING_MODE = 26,
  PIMOE_OPT_GROUP_LEVELS = 27,
  PIMOE_OPT_ATTENTION_HEADS = 28,
  PIMOE_OPT_ATTENTION_HEAD_DIM = 29,
  PIMOE_OPT_ATTENTION_CAUSAL = 30,
  PIMOE_OPT_ADAPTIVE_BIAS_RATE = 31,
  PIMOE_OPT_DYNAMIC_CAPACITY = 32,
  PIMOE_OPT_CAPACITY_MOMENTUM = 33,
  PIMOE_OPT_COMBINE_ATTENTION_DIM = 34,
  PIMOE_OPT_WEIGHT_GROUP_SIZE = 35,
  PIMOE_OPT_WEIGHT_ZERO_POINT = 36,
  PIMOE_OPT_ROUTER_LOGIT_BIAS = 37,
  PIMOE_OPT_SWIGLU_ALPHA = 38,
  PIMOE_OPT_SWIGLU_LIMIT = 39,
  PIMOE_OPT_ACTIVATION_DTYPE = 40,
  PIMOE_OPT_EXPERT_INPUT_SCALING = 41,
  PIMOE_OPT_SPARSEMIXER_EPS = 42,
  /* Experimental (see above): may change or disappear in any release. */
  PIMOE_OPT_EXPERIMENTAL_CUDA_NO_WGMMA = 1000,
  PIMOE_OPT_EXPERIMENTAL_CUDA_STREAM_TOKENS = 1001,
  PIMOE_OPT_EXPERIMENTAL_CUDA_DECODE_GEMM_ROWS = 1002,
  PIMOE_OPT_EXPERIMENTAL_VULKAN_COOPMAT_N = 1003,
  PIMOE_OPT_EXPERIMENTAL_VULKAN_VALIDATION = 1004,
  PIMOE_OPT_EXPERIMENTAL_VULKAN_ROUTING = 1005,
  PIMOE_OPT_EXPERIMENTAL_VULKAN_TILES = 1006,
  PIMOE_OPT_EXPERIMENTAL_VULKAN_PROFILE = 1007
} pimoe_option;

/** Opaque, growable set of options (zstd/ONNX Runtime style: typed setters keyed by an enum, so new options never
 * change a struct layout). An unknown key or a wrong value fails at the setter, naming the key. */
typedef struct pimoe_options pimoe_options;

/** Creates options holding every default listed above. *out is set only on success. */
PIMOE_API pimoe_status pimoe_options_create(pimoe_options **out);
/** Destroys options. NULL is a no-op. */
PIMOE_API void pimoe_options_destroy(pimoe_options *options);

/** Sets a layer-wide option through the setter of its type (int, float or string: the table at pimoe_option).
 * Another type's setter, or a value out of the key's range, is PIMOE_ERR_INVALID_OPTION; a key this library does
 * not know is PIMOE_ERR_UNKNOWN_OPTION. */
/** @{ */
PIMOE_API pimoe_status pimoe_options_set_int(pimoe_options *options, pimoe_option key, int64_t value);
PIMOE_API pimoe_status pimoe_options_set_float(pimoe_options *options, pimoe_option key, double value);
PIMOE_API pimoe_status pimoe_options_set_string(pimoe_options *options, pimoe_option key, const char *value);
/** @} */
/** Sets any layer-wide option by its quoted name, parsing value as the key's type, e.g. ("top_k", "2"),
 * ("activation", "swiglu"), ("temperature", "0.7"), ("backend", "cpu"). The value is the whole string: an integer
 * in base 10 or a number as strtod() reads it, with no whitespace before or after (" 8" and "8 " are both
 * PIMOE_ERR_INVALID_OPTION, as " cpu" is for a name). */
PIMOE_API pimoe_status pimoe_options_set_by_name(pimoe_options *options, const char *key, const char *value);

/** Per-expert overrides. expert is an index in [0, num_experts) as known at pimoe_create(), or -1 for every expert.
 * An index >= num_experts is reported by pimoe_create() (the expert count may be set after the override).
 * At pimoe_create() each expert starts from the layer defaults; then the settings given for every expert (-1) are
 * applied, then those given for that expert. Within one of these two steps, a preset is applied first (it sets
 * activation, width and norm), then any explicit activation, width (absolute intermediate size) or norm flag,
 * whatever the order of the calls; a later call replaces an earlier one for the same field. */
/** @{ */
PIMOE_API pimoe_status pimoe_options_set_expert_preset(pimoe_options *options, int32_t expert,
                                                       pimoe_expert_preset preset);
PIMOE_API pimoe_status pimoe_options_set_expert_activation(pimoe_options *options, int32_t expert,
                                                           pimoe_activation activation);
PIMOE_API pimoe_status pimoe_options_set_expert_width(pimoe_options *options, int32_t expert, int64_t intermediate);
PIMOE_API pimoe_status pimoe_options_set_expert_pre_norm(pimoe_options *options, int32_t expert, int32_t enabled);
/** @} */
/** The expert's storage format, overriding WEIGHT_DTYPE for its matrices (e.g. a hot expert kept at "bf16" in an
 * "int4" layer): any WEIGHT_DTYPE value but "auto"; int4 takes the layer's WEIGHT_GROUP_SIZE and WEIGHT_ZERO_POINT.
 * The CPU backend takes any mix; the GPU backends one format per layer. pimoe_load keeps each expert's format from
 * the file unless this call or WEIGHT_DTYPE says otherwise. */
PIMOE_API pimoe_status pimoe_options_set_expert_weight_dtype(pimoe_options *options, int32_t expert,
                                                             const char *weight_dtype);

/** A physically isolated expert (the PiMoE idea): an expert slot computed by the host instead of a neural network,
 * e.g. an exact arithmetic unit. libpimoe routes tokens to it like any expert, gathers the rows it receives and calls
 *   fn(user_data, expert, input, rows, hidden, output)
 * with input [rows, hidden] (the tokens' x, in token order; LayerNorm is not applied) and output [rows, hidden]
 * (zero-filled; the callback writes the expert's outputs). The layer then adds weight * output for each row, like a
 * neural expert's output (and uses it as o_j in the attention combine). Return 0 on success; any other value fails
 * the pimoe_forward call with PIMOE_ERR_CALLBACK and a message naming the expert and the value (the output buffer may
 * hold partial results; the model stays usable).
 * Thread contract: fn runs on the thread that called pimoe_forward, at most once per call and callback expert (only
 * when the expert received at least one kept token), after routing and before the call returns. Concurrent
 * pimoe_forward calls on one model may call fn concurrently, so fn must be thread-safe. fn must not call pimoe_*
 * functions on the same model. The buffers are valid only during the call.
 * A callback expert has no weights (no "experts.<e>.*" tensors). pimoe_save records it as a callback slot; on a
 * loaded model, set its function with pimoe_model_set_expert_callback(): until then a forward call that routes a
 * kept token to that expert fails with PIMOE_ERR_CALLBACK (calls that route nothing to it succeed). */
typedef int (*pimoe_expert_fn)(void *user_data, int32_t expert, const float *input, int64_t rows, int64_t hidden,
                               float *output);
/** Makes `expert` (in [0, num_experts), checked at pimoe_create) a callback expert computed by fn. fn must not be NULL;
 * user_data is passed through untouched and must outlive every model created from these options. */
PIMOE_API pimoe_status pimoe_options_set_expert_callback(pimoe_options *options, int32_t expert, pimoe_expert_fn fn,
                                                         void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* PIMOE_OPTIONS_H */
