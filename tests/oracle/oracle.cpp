// SPDX-License-Identifier: MIT
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
    case PIMOE_ACT_SWIGLU_OAI:
      return "swiglu_oai";
  }
  return "?";
}

namespace {

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

bool Hyper::IsCallback(int32_t expert) const {
  return std::find(callback_experts.begin(), callback_experts.end(), expert) != callback_experts.end();
}

std::vector<Hyper::GroupLevel> Hyper::EffectiveGroupLevels() const {
  if (!group_levels.empty()) return group_levels;
  if (num_groups > 1) return {GroupLevel{num_groups, topk_groups}};
  return {};
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
  if (hp.router_logit_bias) list.push_back({"router.bias", {num_experts}});
  if (hp.HasSelectionBias()) list.push_back({"router.selection_bias", {num_experts}});
  if (hp.dynamic_capacity) list.push_back({"router.load_ema", {num_experts}});
  if (hp.attention_heads > 0) {
    const int64_t width = static_cast<int64_t>(hp.attention_heads) * hp.attention_head_dim;
    list.push_back({"router.attention.q.weight", {width, hidden}});
    list.push_back({"router.attention.k.weight", {width, hidden}});
    list.push_back({"router.attention.v.weight", {width, hidden}});
    list.push_back({"router.attention.o.weight", {hidden, width}});
  }
  for (size_t e = 0; e < experts.size(); ++e) {
    if (hp.IsCallback(static_cast<int32_t>(e))) continue;
    const ExpertSpec &s = experts[e];
    const std::string p = ExpertPrefix(e);
    if (s.pre_norm) {
      list.push_back({p + "norm.weight", {hidden}});
      list.push_back({p + "norm.bias", {hidden}});
    }
    const bool gated = IsGated(s.activation);
    if (gated) list.push_back({p + "gate.weight", {s.intermediate, hidden}});
    if (gated && expert_bias) list.push_back({p + "gate.bias", {s.intermediate}});
    list.push_back({p + "up.weight", {s.intermediate, hidden}});
    if (expert_bias) list.push_back({p + "up.bias", {s.intermediate}});
    list.push_back({p + "down.weight", {hidden, s.intermediate}});
    if (expert_bias) list.push_back({p + "down.bias", {hidden}});
  }
  if (hp.shared_width > 0) {
    list.push_back({"shared.gate.weight", {hp.shared_width, hidden}});
    list.push_back({"shared.up.weight", {hp.shared_width, hidden}});
    list.push_back({"shared.down.weight", {hidden, hp.shared_width}});
    if (hp.shared_gate) list.push_back({"shared.score.weight", {1, hidden}});
  }
  if (hp.combine_dim > 0) {
    list.push_back({"combine.q.weight", {hp.combine_dim, hidden}});
    list.push_back({"combine.k.weight", {hp.combine_dim, hidden}});
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
    if (hp.IsCallback(e)) {
      if (inter != 0 || pre_norm != 0) {
        return "pimoe_model_expert(" + std::to_string(e) + ") of a callback expert gave width " +
               std::to_string(inter) + " and pre_norm " + std::to_string(pre_norm) + ", expected 0 and 0";
      }
      specs[static_cast<size_t>(e)] = ExpertSpec{act, 0, false};
      continue;
    }
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
  w.router_logit_bias = std::move(values["router.bias"]);
  w.selection_bias = std::move(values["router.selection_bias"]);
  w.load_ema = std::move(values["router.load_ema"]);
  w.attention_q = std::move(values["router.attention.q.weight"]);
  w.attention_k = std::move(values["router.attention.k.weight"]);
  w.attention_v = std::move(values["router.attention.v.weight"]);
  w.attention_o = std::move(values["router.attention.o.weight"]);
  w.combine_q = std::move(values["combine.q.weight"]);
  w.combine_k = std::move(values["combine.k.weight"]);
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
    if (hp.IsCallback(static_cast<int32_t>(e))) {
      x.callback = true;
      continue;
    }
    x.has_bias = expert_bias;
    auto take = [&](const std::string &n) {
      auto it = values.find(p + n);
      return it == values.end() ? std::vector<float>() : std::move(it->second);
    };
    x.norm_weight = take("norm.weight");
    x.norm_bias = take("norm.bias");
    x.gate_weight = take("gate.weight");
    x.gate_bias = take("gate.bias");
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

bool IsGated(pimoe_activation activation) {
  return activation == PIMOE_ACT_SWIGLU || activation == PIMOE_ACT_SWIGLU_OAI;
}

double Glu(pimoe_activation activation, double g, double u, double alpha, double limit) {
  if (activation == PIMOE_ACT_SWIGLU_OAI) {
    const double m = std::min(g, limit);
    const double c = std::min(std::max(u, -limit), limit);
    return (c + 1.0) * m / (1.0 + std::exp(-alpha * m));
  }
  return Silu(g) * u;
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
    case PIMOE_ACT_SWIGLU_OAI:  // two inputs: Glu()
      break;
  }
  return std::numeric_limits<double>::quiet_NaN();
}

std::vector<double> ExpertForward(const Expert &expert, int64_t hidden, double layer_norm_eps, const float *x,
                                  double swiglu_alpha, double swiglu_limit) {
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
  if (IsGated(expert.spec.activation)) {
    for (size_t i = 0; i < inter; ++i) {
      double g = Dot(&expert.gate_weight[i * hd], h), u = Dot(&expert.up_weight[i * hd], h);
      if (!expert.gate_bias.empty()) g += static_cast<double>(expert.gate_bias[i]);
      if (!expert.up_bias.empty()) u += static_cast<double>(expert.up_bias[i]);
      a[i] = Glu(expert.spec.activation, g, u, swiglu_alpha, swiglu_limit);
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
  // fan_in: H for every [*, H] weight and for router.selection_bias; the width for a down projection; nh*dh for
  // router.attention.o.weight.
  for (const TensorInfo &t : ExpectedTensors(hidden, experts, hp)) {
    size_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<size_t>(d);
    InitKind kind = InitKind::kLinear;
    int64_t fan_in = hidden;
    const auto ends_with = [&](const char *suffix) {
      const size_t len = std::strlen(suffix);
      return t.name.size() >= len && t.name.compare(t.name.size() - len, len, suffix) == 0;
    };
    if (t.name == "router.load_ema") {
      // Not seeded: 1/E each.
      out.push_back(std::vector<float>(n, static_cast<float>(1.0 / static_cast<double>(experts.size()))));
      continue;
    }
    if (t.name == "router.attention.o.weight") {
      fan_in = t.shape[1];  // nh*dh, its in_features
    } else if (ends_with("norm.weight")) {
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
