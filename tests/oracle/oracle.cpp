// The reference oracle: see oracle.h. Plain loops, double accumulation, formulas straight from pimoe.h.
#include "oracle.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <sstream>

namespace pimoe_oracle {

namespace {

const char *ActivationName(pimoe_activation activation) {
  switch (activation) {
    case PIMOE_ACT_GELU:
      return "gelu";
    case PIMOE_ACT_GELU_TANH:
      return "gelu_tanh";
    case PIMOE_ACT_SILU:
      return "silu";
    case PIMOE_ACT_RELU:
      return "relu";
    case PIMOE_ACT_TANH:
      return "tanh";
    case PIMOE_ACT_SWIGLU:
      return "swiglu";
  }
  return "?";
}

std::string ShapeString(const std::vector<int64_t> &shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

std::string ExpertPrefix(size_t e) {
  return "experts." + std::to_string(e) + ".";
}

double Dot(const float *w, const std::vector<double> &x) {
  double acc = 0.0;
  for (size_t i = 0; i < x.size(); ++i) acc += static_cast<double>(w[i]) * x[i];
  return acc;
}

}  // namespace

bool operator==(const ExpertSpec &a, const ExpertSpec &b) {
  return a.activation == b.activation && a.intermediate == b.intermediate && a.pre_norm == b.pre_norm;
}

std::string ToString(const ExpertSpec &spec) {
  std::ostringstream s;
  s << "{" << ActivationName(spec.activation) << ", I=" << spec.intermediate << ", pre_norm=" << spec.pre_norm << "}";
  return s.str();
}

// ------------------------------------------------------------------------------------------------ tensors

std::vector<TensorInfo> ExpectedTensors(int64_t hidden, const std::vector<ExpertSpec> &experts, bool expert_bias) {
  Hyper hp;
  hp.expert_bias = expert_bias;
  return ExpectedTensors(hidden, experts, hp);
}

std::vector<TensorInfo> ExpectedTensors(int64_t hidden, const std::vector<ExpertSpec> &experts, const Hyper &hp) {
  const bool expert_bias = hp.expert_bias;
  const int64_t num_experts = static_cast<int64_t>(experts.size());
  std::vector<TensorInfo> list;
  list.push_back({"router.weight", {num_experts, hidden}});
  if (hp.router_bias) list.push_back({"router.selection_bias", {num_experts}});
  for (size_t e = 0; e < experts.size(); ++e) {
    const ExpertSpec &s = experts[e];
    const std::string p = ExpertPrefix(e);
    if (s.pre_norm) {
      list.push_back({p + "norm.weight", {hidden}});
      list.push_back({p + "norm.bias", {hidden}});
    }
    const bool swiglu = s.activation == PIMOE_ACT_SWIGLU;
    if (swiglu) list.push_back({p + "gate.weight", {s.intermediate, hidden}});
    list.push_back({p + "up.weight", {s.intermediate, hidden}});
    if (expert_bias && !swiglu) list.push_back({p + "up.bias", {s.intermediate}});
    list.push_back({p + "down.weight", {hidden, s.intermediate}});
    if (expert_bias) list.push_back({p + "down.bias", {hidden}});
  }
  if (hp.shared_width > 0) {
    list.push_back({"shared.gate.weight", {hp.shared_width, hidden}});
    list.push_back({"shared.up.weight", {hp.shared_width, hidden}});
    list.push_back({"shared.down.weight", {hidden, hp.shared_width}});
    if (hp.shared_gate) list.push_back({"shared.score.weight", {1, hidden}});
  }
  return list;
}

std::string LoadWeights(const pimoe_model *model, bool expert_bias, Weights *out) {
  Hyper hp;
  hp.expert_bias = expert_bias;
  return LoadWeights(model, hp, out);
}

std::string LoadWeights(const pimoe_model *model, const Hyper &hp, Weights *out) {
  const bool expert_bias = hp.expert_bias;
  if (model == nullptr || out == nullptr) return "LoadWeights: null argument";
  Weights w;
  pimoe_status st = pimoe_model_dims(model, &w.hidden, &w.num_experts, &w.top_k);
  if (st != PIMOE_OK) return std::string("pimoe_model_dims failed: ") + pimoe_last_error();
  if (w.hidden <= 0 || w.num_experts <= 0 || w.top_k <= 0 || w.top_k > w.num_experts) {
    return "pimoe_model_dims gave implausible dims";
  }
  std::vector<ExpertSpec> specs(static_cast<size_t>(w.num_experts));
  for (int32_t e = 0; e < w.num_experts; ++e) {
    pimoe_activation act = PIMOE_ACT_GELU;
    int64_t inter = 0;
    int32_t pre_norm = 0;
    st = pimoe_model_expert(model, e, &act, &inter, &pre_norm);
    if (st != PIMOE_OK) return "pimoe_model_expert(" + std::to_string(e) + ") failed: " + pimoe_last_error();
    if (inter <= 0) return "pimoe_model_expert(" + std::to_string(e) + ") gave width " + std::to_string(inter);
    specs[static_cast<size_t>(e)] = ExpertSpec{act, inter, pre_norm != 0};
  }

  const std::vector<TensorInfo> expected = ExpectedTensors(w.hidden, specs, hp);
  const int64_t count = pimoe_tensor_count(model);
  if (count != static_cast<int64_t>(expected.size())) {
    return "pimoe_tensor_count is " + std::to_string(count) + ", the header's table gives " +
           std::to_string(expected.size());
  }
  std::map<std::string, std::vector<float>> values;
  for (size_t i = 0; i < expected.size(); ++i) {
    const TensorInfo &t = expected[i];
    const char *name = pimoe_tensor_name(model, static_cast<int64_t>(i));
    if (name == nullptr || t.name != name) {
      return "tensor " + std::to_string(i) + " is named '" + (name ? name : "(null)") + "', expected '" + t.name + "'";
    }
    int32_t ndim = 0;
    int64_t dims[4] = {0, 0, 0, 0};
    st = pimoe_tensor_shape(model, t.name.c_str(), &ndim, dims);
    if (st != PIMOE_OK) return "pimoe_tensor_shape(" + t.name + ") failed: " + pimoe_last_error();
    if (ndim < 1 || ndim > 4) return "pimoe_tensor_shape(" + t.name + ") gave rank " + std::to_string(ndim);
    const std::vector<int64_t> shape(dims, dims + ndim);
    if (shape != t.shape) {
      return "tensor " + t.name + " has shape " + ShapeString(shape) + ", expected " + ShapeString(t.shape);
    }
    size_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<size_t>(d);
    std::vector<float> v(n, std::numeric_limits<float>::quiet_NaN());
    st = pimoe_tensor_read(model, t.name.c_str(), v.data(), v.size());
    if (st != PIMOE_OK) return "pimoe_tensor_read(" + t.name + ") failed: " + pimoe_last_error();
    for (float f : v) {
      if (!std::isfinite(f)) return "tensor " + t.name + " holds a non-finite value";
    }
    values[t.name] = std::move(v);
  }

  w.router = std::move(values["router.weight"]);
  w.selection_bias = std::move(values["router.selection_bias"]);
  if (hp.shared_width > 0) {
    w.shared.spec = ExpertSpec{PIMOE_ACT_SWIGLU, hp.shared_width, false};
    w.shared.gate_weight = std::move(values["shared.gate.weight"]);
    w.shared.up_weight = std::move(values["shared.up.weight"]);
    w.shared.down_weight = std::move(values["shared.down.weight"]);
    w.shared_score = std::move(values["shared.score.weight"]);
  }
  w.experts.resize(specs.size());
  for (size_t e = 0; e < specs.size(); ++e) {
    Expert &x = w.experts[e];
    const std::string p = ExpertPrefix(e);
    x.spec = specs[e];
    x.has_bias = expert_bias;
    auto take = [&](const std::string &n) {
      auto it = values.find(p + n);
      return it == values.end() ? std::vector<float>() : std::move(it->second);
    };
    x.norm_weight = take("norm.weight");
    x.norm_bias = take("norm.bias");
    x.gate_weight = take("gate.weight");
    x.up_weight = take("up.weight");
    x.up_bias = take("up.bias");
    x.down_weight = take("down.weight");
    x.down_bias = take("down.bias");
  }
  *out = std::move(w);
  return "";
}

// ------------------------------------------------------------------------------------------------ math

double Silu(double x) {
  return x / (1.0 + std::exp(-x));
}

double Activate(pimoe_activation activation, double x) {
  switch (activation) {
    case PIMOE_ACT_GELU:
      return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case PIMOE_ACT_GELU_TANH: {
      const double c = std::sqrt(2.0 / 3.14159265358979323846);
      return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x)));
    }
    case PIMOE_ACT_SILU:
    case PIMOE_ACT_SWIGLU:
      return Silu(x);
    case PIMOE_ACT_RELU:
      return x > 0.0 ? x : 0.0;
    case PIMOE_ACT_TANH:
      return std::tanh(x);
  }
  return std::numeric_limits<double>::quiet_NaN();
}

TokenRoute RouteToken(const Weights &w, const Hyper &hp, const float *x) {
  const size_t num_experts = static_cast<size_t>(w.num_experts);
  const size_t hidden = static_cast<size_t>(w.hidden);
  const size_t k = static_cast<size_t>(hp.top_k);
  const double inf = std::numeric_limits<double>::infinity();
  TokenRoute r;
  r.logits.assign(num_experts, 0.0);
  for (size_t e = 0; e < num_experts; ++e) {
    double acc = 0.0;
    for (size_t h = 0; h < hidden; ++h) acc += static_cast<double>(w.router[e * hidden + h]) * x[h];
    r.logits[e] = acc;
  }
  r.probs.assign(num_experts, 0.0);
  if (hp.sigmoid) {
    for (size_t e = 0; e < num_experts; ++e) r.probs[e] = 1.0 / (1.0 + std::exp(-r.logits[e] / hp.temperature));
  } else {
    double m = -inf;
    for (double z : r.logits) m = std::max(m, z / hp.temperature);
    double sum = 0.0;
    for (size_t e = 0; e < num_experts; ++e) {
      r.probs[e] = std::exp(r.logits[e] / hp.temperature - m);
      sum += r.probs[e];
    }
    for (double &p : r.probs) p /= sum;
  }
  // Selection scores: score + bias; experts outside the kept groups get -inf.
  r.selection = r.probs;
  if (hp.router_bias) {
    for (size_t e = 0; e < num_experts; ++e) r.selection[e] += static_cast<double>(w.selection_bias[e]);
  }
  r.group_gap = inf;
  r.eligible = w.num_experts;
  const size_t groups = static_cast<size_t>(hp.num_groups);
  if (groups > 1) {
    const size_t size = num_experts / groups;
    std::vector<double> gscore(groups);
    for (size_t g = 0; g < groups; ++g) {
      std::vector<double> v(r.selection.begin() + static_cast<std::ptrdiff_t>(g * size),
                            r.selection.begin() + static_cast<std::ptrdiff_t>((g + 1) * size));
      std::sort(v.begin(), v.end(), std::greater<double>());
      gscore[g] = (hp.group_max || size < 2) ? v[0] : v[0] + v[1];
    }
    std::vector<int32_t> gorder(groups);
    for (size_t g = 0; g < groups; ++g) gorder[g] = static_cast<int32_t>(g);
    std::stable_sort(gorder.begin(), gorder.end(), [&](int32_t a, int32_t b) {
      return gscore[static_cast<size_t>(a)] > gscore[static_cast<size_t>(b)];
    });
    const size_t kg = static_cast<size_t>(hp.topk_groups);
    if (kg < groups) {
      r.group_gap = gscore[static_cast<size_t>(gorder[kg - 1])] - gscore[static_cast<size_t>(gorder[kg])];
    }
    std::vector<bool> kept(groups, false);
    for (size_t i = 0; i < kg; ++i) kept[static_cast<size_t>(gorder[i])] = true;
    for (size_t e = 0; e < num_experts; ++e) {
      if (!kept[e / size]) r.selection[e] = -inf;
    }
    r.eligible = static_cast<int32_t>(kg * size);
  }
  r.order.resize(num_experts);
  for (size_t e = 0; e < num_experts; ++e) r.order[e] = static_cast<int32_t>(e);
  // Descending selection score; equal scores keep ascending expert index (stable sort of an ascending list).
  std::stable_sort(r.order.begin(), r.order.end(), [&](int32_t a, int32_t b) {
    return r.selection[static_cast<size_t>(a)] > r.selection[static_cast<size_t>(b)];
  });
  r.weights.assign(k, 0.0);
  double chosen = 0.0;
  for (size_t j = 0; j < k; ++j) {
    r.weights[j] = r.probs[static_cast<size_t>(r.order[j])];
    chosen += r.weights[j];
  }
  if (hp.renormalize) {
    const double denominator = hp.sigmoid ? chosen + 1e-20 : chosen;
    for (double &v : r.weights) v /= denominator;
  }
  for (double &v : r.weights) v *= hp.routed_scaling;
  return r;
}

std::vector<double> ExpertForward(const Expert &expert, int64_t hidden, double layer_norm_eps, const float *x) {
  const size_t hd = static_cast<size_t>(hidden);
  const size_t inter = static_cast<size_t>(expert.spec.intermediate);
  std::vector<double> h(x, x + hd);
  if (expert.spec.pre_norm) {
    double mean = 0.0;
    for (double v : h) mean += v;
    mean /= static_cast<double>(hd);
    double var = 0.0;
    for (double v : h) var += (v - mean) * (v - mean);
    var /= static_cast<double>(hd);
    const double inv = 1.0 / std::sqrt(var + layer_norm_eps);
    for (size_t i = 0; i < hd; ++i) {
      h[i] =
          (h[i] - mean) * inv * static_cast<double>(expert.norm_weight[i]) + static_cast<double>(expert.norm_bias[i]);
    }
  }
  std::vector<double> a(inter, 0.0);
  if (expert.spec.activation == PIMOE_ACT_SWIGLU) {
    for (size_t i = 0; i < inter; ++i) {
      a[i] = Silu(Dot(&expert.gate_weight[i * hd], h)) * Dot(&expert.up_weight[i * hd], h);
    }
  } else {
    for (size_t i = 0; i < inter; ++i) {
      double u = Dot(&expert.up_weight[i * hd], h);
      if (!expert.up_bias.empty()) u += static_cast<double>(expert.up_bias[i]);
      a[i] = Activate(expert.spec.activation, u);
    }
  }
  std::vector<double> y(hd, 0.0);
  for (size_t o = 0; o < hd; ++o) {
    double acc = Dot(&expert.down_weight[o * inter], a);
    if (!expert.down_bias.empty()) acc += static_cast<double>(expert.down_bias[o]);
    y[o] = acc;
  }
  return y;
}

int64_t Capacity(int64_t tokens, int32_t top_k, double capacity_factor, int32_t num_experts) {
  if (capacity_factor <= 0.0) return -1;
  return static_cast<int64_t>(
      std::ceil(static_cast<double>(tokens) * top_k * capacity_factor / static_cast<double>(num_experts)));
}

Result Forward(const Weights &w, const Hyper &hp, const float *input, int64_t tokens) {
  const size_t num_experts = static_cast<size_t>(w.num_experts);
  const size_t hidden = static_cast<size_t>(w.hidden);
  const size_t k = static_cast<size_t>(hp.top_k);
  const size_t t_count = static_cast<size_t>(tokens);
  const double inf = std::numeric_limits<double>::infinity();
  Result r;
  r.tokens = tokens;
  r.top_k = hp.top_k;
  r.output.assign(t_count * hidden, 0.0);
  r.ids.assign(t_count * k, -1);
  r.weights.assign(t_count * k, 0.0);
  r.dropped.assign(t_count * k, 0);
  r.probs.assign(t_count * num_experts, 0.0);
  r.boundary_gap.assign(t_count, inf);
  r.min_slot_gap.assign(t_count, inf);
  r.boundary_zgap.assign(t_count, inf);
  r.min_slot_zgap.assign(t_count, inf);
  r.loads.assign(num_experts, 0);
  r.choices.assign(num_experts, 0);

  std::vector<double> mean_prob(num_experts, 0.0);
  double z_sum = 0.0;
  for (size_t t = 0; t < t_count; ++t) {
    const TokenRoute route = RouteToken(w, hp, input + t * hidden);
    double score_sum = 0.0;
    for (double p : route.probs) score_sum += p;
    for (size_t e = 0; e < num_experts; ++e) {
      r.probs[t * num_experts + e] = route.probs[e];
      mean_prob[e] += hp.sigmoid ? route.probs[e] / score_sum : route.probs[e];  // P_i: scores normalised per token
    }
    for (size_t j = 0; j < k; ++j) {
      r.ids[t * k + j] = route.order[j];
      r.weights[t * k + j] = route.weights[j];
      ++r.choices[static_cast<size_t>(route.order[j])];
    }
    // Gaps between ranks j and j+1 of the selection scores, within the kept groups' experts. The logit gap is
    // meaningful only without a selection bias (scores are then monotonic in z); else it is left infinite.
    const size_t eligible = static_cast<size_t>(route.eligible);
    for (size_t j = 0; j < k && j + 1 < eligible; ++j) {
      const size_t a = static_cast<size_t>(route.order[j]), b = static_cast<size_t>(route.order[j + 1]);
      const double gap = route.selection[a] - route.selection[b];
      const double zgap = hp.router_bias ? inf : (route.logits[a] - route.logits[b]) / hp.temperature;
      r.min_slot_gap[t] = std::min(r.min_slot_gap[t], gap);
      r.min_slot_zgap[t] = std::min(r.min_slot_zgap[t], zgap);
      if (j == k - 1) {
        r.boundary_gap[t] = gap;
        r.boundary_zgap[t] = zgap;
      }
    }
    // A near tie between the last kept group and the first dropped one changes the eligible experts.
    r.boundary_gap[t] = std::min(r.boundary_gap[t], route.group_gap);
    r.boundary_zgap[t] = std::min(r.boundary_zgap[t], hp.router_bias ? inf : route.group_gap);
    r.min_slot_gap[t] = std::min(r.min_slot_gap[t], route.group_gap);
    r.top1_sum += route.probs[static_cast<size_t>(route.order[0])];
    // z loss: logsumexp of the raw logits, squared.
    double m = -inf;
    for (double z : route.logits) m = std::max(m, z);
    double s = 0.0;
    for (double z : route.logits) s += std::exp(z - m);
    const double lse = m + std::log(s);
    z_sum += lse * lse;
  }

  // Capacity: first choices of all tokens in token order, then second choices, ...
  r.capacity = Capacity(tokens, hp.top_k, hp.capacity_factor, w.num_experts);
  for (size_t j = 0; j < k; ++j) {
    for (size_t t = 0; t < t_count; ++t) {
      const size_t e = static_cast<size_t>(r.ids[t * k + j]);
      if (r.capacity >= 0 && r.loads[e] >= static_cast<uint64_t>(r.capacity)) {
        r.dropped[t * k + j] = 1;
        r.weights[t * k + j] = 0.0;
        ++r.dropped_count;
      } else {
        ++r.loads[e];
      }
    }
  }

  for (size_t t = 0; t < t_count; ++t) {
    for (size_t j = 0; j < k; ++j) {
      if (r.dropped[t * k + j]) continue;
      const Expert &expert = w.experts[static_cast<size_t>(r.ids[t * k + j])];
      const std::vector<double> y = ExpertForward(expert, w.hidden, hp.layer_norm_eps, input + t * hidden);
      const double wt = r.weights[t * k + j];
      for (size_t h = 0; h < hidden; ++h) r.output[t * hidden + h] += wt * y[h];
    }
  }
  // The shared expert: every token, unaffected by capacity, scaled by sigmoid(shared.score.weight . x) when gated.
  if (hp.shared_width > 0) {
    for (size_t t = 0; t < t_count; ++t) {
      const float *x = input + t * hidden;
      const std::vector<double> y = ExpertForward(w.shared, w.hidden, hp.layer_norm_eps, x);
      double g = 1.0;
      if (hp.shared_gate) {
        double dot = 0.0;
        for (size_t h = 0; h < hidden; ++h) dot += static_cast<double>(w.shared_score[h]) * x[h];
        g = 1.0 / (1.0 + std::exp(-dot));
      }
      for (size_t h = 0; h < hidden; ++h) r.output[t * hidden + h] += g * y[h];
    }
  }

  if (t_count > 0) {
    double aux = 0.0;
    for (size_t e = 0; e < num_experts; ++e) {
      const double f = static_cast<double>(r.choices[e]) / static_cast<double>(t_count);
      const double p = mean_prob[e] / static_cast<double>(t_count);
      aux += f * p;
    }
    r.aux_loss = hp.aux_loss_coef * static_cast<double>(num_experts) * aux;
    r.z_loss = z_sum / static_cast<double>(t_count);
    r.routing_confidence = r.top1_sum / static_cast<double>(t_count);
  }
  return r;
}

// ------------------------------------------------------------------------------------------------ statistics

Balance BalanceMetrics(const std::vector<uint64_t> &loads) {
  Balance b;
  const size_t num_experts = loads.size();
  if (num_experts == 0) return b;
  double total = 0.0, sum_sq = 0.0, max_load = 0.0;
  size_t used = 0;
  for (uint64_t l : loads) {
    const double v = static_cast<double>(l);
    total += v;
    sum_sq += v * v;
    max_load = std::max(max_load, v);
    if (l > 0) ++used;
  }
  const double e = static_cast<double>(num_experts);
  b.utilization = static_cast<double>(used) / e;
  if (total == 0.0) {
    b.cv = 0.0;
    b.max_violation = 0.0;
    b.jain = 1.0;
    b.normalized_entropy = 0.0;
    return b;
  }
  const double mean = total / e;
  double var = 0.0;
  for (uint64_t l : loads) var += (static_cast<double>(l) - mean) * (static_cast<double>(l) - mean);
  var /= e;
  b.cv = std::sqrt(var) / mean;
  b.max_violation = (max_load - mean) / mean;
  b.jain = total * total / (e * sum_sq);
  if (num_experts == 1) {
    b.normalized_entropy = 1.0;
  } else {
    double h = 0.0;
    for (uint64_t l : loads) {
      if (l == 0) continue;
      const double p = static_cast<double>(l) / total;
      h -= p * std::log(p);
    }
    b.normalized_entropy = h / std::log(e);
  }
  return b;
}

// ------------------------------------------------------------------------------------------------ weight init

uint64_t Fnv1a64(const std::string &text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t SplitMix64Next(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::vector<float> InitTensor(uint64_t seed, const std::string &name, size_t count, InitKind kind, int64_t fan_in) {
  uint64_t state = seed ^ Fnv1a64(name);
  std::vector<float> v(count);
  const double bound = kind == InitKind::kLinear ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.1;
  const double offset = kind == InitKind::kNormWeight ? 1.0 : 0.0;
  for (size_t i = 0; i < count; ++i) {
    const double u01 = static_cast<double>(SplitMix64Next(&state) >> 40) * (1.0 / 16777216.0);
    v[i] = static_cast<float>(offset + (2.0 * u01 - 1.0) * bound);
  }
  return v;
}

std::vector<std::vector<float>> InitAllTensors(uint64_t seed, int64_t hidden, const std::vector<ExpertSpec> &experts,
                                               bool expert_bias) {
  Hyper hp;
  hp.expert_bias = expert_bias;
  return InitAllTensors(seed, hidden, experts, hp);
}

std::vector<std::vector<float>> InitAllTensors(uint64_t seed, int64_t hidden, const std::vector<ExpertSpec> &experts,
                                               const Hyper &hp) {
  std::vector<std::vector<float>> out;
  // fan_in: H for every [*, H] weight and for router.selection_bias; the width for a down projection.
  for (const TensorInfo &t : ExpectedTensors(hidden, experts, hp)) {
    size_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<size_t>(d);
    InitKind kind = InitKind::kLinear;
    int64_t fan_in = hidden;
    const auto ends_with = [&](const char *suffix) {
      const size_t len = std::strlen(suffix);
      return t.name.size() >= len && t.name.compare(t.name.size() - len, len, suffix) == 0;
    };
    if (ends_with("norm.weight")) {
      kind = InitKind::kNormWeight;
    } else if (ends_with("norm.bias")) {
      kind = InitKind::kNormBias;
    } else if (ends_with("down.weight")) {
      fan_in = t.shape[1];
    } else if (ends_with("down.bias")) {
      // The bias of down: [H, I_e] has fan_in I_e; read it from the expert's spec.
      const size_t e = static_cast<size_t>(std::stoul(t.name.substr(std::strlen("experts."))));
      fan_in = experts[e].intermediate;
    }
    out.push_back(InitTensor(seed, t.name, n, kind, fan_in));
  }
  return out;
}

// ------------------------------------------------------------------------------------------------ specs

void SpecResolver::SetPreset(int32_t expert, pimoe_expert_preset preset) {
  calls_.push_back({Field::kPreset, expert, static_cast<int64_t>(preset)});
}
void SpecResolver::SetActivation(int32_t expert, pimoe_activation activation) {
  calls_.push_back({Field::kActivation, expert, static_cast<int64_t>(activation)});
}
void SpecResolver::SetWidth(int32_t expert, int64_t intermediate) {
  calls_.push_back({Field::kWidth, expert, intermediate});
}
void SpecResolver::SetPreNorm(int32_t expert, bool enabled) {
  calls_.push_back({Field::kPreNorm, expert, enabled ? 1 : 0});
}

std::vector<ExpertSpec> SpecResolver::Resolve(int32_t num_experts, int64_t intermediate,
                                              pimoe_activation layer_activation, bool layer_pre_norm) const {
  const ExpertSpec layer_default{layer_activation, intermediate, layer_pre_norm};
  // One step of the header's rule: the calls made for `target` (-1 or one expert); the last value of each field
  // wins; a preset goes first, then the explicit fields.
  auto apply_step = [&](int32_t target, ExpertSpec &s) {
    int64_t preset = -1, activation = -1, width = -1, pre_norm = -1;
    for (const Call &c : calls_) {
      if (c.expert != target) continue;
      switch (c.field) {
        case Field::kPreset:
          preset = c.value;
          break;
        case Field::kActivation:
          activation = c.value;
          break;
        case Field::kWidth:
          width = c.value;
          break;
        case Field::kPreNorm:
          pre_norm = c.value;
          break;
      }
    }
    switch (preset) {
      case PIMOE_PRESET_GENERIC:
        s = layer_default;
        break;
      case PIMOE_PRESET_REASONING:
        s = {PIMOE_ACT_GELU, intermediate, true};
        break;
      case PIMOE_PRESET_COMPUTATION:
        s = {PIMOE_ACT_GELU, 2 * intermediate, false};
        break;
      case PIMOE_PRESET_MATHEMATICAL:
        s = {PIMOE_ACT_SILU, intermediate, false};
        break;
      case PIMOE_PRESET_LOGICAL:
        s = {PIMOE_ACT_TANH, intermediate, false};
        break;
      case PIMOE_PRESET_LANGUAGE:
        s = {PIMOE_ACT_SWIGLU, intermediate, false};
        break;
      case PIMOE_PRESET_CREATIVE:
        s = {PIMOE_ACT_GELU_TANH, intermediate, true};
        break;
      case PIMOE_PRESET_ANALYTICAL:
        s = {PIMOE_ACT_RELU, intermediate, true};
        break;
      default:
        break;
    }
    if (activation >= 0) s.activation = static_cast<pimoe_activation>(activation);
    if (width >= 0) s.intermediate = width;
    if (pre_norm >= 0) s.pre_norm = pre_norm != 0;
  };
  std::vector<ExpertSpec> specs;
  for (int32_t e = 0; e < num_experts; ++e) {
    ExpertSpec s = layer_default;
    apply_step(-1, s);
    apply_step(e, s);
    specs.push_back(s);
  }
  return specs;
}

pimoe_status SpecResolver::Apply(pimoe_options *options) const {
  for (const Call &c : calls_) {
    pimoe_status st = PIMOE_OK;
    switch (c.field) {
      case Field::kPreset:
        st = pimoe_options_set_expert_preset(options, c.expert, static_cast<pimoe_expert_preset>(c.value));
        break;
      case Field::kActivation:
        st = pimoe_options_set_expert_activation(options, c.expert, static_cast<pimoe_activation>(c.value));
        break;
      case Field::kWidth:
        st = pimoe_options_set_expert_width(options, c.expert, c.value);
        break;
      case Field::kPreNorm:
        st = pimoe_options_set_expert_pre_norm(options, c.expert, static_cast<int32_t>(c.value));
        break;
    }
    if (st != PIMOE_OK) return st;
  }
  return PIMOE_OK;
}

}  // namespace pimoe_oracle
