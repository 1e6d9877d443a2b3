// The reference oracle of libpimoe: an independent, plain-loop implementation of the MoE layer that the public
// header (include/pimoe/pimoe.h) specifies, with double accumulation. It shares no code with src/ or backends/: it
// only reads a model's weights and specs through the public C API, then recomputes everything from the header's
// formulas. Tests compare the library (every backend) against it.
#ifndef PIMOE_TESTS_ORACLE_H
#define PIMOE_TESTS_ORACLE_H

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "pimoe/pimoe.h"

namespace pimoe_oracle {

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
  double routed_scaling = 1.0;   // PIMOE_OPT_ROUTED_SCALING
  int32_t num_groups = 1;        // PIMOE_OPT_NUM_GROUPS
  int32_t topk_groups = 1;       // PIMOE_OPT_TOPK_GROUPS
  bool group_max = false;        // PIMOE_OPT_GROUP_SCORE "max" (false: "top2_sum")
  int64_t shared_width = 0;      // PIMOE_OPT_SHARED_WIDTH (0: no shared expert)
  bool shared_gate = false;      // PIMOE_OPT_SHARED_GATE
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
  bool has_bias = false;
  std::vector<float> norm_weight, norm_bias;  // [H] (pre-LayerNorm only)
  std::vector<float> gate_weight;             // [I, H] (SwiGLU only)
  std::vector<float> up_weight, up_bias;      // [I, H], [I] (bias: expert_bias and not SwiGLU)
  std::vector<float> down_weight, down_bias;  // [H, I], [H] (bias: expert_bias)
};

struct Weights {
  int64_t hidden = 0;
  int32_t num_experts = 0;
  int32_t top_k = 0;
  std::vector<float> router;  // [E, H]
  std::vector<Expert> experts;
  std::vector<float> selection_bias;  // [E] (router_bias only)
  Expert shared;                      // SwiGLU of shared_width (spec.intermediate 0: none)
  std::vector<float> shared_score;    // [H] (shared_gate only)
};

// One weight tensor as the header's table lists it.
struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;
};

// The tensor list the header prescribes (names, order, shapes) for a layer of the given width and experts.
std::vector<TensorInfo> ExpectedTensors(int64_t hidden, const std::vector<ExpertSpec> &experts, bool expert_bias);
// The same with the router extensions and shared expert of `hp` (hp.expert_bias used for expert_bias).
std::vector<TensorInfo> ExpectedTensors(int64_t hidden, const std::vector<ExpertSpec> &experts, const Hyper &hp);

// Reads dims, every expert's resolved spec and every weight of `model` through the public C API. Also checks the
// model's tensor list (count, names, order, shapes) against ExpectedTensors(). Returns "" on success, else a
// description of the first problem found.
std::string LoadWeights(const pimoe_model *model, bool expert_bias, Weights *out);
// The same for a layer with the router extensions and shared expert of `hp`.
std::string LoadWeights(const pimoe_model *model, const Hyper &hp, Weights *out);

// ------------------------------------------------------------------------------------------------ the math

double Activate(pimoe_activation activation, double x);  // GELU (erf), GELU (tanh), SiLU, ReLU, tanh; SwiGLU: SiLU
double Silu(double x);

// Routing of one token, before any capacity limit.
struct TokenRoute {
  std::vector<double> logits;     // z = W_g x, [E]
  std::vector<double> probs;      // scores: p = softmax(z / tau) or s = sigmoid(z / tau), [E]
  std::vector<double> selection;  // selection scores: probs + b (router_bias), -inf outside the kept groups, [E]
  std::vector<int32_t> order;     // all experts by descending selection score, ties -> lower index, [E]
  std::vector<double> weights;    // combine weights of order[0 .. k-1] (renormalised, scaled), [k]
  double group_gap = 0.0;         // (topk_groups)-th minus (topk_groups+1)-th group score; +inf without groups
  int32_t eligible = 0;           // experts in the kept groups
};
TokenRoute RouteToken(const Weights &w, const Hyper &hp, const float *x);

// y = expert(x) for one token, x of length H, in double.
std::vector<double> ExpertForward(const Expert &expert, int64_t hidden, double layer_norm_eps, const float *x);

struct Result {
  int64_t tokens = 0;
  int32_t top_k = 0;
  std::vector<double> output;         // [T, H]
  std::vector<int32_t> ids;           // [T, k], slots in descending probability
  std::vector<double> weights;        // [T, k] reported weights (0 for a dropped slot)
  std::vector<uint8_t> dropped;       // [T, k] 1: dropped by the capacity limit
  std::vector<double> probs;          // [T, E]
  std::vector<double> boundary_gap;   // [T] p_(k) - p_(k+1) (sorted); +inf when k == E
  std::vector<double> min_slot_gap;   // [T] smallest p_(j) - p_(j+1) over j = 1 .. min(k, E-1)
  std::vector<double> boundary_zgap;  // [T] same as boundary_gap on z/tau
  std::vector<double> min_slot_zgap;  // [T] same as min_slot_gap on z/tau
  int64_t capacity = -1;              // C per expert, -1 when dropless
  uint64_t dropped_count = 0;
  std::vector<uint64_t> loads;    // [E] admitted (token, slot) assignments
  std::vector<uint64_t> choices;  // [E] (token, slot) choices before drops
  double aux_loss = 0.0;
  double z_loss = 0.0;
  double top1_sum = 0.0;            // sum over tokens of the top-1 probability
  double routing_confidence = 0.0;  // top1_sum / T
};

// The MoE layer on input [T, H] (one pimoe_forward call of T = batch * seq tokens).
Result Forward(const Weights &w, const Hyper &hp, const float *input, int64_t tokens);

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
