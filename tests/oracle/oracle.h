/* SPDX-License-Identifier: MIT */
// The reference oracle of libpimoe: an independent, plain-loop implementation of the MoE layer that the public
// header (include/pimoe/pimoe.h) specifies, with double accumulation. It shares no code with src/ or backends/: it
// only reads a model's weights and specs through the public C API, then recomputes everything from the header's
// formulas. Tests compare the library (every backend) against it.
#ifndef PIMOE_TESTS_ORACLE_H
#define PIMOE_TESTS_ORACLE_H

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "pimoe/pimoe.h"

namespace pimoe_oracle {

// The option-string name of an activation ("gelu", "swiglu", ...); "?" for a value outside the enum.
const char *ActivationName(pimoe_activation activation);

// The layer's hyper-parameters that the forward pass depends on (mirrors the layer-wide options).
struct Hyper {
  double temperature = 1.0;      // PIMOE_OPT_TEMPERATURE
  bool renormalize = true;       // PIMOE_OPT_RENORMALIZE
  double capacity_factor = 0.0;  // PIMOE_OPT_CAPACITY_FACTOR (0: dropless)
  int32_t top_k = 2;             // PIMOE_OPT_TOP_K
  double layer_norm_eps = 1e-5;  // PIMOE_OPT_LAYER_NORM_EPS
  double aux_loss_coef = 1.0;    // PIMOE_OPT_AUX_LOSS_COEF
  bool expert_bias = false;      // PIMOE_OPT_EXPERT_BIAS
  bool sigmoid = false;          // PIMOE_OPT_ROUTER_SCORING "sigmoid" (false: "softmax")
  bool router_bias = false;      // PIMOE_OPT_ROUTER_BIAS: selection by score + b ("router.selection_bias")
  bool router_logit_bias = false;  // PIMOE_OPT_ROUTER_LOGIT_BIAS: z = W_g x + c ("router.bias")
  double swiglu_alpha = 1.702;     // PIMOE_OPT_SWIGLU_ALPHA: a of SWIGLU_OAI experts
  double swiglu_limit = 7.0;       // PIMOE_OPT_SWIGLU_LIMIT: L of SWIGLU_OAI experts
  double routed_scaling = 1.0;   // PIMOE_OPT_ROUTED_SCALING
  int32_t num_groups = 1;        // PIMOE_OPT_NUM_GROUPS
  int32_t topk_groups = 1;       // PIMOE_OPT_TOPK_GROUPS
  bool group_max = false;        // PIMOE_OPT_GROUP_SCORE "max" (false: "top2_sum")
  int64_t shared_width = 0;      // PIMOE_OPT_SHARED_WIDTH (0: no shared expert)
  bool shared_gate = false;      // PIMOE_OPT_SHARED_GATE

  // Routing features (pimoe.h, PIMOE_OPT_ROUTING_MODE .. COMBINE_ATTENTION_DIM; docs/design.md, "The math").
  bool expert_choice = false;  // PIMOE_OPT_ROUTING_MODE "expert_choice" (false: "token_choice")
  struct GroupLevel {
    int32_t groups = 1;  // G_l
    int32_t keep = 1;    // K_l
  };
  // PIMOE_OPT_GROUP_LEVELS "G1:K1,G2:K2,..."; empty: none (then num_groups/topk_groups give the single-level form).
  std::vector<GroupLevel> group_levels;
  int32_t attention_heads = 0;      // PIMOE_OPT_ATTENTION_HEADS (0: no attention router)
  int32_t attention_head_dim = 16;  // PIMOE_OPT_ATTENTION_HEAD_DIM
  bool attention_causal = false;    // PIMOE_OPT_ATTENTION_CAUSAL
  double adaptive_bias_rate = 0.0;  // PIMOE_OPT_ADAPTIVE_BIAS_RATE (> 0: the selection bias exists and is used)
  bool dynamic_capacity = false;    // PIMOE_OPT_DYNAMIC_CAPACITY (uses Weights::load_ema)
  double capacity_momentum = 0.9;   // PIMOE_OPT_CAPACITY_MOMENTUM
  int32_t combine_dim = 0;          // PIMOE_OPT_COMBINE_ATTENTION_DIM (0: plain weighted combine)
  bool expert_input_scaling = false;  // PIMOE_OPT_EXPERT_INPUT_SCALING: y = sum_j expert_j(w_j x) (+ shared(x))
  double sparsemixer_eps = 0.0;       // PIMOE_OPT_SPARSEMIXER_EPS (> 0: Phi-3.5-MoE's sparsemixer weights, top-2)
  // Callback experts (pimoe_options_set_expert_callback): their indices, and the function computing them
  // (the C callback without user_data). Returns 0 on success. An expert is a callback expert when it is listed
  // here or its Weights::experts entry has callback set.
  using ExpertCallback =
      std::function<int(int32_t expert, const float *input, int64_t rows, int64_t hidden, float *output)>;
  std::vector<int32_t> callback_experts;
  ExpertCallback callback;

  bool HasSelectionBias() const { return router_bias || adaptive_bias_rate > 0.0; }
  bool IsCallback(int32_t expert) const;
  // The group tree in effect: group_levels, else {num_groups, topk_groups} when num_groups > 1, else empty.
  std::vector<GroupLevel> EffectiveGroupLevels() const;
};

// The resolved spec of one expert (after presets and overrides).
struct ExpertSpec {
  pimoe_activation activation = PIMOE_ACT_GELU;
  int64_t intermediate = 0;
  bool pre_norm = false;
};
bool operator==(const ExpertSpec &a, const ExpertSpec &b);
std::string ToString(const ExpertSpec &spec);
inline void PrintTo(const ExpertSpec &spec, std::ostream *os) {
  *os << ToString(spec);
}

// One expert's weights, as read from the model (nn.Linear layout: [out_features, in_features], row-major).
struct Expert {
  ExpertSpec spec;
  bool callback = false;  // a callback expert: no tensors, computed by Hyper::callback
  bool has_bias = false;
  std::vector<float> norm_weight, norm_bias;  // [H] (pre-LayerNorm only)
  std::vector<float> gate_weight, gate_bias;  // [I, H] (gated only), [I] (bias: expert_bias and gated)
  std::vector<float> up_weight, up_bias;      // [I, H], [I] (bias: expert_bias)
  std::vector<float> down_weight, down_bias;  // [H, I], [H] (bias: expert_bias)
};

struct Weights {
  int64_t hidden = 0;
  int32_t num_experts = 0;
  int32_t top_k = 0;
  std::vector<float> router;  // [E, H]
  std::vector<float> router_logit_bias;  // [E] "router.bias" (router_logit_bias only)
  std::vector<Expert> experts;
  std::vector<float> selection_bias;  // [E] (router_bias only)
  Expert shared;                      // SwiGLU of shared_width (spec.intermediate 0: none)
  std::vector<float> shared_score;    // [H] (shared_gate only)
  // Routing-feature tensors (empty when the feature is off).
  std::vector<float> load_ema;         // [E] "router.load_ema": state of dynamic capacity (fp32, as the tensor)
  std::vector<float> attention_q;      // [nh*dh, H] "router.attention.q.weight"
  std::vector<float> attention_k;      // [nh*dh, H]
  std::vector<float> attention_v;      // [nh*dh, H]
  std::vector<float> attention_o;      // [H, nh*dh]
  std::vector<float> combine_q;        // [d_c, H] "combine.q.weight"
  std::vector<float> combine_k;        // [d_c, H]
};

// One weight tensor as the header's table lists it.
struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;
};

// The tensor list the header prescribes (names, order, shapes) for a layer of the given width and experts.
// Experts listed in hp.callback_experts have no tensors (their spec is ignored).
std::vector<TensorInfo> ExpectedTensors(int64_t hidden, const std::vector<ExpertSpec> &experts, bool expert_bias);
// The same with the router extensions and shared expert of `hp` (hp.expert_bias used for expert_bias).
std::vector<TensorInfo> ExpectedTensors(int64_t hidden, const std::vector<ExpertSpec> &experts, const Hyper &hp);

// Reads dims, every expert's resolved spec and every weight of `model` through the public C API. Also checks the
// model's tensor list (count, names, order, shapes) against ExpectedTensors(). Returns "" on success, else a
// description of the first problem found.
std::string LoadWeights(const pimoe_model *model, bool expert_bias, Weights *out);
// The same for a layer with the router extensions, shared expert and routing features of `hp`: reads
// router.load_ema (state), the attention router and combine tensors; callback experts (hp.callback_experts) must report
// width 0 and get Expert::callback = true and no weights.
std::string LoadWeights(const pimoe_model *model, const Hyper &hp, Weights *out);

// ------------------------------------------------------------------------------------------------ the math

double Activate(pimoe_activation activation, double x);  // GELU (erf), GELU (tanh), SiLU, ReLU, tanh; SwiGLU: SiLU
double Silu(double x);
// A gated activation of gate value g and up value u (biases included): SwiGLU silu(g) * u; SwiGLU-OAI
// (clamp(u, -L, L) + 1) * m * sigmoid(a * m), m = min(g, L).
double Glu(pimoe_activation activation, double g, double u, double alpha, double limit);
bool IsGated(pimoe_activation activation);

// Routing of one token, before any capacity limit.
struct TokenRoute {
  std::vector<double> logits;     // z = W_g x, [E]
  std::vector<double> probs;      // scores: p = softmax(z / tau) or s = sigmoid(z / tau), [E]
  std::vector<double> selection;  // selection scores: probs + b (router_bias), -inf outside the kept groups, [E]
  std::vector<int32_t> order;     // all experts by descending selection score, ties -> lower index, [E]
  std::vector<double> weights;    // combine weights of order[0 .. k-1] (renormalised, scaled), [k]
  double group_gap = 0.0;         // smallest K_l-th minus (K_l+1)-th group score over the levels; +inf without groups
  int32_t eligible = 0;           // experts in the kept groups
};
// Token-choice routing of one token from its raw input x (z = W_g x; no attention router context).
TokenRoute RouteToken(const Weights &w, const Hyper &hp, const float *x);
// Token-choice routing of one token from given logits z (e.g. z = W_g (x + u) with the attention router).
TokenRoute RouteLogits(const Weights &w, const Hyper &hp, const std::vector<double> &logits);
// Scores c from logits: softmax(z/tau) or sigmoid(z/tau).
std::vector<double> Scores(const Hyper &hp, const std::vector<double> &logits);

// The multi-level group tree on selection scores q [E] (GROUP_LEVELS): returns q with -inf outside the last kept
// groups. *gap (may be NULL): the smallest K_l-th minus (K_l+1)-th (sub)group score over the levels (+inf when every
// level keeps all its candidates); *eligible (may be NULL): the experts in the last kept groups.
std::vector<double> GroupTreeMask(const std::vector<double> &q, const std::vector<Hyper::GroupLevel> &levels,
                                  bool group_max, double *gap, int32_t *eligible);

// Expert-choice capacity: C = min(T, ceil(T*cf/E)), cf = capacity_factor, or top_k when it is 0.
int64_t ExpertChoiceCapacity(int64_t tokens, int32_t num_experts, int32_t top_k, double capacity_factor);
// Expert-choice routing of a call from its scores c [T, E]: each expert takes the `capacity` tokens of largest c
// (ties to the lower token). ids/weights [T, E]: per token its experts by descending weight c*scaling (ties to the
// lower expert), then unused slots (-1, 0).
void ExpertChoiceRoute(const std::vector<double> &scores, int64_t tokens, int32_t num_experts, int64_t capacity,
                       double scaling, std::vector<int32_t> *ids, std::vector<double> *weights);

// The attention router's context u [seq, H] of one sequence input [seq, H].
std::vector<double> AttentionContext(const Weights &w, const Hyper &hp, const float *input, int64_t seq);

// Cross-expert attention combine of one token x [H]: outputs o_j [H] and weights w_j of its slots; returns w' (0 for
// every slot with w_j <= 0; softmax over the others of q.k_j/sqrt(d_c) + log w_j, q = W_q x, k_j = W_k o_j).
std::vector<double> CombineWeights(const Weights &w, const Hyper &hp, const float *x,
                                   const std::vector<std::vector<double>> &outputs, const std::vector<double> &weights);

// y = expert(x) for one token, x of length H, in double (alpha and limit: SWIGLU_OAI's).
std::vector<double> ExpertForward(const Expert &expert, int64_t hidden, double layer_norm_eps, const float *x,
                                  double swiglu_alpha = 1.702, double swiglu_limit = 7.0);
// The router logits of one (router) input v [H]: W_g v, + c with ROUTER_LOGIT_BIAS.
std::vector<double> RouterLogits(const Weights &w, const Hyper &hp, const std::vector<double> &v);

struct Result {
  std::string error;  // "" on success; else why the call fails (a callback expert failed or has no callback)
  int64_t tokens = 0;
  int32_t top_k = 0;
  int32_t slots = 0;                  // S: routing slots per token, top_k or E (expert choice)
  std::vector<double> output;         // [T, H]
  std::vector<int32_t> ids;           // [T, S], slots in descending selection score / weight; -1: unused (EC)
  std::vector<double> weights;        // [T, S] reported weights (0 for a dropped or unused slot; w' with combine)
  std::vector<double> routed_weights; // [T, S] the weights before the attention combine (0 dropped / unused)
  std::vector<uint8_t> dropped;       // [T, S] 1: dropped by the capacity limit
  std::vector<double> logits;         // [T, E] z (with the attention router: W_g (x + u))
  std::vector<double> context;        // [T, H] u of the attention router (empty without it)
  std::vector<double> probs;          // [T, E] scores c (before any bias or group mask)
  std::vector<double> boundary_gap;   // [T] p_(k) - p_(k+1) (sorted); +inf when k == E
  std::vector<double> min_slot_gap;   // [T] smallest p_(j) - p_(j+1) over j = 1 .. min(k, E-1)
  std::vector<double> boundary_zgap;  // [T] same as boundary_gap on z/tau
  std::vector<double> min_slot_zgap;  // [T] same as min_slot_gap on z/tau
  int64_t capacity = -1;              // C per expert (static, or expert choice's C), -1 when dropless
  std::vector<int64_t> capacities;    // [E] per-expert limit in effect (dynamic: C_i), -1 each when dropless
  uint64_t dropped_count = 0;
  std::vector<uint64_t> loads;    // [E] admitted (token, slot) assignments
  std::vector<uint64_t> choices;  // [E] (token, slot) choices before drops
  double aux_loss = 0.0;
  double z_loss = 0.0;
  double top1_sum = 0.0;            // sum over tokens of the top-1 probability
  double routing_confidence = 0.0;  // top1_sum / T
};

// The MoE layer on input [batch, seq, H] (one pimoe_forward call of T = batch * seq tokens). The attention router
// attends within each sequence of `seq` tokens; dynamic capacity reads w.load_ema, adaptive bias w.selection_bias
// (the step functions below give their values for the next call).
Result Forward(const Weights &w, const Hyper &hp, const float *input, int64_t batch, int64_t seq);
// The same with batch = 1, seq = tokens (differs from a batch of single tokens only with the attention router).
Result Forward(const Weights &w, const Hyper &hp, const float *input, int64_t tokens);

// ------------------------------------------------------------------------------------------------ stateful routing

// Adaptive bias (ADAPTIVE_BIAS_RATE u): b_i + u * sign(mean(c) - c_i), c = the call's kept loads (Result::loads),
// sign(0) = 0. Computed in double, rounded to fp32 (the tensor's storage) once.
std::vector<float> AdaptiveBiasStep(const std::vector<float> &bias, const std::vector<uint64_t> &loads, double u);
// Load average of dynamic capacity: beta*m_i + (1-beta)*d_i, d_i = choices_i / total_assignments (choices before
// drops, Result::choices; total = T*k). Computed in double, rounded to fp32 once. total 0: unchanged.
std::vector<float> LoadEmaStep(const std::vector<float> &ema, const std::vector<uint64_t> &choices,
                               uint64_t total_assignments, double beta);
// Dynamic capacities: C_i = floor(S*m_i/sum(m) + 1e-9), then the S - sum C_i remaining slots one each to the
// experts of largest S*m_i/sum(m) - C_i (ties to the lower index).
std::vector<int64_t> DynamicCapacities(int64_t total_slots, const std::vector<float> &ema);

// Capacity per expert for a call of T tokens: ceil(T*k*cf/E), or -1 when cf == 0.
int64_t Capacity(int64_t tokens, int32_t top_k, double capacity_factor, int32_t num_experts);

// ------------------------------------------------------------------------------------------------ statistics

struct Balance {
  double cv = 0.0;
  double max_violation = 0.0;
  double jain = 1.0;
  double normalized_entropy = 0.0;
  double utilization = 0.0;
};
// The load-balance metrics of pimoe_stats_snapshot from per-expert loads, per the header's formulas.
Balance BalanceMetrics(const std::vector<uint64_t> &loads);

// ------------------------------------------------------------------------------------------------ weights and specs

// The header's deterministic weight initialisation.
uint64_t Fnv1a64(const std::string &text);
uint64_t SplitMix64Next(uint64_t *state);
enum class InitKind { kLinear, kNormWeight, kNormBias };
// Values of tensor `name` (count elements) for `seed`; fan_in is used by kLinear (b = 1/sqrt(fan_in)).
std::vector<float> InitTensor(uint64_t seed, const std::string &name, size_t count, InitKind kind, int64_t fan_in);
// Expected values of every tensor in ExpectedTensors() order, for comparison with pimoe_tensor_read().
std::vector<std::vector<float>> InitAllTensors(uint64_t seed, int64_t hidden, const std::vector<ExpertSpec> &experts,
                                               bool expert_bias);
std::vector<std::vector<float>> InitAllTensors(uint64_t seed, int64_t hidden, const std::vector<ExpertSpec> &experts,
                                               const Hyper &hp);

// Resolves per-expert presets and overrides per the header's rules, from the calls in the order they were made.
class SpecResolver {
 public:
  void SetPreset(int32_t expert, pimoe_expert_preset preset);
  void SetActivation(int32_t expert, pimoe_activation activation);
  void SetWidth(int32_t expert, int64_t intermediate);
  void SetPreNorm(int32_t expert, bool enabled);
  // The specs of experts 0 .. num_experts-1 given the layer-wide options at creation time.
  std::vector<ExpertSpec> Resolve(int32_t num_experts, int64_t intermediate, pimoe_activation layer_activation,
                                  bool layer_pre_norm) const;
  // Replays the calls on a pimoe_options object; returns the first non-OK status.
  pimoe_status Apply(pimoe_options *options) const;

 private:
  enum class Field { kPreset, kActivation, kWidth, kPreNorm };
  struct Call {
    Field field;
    int32_t expert;
    int64_t value;
  };
  std::vector<Call> calls_;
};

}  // namespace pimoe_oracle

#endif  // PIMOE_TESTS_ORACLE_H
