// SPDX-License-Identifier: MIT
// The harness of test_routing_features: see routing_features.h.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "routing_features.h"

namespace pimoe_rf {

namespace {
const bool kBackendChecked = ExitUnlessBackendUsable("test_routing_features");
}  // namespace

bool Contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

// ================================================================================================ callback experts

int ComputeCallback(int32_t expert, const float *in, int64_t rows, int64_t hidden, float *out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float *x = in + r * hidden;
    float *y = out + r * hidden;
    if (expert % 2 == 0) {
      for (int64_t c = 0; c < hidden; ++c) y[c] = 2.0f * x[c] + 1.0f;
    } else {
      long double sum = 0.0L;
      for (int64_t c = 0; c < hidden; ++c) sum += static_cast<long double>(x[c]);
      for (int64_t c = 0; c < hidden; ++c) y[c] = static_cast<float>(sum);
    }
  }
  return 0;
}

namespace {
thread_local bool t_in_forward = false;
}  // namespace

void SetInForward(bool in_forward) {
  t_in_forward = in_forward;
}

void CallbackState::Clear() {
  calls = 0;
  rows = 0;
  wrong_thread = 0;
  bad_args = 0;
  std::lock_guard<std::mutex> lock(mutex);
  seen.clear();
}

CallbackState g_callbacks;  // the default user_data

int TestCallback(void *user_data, int32_t expert, const float *input, int64_t rows, int64_t hidden, float *output) {
  CallbackState *s = static_cast<CallbackState *>(user_data);
  ++s->calls;
  s->rows += rows;
  if (!t_in_forward) ++s->wrong_thread;
  if (rows < 1 || hidden < 1) {
    ++s->bad_args;
    return 0;
  }
  for (int64_t i = 0; i < rows * hidden; ++i) {
    if (output[i] != 0.0f) {
      ++s->bad_args;
      break;
    }
  }
  if (s->record) {
    std::lock_guard<std::mutex> lock(s->mutex);
    s->seen.emplace_back(expert, std::vector<float>(input, input + rows * hidden));
  }
  if (s->fail_expert.load() == expert) return s->fail_value.load();
  return ComputeCallback(expert, input, rows, hidden, output);
}

po::Hyper Cfg::Hyper() const {
  po::Hyper h = LayerHyper(*this);
  h.expert_choice = expert_choice;
  std::stringstream levels(group_levels);
  std::string item;
  while (std::getline(levels, item, ',')) {
    const size_t colon = item.find(':');
    po::Hyper::GroupLevel l;
    l.groups = std::atoi(item.substr(0, colon).c_str());
    l.keep = std::atoi(item.substr(colon + 1).c_str());
    h.group_levels.push_back(l);
  }
  h.attention_heads = attention_heads;
  h.attention_head_dim = attention_head_dim;
  h.attention_causal = attention_causal;
  h.adaptive_bias_rate = adaptive_bias_rate;
  h.dynamic_capacity = dynamic_capacity;
  h.capacity_momentum = capacity_momentum;
  h.combine_dim = combine_dim;
  h.expert_input_scaling = expert_input_scaling;
  h.sparsemixer_eps = sparsemixer_eps;
  h.callback_experts = callback_experts;
  h.callback = [](int32_t e, const float *in, int64_t rows, int64_t width, float *out) {
    return ComputeCallback(e, in, rows, width, out);
  };
  return h;
}

std::string Cfg::Describe() const {
  std::ostringstream s;
  s << "H=" << hidden << " E=" << experts << " k=" << top_k << " I=" << intermediate << " seed=" << seed
    << " threads=" << threads << " backend=" << Backend();
  if (temperature != 1.0) s << " tau=" << temperature;
  if (!renormalize) s << " renorm=0";
  if (capacity_factor > 0.0) s << " cf=" << capacity_factor;
  if (sigmoid) s << " sigmoid";
  if (router_bias) s << " router_bias";
  if (routed_scaling != 1.0) s << " scaling=" << routed_scaling;
  if (num_groups > 1) s << " groups=" << num_groups << "/" << topk_groups;
  if (group_max) s << " group_score=max";
  if (shared_width > 0) s << " shared=" << shared_width << (shared_gate ? "+gate" : "");
  if (expert_choice) s << " expert_choice";
  if (!group_levels.empty()) s << " group_levels=" << group_levels;
  if (attention_heads > 0) {
    s << " attention=" << attention_heads << "x" << attention_head_dim << (attention_causal ? " causal" : "");
  }
  if (adaptive_bias_rate > 0.0) s << " adaptive=" << adaptive_bias_rate;
  if (dynamic_capacity) s << " dynamic(beta=" << capacity_momentum << ")";
  if (combine_dim > 0) s << " combine=" << combine_dim;
  if (expert_input_scaling) s << " expert_input_scaling";
  if (sparsemixer_eps > 0.0) s << " sparsemixer=" << sparsemixer_eps;
  if (!callback_experts.empty()) {
    s << " callbacks=";
    for (int32_t e : callback_experts) s << e << ";";
  }
  if (deterministic) s << " deterministic";
  return s.str();
}

void MakeOptions(const Cfg &c, OptionsPtr *out) {
  pimoe_options *raw = nullptr;
  PIMOE_ASSERT_OK(pimoe_options_create(&raw));
  OptionsPtr o(raw);
  pimoe_options *p = o.get();
  ASSERT_NO_FATAL_FAILURE(SetLayerOptions(p, c));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_THREADS, c.threads));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_DETERMINISTIC, c.deterministic ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_string(p, PIMOE_OPT_BACKEND, Backend()));
  PIMOE_ASSERT_OK(
      pimoe_options_set_string(p, PIMOE_OPT_ROUTING_MODE, c.expert_choice ? "expert_choice" : "token_choice"));
  PIMOE_ASSERT_OK(pimoe_options_set_string(p, PIMOE_OPT_GROUP_LEVELS, c.group_levels.c_str()));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_ATTENTION_HEADS, c.attention_heads));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_ATTENTION_HEAD_DIM, c.attention_head_dim));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_ATTENTION_CAUSAL, c.attention_causal ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_float(p, PIMOE_OPT_ADAPTIVE_BIAS_RATE, c.adaptive_bias_rate));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_DYNAMIC_CAPACITY, c.dynamic_capacity ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_float(p, PIMOE_OPT_CAPACITY_MOMENTUM, c.capacity_momentum));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_COMBINE_ATTENTION_DIM, c.combine_dim));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_EXPERT_INPUT_SCALING, c.expert_input_scaling ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_float(p, PIMOE_OPT_SPARSEMIXER_EPS, c.sparsemixer_eps));
  for (int32_t e : c.callback_experts) {
    PIMOE_ASSERT_OK(pimoe_options_set_expert_callback(p, e, TestCallback, c.callbacks));
  }
  *out = std::move(o);
}

void Create(const Cfg &c, ModelPtr *out) {
  OptionsPtr o;
  ASSERT_NO_FATAL_FAILURE(MakeOptions(c, &o));
  pimoe_model *m = nullptr;
  PIMOE_ASSERT_OK(pimoe_create(o.get(), &m));
  ASSERT_NE(m, nullptr);
  out->reset(m);
}

void CreateAndLoad(const Cfg &c, ModelPtr *model, po::Weights *w) {
  ASSERT_NO_FATAL_FAILURE(Create(c, model));
  const std::string err = po::LoadWeights(model->get(), c.Hyper(), w);
  ASSERT_EQ(err, "") << c.Describe();
  ASSERT_EQ(w->hidden, c.hidden);
  ASSERT_EQ(w->num_experts, c.experts);
  ASSERT_EQ(w->top_k, c.top_k);
  ASSERT_EQ(pimoe_model_routing_slots(model->get()), c.expert_choice ? c.experts : c.top_k);
}

std::vector<float> RandomInput(size_t n, uint64_t seed, double scale) {
  return SplitMixInput(n, seed, 0x9876543ULL, scale);
}

std::vector<float> ReadTensor(const pimoe_model *m, const char *name) {
  int32_t ndim = 0;
  int64_t dims[4] = {0, 0, 0, 0};
  if (pimoe_tensor_shape(m, name, &ndim, dims) != PIMOE_OK) {
    ADD_FAILURE() << "pimoe_tensor_shape(" << name << "): " << pimoe_last_error();
    return {};
  }
  size_t n = 1;
  for (int32_t i = 0; i < ndim; ++i) n *= static_cast<size_t>(dims[i]);
  std::vector<float> v(n, std::nanf(""));
  if (pimoe_tensor_read(m, name, v.data(), v.size()) != PIMOE_OK) {
    ADD_FAILURE() << "pimoe_tensor_read(" << name << "): " << pimoe_last_error();
  }
  return v;
}

bool SameBits(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

bool SameOrParity(const std::vector<float> &a, const std::vector<float> &b) {
  if (std::strcmp(Backend(), "cpu") == 0) return SameBits(a, b);
  if (a.size() != b.size()) return false;
  double rms = 0.0, err = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    rms += static_cast<double>(b[i]) * b[i];
    err = std::max(err, std::fabs(static_cast<double>(a[i]) - b[i]));
  }
  rms = std::sqrt(rms / std::max<size_t>(1, a.size()));
  return err <= 1e-5 * rms + 1e-7;
}

std::string Show(const std::vector<float> &v) {
  std::ostringstream s;
  s.precision(9);
  for (float f : v) s << f << " ";
  return s.str();
}

pimoe_status LibRun(pimoe_model *m, const std::vector<float> &x, int64_t batch, int64_t seq, CallResult *out) {
  int64_t hidden = 0;
  int32_t experts = 0;
  if (pimoe_model_dims(m, &hidden, &experts, nullptr) != PIMOE_OK) return PIMOE_ERR_INTERNAL;
  const int64_t tokens = batch * seq, slots = pimoe_model_routing_slots(m);
  out->tokens = tokens;
  out->slots = slots;
  out->output.assign(static_cast<size_t>(tokens * hidden), std::nanf(""));
  out->ids.assign(static_cast<size_t>(tokens * slots), -7);
  out->weights.assign(static_cast<size_t>(tokens * slots), std::nanf(""));
  out->dropped.assign(static_cast<size_t>(tokens * slots), 0xab);
  out->probs.assign(static_cast<size_t>(tokens * experts), std::nanf(""));
  pimoe_routing r;
  std::memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.expert_ids = out->ids.data();
  r.weights = out->weights.data();
  r.dropped = out->dropped.data();
  r.slot_count = out->ids.size();
  r.probabilities = out->probs.data();
  r.probability_count = out->probs.size();
  t_in_forward = true;
  const pimoe_status st =
      pimoe_forward_routing(m, x.data(), x.size(), batch, seq, out->output.data(), out->output.size(), &r);
  t_in_forward = false;
  return st;
}

bool SameRun(const CallResult &a, const CallResult &b) {
  return SameBits(a.output, b.output) && a.ids == b.ids && SameBits(a.weights, b.weights) && a.dropped == b.dropped &&
         SameBits(a.probs, b.probs);
}

bool HasNearTie(const po::Result &r) {
  for (size_t t = 0; t < static_cast<size_t>(r.tokens); ++t) {
    if (r.boundary_gap[t] < kTie || r.min_slot_gap[t] < kTie || r.boundary_zgap[t] < kTie ||
        r.min_slot_zgap[t] < kTie) {
      return true;
    }
  }
  return false;
}

// An input [batch*seq, H] whose call has no near tie anywhere (per the oracle with the current state of w), and the
// oracle's result on it.
std::vector<float> DrawInput(const po::Weights &w, const po::Hyper &hp, int64_t batch, int64_t seq, uint64_t seed,
                             po::Result *result) {
  const size_t n = static_cast<size_t>(batch * seq * w.hidden);
  for (uint64_t attempt = 0; attempt < 200; ++attempt) {
    std::vector<float> x = RandomInput(n, seed * 1009 + attempt * 7919 + 1);
    *result = po::Forward(w, hp, x.data(), batch, seq);
    if (!result->error.empty() || !HasNearTie(*result)) return x;
  }
  ADD_FAILURE() << "no tie-free input found in 200 draws";
  return RandomInput(n, seed);
}

// Compares one library call with the oracle; returns "" or a description of the mismatches.
std::string Compare(const CallResult &lib, const po::Result &r, int64_t hidden, int32_t experts) {
  std::ostringstream problems;
  const size_t tokens = static_cast<size_t>(r.tokens), slots = static_cast<size_t>(r.slots);
  const size_t hd = static_cast<size_t>(hidden), ne = static_cast<size_t>(experts);
  if (lib.slots != r.slots) problems << "routing slots " << lib.slots << ", oracle " << r.slots << "; ";
  double sum_sq = 0.0;
  for (double v : r.output) sum_sq += v * v;
  const double rms = std::sqrt(sum_sq / static_cast<double>(r.output.size()));
  if (!(rms > 0.0)) problems << "degenerate: the oracle output is all zero; ";
  double max_err = 0.0;
  size_t worst = 0;
  for (size_t i = 0; i < r.output.size(); ++i) {
    const float lv = lib.output[i];
    const double err =
        std::isfinite(lv) ? std::fabs(static_cast<double>(lv) - r.output[i]) : std::numeric_limits<double>::infinity();
    if (!(err <= max_err)) {
      max_err = err;
      worst = i;
    }
  }
  if (!(max_err <= kOutputTol * rms)) {
    problems << "output differs by " << max_err << " > 1e-5 * RMS " << rms << " at token " << worst / hd << " h "
             << worst % hd << " (lib " << lib.output[worst] << ", oracle " << r.output[worst] << "); ";
  }
  int64_t bad_slots = 0;
  std::string first_slot;
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t j = 0; j < slots; ++j) {
      const size_t i = t * slots + j;
      std::ostringstream s;
      if (lib.ids[i] != r.ids[i]) {
        s << "expert " << lib.ids[i] << ", oracle " << r.ids[i];
      } else if (lib.dropped[i] != r.dropped[i]) {
        s << "dropped " << int(lib.dropped[i]) << ", oracle " << int(r.dropped[i]);
      } else if (!(std::fabs(static_cast<double>(lib.weights[i]) - r.weights[i]) <=
                   1e-6 + 1e-5 * std::fabs(r.weights[i]))) {
        s << "expert " << r.ids[i] << " weight " << lib.weights[i] << ", oracle " << r.weights[i];
      }
      if (!s.str().empty() && bad_slots++ == 0)
        first_slot = "token " + std::to_string(t) + " slot " + std::to_string(j) + ": " + s.str();
    }
  }
  if (bad_slots > 0) problems << bad_slots << " routing slots differ, first: " << first_slot << "; ";
  int64_t bad_probs = 0;
  std::string first_prob;
  for (size_t i = 0; i < tokens * ne; ++i) {
    if (!(std::fabs(static_cast<double>(lib.probs[i]) - r.probs[i]) <= 1e-6 + 1e-5 * std::fabs(r.probs[i]))) {
      if (bad_probs++ == 0) {
        std::ostringstream s;
        s << "token " << i / ne << " expert " << i % ne << ": " << lib.probs[i] << ", oracle " << r.probs[i];
        first_prob = s.str();
      }
    }
  }
  if (bad_probs > 0) problems << bad_probs << " probabilities differ, first: " << first_prob << "; ";
  return problems.str();
}

void CheckChain(const Cfg &c, int64_t batch, int64_t seq, int calls, uint64_t seed, ChainSummary *summary) {
  SCOPED_TRACE(c.Describe() + " shape " + std::to_string(batch) + "x" + std::to_string(seq) + " input seed " +
               std::to_string(seed));
  std::vector<po::ExpertSpec> specs;
  for (int32_t e = 0; e < c.experts; ++e) {
    const bool callback =
        std::find(c.callback_experts.begin(), c.callback_experts.end(), e) != c.callback_experts.end();
    if (!callback) specs.push_back(po::ExpertSpec{c.activation, c.intermediate, c.pre_norm});
  }
  if (BackendRefusesExperts(specs, c.expert_bias)) {  // a GPU backend: nothing to compare
    OptionsPtr o;
    MakeOptions(c, &o);
    if (o) ExpectBackendRefuses(o.get());
    return;
  }
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(c, &model, &w));
  const po::Hyper hp = c.Hyper();
  const std::vector<float> bias0 = w.selection_bias, ema0 = w.load_ema;
  if (c.dynamic_capacity) {
    ASSERT_EQ(ema0, std::vector<float>(static_cast<size_t>(c.experts), 1.0f / static_cast<float>(c.experts)))
        << "router.load_ema starts at 1/E";
  }
  std::vector<uint64_t> loads(static_cast<size_t>(c.experts), 0);
  uint64_t dropped = 0, tokens = 0;
  double last_aux = 0.0, last_z = 0.0, top1_sum = 0.0;
  ChainSummary local;
  ChainSummary &sum = summary ? *summary : local;
  for (int call = 0; call < calls; ++call) {
    SCOPED_TRACE("call " + std::to_string(call));
    po::Result r;
    const std::vector<float> x = DrawInput(w, hp, batch, seq, seed * 31 + static_cast<uint64_t>(call), &r);
    ASSERT_EQ(r.error, "");
    CallResult lib;
    PIMOE_ASSERT_OK(LibRun(model.get(), x, batch, seq, &lib));
    EXPECT_EQ(Compare(lib, r, c.hidden, c.experts), "");
    for (size_t e = 0; e < loads.size(); ++e) loads[e] += r.loads[e];
    dropped += r.dropped_count;
    tokens += static_cast<uint64_t>(r.tokens);
    last_aux = r.aux_loss;
    last_z = r.z_loss;
    top1_sum += r.top1_sum;
    sum.dropped += r.dropped_count;
    for (int32_t e : c.callback_experts) sum.callback_rows += static_cast<int64_t>(r.loads[static_cast<size_t>(e)]);
    if (c.expert_choice) {
      for (int64_t t = 0; t < r.tokens; ++t) sum.tokens_without_expert += r.ids[static_cast<size_t>(t * r.slots)] < 0;
    }
    if (c.dynamic_capacity) {
      for (int64_t cap : r.capacities) sum.capacities_uneven |= cap != r.capacities[0];
    }
    if (hp.adaptive_bias_rate > 0.0) {
      w.selection_bias = po::AdaptiveBiasStep(w.selection_bias, r.loads, hp.adaptive_bias_rate);
      const std::vector<float> lib_bias = ReadTensor(model.get(), "router.selection_bias");
      EXPECT_TRUE(SameBits(lib_bias, w.selection_bias)) << "router.selection_bias after the call: library "
                                                        << Show(lib_bias) << ", oracle " << Show(w.selection_bias);
      sum.bias_moved |= !SameBits(w.selection_bias, bias0);
    }
    if (hp.dynamic_capacity) {
      w.load_ema =
          po::LoadEmaStep(w.load_ema, r.choices, static_cast<uint64_t>(r.tokens * hp.top_k), hp.capacity_momentum);
      const std::vector<float> lib_ema = ReadTensor(model.get(), "router.load_ema");
      EXPECT_TRUE(SameBits(lib_ema, w.load_ema))
          << "router.load_ema after the call: library " << Show(lib_ema) << ", oracle " << Show(w.load_ema);
      sum.ema_moved |= !SameBits(w.load_ema, ema0);
    }
  }
  std::vector<uint64_t> lib_loads(loads.size(), 0);
  PIMOE_ASSERT_OK(pimoe_stats_expert_loads(model.get(), lib_loads.data(), lib_loads.size()));
  EXPECT_EQ(lib_loads, loads) << "per-expert loads over the calls";
  pimoe_stats_snapshot s;
  std::memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  PIMOE_ASSERT_OK(pimoe_stats(model.get(), &s));
  EXPECT_EQ(s.forward_calls, static_cast<uint64_t>(calls));
  EXPECT_EQ(s.tokens, tokens);
  EXPECT_EQ(s.dropped_tokens, dropped);
  EXPECT_LE(std::fabs(s.aux_loss - last_aux), 1e-5 * std::fabs(last_aux) + 1e-9)
      << "aux_loss of the last call: library " << s.aux_loss << ", oracle " << last_aux;
  EXPECT_LE(std::fabs(s.z_loss - last_z), 1e-5 * std::fabs(last_z) + 1e-7)
      << "z_loss of the last call: library " << s.z_loss << ", oracle " << last_z;
  const double confidence = top1_sum / static_cast<double>(tokens);
  EXPECT_LE(std::fabs(s.routing_confidence - confidence), 1e-5 * confidence + 1e-9)
      << "routing_confidence: library " << s.routing_confidence << ", oracle " << confidence;
  const po::Balance b = po::BalanceMetrics(loads);
  EXPECT_NEAR(s.load_jain_index, b.jain, 1e-9);
}

// Runs CheckChain for every config, seed (of the weights and of the inputs), shape and thread count 1 and 2.
void CheckAll(const std::vector<Cfg> &configs, const std::vector<std::pair<int64_t, int64_t>> &shapes, int calls,
              const std::vector<uint64_t> &seeds, ChainSummary *summary) {
  for (const Cfg &base : configs) {
    for (int threads : {1, 2}) {
      Cfg c = base;
      c.threads = threads;
      for (const auto &shape : shapes) {
        for (uint64_t seed : seeds) {
          c.seed = base.seed + static_cast<int64_t>(seed) - 1;
          ASSERT_NO_FATAL_FAILURE(CheckChain(c, shape.first, shape.second, calls, seed, summary));
        }
      }
    }
  }
}

std::vector<float> SkewedInput(const std::vector<float> &router, int64_t hidden, int64_t tokens, uint64_t seed) {
  std::vector<float> x = RandomInput(static_cast<size_t>(tokens * hidden), seed);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t h = 0; h < hidden; ++h)
      x[static_cast<size_t>(t * hidden + h)] += 4.0f * router[static_cast<size_t>(h)];
  }
  return x;
}

double Jain(const std::vector<uint64_t> &loads) {
  double s = 0.0, s2 = 0.0;
  for (uint64_t l : loads) {
    s += static_cast<double>(l);
    s2 += static_cast<double>(l) * static_cast<double>(l);
  }
  return s2 > 0.0 ? s * s / (static_cast<double>(loads.size()) * s2) : 1.0;
}

std::vector<uint64_t> Loads(const pimoe_model *m, size_t experts) {
  std::vector<uint64_t> l(experts, 0);
  EXPECT_EQ(pimoe_stats_expert_loads(m, l.data(), l.size()), PIMOE_OK) << pimoe_last_error();
  return l;
}

pimoe_stats_snapshot Stats(const pimoe_model *m) {
  pimoe_stats_snapshot s;
  std::memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  EXPECT_EQ(pimoe_stats(m, &s), PIMOE_OK) << pimoe_last_error();
  return s;
}

pimoe_status Forward(pimoe_model *m, const std::vector<float> &x, int64_t batch, int64_t seq, std::vector<float> *y) {
  y->assign(x.size(), std::nanf(""));
  t_in_forward = true;
  const pimoe_status st = pimoe_forward(m, x.data(), x.size(), batch, seq, y->data(), y->size(), nullptr, nullptr, 0);
  t_in_forward = false;
  return st;
}

std::string TempPath(const std::string &name) {
  static int counter = 0;
  return ::testing::TempDir() + "pimoe_rf_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
         name + ".safetensors";
}

// The "__metadata__" of a safetensors file as raw JSON text.
std::string FileHeader(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  unsigned char len[8] = {0};
  f.read(reinterpret_cast<char *>(len), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  if (!f || n > (1u << 24)) return "";
  std::string header(static_cast<size_t>(n), '\0');
  f.read(&header[0], static_cast<std::streamsize>(n));
  return header;
}

// The string value of metadata key `key` in the JSON header, or "<missing>".
std::string MetaValue(const std::string &header, const std::string &key) {
  const std::string quoted = "\"" + key + "\"";
  size_t p = header.find(quoted);
  if (p == std::string::npos) return "<missing>";
  p += quoted.size();
  while (p < header.size() && (header[p] == ' ' || header[p] == ':')) ++p;
  if (p >= header.size() || header[p] != '"') return "<not a string>";
  const size_t end = header.find('"', p + 1);
  return header.substr(p + 1, end - p - 1);
}

// The call failed with `status` and pimoe_last_error() names every culprit.
::testing::AssertionResult FailedWith(pimoe_status got, pimoe_status want, const std::vector<std::string> &culprits) {
  const std::string msg = pimoe_last_error();
  if (got != want) {
    return ::testing::AssertionFailure() << "status " << got << " (" << pimoe_status_string(got) << "), expected "
                                         << want << "; message: " << msg;
  }
  for (const std::string &c : culprits) {
    if (!Contains(msg, c))
      return ::testing::AssertionFailure() << "message '" << msg << "' does not name '" << c << "'";
  }
  return ::testing::AssertionSuccess();
}

std::string ParamName(const std::string &text) {
  std::string name;
  for (char ch : text) name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return name;
}

}  // namespace pimoe_rf
