// The routing features of issue 4 (pimoe.h: PIMOE_OPT_ROUTING_MODE .. PIMOE_OPT_COMBINE_ATTENTION_DIM, callback
// experts, pimoe_forward_routing, pimoe_model_reset_adaptive_state): parity with the reference oracle (tests/oracle)
// per feature and in combination, behaviour tests with numbers asserted (the issue's "Done when"), save/load round
// trips, error cases, and concurrent forwards.
//
// Parity: every call is compared in full through pimoe_forward_routing: output within 1e-5 * RMS(oracle output),
// expert ids and dropped flags exactly, weights within 1e-6 + 1e-5 * w, router probabilities within 1e-6 + 1e-5 * p.
// Near ties: instead of skipping tokens, inputs are redrawn until the oracle sees no near tie anywhere in the call
// (ranked scores, group scores or expert-choice thresholds closer than kTie): capacity limits, expert choice, the
// attention router and the stateful features make every token depend on the others, so a call is compared whole.
// Stateful features (adaptive bias, dynamic capacity) are compared over chained calls, the oracle's state advanced
// with AdaptiveBiasStep / LoadEmaStep after each call, and the library's state tensors must equal it bit for bit.
//
// The backend under test is "cpu", or $PIMOE_TEST_BACKEND (as test_parity), so GPU backends can reuse this file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backend_under_test.h"
#include "oracle.h"
#include "pimoe/pimoe.h"

namespace {

namespace po = pimoe_oracle;

constexpr double kOutputTol = 1e-5;  // relative to the RMS of the oracle output
constexpr double kTie = 1e-5;        // a gap between ranked scores (or z/tau) below this is a near tie

#define PIMOE_EXPECT_OK(expr) EXPECT_EQ((expr), PIMOE_OK) << #expr << ": " << pimoe_last_error()

const bool kBackendChecked = ExitUnlessBackendUsable("test_routing_features");

bool Contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

// ================================================================================================ callback experts

// The exact function every callback expert of these tests computes (the oracle calls the same function):
// even experts: y = 2*x + 1 element-wise; odd experts: every element of the row is its sum, accumulated in long
// double (a "high-precision arithmetic" expert).
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

// Set by the test thread around its pimoe_forward* calls: the callback checks that it runs on such a thread (the
// header's thread contract: fn runs on the thread that called pimoe_forward).
thread_local bool t_in_forward = false;

// What the library's callbacks saw; user_data of every callback expert in these tests.
struct CallbackState {
  std::atomic<int> fail_expert{-1};  // this expert's callback returns fail_value
  std::atomic<int> fail_value{-7};
  std::atomic<int64_t> calls{0};
  std::atomic<int64_t> rows{0};
  std::atomic<int64_t> wrong_thread{0};  // calls outside a pimoe_forward of the calling thread
  std::atomic<int64_t> bad_args{0};      // rows < 1, hidden < 1, output not zero-filled
  // Serial tests only: every call's (expert, input rows).
  bool record = false;
  std::mutex mutex;
  std::vector<std::pair<int32_t, std::vector<float>>> seen;

  void Clear() {
    calls = 0;
    rows = 0;
    wrong_thread = 0;
    bad_args = 0;
    std::lock_guard<std::mutex> lock(mutex);
    seen.clear();
  }
};

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

// ================================================================================================ layers

// A layer with every option these tests vary (small shapes by default).
struct Cfg {
  int64_t hidden = 32;
  int32_t experts = 8;
  int32_t top_k = 2;
  int64_t intermediate = 32;
  pimoe_activation activation = PIMOE_ACT_GELU;
  bool pre_norm = false;
  bool expert_bias = false;
  double temperature = 1.0;
  bool renormalize = true;
  double capacity_factor = 0.0;
  int64_t seed = 1;
  int threads = 1;
  bool deterministic = false;
  bool sigmoid = false;
  bool router_bias = false;
  double routed_scaling = 1.0;
  int32_t num_groups = 1;
  int32_t topk_groups = 1;
  bool group_max = false;
  int64_t shared_width = 0;
  bool shared_gate = false;
  // Routing features.
  bool expert_choice = false;
  std::string group_levels;
  int32_t attention_heads = 0;
  int32_t attention_head_dim = 16;
  bool attention_causal = false;
  double adaptive_bias_rate = 0.0;
  bool dynamic_capacity = false;
  double capacity_momentum = 0.9;
  int32_t combine_dim = 0;
  std::vector<int32_t> callback_experts;
  CallbackState *callbacks = &g_callbacks;

  po::Hyper Hyper() const {
    po::Hyper h;
    h.temperature = temperature;
    h.renormalize = renormalize;
    h.capacity_factor = capacity_factor;
    h.top_k = top_k;
    h.expert_bias = expert_bias;
    h.sigmoid = sigmoid;
    h.router_bias = router_bias;
    h.routed_scaling = routed_scaling;
    h.num_groups = num_groups;
    h.topk_groups = topk_groups;
    h.group_max = group_max;
    h.shared_width = shared_width;
    h.shared_gate = shared_gate;
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
    h.callback_experts = callback_experts;
    h.callback = [](int32_t e, const float *in, int64_t rows, int64_t width, float *out) {
      return ComputeCallback(e, in, rows, width, out);
    };
    return h;
  }

  std::string Describe() const {
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
    if (!callback_experts.empty()) {
      s << " callbacks=";
      for (int32_t e : callback_experts) s << e << ";";
    }
    if (deterministic) s << " deterministic";
    return s.str();
  }
};

void MakeOptions(const Cfg &c, OptionsPtr *out) {
  pimoe_options *raw = nullptr;
  PIMOE_ASSERT_OK(pimoe_options_create(&raw));
  OptionsPtr o(raw);
  pimoe_options *p = o.get();
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_HIDDEN, c.hidden));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_NUM_EXPERTS, c.experts));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_TOP_K, c.top_k));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_INTERMEDIATE, c.intermediate));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_ACTIVATION, c.activation));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_PRE_NORM, c.pre_norm ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_EXPERT_BIAS, c.expert_bias ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_float(p, PIMOE_OPT_TEMPERATURE, c.temperature));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_RENORMALIZE, c.renormalize ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_float(p, PIMOE_OPT_CAPACITY_FACTOR, c.capacity_factor));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_SEED, c.seed));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_THREADS, c.threads));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_DETERMINISTIC, c.deterministic ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_string(p, PIMOE_OPT_BACKEND, Backend()));
  PIMOE_ASSERT_OK(pimoe_options_set_string(p, PIMOE_OPT_ROUTER_SCORING, c.sigmoid ? "sigmoid" : "softmax"));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_ROUTER_BIAS, c.router_bias ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_float(p, PIMOE_OPT_ROUTED_SCALING, c.routed_scaling));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_NUM_GROUPS, c.num_groups));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_TOPK_GROUPS, c.topk_groups));
  PIMOE_ASSERT_OK(pimoe_options_set_string(p, PIMOE_OPT_GROUP_SCORE, c.group_max ? "max" : "top2_sum"));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_SHARED_WIDTH, c.shared_width));
  PIMOE_ASSERT_OK(pimoe_options_set_int(p, PIMOE_OPT_SHARED_GATE, c.shared_gate ? 1 : 0));
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

// Uniform values of unit variance, from SplitMix64.
std::vector<float> RandomInput(size_t n, uint64_t seed, double scale = 1.0) {
  uint64_t state = seed * 0x2545f4914f6cdd1dULL + 0x9876543ULL;
  std::vector<float> v(n);
  for (float &f : v) {
    const double u = static_cast<double>(po::SplitMix64Next(&state) >> 11) * (1.0 / 9007199254740992.0);
    f = static_cast<float>((2.0 * u - 1.0) * std::sqrt(3.0) * scale);
  }
  return v;
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

// Bit-identical on the CPU backend. A GPU backend may route a call on its device (fused kernels) when no router
// probabilities are asked for and on the host when they are, so there the two only agree within parity tolerance.
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

// ================================================================================================ library calls

// One call's full results through pimoe_forward_routing.
struct CallResult {
  std::vector<float> output;
  std::vector<int32_t> ids;
  std::vector<float> weights;
  std::vector<uint8_t> dropped;
  std::vector<float> probs;
  int64_t tokens = 0;
  int64_t slots = 0;
};

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

// What a chain of calls exercised (so that tests can assert they were not vacuous).
struct ChainSummary {
  uint64_t dropped = 0;
  int64_t callback_rows = 0;          // kept assignments to callback experts (oracle)
  int64_t tokens_without_expert = 0;  // expert choice: tokens that got no expert
  bool bias_moved = false;
  bool ema_moved = false;
  bool capacities_uneven = false;  // dynamic capacity: C_i not all equal in some call
};

// Creates the layer and runs `calls` chained forward calls of [batch, seq] against the oracle: output, routing,
// probabilities, the adaptive state tensors (bit for bit) after each call, and the statistics at the end.
void CheckChain(const Cfg &c, int64_t batch, int64_t seq, int calls, uint64_t seed, ChainSummary *summary = nullptr) {
  SCOPED_TRACE(c.Describe() + " shape " + std::to_string(batch) + "x" + std::to_string(seq) + " input seed " +
               std::to_string(seed));
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
              const std::vector<uint64_t> &seeds, ChainSummary *summary = nullptr) {
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

// ================================================================================================ parity

TEST(RoutingParity, ExpertChoice) {
  std::vector<Cfg> configs;
  Cfg c;
  c.expert_choice = true;
  configs.push_back(c);  // capacity_factor 0: C = ceil(T*top_k/E)
  c.capacity_factor = 1.25;
  configs.push_back(c);
  c.capacity_factor = 3.0;
  c.sigmoid = true;
  c.routed_scaling = 2.5;
  configs.push_back(c);
  c = Cfg();
  c.expert_choice = true;
  c.temperature = 0.7;
  c.shared_width = 24;
  c.shared_gate = true;
  configs.push_back(c);
  c = Cfg();
  c.expert_choice = true;
  c.hidden = 16;
  c.experts = 4;
  c.top_k = 1;
  c.capacity_factor = 0.5;
  c.renormalize = false;  // does not apply to expert choice
  configs.push_back(c);
  c = Cfg();
  c.expert_choice = true;
  c.hidden = 48;
  c.experts = 16;
  c.capacity_factor = 2.0;
  c.activation = PIMOE_ACT_SWIGLU;
  c.expert_bias = true;
  configs.push_back(c);
  // Combined: the attention router, callback experts, the attention combine and the shared expert.
  c = Cfg();
  c.expert_choice = true;
  c.attention_heads = 2;
  c.attention_head_dim = 8;
  c.callback_experts = {1, 6};
  c.combine_dim = 8;
  c.shared_width = 16;
  configs.push_back(c);
  ChainSummary summary;
  ASSERT_NO_FATAL_FAILURE(CheckAll(configs, {{1, 37}, {3, 16}}, 1, {1, 2}, &summary));
  EXPECT_GT(summary.tokens_without_expert, 0) << "no token went without an expert: the test would not show 0..E";
  EXPECT_GT(summary.callback_rows, 0);
  // Tiny calls: C = min(T, ceil(T*cf/E)) reaches T (every token gets every expert).
  c = Cfg();
  c.expert_choice = true;
  c.capacity_factor = 8.0;
  ASSERT_NO_FATAL_FAILURE(CheckAll({c}, {{1, 3}, {1, 1}}, 1, {3}));
}

TEST(RoutingParity, GroupTree) {
  std::vector<Cfg> configs;
  Cfg c;
  c.experts = 16;
  c.intermediate = 24;
  c.group_levels = "2:1,2:1";  // 2 levels, eligible 4
  configs.push_back(c);
  c.group_levels = "2:2,2:1";
  c.top_k = 4;
  c.group_max = true;
  configs.push_back(c);
  c.group_levels = "4:2,2:3";  // level 2 keeps 3 of the 4 subgroups
  c.top_k = 3;
  c.group_max = false;
  c.sigmoid = true;
  c.router_bias = true;
  configs.push_back(c);
  c.group_levels = "2:1,2:2,2:1";  // 3 levels, eligible 2
  c.top_k = 2;
  c.routed_scaling = 2.5;
  configs.push_back(c);
  c.group_levels = "2:2,2:2,2:3";  // 3 levels, eligible 6
  c.top_k = 4;
  c.group_max = true;
  c.routed_scaling = 1.0;
  c.sigmoid = false;
  c.router_bias = false;
  configs.push_back(c);
  c = Cfg();
  c.group_levels = "2:1,4:2";  // E = 8: level-2 groups of one expert (top2_sum of one expert is that expert)
  configs.push_back(c);
  c = Cfg();
  c.experts = 16;
  c.group_levels = "4:2";  // a single level: NUM_GROUPS = 4, TOPK_GROUPS = 2
  c.top_k = 3;
  c.sigmoid = true;
  c.router_bias = true;
  configs.push_back(c);
  // Combined with the attention router, capacity and the shared expert.
  c = Cfg();
  c.experts = 16;
  c.group_levels = "2:2,2:1";
  c.attention_heads = 3;
  c.attention_head_dim = 8;
  c.capacity_factor = 1.0;
  c.shared_width = 16;
  configs.push_back(c);
  // Combined with callback experts and the attention combine.
  c = Cfg();
  c.experts = 16;
  c.group_levels = "2:1,2:2";
  c.top_k = 3;
  c.callback_experts = {0, 5, 9};
  c.combine_dim = 4;
  c.sigmoid = true;
  c.router_bias = true;
  configs.push_back(c);
  ASSERT_NO_FATAL_FAILURE(CheckAll(configs, {{1, 40}, {2, 9}}, 1, {1, 2}));
  // Combined with adaptive bias and dynamic capacity (chained calls).
  c = Cfg();
  c.experts = 16;
  c.group_levels = "2:1,2:2";
  c.adaptive_bias_rate = 0.01;
  c.capacity_factor = 1.0;
  c.dynamic_capacity = true;
  ASSERT_NO_FATAL_FAILURE(CheckAll({c}, {{2, 24}}, 3, {5}));
}

TEST(RoutingParity, GroupLevelsOfOneLevelEqualNumGroups) {
  for (bool group_max : {false, true}) {
    Cfg a;
    a.experts = 16;
    a.top_k = 3;
    a.group_max = group_max;
    a.sigmoid = true;
    a.router_bias = true;
    a.group_levels = "4:2";
    Cfg b = a;
    b.group_levels = "";
    b.num_groups = 4;
    b.topk_groups = 2;
    ModelPtr ma, mb;
    ASSERT_NO_FATAL_FAILURE(Create(a, &ma));
    ASSERT_NO_FATAL_FAILURE(Create(b, &mb));
    const std::vector<float> x = RandomInput(static_cast<size_t>(40 * a.hidden), 17);
    CallResult ra, rb;
    PIMOE_ASSERT_OK(LibRun(ma.get(), x, 1, 40, &ra));
    PIMOE_ASSERT_OK(LibRun(mb.get(), x, 1, 40, &rb));
    EXPECT_TRUE(SameRun(ra, rb)) << "group_levels \"4:2\" must equal num_groups 4 / topk_groups 2";
  }
}

TEST(RoutingParity, AttentionRouter) {
  std::vector<Cfg> configs;
  Cfg c;
  c.attention_heads = 1;
  configs.push_back(c);
  c.attention_heads = 3;
  c.attention_head_dim = 8;
  c.attention_causal = true;
  configs.push_back(c);
  c.attention_causal = false;
  c.temperature = 0.5;
  configs.push_back(c);
  c = Cfg();
  c.attention_heads = 1;
  c.attention_head_dim = 4;
  c.attention_causal = true;
  c.sigmoid = true;
  c.router_bias = true;
  c.num_groups = 4;
  c.topk_groups = 2;
  configs.push_back(c);
  c = Cfg();
  c.attention_heads = 3;
  c.attention_head_dim = 8;
  c.capacity_factor = 1.0;
  c.shared_width = 16;
  c.shared_gate = true;
  configs.push_back(c);
  c = Cfg();
  c.attention_heads = 2;
  c.attention_head_dim = 8;
  c.attention_causal = true;
  c.callback_experts = {3};
  c.combine_dim = 8;
  configs.push_back(c);
  // Attention is within each sequence: batch > 1 with seq > 1, plus one long sequence and single-token sequences.
  ASSERT_NO_FATAL_FAILURE(CheckAll(configs, {{3, 7}, {1, 20}, {5, 1}}, 1, {1, 2}));
}

TEST(RoutingParity, AdaptiveBias) {
  std::vector<Cfg> configs;
  Cfg c;
  c.adaptive_bias_rate = 0.01;
  configs.push_back(c);
  c.adaptive_bias_rate = 0.05;
  c.sigmoid = true;
  c.top_k = 3;
  c.router_bias = true;  // explicit ROUTER_BIAS too: the same layer
  configs.push_back(c);
  c = Cfg();
  c.experts = 16;
  c.adaptive_bias_rate = 0.02;
  c.group_levels = "2:1,2:2";
  configs.push_back(c);
  c = Cfg();
  c.adaptive_bias_rate = 0.02;
  c.capacity_factor = 1.0;
  c.shared_width = 16;
  configs.push_back(c);
  c = Cfg();
  c.adaptive_bias_rate = 0.01;
  c.attention_heads = 2;
  c.attention_head_dim = 8;
  c.attention_causal = true;
  configs.push_back(c);
  c = Cfg();
  c.adaptive_bias_rate = 0.03;
  c.callback_experts = {2};
  c.combine_dim = 8;
  configs.push_back(c);
  ChainSummary summary;
  ASSERT_NO_FATAL_FAILURE(CheckAll(configs, {{2, 24}}, 4, {1, 2}, &summary));
  EXPECT_TRUE(summary.bias_moved) << "the bias never moved: the chained checks were vacuous";
}

TEST(RoutingParity, DynamicCapacity) {
  std::vector<Cfg> configs;
  Cfg c;
  c.capacity_factor = 1.0;
  c.dynamic_capacity = true;
  configs.push_back(c);
  c.capacity_factor = 0.75;
  c.capacity_momentum = 0.5;
  configs.push_back(c);
  c.capacity_factor = 1.25;
  c.capacity_momentum = 0.0;  // m = the last call's demand
  c.sigmoid = true;
  c.top_k = 3;
  configs.push_back(c);
  c = Cfg();
  c.capacity_factor = 1.0;
  c.dynamic_capacity = true;
  c.adaptive_bias_rate = 0.02;
  configs.push_back(c);
  c = Cfg();
  c.experts = 16;
  c.capacity_factor = 1.0;
  c.dynamic_capacity = true;
  c.num_groups = 4;
  c.topk_groups = 2;
  c.attention_heads = 1;
  configs.push_back(c);
  c = Cfg();
  c.capacity_factor = 0.75;
  c.dynamic_capacity = true;
  c.capacity_momentum = 0.6;
  c.callback_experts = {1, 4};
  c.combine_dim = 8;
  c.shared_width = 16;
  configs.push_back(c);
  ChainSummary summary;
  ASSERT_NO_FATAL_FAILURE(CheckAll(configs, {{2, 24}}, 4, {1, 2}, &summary));
  EXPECT_TRUE(summary.ema_moved);
  EXPECT_TRUE(summary.capacities_uneven) << "the dynamic capacities never differed from the static ones";
  EXPECT_GT(summary.dropped, 0u);
}

TEST(RoutingParity, AttentionCombine) {
  std::vector<Cfg> configs;
  Cfg c;
  c.combine_dim = 8;
  configs.push_back(c);
  c.combine_dim = 4;
  c.top_k = 3;
  c.capacity_factor = 0.75;  // with capacity drops
  configs.push_back(c);
  c = Cfg();
  c.combine_dim = 16;
  c.shared_width = 24;  // with the shared expert
  c.shared_gate = true;
  configs.push_back(c);
  c = Cfg();
  c.combine_dim = 8;
  c.top_k = 1;  // a single kept slot: w' = 1
  c.capacity_factor = 1.0;
  configs.push_back(c);
  c = Cfg();
  c.combine_dim = 8;
  c.expert_bias = true;  // o_j includes the expert's biases
  c.pre_norm = true;
  c.renormalize = false;
  c.routed_scaling = 2.0;
  configs.push_back(c);
  c = Cfg();
  c.combine_dim = 8;
  c.expert_choice = true;
  c.capacity_factor = 1.5;
  configs.push_back(c);
  c = Cfg();
  c.combine_dim = 6;
  c.experts = 16;
  c.top_k = 4;
  c.callback_experts = {0, 7};
  c.capacity_factor = 1.0;
  c.shared_width = 16;
  configs.push_back(c);
  ChainSummary summary;
  ASSERT_NO_FATAL_FAILURE(CheckAll(configs, {{1, 33}, {4, 8}}, 1, {1, 2}, &summary));
  EXPECT_GT(summary.dropped, 0u) << "no capacity drop happened: the combine was not tested with drops";
}

TEST(RoutingParity, CallbackExperts) {
  std::vector<Cfg> configs;
  Cfg c;
  c.callback_experts = {0};
  configs.push_back(c);
  c.callback_experts = {1, 3, 5};
  c.top_k = 3;
  c.capacity_factor = 1.0;  // with capacity
  configs.push_back(c);
  c = Cfg();
  c.hidden = 16;
  c.experts = 4;
  c.callback_experts = {0, 1, 2, 3};  // every expert a callback
  configs.push_back(c);
  c = Cfg();
  c.callback_experts = {2, 7};
  c.combine_dim = 8;  // with the attention combine
  configs.push_back(c);
  c = Cfg();
  c.callback_experts = {6};
  c.shared_width = 16;
  c.sigmoid = true;
  c.router_bias = true;
  c.num_groups = 2;
  c.topk_groups = 1;
  c.pre_norm = true;  // LayerNorm is not applied to a callback's input
  configs.push_back(c);
  g_callbacks.Clear();
  ChainSummary summary;
  ASSERT_NO_FATAL_FAILURE(CheckAll(configs, {{1, 29}, {2, 16}}, 1, {1, 2}, &summary));
  EXPECT_GT(summary.callback_rows, 0);
  EXPECT_GT(g_callbacks.calls.load(), 0);
  EXPECT_EQ(g_callbacks.wrong_thread.load(), 0) << "a callback ran outside the calling thread's pimoe_forward";
  EXPECT_EQ(g_callbacks.bad_args.load(), 0) << "a callback got no rows, a bad width or a non-zeroed output";
}

// Every tensor of a layer with the routing features starts from the header's initialisation (SEED): the attention
// router's and the combine's weights as linear weights (fan_in H, nh*dh for router.attention.o.weight), the selection
// bias seeded, router.load_ema at 1/E (exactly: CheckChain); callback experts have no tensors.
TEST(RoutingParity, NewTensorsFollowTheHeadersInitialisation) {
  std::vector<Cfg> configs;
  Cfg c;
  c.attention_heads = 3;
  c.attention_head_dim = 8;
  c.adaptive_bias_rate = 0.01;
  c.capacity_factor = 1.0;
  c.dynamic_capacity = true;
  c.combine_dim = 6;
  c.callback_experts = {2, 5};
  c.shared_width = 16;
  c.shared_gate = true;
  c.seed = 1234;
  configs.push_back(c);
  c = Cfg();
  c.expert_choice = true;
  c.attention_heads = 1;
  c.combine_dim = 4;
  c.expert_bias = true;
  c.pre_norm = true;
  c.seed = 77;
  configs.push_back(c);
  for (const Cfg &cfg : configs) {
    SCOPED_TRACE(cfg.Describe());
    ModelPtr m;
    po::Weights w;
    ASSERT_NO_FATAL_FAILURE(CreateAndLoad(cfg, &m, &w));
    std::vector<po::ExpertSpec> specs(static_cast<size_t>(cfg.experts),
                                      po::ExpertSpec{cfg.activation, cfg.intermediate, cfg.pre_norm});
    const po::Hyper hp = cfg.Hyper();
    const std::vector<po::TensorInfo> names = po::ExpectedTensors(cfg.hidden, specs, hp);
    const std::vector<std::vector<float>> expected =
        po::InitAllTensors(static_cast<uint64_t>(cfg.seed), cfg.hidden, specs, hp);
    ASSERT_EQ(names.size(), expected.size());
    ASSERT_EQ(pimoe_tensor_count(m.get()), static_cast<int64_t>(names.size()));
    for (size_t i = 0; i < names.size(); ++i) {
      EXPECT_STREQ(pimoe_tensor_name(m.get(), static_cast<int64_t>(i)), names[i].name.c_str());
      // Within 1e-6 (as test_parity): the header fixes the generator and the range, not the last bit of the map
      // to U(-b, b).
      const std::vector<float> got = ReadTensor(m.get(), names[i].name.c_str());
      ASSERT_EQ(got.size(), expected[i].size()) << names[i].name;
      size_t bad = 0;
      while (bad < got.size() && std::fabs(got[bad] - expected[i][bad]) <= 1e-6f) ++bad;
      EXPECT_EQ(bad, got.size()) << "tensor " << names[i].name << " differs from its initialisation at element " << bad;
    }
  }
}

// pimoe_forward's expert_ids / expert_weights and pimoe_forward_routing report the same routing; every part of
// pimoe_routing is optional; probabilities are the scores before any bias or group mask.
TEST(RoutingParity, IntrospectionMatchesForwardAndOracle) {
  std::vector<Cfg> configs;
  Cfg c;
  configs.push_back(c);  // the plain softmax top-k fast path
  c.capacity_factor = 0.75;
  configs.push_back(c);
  c = Cfg();
  c.sigmoid = true;
  c.adaptive_bias_rate = 0.1;
  c.num_groups = 4;
  c.topk_groups = 2;
  configs.push_back(c);
  c = Cfg();
  c.expert_choice = true;
  configs.push_back(c);
  c = Cfg();
  c.combine_dim = 8;
  c.capacity_factor = 1.0;
  configs.push_back(c);
  for (const Cfg &cfg : configs) {
    SCOPED_TRACE(cfg.Describe());
    ModelPtr a, b;
    po::Weights w;
    ASSERT_NO_FATAL_FAILURE(CreateAndLoad(cfg, &a, &w));
    ASSERT_NO_FATAL_FAILURE(Create(cfg, &b));
    const int64_t T = 24, S = pimoe_model_routing_slots(a.get());
    po::Result r;
    const std::vector<float> x = DrawInput(w, cfg.Hyper(), 2, 12, 5, &r);
    CallResult full;
    PIMOE_ASSERT_OK(LibRun(a.get(), x, 2, 12, &full));
    EXPECT_EQ(Compare(full, r, cfg.hidden, cfg.experts), "");
    for (int64_t t = 0; t < T; ++t) {
      double sum = 0.0;
      for (int32_t e = 0; e < cfg.experts; ++e) {
        const float p = full.probs[static_cast<size_t>(t * cfg.experts + e)];
        EXPECT_TRUE(p >= 0.0f && p <= 1.0f) << "token " << t << " expert " << e << ": " << p;
        sum += p;
      }
      if (!cfg.sigmoid) {
        EXPECT_NEAR(sum, 1.0, 1e-5) << "softmax probabilities of token " << t;
      }
    }
    // pimoe_forward on an identical model (same weights, same state): the same output, ids and weights.
    std::vector<float> y(x.size(), std::nanf(""));
    std::vector<int32_t> ids(static_cast<size_t>(T * S), -7);
    std::vector<float> wt(ids.size(), std::nanf(""));
    t_in_forward = true;
    PIMOE_ASSERT_OK(
        pimoe_forward(b.get(), x.data(), x.size(), 2, 12, y.data(), y.size(), ids.data(), wt.data(), ids.size()));
    t_in_forward = false;
    EXPECT_TRUE(SameOrParity(y, full.output));
    EXPECT_EQ(ids, full.ids);
    EXPECT_TRUE(SameOrParity(wt, full.weights));
    // Dropped flags agree with the weights: a dropped slot reports its expert and weight 0.
    for (size_t i = 0; i < full.ids.size(); ++i) {
      ASSERT_TRUE(full.dropped[i] == 0 || full.dropped[i] == 1) << "slot " << i;
      if (full.dropped[i]) {
        EXPECT_GE(full.ids[i], 0);
        EXPECT_EQ(full.weights[i], 0.0f);
      }
    }
    // Optional parts, on fresh models (the stateful layers would otherwise have moved on).
    ModelPtr m1, m2, m3;
    ASSERT_NO_FATAL_FAILURE(Create(cfg, &m1));
    ASSERT_NO_FATAL_FAILURE(Create(cfg, &m2));
    ASSERT_NO_FATAL_FAILURE(Create(cfg, &m3));
    std::vector<float> y1(x.size()), probs(static_cast<size_t>(T * cfg.experts), std::nanf(""));
    PIMOE_ASSERT_OK(pimoe_forward_routing(m1.get(), x.data(), x.size(), 2, 12, y1.data(), y1.size(), nullptr));
    EXPECT_TRUE(SameOrParity(y1, full.output)) << "routing == NULL";
    pimoe_routing only_probs;
    std::memset(&only_probs, 0, sizeof only_probs);
    only_probs.struct_size = sizeof only_probs;
    only_probs.slot_count = 12345;  // ignored: no slot output wanted
    only_probs.probabilities = probs.data();
    only_probs.probability_count = probs.size();
    PIMOE_ASSERT_OK(pimoe_forward_routing(m2.get(), x.data(), x.size(), 2, 12, y1.data(), y1.size(), &only_probs));
    EXPECT_TRUE(SameBits(probs, full.probs));
    EXPECT_TRUE(SameBits(y1, full.output));
    std::vector<uint8_t> dropped(full.ids.size(), 0xab);
    pimoe_routing only_dropped;
    std::memset(&only_dropped, 0, sizeof only_dropped);
    only_dropped.struct_size = sizeof only_dropped;
    only_dropped.dropped = dropped.data();
    only_dropped.slot_count = dropped.size();
    only_dropped.probability_count = 999;  // ignored: no probabilities wanted
    PIMOE_ASSERT_OK(pimoe_forward_routing(m3.get(), x.data(), x.size(), 2, 12, y1.data(), y1.size(), &only_dropped));
    EXPECT_EQ(dropped, full.dropped);
  }
}

// ================================================================================================ behaviour

// The skewed stream: tokens x = noise + 4 * (router row 0), so expert 0 is everybody's favourite.
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

// Adaptive routing on the skewed stream (H = 32, E = 8, k = 2, T = 512 per call, rate 0.01): the per-call Jain index
// of the routed loads starts below 0.6; over calls 30..39 (loads summed over the window) it is >= 0.95, and so is the
// stats' load_jain_index over that window. Without adaptive routing the same stream stays below 0.6.
TEST(RoutingBehaviour, AdaptiveBiasRaisesJainIndexOnASkewedStream) {
  constexpr int64_t kT = 512;
  constexpr int kCalls = 40, kWindow = 30;
  double first_adaptive = 0.0, window_adaptive = 0.0, window_static = 0.0, max_static = 0.0;
  int first_call_at_95 = -1;
  for (bool adaptive : {true, false}) {
    Cfg c;
    c.seed = 3;
    c.adaptive_bias_rate = adaptive ? 0.01 : 0.0;
    ModelPtr m;
    ASSERT_NO_FATAL_FAILURE(Create(c, &m));
    const std::vector<float> router = ReadTensor(m.get(), "router.weight");
    std::vector<uint64_t> before(8, 0), window(8, 0);
    std::vector<float> y;
    for (int call = 0; call < kCalls; ++call) {
      if (call == kWindow) {
        PIMOE_ASSERT_OK(pimoe_stats_reset(m.get()));
      }
      const std::vector<float> x = SkewedInput(router, c.hidden, kT, 1000 + static_cast<uint64_t>(call));
      PIMOE_ASSERT_OK(Forward(m.get(), x, 1, kT, &y));
      const std::vector<uint64_t> now = Loads(m.get(), 8);
      std::vector<uint64_t> d(8);
      for (size_t e = 0; e < 8; ++e) d[e] = call == kWindow ? now[e] : now[e] - before[e];
      before = now;
      const double j = Jain(d);
      if (call >= kWindow) {
        for (size_t e = 0; e < 8; ++e) window[e] += d[e];
      }
      if (adaptive) {
        if (call == 0) first_adaptive = j;
        if (j >= 0.95 && first_call_at_95 < 0) first_call_at_95 = call;
      } else {
        max_static = std::max(max_static, j);
      }
    }
    const double jw = Jain(window);
    const pimoe_stats_snapshot s = Stats(m.get());
    EXPECT_NEAR(s.load_jain_index, jw, 1e-9) << "the stats' Jain index over calls 30..39";
    (adaptive ? window_adaptive : window_static) = jw;
  }
  std::printf(
      "[ info ] adaptive: Jain %.3f at call 0, first call >= 0.95: %d, calls 30..39: %.4f; static: max %.3f, "
      "calls 30..39: %.4f\n",
      first_adaptive, first_call_at_95, window_adaptive, max_static, window_static);
  EXPECT_LT(first_adaptive, 0.6) << "the stream is not skewed enough to show anything";
  EXPECT_GE(window_adaptive, 0.95) << "adaptive routing did not balance the loads within 40 calls";
  EXPECT_GE(first_call_at_95, 0) << "no single call reached Jain 0.95";
  EXPECT_LT(max_static, 0.6) << "without adaptive routing the loads must stay skewed";
  EXPECT_LT(window_static, 0.6);
}

// pimoe_model_reset_adaptive_state restores the bias (and load average) of creation bit for bit; the next call then
// equals a fresh model's.
TEST(RoutingBehaviour, ResetRestoresTheInitialStateBitForBit) {
  Cfg c;
  c.seed = 4;
  c.adaptive_bias_rate = 0.02;
  c.capacity_factor = 1.0;
  c.dynamic_capacity = true;
  c.threads = 2;
  ModelPtr m, fresh;
  ASSERT_NO_FATAL_FAILURE(Create(c, &m));
  ASSERT_NO_FATAL_FAILURE(Create(c, &fresh));
  const std::vector<float> bias0 = ReadTensor(m.get(), "router.selection_bias");
  const std::vector<float> ema0 = ReadTensor(m.get(), "router.load_ema");
  ASSERT_EQ(bias0.size(), 8u);
  ASSERT_EQ(ema0, std::vector<float>(8, 0.125f));
  const std::vector<float> router = ReadTensor(m.get(), "router.weight");
  std::vector<float> y;
  for (int call = 0; call < 5; ++call) {
    PIMOE_ASSERT_OK(Forward(m.get(), SkewedInput(router, c.hidden, 128, 50 + static_cast<uint64_t>(call)), 1, 128, &y));
  }
  EXPECT_FALSE(SameBits(ReadTensor(m.get(), "router.selection_bias"), bias0)) << "the bias did not move";
  EXPECT_FALSE(SameBits(ReadTensor(m.get(), "router.load_ema"), ema0)) << "the load average did not move";
  PIMOE_ASSERT_OK(pimoe_model_reset_adaptive_state(m.get()));
  EXPECT_TRUE(SameBits(ReadTensor(m.get(), "router.selection_bias"), bias0));
  EXPECT_TRUE(SameBits(ReadTensor(m.get(), "router.load_ema"), ema0));
  const std::vector<float> x = SkewedInput(router, c.hidden, 64, 77);
  CallResult a, b;
  PIMOE_ASSERT_OK(LibRun(m.get(), x, 2, 32, &a));
  PIMOE_ASSERT_OK(LibRun(fresh.get(), x, 2, 32, &b));
  EXPECT_TRUE(SameRun(a, b)) << "after the reset the model must route like a fresh one";
  // A no-op for a layer without adaptive state; NULL is an error.
  ModelPtr plain;
  ASSERT_NO_FATAL_FAILURE(Create(Cfg(), &plain));
  PIMOE_EXPECT_OK(pimoe_model_reset_adaptive_state(plain.get()));
  EXPECT_EQ(pimoe_model_reset_adaptive_state(nullptr), PIMOE_ERR_NULL_POINTER);
}

// Expert choice: every expert takes exactly C = min(T, ceil(T*cf/E)) tokens; tokens get 0..E experts; slots list a
// token's experts by descending weight, then unused slots (-1, weight 0); no drops.
TEST(RoutingBehaviour, ExpertChoiceGivesEveryExpertExactlyCTokens) {
  struct Case {
    int64_t tokens;
    double cf;
    int32_t top_k;
  };
  const Case cases[] = {{64, 1.0, 2}, {64, 0.0, 2}, {63, 0.0, 3}, {37, 2.5, 2}, {5, 3.0, 1}, {3, 8.0, 2}, {1, 0.5, 1}};
  for (const Case &k : cases) {
    Cfg c;
    c.expert_choice = true;
    c.capacity_factor = k.cf;
    c.top_k = k.top_k;
    c.seed = 9;
    SCOPED_TRACE(c.Describe() + " T=" + std::to_string(k.tokens));
    ModelPtr m;
    ASSERT_NO_FATAL_FAILURE(Create(c, &m));
    ASSERT_EQ(pimoe_model_routing_slots(m.get()), 8);
    const double cf = k.cf > 0.0 ? k.cf : static_cast<double>(k.top_k);
    const int64_t C =
        std::min<int64_t>(k.tokens, static_cast<int64_t>(std::ceil(static_cast<double>(k.tokens) * cf / 8.0)));
    CallResult r;
    PIMOE_ASSERT_OK(LibRun(m.get(), RandomInput(static_cast<size_t>(k.tokens * c.hidden), 11), 1, k.tokens, &r));
    std::vector<int64_t> per_expert(8, 0);
    int64_t min_per_token = 8, max_per_token = 0;
    for (int64_t t = 0; t < k.tokens; ++t) {
      int64_t n = 0;
      bool unused_seen = false;
      for (int64_t j = 0; j < 8; ++j) {
        const size_t i = static_cast<size_t>(t * 8 + j);
        EXPECT_EQ(r.dropped[i], 0) << "expert choice drops nothing";
        if (r.ids[i] < 0) {
          EXPECT_EQ(r.ids[i], -1);
          EXPECT_EQ(r.weights[i], 0.0f);
          unused_seen = true;
          continue;
        }
        EXPECT_FALSE(unused_seen) << "token " << t << ": a used slot after an unused one";
        ASSERT_LT(r.ids[i], 8);
        ++per_expert[static_cast<size_t>(r.ids[i])];
        ++n;
        // weight = c[t][e] * scaling (1): the reported score.
        EXPECT_EQ(r.weights[i], r.probs[static_cast<size_t>(t * 8 + r.ids[i])]);
        if (j > 0) {
          EXPECT_GE(r.weights[i - 1], r.weights[i]) << "token " << t << ": slots by descending weight";
        }
      }
      min_per_token = std::min(min_per_token, n);
      max_per_token = std::max(max_per_token, n);
    }
    EXPECT_EQ(per_expert, std::vector<int64_t>(8, C)) << "C = " << C;
    const std::vector<uint64_t> loads = Loads(m.get(), 8);
    EXPECT_EQ(loads, std::vector<uint64_t>(8, static_cast<uint64_t>(C))) << "stats loads";
    EXPECT_EQ(Stats(m.get()).dropped_tokens, 0u);
    if (k.tokens == 64 && k.cf == 1.0) {  // C = 8 of 64 tokens: some tokens get no expert, some several
      EXPECT_EQ(min_per_token, 0);
      EXPECT_GE(max_per_token, 2);
    }
    if (C == k.tokens) {
      EXPECT_EQ(min_per_token, 8) << "C == T: every token gets every expert";
    }
  }
}

// The kept groups of one token recomputed from its probabilities + bias (pimoe.h, GROUP_LEVELS / NUM_GROUPS), in the
// test's own code. Returns false on a near tie between a kept and a dropped group.
bool KeptExperts(const std::vector<double> &q, const std::vector<std::pair<int, int>> &levels, bool group_max,
                 std::vector<bool> *kept) {
  struct G {
    int first, size;
    double score;
  };
  std::vector<G> groups = {{0, static_cast<int>(q.size()), 0.0}};
  for (const auto &level : levels) {
    std::vector<G> subs;
    for (const G &g : groups) {
      for (int i = 0; i < level.first; ++i)
        subs.push_back({g.first + i * (g.size / level.first), g.size / level.first, 0.0});
    }
    for (G &s : subs) {
      std::vector<double> v(q.begin() + s.first, q.begin() + s.first + s.size);
      std::sort(v.rbegin(), v.rend());
      s.score = group_max || v.size() == 1 ? v[0] : v[0] + v[1];
    }
    std::stable_sort(subs.begin(), subs.end(), [](const G &a, const G &b) { return a.score > b.score; });
    const size_t keep = static_cast<size_t>(level.second);
    if (keep < subs.size() && subs[keep - 1].score - subs[keep].score < 1e-5) return false;
    subs.resize(keep);
    groups = subs;
  }
  kept->assign(q.size(), false);
  for (const G &g : groups) {
    for (int e = g.first; e < g.first + g.size; ++e) (*kept)[static_cast<size_t>(e)] = true;
  }
  return true;
}

// Group-limited routing (single level and trees) never selects an expert outside the kept groups, recomputed from the
// probabilities pimoe_forward_routing returns plus the selection bias.
TEST(RoutingBehaviour, GroupLimitedRoutingNeverLeavesTheKeptGroups) {
  struct Case {
    const char *levels;  // "" = num_groups/topk_groups below
    int32_t num_groups, topk_groups, top_k;
    bool sigmoid, bias, group_max;
  };
  const Case cases[] = {
      {"", 4, 1, 2, false, false, false},        {"", 4, 2, 3, true, true, false},
      {"", 8, 3, 4, false, false, true},         {"2:1,2:1", 1, 1, 2, false, false, false},
      {"2:2,4:3", 1, 1, 3, true, true, false},   {"2:1,2:2,2:1", 1, 1, 2, true, true, true},
      {"4:3,2:2", 1, 1, 4, false, false, false},
  };
  for (const Case &k : cases) {
    Cfg c;
    c.experts = 16;
    c.top_k = k.top_k;
    c.group_levels = k.levels;
    c.num_groups = k.num_groups;
    c.topk_groups = k.topk_groups;
    c.sigmoid = k.sigmoid;
    c.router_bias = k.bias;
    c.group_max = k.group_max;
    c.seed = 21;
    SCOPED_TRACE(c.Describe());
    std::vector<std::pair<int, int>> levels;
    const po::Hyper hp = c.Hyper();
    for (const po::Hyper::GroupLevel &l : hp.EffectiveGroupLevels()) levels.emplace_back(l.groups, l.keep);
    ASSERT_FALSE(levels.empty());
    ModelPtr m;
    ASSERT_NO_FATAL_FAILURE(Create(c, &m));
    std::vector<float> bias(16, 0.0f);
    if (k.bias) bias = ReadTensor(m.get(), "router.selection_bias");
    constexpr int64_t kT = 256;
    CallResult r;
    PIMOE_ASSERT_OK(LibRun(m.get(), RandomInput(static_cast<size_t>(kT * c.hidden), 23, 2.0), 4, kT / 4, &r));
    int64_t checked = 0, outside = 0, unrestricted_would_leave = 0;
    for (int64_t t = 0; t < kT; ++t) {
      std::vector<double> q(16);
      for (size_t e = 0; e < 16; ++e) q[e] = static_cast<double>(r.probs[static_cast<size_t>(t) * 16 + e]) + bias[e];
      std::vector<bool> kept;
      if (!KeptExperts(q, levels, k.group_max, &kept)) continue;
      ++checked;
      for (int32_t j = 0; j < k.top_k; ++j) {
        const int32_t e = r.ids[static_cast<size_t>(t * k.top_k + j)];
        ASSERT_GE(e, 0);
        if (!kept[static_cast<size_t>(e)]) ++outside;
      }
      std::vector<int32_t> order(16);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return q[a] > q[b]; });
      for (int32_t j = 0; j < k.top_k; ++j) {
        if (!kept[static_cast<size_t>(order[static_cast<size_t>(j)])]) {
          ++unrestricted_would_leave;
          break;
        }
      }
    }
    EXPECT_EQ(outside, 0) << "selected experts outside the kept groups";
    EXPECT_GE(checked, kT * 9 / 10) << "too many near ties skipped";
    EXPECT_GT(unrestricted_would_leave, kT / 20) << "the group limit never mattered: the test has no teeth";
  }
}

// Dynamic capacity drops fewer assignments than static capacity with the same total slots (E*C per call) on the
// skewed stream: over calls 10..29, fewer than half as many (0.18x measured on the CPU backend).
TEST(RoutingBehaviour, DynamicCapacityDropsFewerThanStaticOnASkewedStream) {
  constexpr int64_t kT = 512;
  Cfg s;
  s.seed = 3;
  s.capacity_factor = 1.0;
  Cfg d = s;
  d.dynamic_capacity = true;
  d.capacity_momentum = 0.9;
  ModelPtr ms, md;
  ASSERT_NO_FATAL_FAILURE(Create(s, &ms));
  ASSERT_NO_FATAL_FAILURE(Create(d, &md));
  const std::vector<float> router = ReadTensor(ms.get(), "router.weight");
  uint64_t static_before = 0, dynamic_before = 0;
  std::vector<float> y;
  for (int call = 0; call < 30; ++call) {
    if (call == 10) {
      static_before = Stats(ms.get()).dropped_tokens;
      dynamic_before = Stats(md.get()).dropped_tokens;
    }
    const std::vector<float> x = SkewedInput(router, s.hidden, kT, 500 + static_cast<uint64_t>(call));
    PIMOE_ASSERT_OK(Forward(ms.get(), x, 1, kT, &y));
    PIMOE_ASSERT_OK(Forward(md.get(), x, 1, kT, &y));
  }
  const uint64_t static_drops = Stats(ms.get()).dropped_tokens - static_before;
  const uint64_t dynamic_drops = Stats(md.get()).dropped_tokens - dynamic_before;
  std::printf("[ info ] dropped assignments over calls 10..29: static %llu, dynamic %llu (of %lld)\n",
              static_cast<unsigned long long>(static_drops), static_cast<unsigned long long>(dynamic_drops),
              static_cast<long long>(20 * kT * 2));
  EXPECT_GT(static_drops, static_cast<uint64_t>(20 * kT * 2 / 20)) << "the stream is not skewed enough";
  EXPECT_LT(static_cast<double>(dynamic_drops), 0.5 * static_cast<double>(static_drops));
}

// A callback expert's outputs appear exactly in the layer's output: with k = 1 and renormalisation the weight is 1, so
// y == callback(x) bit for bit for every token routed to it. Also the thread contract and the rows it receives.
TEST(RoutingBehaviour, CallbackOutputAppearsExactly) {
  CallbackState state;
  state.record = true;
  Cfg c;
  c.top_k = 1;
  c.experts = 4;
  c.callback_experts = {0, 1, 2, 3};
  c.callbacks = &state;
  c.threads = 2;
  ModelPtr m;
  ASSERT_NO_FATAL_FAILURE(Create(c, &m));
  constexpr int64_t kT = 48;
  const std::vector<float> x = RandomInput(static_cast<size_t>(kT * c.hidden), 31, 3.0);
  CallResult r;
  PIMOE_ASSERT_OK(LibRun(m.get(), x, 3, 16, &r));
  std::vector<int64_t> rows(4, 0);
  for (int64_t t = 0; t < kT; ++t) {
    const int32_t e = r.ids[static_cast<size_t>(t)];
    ASSERT_GE(e, 0);
    ++rows[static_cast<size_t>(e)];
    EXPECT_EQ(r.weights[static_cast<size_t>(t)], 1.0f);
    std::vector<float> expected(static_cast<size_t>(c.hidden));
    ComputeCallback(e, x.data() + t * c.hidden, 1, c.hidden, expected.data());
    const std::vector<float> got(r.output.begin() + t * c.hidden, r.output.begin() + (t + 1) * c.hidden);
    EXPECT_EQ(got, expected) << "token " << t << " (expert " << e << "): y " << Show(got) << " callback "
                             << Show(expected);
  }
  // Once per call and expert with at least one row, its rows in token order, on the calling thread.
  int64_t used = 0;
  for (int64_t n : rows) used += n > 0;
  EXPECT_EQ(state.calls.load(), used);
  EXPECT_EQ(state.wrong_thread.load(), 0);
  EXPECT_EQ(state.bad_args.load(), 0);
  for (const auto &seen : state.seen) {
    const int32_t e = seen.first;
    std::vector<float> expected;
    for (int64_t t = 0; t < kT; ++t) {
      if (r.ids[static_cast<size_t>(t)] == e)
        expected.insert(expected.end(), x.begin() + t * c.hidden, x.begin() + (t + 1) * c.hidden);
    }
    EXPECT_TRUE(SameBits(seen.second, expected)) << "expert " << e << ": rows not the routed tokens in token order";
  }
  // Not called for an expert that received no kept token: one token goes to one expert only.
  state.Clear();
  CallResult one;
  PIMOE_ASSERT_OK(LibRun(m.get(), std::vector<float>(x.begin(), x.begin() + c.hidden), 1, 1, &one));
  EXPECT_EQ(state.calls.load(), 1);
  // With a neural expert beside it (k = 2), the layer output is w1*o1 + w2*o2 (oracle) and the callback still sees
  // exactly the tokens routed to it.
  Cfg mixed;
  mixed.callback_experts = {2};
  ASSERT_NO_FATAL_FAILURE(CheckChain(mixed, 1, 40, 1, 3));
}

// The attention router: changing a token's neighbours changes its probabilities (its own input unchanged); tokens of
// other sequences in the batch are unaffected bit for bit; with causal attention only earlier tokens matter.
TEST(RoutingBehaviour, AttentionRouterDependsOnNeighboursWithinTheSequence) {
  for (bool causal : {false, true}) {
    Cfg c;
    c.attention_heads = 2;
    c.attention_head_dim = 8;
    c.attention_causal = causal;
    c.deterministic = true;  // bit-identical rows for the other sequence (pimoe.h: holds per sequence)
    c.threads = 2;
    SCOPED_TRACE(c.Describe());
    ModelPtr m;
    ASSERT_NO_FATAL_FAILURE(Create(c, &m));
    constexpr int64_t kB = 2, kS = 6, kH = 32, kE = 8;
    const std::vector<float> x = RandomInput(static_cast<size_t>(kB * kS * kH), 41, 2.0);
    CallResult base;
    PIMOE_ASSERT_OK(LibRun(m.get(), x, kB, kS, &base));
    {  // DETERMINISTIC holds with the attention router: the same bits with 1 thread, and for a sequence run alone
      Cfg one = c;
      one.threads = 1;
      ModelPtr m1;
      ASSERT_NO_FATAL_FAILURE(Create(one, &m1));
      CallResult r1, seq1;
      PIMOE_ASSERT_OK(LibRun(m1.get(), x, kB, kS, &r1));
      EXPECT_TRUE(SameRun(r1, base)) << "deterministic: 1 thread vs 2 threads";
      PIMOE_ASSERT_OK(LibRun(m1.get(), std::vector<float>(x.begin() + kS * kH, x.end()), 1, kS, &seq1));
      EXPECT_TRUE(SameBits(seq1.output, std::vector<float>(base.output.begin() + kS * kH, base.output.end())))
          << "deterministic: sequence 1 alone vs inside the batch";
    }
    auto probs_of = [&](const CallResult &r, int64_t t) {
      return std::vector<float>(r.probs.begin() + t * kE, r.probs.begin() + (t + 1) * kE);
    };
    auto max_diff = [](const std::vector<float> &a, const std::vector<float> &b) {
      double d = 0.0;
      for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
      return d;
    };
    // Change token 1 of sequence 0 (an earlier neighbour of token 3) and token 5 (a later one), separately.
    for (int64_t changed : {int64_t{1}, int64_t{5}}) {
      std::vector<float> x2 = x;
      const std::vector<float> other = RandomInput(static_cast<size_t>(kH), 99 + static_cast<uint64_t>(changed), 2.0);
      std::copy(other.begin(), other.end(), x2.begin() + changed * kH);
      CallResult r;
      PIMOE_ASSERT_OK(LibRun(m.get(), x2, kB, kS, &r));
      const double d3 = max_diff(probs_of(r, 3), probs_of(base, 3));
      if (!causal || changed < 3) {
        EXPECT_GT(d3, 1e-4) << "token 3's probabilities did not change when token " << changed << " changed";
      } else {
        EXPECT_TRUE(SameBits(probs_of(r, 3), probs_of(base, 3))) << "causal: a later token changed token 3";
        EXPECT_TRUE(SameBits(std::vector<float>(r.output.begin() + 3 * kH, r.output.begin() + 4 * kH),
                             std::vector<float>(base.output.begin() + 3 * kH, base.output.begin() + 4 * kH)));
      }
      // Sequence 1 (tokens 6..11) is untouched: identical probabilities, routing and outputs.
      for (int64_t t = kS; t < kB * kS; ++t) {
        EXPECT_TRUE(SameBits(probs_of(r, t), probs_of(base, t))) << "token " << t << " of the other sequence";
        for (int32_t j = 0; j < c.top_k; ++j) {
          EXPECT_EQ(r.ids[static_cast<size_t>(t * c.top_k + j)], base.ids[static_cast<size_t>(t * c.top_k + j)]);
        }
      }
      EXPECT_TRUE(SameBits(std::vector<float>(r.output.begin() + kS * kH, r.output.end()),
                           std::vector<float>(base.output.begin() + kS * kH, base.output.end())));
    }
    // The same token alone (a sequence of one) routes differently from inside its sequence: the context matters.
    CallResult alone;
    PIMOE_ASSERT_OK(LibRun(m.get(), std::vector<float>(x.begin() + 3 * kH, x.begin() + 4 * kH), 1, 1, &alone));
    EXPECT_GT(max_diff(probs_of(alone, 0), probs_of(base, 3)), 1e-4);
  }
  // Contrast: without the attention router a token's probabilities do not depend on its neighbours.
  Cfg plain;
  plain.deterministic = true;
  ModelPtr m;
  ASSERT_NO_FATAL_FAILURE(Create(plain, &m));
  const std::vector<float> x = RandomInput(static_cast<size_t>(6 * 32), 41, 2.0);
  std::vector<float> x2 = x;
  const std::vector<float> other = RandomInput(32, 100, 2.0);
  std::copy(other.begin(), other.end(), x2.begin() + 32);
  CallResult a, b;
  PIMOE_ASSERT_OK(LibRun(m.get(), x, 1, 6, &a));
  PIMOE_ASSERT_OK(LibRun(m.get(), x2, 1, 6, &b));
  EXPECT_TRUE(SameBits(std::vector<float>(a.probs.begin() + 24, a.probs.begin() + 32),
                       std::vector<float>(b.probs.begin() + 24, b.probs.begin() + 32)));
}

// The attention combine: reported weights w' sum to 1 per token over its kept slots, are 0 on dropped slots, and
// differ from the plain router weights (the same model without the combine: same router and experts).
TEST(RoutingBehaviour, AttentionCombineWeightsSumToOneAndDifferFromRouterWeights) {
  Cfg with;
  with.combine_dim = 8;
  with.top_k = 3;
  with.capacity_factor = 0.8;
  with.seed = 13;
  Cfg without = with;
  without.combine_dim = 0;
  ModelPtr mw, mo;
  ASSERT_NO_FATAL_FAILURE(Create(with, &mw));
  ASSERT_NO_FATAL_FAILURE(Create(without, &mo));
  constexpr int64_t kT = 64;
  const std::vector<float> x = RandomInput(static_cast<size_t>(kT * with.hidden), 61, 2.0);
  CallResult a, b;
  PIMOE_ASSERT_OK(LibRun(mw.get(), x, 2, kT / 2, &a));
  PIMOE_ASSERT_OK(LibRun(mo.get(), x, 2, kT / 2, &b));
  EXPECT_EQ(a.ids, b.ids) << "the combine must not change the routing";
  EXPECT_EQ(a.dropped, b.dropped);
  EXPECT_TRUE(SameBits(a.probs, b.probs));
  int64_t drops = 0, differing = 0, multi = 0;
  double total_change = 0.0;
  for (int64_t t = 0; t < kT; ++t) {
    double sum = 0.0;
    int kept = 0;
    for (int64_t j = 0; j < 3; ++j) {
      const size_t i = static_cast<size_t>(t * 3 + j);
      if (a.dropped[i]) {
        ++drops;
        EXPECT_EQ(a.weights[i], 0.0f) << "a dropped slot has w' 0";
        continue;
      }
      ++kept;
      EXPECT_GT(a.weights[i], 0.0f);
      sum += a.weights[i];
      total_change += std::fabs(static_cast<double>(a.weights[i]) - b.weights[i]);
      if (std::fabs(static_cast<double>(a.weights[i]) - b.weights[i]) > 1e-4) ++differing;
    }
    if (kept > 0) {
      EXPECT_NEAR(sum, 1.0, 1e-5) << "token " << t << ": w' over its kept slots";
    }
    if (kept == 1) {
      for (int64_t j = 0; j < 3; ++j) {
        if (!a.dropped[static_cast<size_t>(t * 3 + j)]) {
          EXPECT_EQ(a.weights[static_cast<size_t>(t * 3 + j)], 1.0f);
        }
      }
    }
    multi += kept > 1;
  }
  EXPECT_GT(drops, 0) << "no drop: the test should show w' with drops";
  EXPECT_GT(multi, kT / 2);
  EXPECT_GT(differing, kT) << "w' hardly differs from the router weights";
  EXPECT_GT(total_change / static_cast<double>(kT), 1e-2);
}

// ================================================================================================ save / load

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

struct SaveCase {
  const char *name;
  Cfg cfg;
  int calls_before_save;
  std::vector<std::pair<std::string, std::string>> meta;  // key, expected value ("" = any)
};

TEST(RoutingSaveLoad, EveryFeatureRoundTrips) {
  std::vector<SaveCase> cases;
  {
    Cfg c;
    c.expert_choice = true;
    c.capacity_factor = 1.5;
    c.sigmoid = true;
    c.routed_scaling = 2.0;
    cases.push_back({"expert_choice", c, 0, {{"pimoe.routing_mode", "expert_choice"}}});
  }
  {
    Cfg c;
    c.experts = 16;
    c.group_levels = "2:2,2:1";
    c.sigmoid = true;
    c.router_bias = true;
    c.group_max = true;
    cases.push_back({"group_tree", c, 0, {{"pimoe.group_levels", "2:2,2:1"}, {"pimoe.group_score", "max"}}});
  }
  {
    Cfg c;
    c.attention_heads = 3;
    c.attention_head_dim = 8;
    c.attention_causal = true;
    cases.push_back({"attention_router",
                     c,
                     0,
                     {{"pimoe.router_attention_heads", "3"},
                      {"pimoe.router_attention_head_dim", "8"},
                      {"pimoe.router_attention_causal", "1"}}});
  }
  {
    Cfg c;
    c.adaptive_bias_rate = 0.03;
    cases.push_back({"adaptive_bias", c, 3, {{"pimoe.adaptive_bias_rate", ""}}});
  }
  {
    Cfg c;
    c.capacity_factor = 1.0;
    c.dynamic_capacity = true;
    c.capacity_momentum = 0.7;
    cases.push_back({"dynamic_capacity", c, 3, {{"pimoe.dynamic_capacity", "1"}, {"pimoe.capacity_momentum", ""}}});
  }
  {
    Cfg c;
    c.combine_dim = 8;
    c.shared_width = 16;
    c.shared_gate = true;
    cases.push_back({"combine", c, 0, {{"pimoe.combine_attention_dim", "8"}, {"pimoe.shared_width", "16"}}});
  }
  {
    Cfg c;
    c.callback_experts = {1, 4};
    cases.push_back({"callbacks", c, 0, {{"pimoe.experts.1.kind", "callback"}, {"pimoe.experts.4.kind", "callback"}}});
  }
  {
    Cfg c;  // everything that combines with token choice
    c.experts = 16;
    c.top_k = 3;
    c.group_levels = "2:2,2:1";
    c.attention_heads = 2;
    c.attention_head_dim = 8;
    c.adaptive_bias_rate = 0.02;
    c.capacity_factor = 1.25;
    c.dynamic_capacity = true;
    c.combine_dim = 4;
    c.callback_experts = {3};
    c.shared_width = 16;
    cases.push_back({"all",
                     c,
                     2,
                     {{"pimoe.group_levels", "2:2,2:1"},
                      {"pimoe.router_attention_heads", "2"},
                      {"pimoe.adaptive_bias_rate", ""},
                      {"pimoe.dynamic_capacity", "1"},
                      {"pimoe.combine_attention_dim", "4"},
                      {"pimoe.experts.3.kind", "callback"}}});
  }
  for (const SaveCase &sc : cases) {
    const Cfg &c = sc.cfg;
    SCOPED_TRACE(std::string(sc.name) + ": " + c.Describe());
    ModelPtr m;
    ASSERT_NO_FATAL_FAILURE(Create(c, &m));
    std::vector<float> y;
    for (int call = 0; call < sc.calls_before_save; ++call) {
      PIMOE_ASSERT_OK(Forward(
          m.get(), RandomInput(static_cast<size_t>(32 * c.hidden), 70 + static_cast<uint64_t>(call)), 2, 16, &y));
    }
    const std::string path = TempPath(sc.name);
    PIMOE_ASSERT_OK(pimoe_save(m.get(), path.c_str()));
    std::map<std::string, std::vector<float>> saved_state;  // the adaptive state as saved
    for (const char *state : {"router.selection_bias", "router.load_ema"}) {
      int32_t nd = 0;
      int64_t dims[4];
      if (pimoe_tensor_shape(m.get(), state, &nd, dims) == PIMOE_OK) saved_state[state] = ReadTensor(m.get(), state);
    }
    const std::string header = FileHeader(path);
    ASSERT_FALSE(header.empty());
    for (const auto &kv : sc.meta) {
      const std::string v = MetaValue(header, kv.first);
      EXPECT_NE(v, "<missing>") << "metadata key " << kv.first;
      if (!kv.second.empty()) {
        EXPECT_EQ(v, kv.second) << "metadata key " << kv.first;
      }
    }
    OptionsPtr rt;
    {
      pimoe_options *raw = nullptr;
      PIMOE_ASSERT_OK(pimoe_options_create(&raw));
      rt.reset(raw);
      PIMOE_ASSERT_OK(pimoe_options_set_int(raw, PIMOE_OPT_THREADS, c.threads));
      PIMOE_ASSERT_OK(pimoe_options_set_string(raw, PIMOE_OPT_BACKEND, Backend()));
    }
    pimoe_model *raw_loaded = nullptr;
    PIMOE_ASSERT_OK(pimoe_load(path.c_str(), rt.get(), &raw_loaded));
    ModelPtr loaded(raw_loaded);
    std::remove(path.c_str());
    // Dims, routing slots, expert specs and every tensor (the adaptive state included) identical.
    int64_t h1 = 0, h2 = 0;
    int32_t e1 = 0, e2 = 0, k1 = 0, k2 = 0;
    PIMOE_ASSERT_OK(pimoe_model_dims(m.get(), &h1, &e1, &k1));
    PIMOE_ASSERT_OK(pimoe_model_dims(loaded.get(), &h2, &e2, &k2));
    EXPECT_EQ(h1, h2);
    EXPECT_EQ(e1, e2);
    EXPECT_EQ(k1, k2);
    EXPECT_EQ(pimoe_model_routing_slots(m.get()), pimoe_model_routing_slots(loaded.get()));
    for (int32_t e = 0; e < e1; ++e) {
      pimoe_activation a1, a2;
      int64_t i1 = -1, i2 = -2;
      int32_t n1 = -1, n2 = -2;
      PIMOE_ASSERT_OK(pimoe_model_expert(m.get(), e, &a1, &i1, &n1));
      PIMOE_ASSERT_OK(pimoe_model_expert(loaded.get(), e, &a2, &i2, &n2));
      EXPECT_EQ(i1, i2) << "expert " << e;
      EXPECT_EQ(n1, n2) << "expert " << e;
      if (i1 > 0) {
        EXPECT_EQ(a1, a2) << "expert " << e;
      }
    }
    const int64_t count = pimoe_tensor_count(m.get());
    ASSERT_EQ(count, pimoe_tensor_count(loaded.get()));
    for (int64_t i = 0; i < count; ++i) {
      const char *name = pimoe_tensor_name(m.get(), i);
      ASSERT_NE(name, nullptr);
      ASSERT_STREQ(name, pimoe_tensor_name(loaded.get(), i));
      EXPECT_TRUE(SameBits(ReadTensor(m.get(), name), ReadTensor(loaded.get(), name))) << "tensor " << name;
    }
    const std::vector<float> x = RandomInput(static_cast<size_t>(40 * c.hidden), 80);
    CallResult before_callbacks;
    if (!c.callback_experts.empty()) {
      // A loaded callback expert has no function yet: forward fails with PIMOE_ERR_CALLBACK naming it.
      const pimoe_status st = LibRun(loaded.get(), x, 2, 20, &before_callbacks);
      EXPECT_EQ(st, PIMOE_ERR_CALLBACK) << pimoe_last_error();
      EXPECT_TRUE(Contains(pimoe_last_error(), "expert " + std::to_string(c.callback_experts[0])) ||
                  Contains(pimoe_last_error(), "expert " + std::to_string(c.callback_experts.back())))
          << pimoe_last_error();
      EXPECT_EQ(Stats(loaded.get()).forward_calls, 0u) << "a failed call is not counted";
      for (int32_t e : c.callback_experts) {
        PIMOE_ASSERT_OK(pimoe_model_set_expert_callback(loaded.get(), e, TestCallback, &g_callbacks));
      }
    }
    // The same next calls: identical outputs, routing, probabilities, and the state moves identically.
    for (int call = 0; call < 2; ++call) {
      const std::vector<float> xc = RandomInput(static_cast<size_t>(40 * c.hidden), 80 + static_cast<uint64_t>(call));
      CallResult a, b;
      PIMOE_ASSERT_OK(LibRun(m.get(), xc, 2, 20, &a));
      PIMOE_ASSERT_OK(LibRun(loaded.get(), xc, 2, 20, &b));
      EXPECT_TRUE(SameRun(a, b)) << "call " << call << " after load";
    }
    for (const char *state : {"router.selection_bias", "router.load_ema"}) {
      int32_t nd = 0;
      int64_t dims[4];
      if (pimoe_tensor_shape(m.get(), state, &nd, dims) != PIMOE_OK) continue;
      EXPECT_TRUE(SameBits(ReadTensor(m.get(), state), ReadTensor(loaded.get(), state))) << state;
    }
    // The loaded model's reset goes back to the state as loaded (its value at load), not to the creation value.
    if (c.adaptive_bias_rate > 0.0 || c.dynamic_capacity) {
      PIMOE_ASSERT_OK(pimoe_model_reset_adaptive_state(loaded.get()));
      for (const auto &kv : saved_state) {
        EXPECT_TRUE(SameBits(ReadTensor(loaded.get(), kv.first.c_str()), kv.second))
            << kv.first << " after a reset of the loaded model: not the value it was loaded with";
      }
    }
  }
}

// The state round-trips exactly: the bias and load average after some calls are the loaded model's; a reset of the
// loaded model restores exactly the value it was loaded with.
TEST(RoutingSaveLoad, AdaptiveStateRoundTripsAndResetGoesBackToTheLoadedValue) {
  Cfg c;
  c.adaptive_bias_rate = 0.02;
  c.capacity_factor = 1.0;
  c.dynamic_capacity = true;
  c.seed = 6;
  ModelPtr m;
  ASSERT_NO_FATAL_FAILURE(Create(c, &m));
  const std::vector<float> router = ReadTensor(m.get(), "router.weight");
  std::vector<float> y;
  for (int call = 0; call < 6; ++call) {
    PIMOE_ASSERT_OK(Forward(m.get(), SkewedInput(router, c.hidden, 128, 90 + static_cast<uint64_t>(call)), 1, 128, &y));
  }
  const std::vector<float> bias = ReadTensor(m.get(), "router.selection_bias");
  const std::vector<float> ema = ReadTensor(m.get(), "router.load_ema");
  const std::string path = TempPath("state");
  PIMOE_ASSERT_OK(pimoe_save(m.get(), path.c_str()));
  pimoe_model *raw = nullptr;
  PIMOE_ASSERT_OK(pimoe_load(path.c_str(), nullptr, &raw));
  ModelPtr loaded(raw);
  std::remove(path.c_str());
  EXPECT_TRUE(SameBits(ReadTensor(loaded.get(), "router.selection_bias"), bias));
  EXPECT_TRUE(SameBits(ReadTensor(loaded.get(), "router.load_ema"), ema));
  for (int call = 0; call < 3; ++call) {
    PIMOE_ASSERT_OK(
        Forward(loaded.get(), SkewedInput(router, c.hidden, 128, 95 + static_cast<uint64_t>(call)), 1, 128, &y));
  }
  EXPECT_FALSE(SameBits(ReadTensor(loaded.get(), "router.selection_bias"), bias));
  PIMOE_ASSERT_OK(pimoe_model_reset_adaptive_state(loaded.get()));
  EXPECT_TRUE(SameBits(ReadTensor(loaded.get(), "router.selection_bias"), bias)) << "reset restores the loaded bias";
  EXPECT_TRUE(SameBits(ReadTensor(loaded.get(), "router.load_ema"), ema)) << "reset restores the loaded load average";
}

// ================================================================================================ errors

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

// Invalid combinations fail at pimoe_create with PIMOE_ERR_INVALID_OPTION naming the culprit; the options stay usable
// (fixing the culprit makes pimoe_create succeed).
TEST(RoutingErrors, InvalidCombinationsFailAtCreate) {
  struct Case {
    const char *what;
    std::function<void(Cfg &)> bad;
    std::function<void(Cfg &)> fix;
    std::vector<std::string> culprits;
  };
  const std::vector<Case> cases = {
      {"expert_choice + router_bias",
       [](Cfg &c) {
         c.expert_choice = true;
         c.router_bias = true;
       },
       [](Cfg &c) { c.router_bias = false; },
       {"expert_choice", "router_bias"}},
      {"expert_choice + num_groups",
       [](Cfg &c) {
         c.expert_choice = true;
         c.num_groups = 2;
       },
       [](Cfg &c) { c.num_groups = 1; },
       {"expert_choice", "group"}},
      {"expert_choice + group_levels",
       [](Cfg &c) {
         c.expert_choice = true;
         c.group_levels = "2:1,2:1";
       },
       [](Cfg &c) { c.group_levels = ""; },
       {"expert_choice", "group"}},
      {"expert_choice + adaptive",
       [](Cfg &c) {
         c.expert_choice = true;
         c.adaptive_bias_rate = 0.01;
       },
       [](Cfg &c) { c.adaptive_bias_rate = 0.0; },
       {"expert_choice", "adaptive_bias_rate"}},
      {"expert_choice + dynamic",
       [](Cfg &c) {
         c.expert_choice = true;
         c.capacity_factor = 1.0;
         c.dynamic_capacity = true;
       },
       [](Cfg &c) { c.dynamic_capacity = false; },
       {"expert_choice", "dynamic_capacity"}},
      {"dynamic without capacity",
       [](Cfg &c) { c.dynamic_capacity = true; },
       [](Cfg &c) { c.capacity_factor = 1.0; },
       {"dynamic_capacity", "capacity_factor"}},
      {"deterministic + adaptive",
       [](Cfg &c) {
         c.deterministic = true;
         c.adaptive_bias_rate = 0.01;
       },
       [](Cfg &c) { c.deterministic = false; },
       {"deterministic", "adaptive_bias_rate"}},
      {"deterministic + dynamic",
       [](Cfg &c) {
         c.deterministic = true;
         c.capacity_factor = 1.0;
         c.dynamic_capacity = true;
       },
       [](Cfg &c) { c.deterministic = false; },
       {"deterministic", "dynamic_capacity"}},
      {"group product does not divide E",
       [](Cfg &c) { c.group_levels = "3:1"; },
       [](Cfg &c) { c.group_levels = "4:1"; },
       {"group_levels", "3:1"}},
      {"group product does not divide E (tree)",
       [](Cfg &c) {
         c.experts = 12;
         c.group_levels = "2:1,4:1";
       },
       [](Cfg &c) { c.group_levels = "2:1,3:1"; },
       {"group_levels", "2:1,4:1"}},
      {"group product exceeds E",
       [](Cfg &c) { c.group_levels = "2:1,4:1,2:1"; },
       [](Cfg &c) {
         c.group_levels = "2:1,4:1";
         c.top_k = 1;
       },
       {"group_levels"}},
      {"K1 > G1",
       [](Cfg &c) { c.group_levels = "2:3"; },
       [](Cfg &c) { c.group_levels = "2:2"; },
       {"group_levels", "2:3"}},
      {"K2 > K1*G2",
       [](Cfg &c) {
         c.experts = 16;
         c.group_levels = "2:1,2:3";
       },
       [](Cfg &c) { c.group_levels = "2:1,2:2"; },
       {"group_levels", "2:1,2:3"}},
      {"top_k too large for the tree",
       [](Cfg &c) {
         c.experts = 16;
         c.group_levels = "2:1,2:1";
         c.top_k = 5;
       },
       [](Cfg &c) { c.top_k = 4; },
       {"top_k", "5"}},
      {"top_k too large for a 3-level tree",
       [](Cfg &c) {
         c.experts = 16;
         c.group_levels = "2:1,2:2,2:1";
         c.top_k = 3;
       },
       [](Cfg &c) { c.top_k = 2; },
       {"top_k", "3"}},
      {"group_levels with num_groups",
       [](Cfg &c) {
         c.experts = 16;
         c.group_levels = "2:1,2:1";
         c.num_groups = 2;
       },
       [](Cfg &c) { c.num_groups = 1; },
       {"group_levels", "num_groups"}},
      {"callback index >= num_experts",
       [](Cfg &c) { c.callback_experts = {8}; },
       [](Cfg &c) { c.experts = 9; },
       {"callback", "8"}},
  };
  for (const Case &k : cases) {
    SCOPED_TRACE(k.what);
    Cfg c;
    k.bad(c);
    OptionsPtr o;
    ASSERT_NO_FATAL_FAILURE(MakeOptions(c, &o));
    pimoe_model *m = reinterpret_cast<pimoe_model *>(0x1);
    EXPECT_TRUE(FailedWith(pimoe_create(o.get(), &m), PIMOE_ERR_INVALID_OPTION, k.culprits));
    EXPECT_EQ(m, reinterpret_cast<pimoe_model *>(0x1)) << "*out set on failure";
    // Fixed, it creates and runs.
    k.fix(c);
    ModelPtr fixed;
    ASSERT_NO_FATAL_FAILURE(Create(c, &fixed));
    std::vector<float> y;
    PIMOE_EXPECT_OK(Forward(fixed.get(), RandomInput(static_cast<size_t>(8 * c.hidden), 1), 1, 8, &y));
  }
}

// group_levels syntax is checked by the setter (PIMOE_ERR_INVALID_OPTION naming the option and the text); the
// options keep their previous value and stay usable.
TEST(RoutingErrors, GroupLevelsSyntax) {
  const char *bad[] = {"3", "2:0", "a:b", "2:", ":1", "2:1,", ",2:1", "0:1", "2:1:1", "-2:1", "2:1,,2:1", "2;1"};
  for (const char *text : bad) {
    SCOPED_TRACE(text);
    Cfg c;
    c.experts = 16;
    c.group_levels = "2:1,2:1";
    OptionsPtr o;
    ASSERT_NO_FATAL_FAILURE(MakeOptions(c, &o));
    EXPECT_TRUE(FailedWith(pimoe_options_set_string(o.get(), PIMOE_OPT_GROUP_LEVELS, text), PIMOE_ERR_INVALID_OPTION,
                           {"group_levels", text}));
    EXPECT_TRUE(FailedWith(pimoe_options_set_by_name(o.get(), "group_levels", text), PIMOE_ERR_INVALID_OPTION,
                           {"group_levels"}));
    pimoe_model *raw = nullptr;
    PIMOE_ASSERT_OK(pimoe_create(o.get(), &raw));
    ModelPtr m(raw);
    EXPECT_EQ(pimoe_model_last_error(m.get()), std::string(""));
  }
  // The wrong typed setter is an invalid option too.
  OptionsPtr o;
  ASSERT_NO_FATAL_FAILURE(MakeOptions(Cfg(), &o));
  EXPECT_TRUE(FailedWith(pimoe_options_set_int(o.get(), PIMOE_OPT_GROUP_LEVELS, 2), PIMOE_ERR_INVALID_OPTION, {}));
  EXPECT_TRUE(FailedWith(pimoe_options_set_string(o.get(), PIMOE_OPT_ROUTING_MODE, "experts_choice"),
                         PIMOE_ERR_INVALID_OPTION, {"routing_mode"}));
  EXPECT_TRUE(FailedWith(pimoe_options_set_float(o.get(), PIMOE_OPT_CAPACITY_MOMENTUM, 1.0), PIMOE_ERR_INVALID_OPTION,
                         {"capacity_momentum"}));
  EXPECT_TRUE(FailedWith(pimoe_options_set_float(o.get(), PIMOE_OPT_ADAPTIVE_BIAS_RATE, -0.1), PIMOE_ERR_INVALID_OPTION,
                         {"adaptive_bias_rate"}));
}

// A callback returning non-zero fails the call with PIMOE_ERR_CALLBACK naming the expert and the value; the model's
// statistics and adaptive state are unchanged; the model stays usable and then matches the oracle.
TEST(RoutingErrors, FailingCallback) {
  for (int combine : {0, 8}) {
    CallbackState state;
    Cfg c;
    c.hidden = 16;
    c.experts = 4;
    c.callback_experts = {2};
    c.callbacks = &state;
    c.combine_dim = combine;
    c.adaptive_bias_rate = 0.05;
    c.capacity_factor = 1.0;
    c.dynamic_capacity = true;
    SCOPED_TRACE(c.Describe());
    ModelPtr m;
    po::Weights w;
    ASSERT_NO_FATAL_FAILURE(CreateAndLoad(c, &m, &w));
    const po::Hyper hp = c.Hyper();
    // One successful call first, so that there are statistics and a moved state to preserve.
    po::Result r0;
    const std::vector<float> x0 = DrawInput(w, hp, 2, 16, 1, &r0);
    CallResult ok0;
    PIMOE_ASSERT_OK(LibRun(m.get(), x0, 2, 16, &ok0));
    EXPECT_EQ(Compare(ok0, r0, c.hidden, c.experts), "");
    w.selection_bias = po::AdaptiveBiasStep(w.selection_bias, r0.loads, hp.adaptive_bias_rate);
    w.load_ema = po::LoadEmaStep(w.load_ema, r0.choices, static_cast<uint64_t>(32 * hp.top_k), hp.capacity_momentum);
    const pimoe_stats_snapshot s0 = Stats(m.get());
    const std::vector<uint64_t> loads0 = Loads(m.get(), 4);
    const std::vector<float> bias0 = ReadTensor(m.get(), "router.selection_bias");
    const std::vector<float> ema0 = ReadTensor(m.get(), "router.load_ema");

    po::Result r1;
    const std::vector<float> x1 = DrawInput(w, hp, 2, 16, 2, &r1);
    ASSERT_GT(r1.loads[2], 0u) << "expert 2 must receive tokens for the callback to run";
    state.fail_expert = 2;
    state.fail_value = -7;
    CallResult failed;
    EXPECT_TRUE(FailedWith(LibRun(m.get(), x1, 2, 16, &failed), PIMOE_ERR_CALLBACK, {"expert 2", "-7"}));
    EXPECT_TRUE(Contains(pimoe_model_last_error(m.get()), "-7")) << pimoe_model_last_error(m.get());
    const pimoe_stats_snapshot s1 = Stats(m.get());
    EXPECT_EQ(s1.forward_calls, s0.forward_calls) << "the failed call is not counted";
    EXPECT_EQ(s1.tokens, s0.tokens);
    EXPECT_EQ(s1.dropped_tokens, s0.dropped_tokens);
    EXPECT_EQ(s1.aux_loss, s0.aux_loss);
    EXPECT_EQ(Loads(m.get(), 4), loads0);
    EXPECT_TRUE(SameBits(ReadTensor(m.get(), "router.selection_bias"), bias0)) << "the failed call moved the bias";
    EXPECT_TRUE(SameBits(ReadTensor(m.get(), "router.load_ema"), ema0)) << "the failed call moved the load average";
    // Another value, through pimoe_forward.
    state.fail_value = 12345;
    std::vector<float> y;
    EXPECT_TRUE(FailedWith(Forward(m.get(), x1, 2, 16, &y), PIMOE_ERR_CALLBACK, {"expert 2", "12345"}));
    // Usable again: the same call now succeeds and matches the oracle with the state of before the failures.
    state.fail_expert = -1;
    CallResult ok1;
    PIMOE_ASSERT_OK(LibRun(m.get(), x1, 2, 16, &ok1));
    EXPECT_EQ(Compare(ok1, r1, c.hidden, c.experts), "");
    EXPECT_EQ(Stats(m.get()).forward_calls, s0.forward_calls + 1);
    EXPECT_EQ(std::string(pimoe_last_error()), "");
  }
}

TEST(RoutingErrors, CallbackRegistration) {
  OptionsPtr o;
  ASSERT_NO_FATAL_FAILURE(MakeOptions(Cfg(), &o));
  EXPECT_TRUE(
      FailedWith(pimoe_options_set_expert_callback(o.get(), 1, nullptr, nullptr), PIMOE_ERR_NULL_POINTER, {"fn"}));
  EXPECT_TRUE(FailedWith(pimoe_options_set_expert_callback(o.get(), -3, TestCallback, &g_callbacks),
                         PIMOE_ERR_INVALID_ARGUMENT, {"-3"}));
  EXPECT_TRUE(FailedWith(pimoe_options_set_expert_callback(o.get(), -1, TestCallback, &g_callbacks),
                         PIMOE_ERR_INVALID_ARGUMENT, {"-1"}));
  EXPECT_EQ(pimoe_options_set_expert_callback(nullptr, 1, TestCallback, &g_callbacks), PIMOE_ERR_NULL_POINTER);
  // The options are still usable: no callback expert was registered by the failed calls.
  {
    pimoe_model *raw = nullptr;
    PIMOE_ASSERT_OK(pimoe_create(o.get(), &raw));
    ModelPtr m(raw);
    int64_t width = 0;
    PIMOE_ASSERT_OK(pimoe_model_expert(m.get(), 1, nullptr, &width, nullptr));
    EXPECT_EQ(width, 32) << "expert 1 must not have become a callback expert";
  }
  PIMOE_ASSERT_OK(pimoe_options_set_expert_callback(o.get(), 1, TestCallback, &g_callbacks));
  pimoe_model *raw = nullptr;
  PIMOE_ASSERT_OK(pimoe_create(o.get(), &raw));
  ModelPtr m(raw);
  int64_t width = -1;
  int32_t pre_norm = -1;
  PIMOE_ASSERT_OK(pimoe_model_expert(m.get(), 1, nullptr, &width, &pre_norm));
  EXPECT_EQ(width, 0) << "a callback expert reports width 0";
  EXPECT_EQ(pre_norm, 0);
  // pimoe_model_set_expert_callback: only on callback experts of the model, fn not NULL.
  EXPECT_TRUE(FailedWith(pimoe_model_set_expert_callback(m.get(), 0, TestCallback, &g_callbacks),
                         PIMOE_ERR_INVALID_ARGUMENT, {"expert 0"}));
  EXPECT_TRUE(FailedWith(pimoe_model_set_expert_callback(m.get(), 8, TestCallback, &g_callbacks),
                         PIMOE_ERR_INVALID_ARGUMENT, {"expert 8"}));
  EXPECT_TRUE(FailedWith(pimoe_model_set_expert_callback(m.get(), -1, TestCallback, &g_callbacks),
                         PIMOE_ERR_INVALID_ARGUMENT, {"expert -1"}));
  EXPECT_TRUE(
      FailedWith(pimoe_model_set_expert_callback(m.get(), 1, nullptr, nullptr), PIMOE_ERR_NULL_POINTER, {"fn"}));
  EXPECT_EQ(pimoe_model_set_expert_callback(nullptr, 1, TestCallback, &g_callbacks), PIMOE_ERR_NULL_POINTER);
  // Replacing the callback of a callback expert works; the model is usable and matches the oracle.
  PIMOE_ASSERT_OK(pimoe_model_set_expert_callback(m.get(), 1, TestCallback, &g_callbacks));
  Cfg c;
  c.callback_experts = {1};
  po::Weights w;
  ASSERT_EQ(po::LoadWeights(m.get(), c.Hyper(), &w), "");
  po::Result r;
  const std::vector<float> x = DrawInput(w, c.Hyper(), 1, 32, 4, &r);
  CallResult run;
  PIMOE_ASSERT_OK(LibRun(m.get(), x, 1, 32, &run));
  EXPECT_EQ(Compare(run, r, c.hidden, c.experts), "");
}

TEST(RoutingErrors, RoutingBuffers) {
  Cfg c;
  c.capacity_factor = 1.0;
  ModelPtr m;
  ASSERT_NO_FATAL_FAILURE(Create(c, &m));
  constexpr int64_t kT = 12;
  const std::vector<float> x = RandomInput(static_cast<size_t>(kT * c.hidden), 3);
  std::vector<float> y(x.size()), w(kT * 2), p(kT * 8);
  std::vector<int32_t> ids(kT * 2);
  std::vector<uint8_t> d(kT * 2);
  auto routing = [&]() {
    pimoe_routing r;
    std::memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.expert_ids = ids.data();
    r.weights = w.data();
    r.dropped = d.data();
    r.slot_count = ids.size();
    r.probabilities = p.data();
    r.probability_count = p.size();
    return r;
  };
  pimoe_routing r = routing();
  r.slot_count = kT * 2 + 1;
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), x.data(), x.size(), 1, kT, y.data(), y.size(), &r),
                         PIMOE_ERR_SIZE_MISMATCH, {"slot_count"}));
  r = routing();
  r.slot_count = kT * 8;  // E slots: only for expert choice
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), x.data(), x.size(), 1, kT, y.data(), y.size(), &r),
                         PIMOE_ERR_SIZE_MISMATCH, {"slot_count"}));
  r = routing();
  r.expert_ids = nullptr;  // dropped alone still needs the right slot_count
  r.weights = nullptr;
  r.slot_count = 5;
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), x.data(), x.size(), 1, kT, y.data(), y.size(), &r),
                         PIMOE_ERR_SIZE_MISMATCH, {"slot_count"}));
  r = routing();
  r.probability_count = kT * 2;
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), x.data(), x.size(), 1, kT, y.data(), y.size(), &r),
                         PIMOE_ERR_SIZE_MISMATCH, {"probability_count"}));
  for (size_t size : {size_t{0}, sizeof(size_t), sizeof(pimoe_routing) - sizeof(size_t)}) {
    r = routing();
    r.struct_size = size;
    EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), x.data(), x.size(), 1, kT, y.data(), y.size(), &r),
                           PIMOE_ERR_INVALID_ARGUMENT, {"struct_size"}))
        << "struct_size " << size;
  }
  r = routing();
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(nullptr, x.data(), x.size(), 1, kT, y.data(), y.size(), &r),
                         PIMOE_ERR_NULL_POINTER, {}));
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), x.data(), x.size() - 1, 1, kT, y.data(), y.size(), &r),
                         PIMOE_ERR_SIZE_MISMATCH, {"input_count"}));
  std::vector<float> bad = x;
  bad[5] = std::nanf("");
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), bad.data(), bad.size(), 1, kT, y.data(), y.size(), &r),
                         PIMOE_ERR_NON_FINITE_INPUT, {}));
  EXPECT_EQ(Stats(m.get()).forward_calls, 0u) << "failed calls are not counted";
  // Still usable.
  r = routing();
  PIMOE_EXPECT_OK(pimoe_forward_routing(m.get(), x.data(), x.size(), 1, kT, y.data(), y.size(), &r));
  EXPECT_EQ(Stats(m.get()).forward_calls, 1u);
  EXPECT_EQ(pimoe_model_routing_slots(nullptr), 0);
}

// pimoe_load applies pimoe_create's checks to the runtime options: deterministic cannot be promised for a file whose
// layer has adaptive state (PIMOE_ERR_INVALID_OPTION, as pimoe_create); the same file loads without it.
TEST(RoutingErrors, LoadingAStatefulLayerWithDeterministicFails) {
  for (bool dynamic : {false, true}) {
    Cfg c;
    if (dynamic) {
      c.capacity_factor = 1.0;
      c.dynamic_capacity = true;
    } else {
      c.adaptive_bias_rate = 0.01;
    }
    SCOPED_TRACE(c.Describe());
    ModelPtr m;
    ASSERT_NO_FATAL_FAILURE(Create(c, &m));
    const std::string path = TempPath("deterministic");
    PIMOE_ASSERT_OK(pimoe_save(m.get(), path.c_str()));
    pimoe_options *raw = nullptr;
    PIMOE_ASSERT_OK(pimoe_options_create(&raw));
    OptionsPtr o(raw);
    PIMOE_ASSERT_OK(pimoe_options_set_string(raw, PIMOE_OPT_BACKEND, Backend()));
    PIMOE_ASSERT_OK(pimoe_options_set_int(raw, PIMOE_OPT_DETERMINISTIC, 1));
    pimoe_model *loaded = reinterpret_cast<pimoe_model *>(0x1);
    EXPECT_TRUE(FailedWith(pimoe_load(path.c_str(), raw, &loaded), PIMOE_ERR_INVALID_OPTION,
                           {"deterministic", dynamic ? "dynamic_capacity" : "adaptive_bias_rate"}));
    EXPECT_EQ(loaded, reinterpret_cast<pimoe_model *>(0x1));
    PIMOE_ASSERT_OK(pimoe_options_set_int(raw, PIMOE_OPT_DETERMINISTIC, 0));
    PIMOE_ASSERT_OK(pimoe_load(path.c_str(), raw, &loaded));
    pimoe_destroy(loaded);
    std::remove(path.c_str());
  }
}

// With expert choice the routing outputs have E slots per token: routing_count must be T*E, not T*k.
TEST(RoutingErrors, ExpertChoiceRoutingCountIsTokensTimesExperts) {
  Cfg c;
  c.expert_choice = true;
  ModelPtr m;
  ASSERT_NO_FATAL_FAILURE(Create(c, &m));
  EXPECT_EQ(pimoe_model_routing_slots(m.get()), 8);
  constexpr int64_t kT = 10;
  const std::vector<float> x = RandomInput(static_cast<size_t>(kT * c.hidden), 8);
  std::vector<float> y(x.size());
  std::vector<int32_t> ids(kT * 8, -7);
  std::vector<float> w(kT * 8);
  EXPECT_TRUE(FailedWith(
      pimoe_forward(m.get(), x.data(), x.size(), 2, kT / 2, y.data(), y.size(), ids.data(), w.data(), kT * 2),
      PIMOE_ERR_SIZE_MISMATCH, {"routing_count"}));
  pimoe_routing r;
  std::memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.expert_ids = ids.data();
  r.slot_count = kT * 2;
  EXPECT_TRUE(FailedWith(pimoe_forward_routing(m.get(), x.data(), x.size(), 2, kT / 2, y.data(), y.size(), &r),
                         PIMOE_ERR_SIZE_MISMATCH, {"slot_count"}));
  PIMOE_EXPECT_OK(
      pimoe_forward(m.get(), x.data(), x.size(), 2, kT / 2, y.data(), y.size(), ids.data(), w.data(), ids.size()));
  int64_t used = 0;
  for (int32_t id : ids) used += id >= 0;
  EXPECT_EQ(used, 8 * static_cast<int64_t>(std::ceil(kT * 2.0 / 8)));  // E * C, C = ceil(T*top_k/E)
}

// ================================================================================================ concurrency

// 8 threads calling pimoe_forward_routing on one model with a callback expert, the attention combine and the shared
// expert give the same results as serial calls, bit for bit; the callback runs on each caller's thread.
TEST(RoutingConcurrency, CallbackAndCombineUnderConcurrentForwards) {
  CallbackState state;
  Cfg c;
  c.callback_experts = {1, 6};
  c.callbacks = &state;
  c.combine_dim = 8;
  c.shared_width = 16;
  c.capacity_factor = 1.25;
  c.threads = 2;
  ModelPtr m;
  ASSERT_NO_FATAL_FAILURE(Create(c, &m));
  const int64_t shapes[][2] = {{1, 1}, {1, 7}, {2, 5}, {1, 16}, {3, 3}, {1, 24}};
  std::vector<std::vector<float>> inputs;
  std::vector<CallResult> serial;
  for (size_t i = 0; i < 6; ++i) {
    inputs.push_back(RandomInput(static_cast<size_t>(shapes[i][0] * shapes[i][1] * c.hidden), 200 + i));
    CallResult r;
    PIMOE_ASSERT_OK(LibRun(m.get(), inputs.back(), shapes[i][0], shapes[i][1], &r));
    serial.push_back(std::move(r));
  }
  state.Clear();
  constexpr int kThreads = 8, kRounds = 3;
  std::atomic<int> mismatches{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        for (size_t k = 0; k < 6; ++k) {
          const size_t i = (k + static_cast<size_t>(t)) % 6;
          CallResult r;
          if (LibRun(m.get(), inputs[i], shapes[i][0], shapes[i][1], &r) != PIMOE_OK) {
            ++failures;
            continue;
          }
          if (!SameRun(r, serial[i])) ++mismatches;
        }
      }
    });
  }
  for (std::thread &th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0) << "concurrent results differ from serial ones";
  EXPECT_GT(state.calls.load(), 0);
  EXPECT_EQ(state.wrong_thread.load(), 0) << "a callback ran on a thread other than its pimoe_forward caller";
  EXPECT_EQ(state.bad_args.load(), 0);
  EXPECT_EQ(Stats(m.get()).forward_calls, static_cast<uint64_t>(6 + kThreads * kRounds * 6));
}

// Adaptive state under concurrency: forwards on a layer with adaptive bias and dynamic capacity run concurrently with
// reads of the state tensors and pimoe_model_reset_adaptive_state (thread-safe per pimoe.h); every call succeeds, the
// state stays finite and in range, and a final reset restores the initial state bit for bit.
TEST(RoutingConcurrency, AdaptiveStateWithConcurrentForwardsReadsAndResets) {
  Cfg c;
  c.adaptive_bias_rate = 0.01;
  c.capacity_factor = 1.0;
  c.dynamic_capacity = true;
  c.threads = 2;
  ModelPtr m;
  ASSERT_NO_FATAL_FAILURE(Create(c, &m));
  const std::vector<float> bias0 = ReadTensor(m.get(), "router.selection_bias");
  const std::vector<float> ema0 = ReadTensor(m.get(), "router.load_ema");
  const std::vector<float> router = ReadTensor(m.get(), "router.weight");
  constexpr int kForwardThreads = 4, kCalls = 6;
  std::atomic<int> failures{0}, bad_state{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kForwardThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> y;
      for (int call = 0; call < kCalls; ++call) {
        const std::vector<float> x = SkewedInput(router, c.hidden, 64, 300 + static_cast<uint64_t>(t * kCalls + call));
        if (Forward(m.get(), x, 2, 32, &y) != PIMOE_OK) ++failures;
      }
    });
  }
  std::thread observer([&] {
    while (!done.load()) {
      std::vector<float> b(8), e(8);
      if (pimoe_tensor_read(m.get(), "router.selection_bias", b.data(), b.size()) != PIMOE_OK ||
          pimoe_tensor_read(m.get(), "router.load_ema", e.data(), e.size()) != PIMOE_OK ||
          pimoe_model_reset_adaptive_state(m.get()) != PIMOE_OK) {
        ++failures;
      }
      double sum = 0.0;
      for (float v : e) {
        if (!(v >= 0.0f && v <= 1.0f)) ++bad_state;
        sum += v;
      }
      if (std::fabs(sum - 1.0) > 1e-5) ++bad_state;  // a convex combination of distributions
      for (float v : b) {
        if (!std::isfinite(v)) ++bad_state;
      }
      std::this_thread::yield();
    }
  });
  for (std::thread &th : threads) th.join();
  done = true;
  observer.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(bad_state.load(), 0);
  EXPECT_EQ(Stats(m.get()).forward_calls, static_cast<uint64_t>(kForwardThreads * kCalls));
  PIMOE_ASSERT_OK(pimoe_model_reset_adaptive_state(m.get()));
  EXPECT_TRUE(SameBits(ReadTensor(m.get(), "router.selection_bias"), bias0));
  EXPECT_TRUE(SameBits(ReadTensor(m.get(), "router.load_ema"), ema0));
}

}  // namespace
