// Parity of libpimoe against the reference oracle (tests/oracle), at fp32: every router option, activation, expert
// preset and override rule, thread counts and shapes, determinism, and the statistics the header defines.
//
// Tolerances (DESIGN.md section 7): output max |lib - oracle| <= 1e-5 * RMS(oracle output) per call; routing weights
// within 1e-6 + 1e-5 * w; losses and confidence within 1e-5 relative.
//
// Near ties: when two ranked router probabilities of a token differ by less than kTieProb (or their z/tau by less
// than kTieLogit), fp32 rounding may legitimately order them either way. Such tokens are skipped, and only them: a
// near tie between ranks k and k+1 skips the token's output and routing checks; a near tie inside the top k skips
// only its per-slot routing check (the set of chosen experts is still compared). Every comparison also requires that
// at most a quarter of a call's tokens were skipped (none for a single token), so a check cannot pass vacuously.
// Under a capacity limit a near tie would change which later assignments are dropped, so those tests draw inputs
// without near ties (TieFreeInput) and fail if one slips through.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "backend_under_test.h"
#include "oracle.h"
#include "pimoe/pimoe.h"

namespace {

namespace po = pimoe_oracle;

constexpr double kOutputTol = 1e-5;  // relative to the RMS of the oracle output
constexpr double kTieProb = 1e-6;
constexpr double kTieLogit = 1e-5;


const bool kBackendChecked = ExitUnlessBackendUsable("test_parity");

// A layer configuration. Defaults are small; header defaults are in DefaultLayer().
struct Layer {
  int64_t hidden = 16;
  int32_t experts = 4;
  int32_t top_k = 2;
  int64_t intermediate = 24;
  pimoe_activation activation = PIMOE_ACT_GELU;
  bool pre_norm = false;
  bool expert_bias = false;
  double temperature = 1.0;
  bool renormalize = true;
  double capacity_factor = 0.0;
  double aux_loss_coef = 1.0;
  double layer_norm_eps = 1e-5;
  int64_t seed = 1;
  int threads = 1;
  bool deterministic = false;
  std::string cpu_gemm = "packed";
  // Router extensions and the shared expert (defaults: off).
  bool sigmoid = false;
  bool router_bias = false;
  double routed_scaling = 1.0;
  int32_t num_groups = 1;
  int32_t topk_groups = 1;
  bool group_max = false;
  int64_t shared_width = 0;
  bool shared_gate = false;
  std::string weight_dtype = "fp32";  // a runtime setting: applied even when set_layer_options is false
  bool set_layer_options = true;  // false: leave every layer option at its default (except threads and backend)
  po::SpecResolver overrides;     // per-expert calls, replayed in order before the layer options are set

  po::Hyper Hyper() const {
    po::Hyper h;
    h.temperature = temperature;
    h.renormalize = renormalize;
    h.capacity_factor = capacity_factor;
    h.top_k = top_k;
    h.layer_norm_eps = layer_norm_eps;
    h.aux_loss_coef = aux_loss_coef;
    h.expert_bias = expert_bias;
    h.sigmoid = sigmoid;
    h.router_bias = router_bias;
    h.routed_scaling = routed_scaling;
    h.num_groups = num_groups;
    h.topk_groups = topk_groups;
    h.group_max = group_max;
    h.shared_width = shared_width;
    h.shared_gate = shared_gate;
    return h;
  }
  std::vector<po::ExpertSpec> Specs() const { return overrides.Resolve(experts, intermediate, activation, pre_norm); }
  std::string Describe() const {
    std::ostringstream s;
    s << "H=" << hidden << " E=" << experts << " k=" << top_k << " I=" << intermediate << " act=" << activation
      << " pre_norm=" << pre_norm << " bias=" << expert_bias << " tau=" << temperature << " renorm=" << renormalize
      << " cf=" << capacity_factor << " alpha=" << aux_loss_coef << " eps=" << layer_norm_eps << " seed=" << seed
      << " threads=" << threads << " deterministic=" << deterministic << " cpu_gemm=" << cpu_gemm
      << " scoring=" << (sigmoid ? "sigmoid" : "softmax") << " router_bias=" << router_bias
      << " scaling=" << routed_scaling << " groups=" << num_groups << "/" << topk_groups << "("
      << (group_max ? "max" : "top2_sum") << ") shared=" << shared_width << (shared_gate ? "+gate" : "")
      << " weight_dtype=" << weight_dtype << " backend=" << Backend();
    return s.str();
  }
};

Layer DefaultLayer() {
  Layer l;
  l.hidden = 512;
  l.experts = 8;
  l.top_k = 2;
  l.intermediate = 2048;
  l.seed = 0;
  l.set_layer_options = false;
  return l;
}

void Create(const Layer &l, ModelPtr *out) {
  pimoe_options *raw = nullptr;
  PIMOE_ASSERT_OK(pimoe_options_create(&raw));
  OptionsPtr o(raw);
  PIMOE_ASSERT_OK(l.overrides.Apply(o.get()));
  if (l.set_layer_options) {
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_HIDDEN, l.hidden));
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_NUM_EXPERTS, l.experts));
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_TOP_K, l.top_k));
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_INTERMEDIATE, l.intermediate));
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_ACTIVATION, l.activation));
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_PRE_NORM, l.pre_norm ? 1 : 0));
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_EXPERT_BIAS, l.expert_bias ? 1 : 0));
    PIMOE_ASSERT_OK(pimoe_options_set_float(o.get(), PIMOE_OPT_TEMPERATURE, l.temperature));
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_RENORMALIZE, l.renormalize ? 1 : 0));
    PIMOE_ASSERT_OK(pimoe_options_set_float(o.get(), PIMOE_OPT_CAPACITY_FACTOR, l.capacity_factor));
    PIMOE_ASSERT_OK(pimoe_options_set_float(o.get(), PIMOE_OPT_AUX_LOSS_COEF, l.aux_loss_coef));
    PIMOE_ASSERT_OK(pimoe_options_set_float(o.get(), PIMOE_OPT_LAYER_NORM_EPS, l.layer_norm_eps));
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_SEED, l.seed));
    PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_ROUTER_SCORING, l.sigmoid ? "sigmoid" : "softmax"));
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_ROUTER_BIAS, l.router_bias ? 1 : 0));
    PIMOE_ASSERT_OK(pimoe_options_set_float(o.get(), PIMOE_OPT_ROUTED_SCALING, l.routed_scaling));
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_NUM_GROUPS, l.num_groups));
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_TOPK_GROUPS, l.topk_groups));
    PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_GROUP_SCORE, l.group_max ? "max" : "top2_sum"));
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_SHARED_WIDTH, l.shared_width));
    PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_SHARED_GATE, l.shared_gate ? 1 : 0));
  }
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_THREADS, l.threads));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_DETERMINISTIC, l.deterministic ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_CPU_GEMM, l.cpu_gemm.c_str()));
  PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_WEIGHT_DTYPE, l.weight_dtype.c_str()));
  PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, Backend()));
  pimoe_model *m = nullptr;
  PIMOE_ASSERT_OK(pimoe_create(o.get(), &m));
  ASSERT_NE(m, nullptr);
  out->reset(m);
}

// Creates the model and reads it into the oracle, checking dims and resolved expert specs against the options.
void CreateAndLoad(const Layer &l, ModelPtr *model, po::Weights *w) {
  ASSERT_NO_FATAL_FAILURE(Create(l, model));
  const std::string err = po::LoadWeights(model->get(), l.Hyper(), w);
  ASSERT_EQ(err, "") << l.Describe();
  ASSERT_EQ(w->hidden, l.hidden);
  ASSERT_EQ(w->num_experts, l.experts);
  ASSERT_EQ(w->top_k, l.top_k);
  const std::vector<po::ExpertSpec> expected = l.Specs();
  for (size_t e = 0; e < expected.size(); ++e) {
    ASSERT_EQ(w->experts[e].spec, expected[e]) << "expert " << e << " resolved to " << po::ToString(w->experts[e].spec)
                                               << ", the header's rules give " << po::ToString(expected[e]);
  }
}

// Uniform values of unit variance, from SplitMix64 (portable, independent of the library's generator use).
std::vector<float> RandomInput(size_t n, uint64_t seed, double scale = 1.0) {
  uint64_t state = seed * 0x2545f4914f6cdd1dULL + 0x1234567ULL;
  std::vector<float> v(n);
  for (float &f : v) {
    const double u = static_cast<double>(po::SplitMix64Next(&state) >> 11) * (1.0 / 9007199254740992.0);
    f = static_cast<float>((2.0 * u - 1.0) * std::sqrt(3.0) * scale);
  }
  return v;
}

bool NearTie(double prob_gap, double logit_gap) {
  return prob_gap < kTieProb || logit_gap < kTieLogit;
}

// Random input whose tokens have no near tie among their top k+1 router ranks (rows are redrawn until they have none).
std::vector<float> TieFreeInput(const po::Weights &w, const po::Hyper &hp, int64_t tokens, uint64_t seed) {
  const size_t hd = static_cast<size_t>(w.hidden);
  std::vector<float> x = RandomInput(static_cast<size_t>(tokens) * hd, seed);
  for (int64_t t = 0; t < tokens; ++t) {
    float *row = x.data() + static_cast<size_t>(t) * hd;
    for (uint64_t attempt = 1; attempt < 1000; ++attempt) {
      const po::Result r = po::Forward(w, hp, row, 1);
      if (!NearTie(r.min_slot_gap[0], r.min_slot_zgap[0])) break;
      const std::vector<float> redraw = RandomInput(hd, seed * 7919 + static_cast<uint64_t>(t) * 131 + attempt);
      std::copy(redraw.begin(), redraw.end(), row);
    }
  }
  return x;
}

struct LibOutput {
  std::vector<float> output;
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

void LibForward(pimoe_model *m, const std::vector<float> &x, int64_t batch, int64_t seq, int64_t hidden, int32_t top_k,
                LibOutput *out) {
  const size_t tokens = static_cast<size_t>(batch * seq);
  out->output.assign(tokens * static_cast<size_t>(hidden), std::nanf(""));
  out->ids.assign(tokens * static_cast<size_t>(top_k), -7);
  out->weights.assign(tokens * static_cast<size_t>(top_k), std::nanf(""));
  ASSERT_EQ(x.size(), out->output.size());
  PIMOE_ASSERT_OK(pimoe_forward(m, x.data(), x.size(), batch, seq, out->output.data(), out->output.size(),
                                out->ids.data(), out->weights.data(), out->ids.size()));
}

struct CheckSummary {
  int64_t tokens = 0;
  int64_t skipped_output = 0;
  int64_t skipped_slots = 0;
  double max_abs_err = 0.0;
  double rms = 0.0;
  po::Result oracle;
};

// One forward through the library and the oracle on input x [batch*seq, H]; compares output and routing.
void ForwardAndCompare(pimoe_model *m, const po::Weights &w, const po::Hyper &hp, int64_t batch, int64_t seq,
                       const std::vector<float> &x, CheckSummary *summary) {
  const int64_t tokens = batch * seq;
  const size_t hd = static_cast<size_t>(w.hidden);
  const size_t k = static_cast<size_t>(hp.top_k);
  LibOutput lib;
  ASSERT_NO_FATAL_FAILURE(LibForward(m, x, batch, seq, w.hidden, hp.top_k, &lib));
  po::Result r = po::Forward(w, hp, x.data(), tokens);

  double sum_sq = 0.0;
  for (double v : r.output) sum_sq += v * v;
  const double rms = std::sqrt(sum_sq / static_cast<double>(r.output.size()));
  const double tol = kOutputTol * rms;
  ASSERT_GT(rms, 0.0) << "degenerate test: the oracle output is all zero";

  int64_t skipped_output = 0, skipped_slots = 0;
  double max_err = 0.0;
  std::string worst;
  int64_t routing_mismatches = 0;
  std::string first_routing_mismatch;
  for (int64_t t = 0; t < tokens; ++t) {
    const size_t ts = static_cast<size_t>(t);
    const bool boundary_tie = NearTie(r.boundary_gap[ts], r.boundary_zgap[ts]);
    const bool slot_tie = NearTie(r.min_slot_gap[ts], r.min_slot_zgap[ts]);
    if (hp.capacity_factor > 0.0) {
      ASSERT_FALSE(slot_tie) << "token " << t << " has a near tie under a capacity limit; draw it with TieFreeInput";
    }
    if (boundary_tie) {
      ++skipped_output;
    } else {
      for (size_t h = 0; h < hd; ++h) {
        const float lv = lib.output[ts * hd + h];
        const double err = std::isfinite(lv) ? std::fabs(static_cast<double>(lv) - r.output[ts * hd + h])
                                             : std::numeric_limits<double>::infinity();
        if (!(err <= max_err)) {
          max_err = err;
          std::ostringstream s;
          s << "token " << t << " h " << h << ": lib " << lv << " oracle " << r.output[ts * hd + h];
          worst = s.str();
        }
      }
    }
    auto mismatch = [&](const std::string &what) {
      if (routing_mismatches++ == 0) first_routing_mismatch = "token " + std::to_string(t) + ": " + what;
    };
    if (slot_tie) {
      skipped_slots += static_cast<int64_t>(k);
      if (!boundary_tie) {  // the chosen set is still well defined
        std::vector<int32_t> a(lib.ids.begin() + static_cast<std::ptrdiff_t>(ts * k),
                               lib.ids.begin() + static_cast<std::ptrdiff_t>(ts * k + k));
        std::vector<int32_t> b(r.ids.begin() + static_cast<std::ptrdiff_t>(ts * k),
                               r.ids.begin() + static_cast<std::ptrdiff_t>(ts * k + k));
        std::sort(a.begin(), a.end());
        std::sort(b.begin(), b.end());
        if (a != b) mismatch("chosen expert set differs");
      }
      continue;
    }
    for (size_t j = 0; j < k; ++j) {
      const size_t i = ts * k + j;
      if (lib.ids[i] != r.ids[i]) {
        mismatch("slot " + std::to_string(j) + " expert " + std::to_string(lib.ids[i]) + ", oracle " +
                 std::to_string(r.ids[i]));
      } else if (r.dropped[i]) {
        if (lib.weights[i] != 0.0f) {
          mismatch("slot " + std::to_string(j) + " dropped by capacity but reported weight " +
                   std::to_string(lib.weights[i]));
        }
      } else {
        const double diff = std::fabs(static_cast<double>(lib.weights[i]) - r.weights[i]);
        if (!(diff <= 1e-6 + 1e-5 * r.weights[i])) {
          std::ostringstream s;
          s << "slot " << j << " expert " << r.ids[i] << " weight " << lib.weights[i] << ", oracle " << r.weights[i];
          mismatch(s.str());
        }
      }
    }
  }
  EXPECT_LE(max_err, tol) << "output differs from the oracle by " << max_err << " (tolerance " << tol
                          << " = 1e-5 * RMS " << rms << "); worst at " << worst;
  EXPECT_EQ(routing_mismatches, 0) << routing_mismatches << " routing mismatches; first: " << first_routing_mismatch;
  EXPECT_LE(skipped_output * 4, tokens) << "too many near ties skipped: " << skipped_output << " of " << tokens;
  summary->tokens = tokens;
  summary->skipped_output = skipped_output;
  summary->skipped_slots = skipped_slots;
  summary->max_abs_err = max_err;
  summary->rms = rms;
  summary->oracle = std::move(r);
}

// Creates the layer and checks one forward of shape [batch, seq] against the oracle.
void CheckLayer(const Layer &l, int64_t batch, int64_t seq, uint64_t input_seed, CheckSummary *summary = nullptr) {
  SCOPED_TRACE(l.Describe() + " shape " + std::to_string(batch) + "x" + std::to_string(seq));
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  const po::Hyper hp = l.Hyper();
  const std::vector<float> x = l.capacity_factor > 0.0
                                   ? TieFreeInput(w, hp, batch * seq, input_seed)
                                   : RandomInput(static_cast<size_t>(batch * seq * l.hidden), input_seed);
  CheckSummary local;
  ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, hp, batch, seq, x, summary ? summary : &local));
}

void ExpectRel(double actual, double expected, double rel, double abs_tol, const char *what) {
  EXPECT_LE(std::fabs(actual - expected), rel * std::fabs(expected) + abs_tol)
      << what << ": library " << actual << ", oracle " << expected;
}

// Running totals of what the oracle says the model's statistics must be.
struct StatsExpectation {
  std::vector<uint64_t> loads;
  uint64_t dropped = 0;
  uint64_t tokens = 0;
  uint64_t calls = 0;
  double top1_sum = 0.0;
  double aux_loss = 0.0;
  double z_loss = 0.0;

  void Add(const po::Result &r) {
    if (loads.empty()) loads.assign(r.loads.size(), 0);
    for (size_t e = 0; e < loads.size(); ++e) loads[e] += r.loads[e];
    dropped += r.dropped_count;
    tokens += static_cast<uint64_t>(r.tokens);
    ++calls;
    top1_sum += r.top1_sum;
    aux_loss = r.aux_loss;
    z_loss = r.z_loss;
  }
};

void CheckStats(const pimoe_model *m, const StatsExpectation &ex) {
  std::vector<uint64_t> loads(ex.loads.size() + 1, 0xdeadbeefULL);
  PIMOE_ASSERT_OK(pimoe_stats_expert_loads(m, loads.data(), loads.size()));
  loads.resize(ex.loads.size());
  EXPECT_EQ(loads, ex.loads) << "per-expert loads";
  pimoe_stats_snapshot s;
  std::memset(&s, 0, sizeof(s));
  s.struct_size = sizeof(s);
  PIMOE_ASSERT_OK(pimoe_stats(m, &s));
  EXPECT_EQ(s.num_experts, ex.loads.size());
  EXPECT_EQ(s.forward_calls, ex.calls);
  EXPECT_EQ(s.tokens, ex.tokens);
  EXPECT_EQ(s.dropped_tokens, ex.dropped);
  ExpectRel(s.aux_loss, ex.aux_loss, 1e-5, 1e-9, "aux_loss (last call)");
  ExpectRel(s.z_loss, ex.z_loss, 1e-5, 1e-7, "z_loss (last call)");
  ExpectRel(s.routing_confidence, ex.top1_sum / static_cast<double>(ex.tokens), 1e-5, 1e-9,
            "routing_confidence (mean over all tokens since reset)");
  const po::Balance b = po::BalanceMetrics(ex.loads);
  ExpectRel(s.load_cv, b.cv, 1e-6, 1e-9, "load_cv");
  ExpectRel(s.load_max_violation, b.max_violation, 1e-6, 1e-9, "load_max_violation");
  ExpectRel(s.load_jain_index, b.jain, 1e-6, 1e-9, "load_jain_index");
  ExpectRel(s.load_normalized_entropy, b.normalized_entropy, 1e-6, 1e-9, "load_normalized_entropy");
  ExpectRel(s.expert_utilization, b.utilization, 1e-6, 1e-9, "expert_utilization");
}

const pimoe_activation kAllActivations[] = {PIMOE_ACT_GELU, PIMOE_ACT_GELU_TANH, PIMOE_ACT_SILU,
                                            PIMOE_ACT_RELU, PIMOE_ACT_TANH,      PIMOE_ACT_SWIGLU};

// ================================================================================================ oracle self-checks

TEST(OracleSelf, BalanceMetricsIdentities) {
  const po::Balance uniform = po::BalanceMetrics({5, 5, 5, 5});
  EXPECT_DOUBLE_EQ(uniform.cv, 0.0);
  EXPECT_DOUBLE_EQ(uniform.max_violation, 0.0);
  EXPECT_DOUBLE_EQ(uniform.jain, 1.0);
  EXPECT_NEAR(uniform.normalized_entropy, 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(uniform.utilization, 1.0);
  const po::Balance one_hot = po::BalanceMetrics({0, 9, 0, 0});
  EXPECT_DOUBLE_EQ(one_hot.jain, 0.25);  // 1/E
  EXPECT_DOUBLE_EQ(one_hot.normalized_entropy, 0.0);
  EXPECT_DOUBLE_EQ(one_hot.utilization, 0.25);
  EXPECT_DOUBLE_EQ(one_hot.max_violation, 3.0);    // (9 - 9/4) / (9/4) = E - 1
  EXPECT_NEAR(one_hot.cv, std::sqrt(3.0), 1e-12);  // sqrt(E - 1) for a one-hot load
  const po::Balance empty = po::BalanceMetrics({0, 0, 0});
  EXPECT_DOUBLE_EQ(empty.cv, 0.0);
  EXPECT_DOUBLE_EQ(empty.jain, 1.0);
  EXPECT_DOUBLE_EQ(empty.normalized_entropy, 0.0);
  EXPECT_DOUBLE_EQ(empty.utilization, 0.0);
  EXPECT_DOUBLE_EQ(po::BalanceMetrics({7}).normalized_entropy, 1.0);
}

TEST(OracleSelf, ActivationsAndCapacity) {
  for (double x : {-3.0, -0.5, 0.0, 0.7, 2.5}) {
    EXPECT_NEAR(po::Activate(PIMOE_ACT_GELU, x), x * 0.5 * std::erfc(-x / std::sqrt(2.0)), 1e-14);
    EXPECT_NEAR(po::Activate(PIMOE_ACT_GELU_TANH, x), po::Activate(PIMOE_ACT_GELU, x), 1e-3);
    EXPECT_NEAR(po::Activate(PIMOE_ACT_SILU, x), x / (1.0 + std::exp(-x)), 1e-14);
    EXPECT_EQ(po::Activate(PIMOE_ACT_RELU, x), std::max(x, 0.0));
  }
  EXPECT_EQ(po::Capacity(8, 2, 0.0, 4), -1);
  EXPECT_EQ(po::Capacity(8, 2, 1.0, 4), 4);
  EXPECT_EQ(po::Capacity(7, 2, 1.25, 8), 3);  // ceil(2.1875)
  EXPECT_EQ(po::Capacity(1, 1, 0.5, 8), 1);
}

// ================================================================================================ weights

TEST(ParityWeights, TensorListAndInitialisationFollowTheHeader) {
  std::vector<Layer> layers(5);
  layers[1].expert_bias = true;
  layers[1].seed = 42;
  layers[2].activation = PIMOE_ACT_SWIGLU;
  layers[2].expert_bias = true;
  layers[2].seed = 123456789;
  layers[3].pre_norm = true;
  layers[3].seed = 0;
  layers[4].experts = 8;
  layers[4].expert_bias = true;
  layers[4].seed = 7;
  for (int32_t e = 0; e < 8; ++e) layers[4].overrides.SetPreset(e, static_cast<pimoe_expert_preset>(e));
  // Router selection bias and a gated shared expert: their tensors, order and initialisation.
  Layer extended;
  extended.router_bias = true;
  extended.shared_width = 40;
  extended.shared_gate = true;
  extended.expert_bias = true;
  extended.seed = 99;
  layers.push_back(extended);
  extended.shared_gate = false;
  extended.router_bias = false;
  layers.push_back(extended);
  for (const Layer &l : layers) {
    SCOPED_TRACE(l.Describe());
    ModelPtr model;
    po::Weights w;
    ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));  // checks names, order and shapes
    const std::vector<po::TensorInfo> infos = po::ExpectedTensors(l.hidden, l.Specs(), l.Hyper());
    const std::vector<std::vector<float>> expected =
        po::InitAllTensors(static_cast<uint64_t>(l.seed), l.hidden, l.Specs(), l.Hyper());
    for (size_t i = 0; i < infos.size(); ++i) {
      std::vector<float> got(expected[i].size());
      PIMOE_ASSERT_OK(pimoe_tensor_read(model.get(), infos[i].name.c_str(), got.data(), got.size()));
      size_t bad = 0, first_bad = 0;
      for (size_t j = 0; j < got.size(); ++j) {
        if (!(std::fabs(got[j] - expected[i][j]) <= 1e-6f)) {
          if (bad++ == 0) first_bad = j;
        }
      }
      EXPECT_EQ(bad, 0u) << infos[i].name << ": " << bad << " values differ from the documented initialisation; first ["
                         << first_bad << "] = " << got[first_bad] << ", expected " << expected[i][first_bad];
    }
  }
}

// ================================================================================================ router

TEST(ParityRouter, TemperatureAndRenormalisation) {
  for (double tau : {0.5, 1.0, 2.5}) {
    for (bool renorm : {false, true}) {
      Layer l;
      l.experts = 6;
      l.top_k = 2;
      l.temperature = tau;
      l.renormalize = renorm;
      l.seed = 11;
      CheckLayer(l, 3, 7, 100);
      l.top_k = 3;
      l.hidden = 13;
      l.intermediate = 29;
      CheckLayer(l, 4, 16, 101);
    }
  }
}

TEST(ParityRouter, TopKFromOneToAllExperts) {
  for (int32_t k = 1; k <= 6; ++k) {
    for (bool renorm : {false, true}) {
      Layer l;
      l.experts = 6;
      l.top_k = k;
      l.renormalize = renorm;
      l.temperature = k % 2 ? 0.5 : 1.0;
      l.seed = 20 + k;
      CheckLayer(l, 3, 7, 200 + static_cast<uint64_t>(k));
    }
  }
  Layer single;  // E = k = 1: everything goes to the one expert with weight 1 (or p = 1 without renormalisation)
  single.experts = 1;
  single.top_k = 1;
  single.renormalize = false;
  CheckLayer(single, 2, 5, 299);
}

TEST(ParityRouter, ExactTiesGoToTheLowerIndex) {
  // A zero input gives all-zero logits: every probability is exactly 1/E, so the top k must be experts 0 .. k-1.
  for (bool renorm : {false, true}) {
    Layer l;
    l.experts = 5;
    l.top_k = 3;
    l.renormalize = renorm;
    l.expert_bias = true;  // so that the zero token has a non-zero output
    l.pre_norm = true;
    SCOPED_TRACE(l.Describe());
    ModelPtr model;
    po::Weights w;
    ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
    const int64_t tokens = 6;
    std::vector<float> x = RandomInput(static_cast<size_t>(tokens * l.hidden), 300);
    for (int64_t t : {0, 3, 5}) std::fill_n(x.begin() + t * l.hidden, l.hidden, 0.0f);
    LibOutput lib;
    ASSERT_NO_FATAL_FAILURE(LibForward(model.get(), x, 1, tokens, l.hidden, l.top_k, &lib));
    const po::Result r = po::Forward(w, l.Hyper(), x.data(), tokens);
    for (int64_t t : {0, 3, 5}) {
      for (int32_t j = 0; j < l.top_k; ++j) {
        const size_t i = static_cast<size_t>(t * l.top_k + j);
        EXPECT_EQ(r.ids[i], j);
        EXPECT_EQ(lib.ids[i], j) << "token " << t << " slot " << j << ": ties must go to the lower expert index";
        const double expect_w = renorm ? 1.0 / l.top_k : 1.0 / l.experts;
        EXPECT_NEAR(lib.weights[i], expect_w, 1e-6);
      }
    }
    // Output of the tied tokens: within 1e-5 of their RMS.
    double sum_sq = 0.0;
    for (int64_t t : {0, 3, 5}) {
      for (int64_t h = 0; h < l.hidden; ++h) sum_sq += std::pow(r.output[static_cast<size_t>(t * l.hidden + h)], 2);
    }
    const double tol = kOutputTol * std::sqrt(sum_sq / static_cast<double>(3 * l.hidden));
    ASSERT_GT(tol, 0.0);
    for (int64_t t : {0, 3, 5}) {
      for (int64_t h = 0; h < l.hidden; ++h) {
        const size_t i = static_cast<size_t>(t * l.hidden + h);
        EXPECT_NEAR(lib.output[i], r.output[i], tol) << "token " << t << " h " << h;
      }
    }
  }
}

// ================================================================================================ capacity

// The admission order a naive implementation might use (token-major): which (token, slot) pairs it would drop.
std::vector<uint8_t> TokenMajorDrops(const po::Result &r, int32_t num_experts) {
  std::vector<uint8_t> dropped(r.ids.size(), 0);
  std::vector<int64_t> load(static_cast<size_t>(num_experts), 0);
  for (size_t i = 0; i < r.ids.size(); ++i) {
    int64_t &l = load[static_cast<size_t>(r.ids[i])];
    if (l >= r.capacity) {
      dropped[i] = 1;
    } else {
      ++l;
    }
  }
  return dropped;
}

TEST(ParityCapacity, FactorsDropsAndAdmissionOrder) {
  struct Case {
    int32_t experts, top_k;
    double cf;
    int64_t batch, seq;
  };
  const Case cases[] = {
      {4, 1, 0.0, 4, 16},  {4, 1, 0.5, 4, 16}, {4, 1, 1.0, 4, 16}, {4, 1, 1.25, 4, 16}, {6, 2, 0.0, 3, 7},
      {6, 2, 0.5, 3, 7},   {6, 2, 1.0, 3, 7},  {6, 2, 1.25, 3, 7}, {8, 2, 0.5, 4, 64},  {8, 2, 1.0, 4, 64},
      {8, 2, 1.25, 4, 64}, {5, 3, 0.5, 2, 9},  {5, 5, 0.5, 2, 9},  {5, 5, 1.0, 1, 1},   {8, 2, 0.5, 1, 1},
  };
  bool order_sensitive_case_seen = false;
  for (const Case &c : cases) {
    for (bool renorm : {false, true}) {
      Layer l;
      l.experts = c.experts;
      l.top_k = c.top_k;
      l.capacity_factor = c.cf;
      l.renormalize = renorm;
      l.seed = 31 + c.experts;
      l.temperature = 0.5;  // sharper routing: less balanced, more drops
      CheckSummary s;
      CheckLayer(l, c.batch, c.seq, 400 + static_cast<uint64_t>(c.experts * 10 + c.top_k), &s);
      if (HasFatalFailure() || s.tokens == 0) return;
      const po::Result &r = s.oracle;
      const int64_t tokens = c.batch * c.seq;
      EXPECT_EQ(r.capacity, po::Capacity(tokens, c.top_k, c.cf, c.experts));
      if (c.cf == 0.5 && tokens * c.top_k > c.experts) {
        EXPECT_GT(r.dropped_count, 0u) << "cf 0.5 must drop: the test would not exercise drops";
      }
      if (c.cf > 0.0 && TokenMajorDrops(r, c.experts) != r.dropped) order_sensitive_case_seen = true;
    }
  }
  EXPECT_TRUE(order_sensitive_case_seen) << "no case distinguishes first-choice-first from token-major admission";
}

TEST(ParityCapacity, CapacityIsPerCall) {
  // The same tokens in one call of T and in T calls of one: C depends on the call's T.
  Layer l;
  l.experts = 4;
  l.top_k = 2;
  l.capacity_factor = 0.5;
  l.temperature = 0.5;
  l.seed = 77;
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  const po::Hyper hp = l.Hyper();
  const std::vector<float> x = TieFreeInput(w, hp, 24, 500);
  StatsExpectation ex;
  PIMOE_ASSERT_OK(pimoe_stats_reset(model.get()));
  CheckSummary s;
  ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, hp, 4, 6, x, &s));
  ex.Add(s.oracle);
  EXPECT_GT(s.oracle.dropped_count, 0u);
  for (int64_t t = 0; t < 24; ++t) {
    const std::vector<float> one(x.begin() + t * l.hidden, x.begin() + (t + 1) * l.hidden);
    ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, hp, 1, 1, one, &s));
    EXPECT_EQ(s.oracle.dropped_count, 0u);  // C = ceil(2 * 0.5 / 4) = 1 and the two slots differ
    ex.Add(s.oracle);
  }
  CheckStats(model.get(), ex);
}

// ================================================================================================ experts

TEST(ParityExperts, EveryActivationWithAndWithoutBiasAndPreNorm) {
  for (pimoe_activation act : kAllActivations) {
    for (bool bias : {false, true}) {
      for (bool norm : {false, true}) {
        Layer l;
        l.hidden = 13;
        l.intermediate = 29;
        l.experts = 4;
        l.top_k = 2;
        l.activation = act;
        l.expert_bias = bias;
        l.pre_norm = norm;
        l.seed = 50 + act;
        l.layer_norm_eps = norm && bias ? 1e-3 : 1e-5;  // eps is honoured
        CheckLayer(l, 3, 7, 600 + static_cast<uint64_t>(act));
      }
    }
  }
}

TEST(ParityExperts, InputScaleStressesActivations) {
  // Large inputs drive tanh/GELU into saturation and SiLU/ReLU far from 0; small ones the linear region.
  for (pimoe_activation act : kAllActivations) {
    for (double scale : {0.01, 8.0}) {
      Layer l;
      l.activation = act;
      l.expert_bias = true;
      l.seed = 60 + act;
      SCOPED_TRACE(l.Describe() + " input scale " + std::to_string(scale));
      ModelPtr model;
      po::Weights w;
      ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
      const std::vector<float> x = RandomInput(static_cast<size_t>(5 * l.hidden), 700, scale);
      CheckSummary s;
      ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, l.Hyper(), 1, 5, x, &s));
    }
  }
}

TEST(ParityExperts, EveryPresetForAllExperts) {
  for (int preset = 0; preset <= 7; ++preset) {
    for (bool bias : {false, true}) {
      Layer l;
      l.experts = 4;
      l.hidden = 12;
      l.intermediate = 10;
      l.activation = PIMOE_ACT_SILU;  // what GENERIC experts follow
      l.pre_norm = true;
      l.expert_bias = bias;
      l.seed = 70 + preset;
      l.overrides.SetPreset(-1, static_cast<pimoe_expert_preset>(preset));
      CheckLayer(l, 3, 7, 800 + static_cast<uint64_t>(preset));
    }
  }
}

TEST(ParityExperts, MixedLayerOfAllPresetsAndWidths) {
  for (bool bias : {false, true}) {
    Layer l;
    l.experts = 8;
    l.top_k = 3;
    l.hidden = 24;
    l.intermediate = 16;
    l.activation = PIMOE_ACT_RELU;
    l.expert_bias = bias;
    l.seed = 80;
    for (int32_t e = 0; e < 8; ++e) l.overrides.SetPreset(e, static_cast<pimoe_expert_preset>(e));
    l.overrides.SetWidth(3, 37);                   // after the preset
    l.overrides.SetActivation(6, PIMOE_ACT_TANH);  // CREATIVE with tanh
    l.overrides.SetPreNorm(2, 1);                  // COMPUTATION (2x, no norm) with a norm
    l.overrides.SetWidth(0, 5);                    // GENERIC, narrow
    l.temperature = 2.5;                           // flatter routing: every expert gets tokens
    CheckSummary s;
    CheckLayer(l, 4, 64, 900, &s);
    for (size_t e = 0; e < 8; ++e) EXPECT_GT(s.oracle.loads[e], 0u) << "expert " << e << " got no token";
  }
}

struct OverrideScenario {
  const char *what;
  void (*build)(po::SpecResolver *);
};

const OverrideScenario kOverrideScenarios[] = {
    {"preset for all, then one expert's preset",
     [](po::SpecResolver *r) {
       r->SetPreset(-1, PIMOE_PRESET_LANGUAGE);
       r->SetPreset(2, PIMOE_PRESET_COMPUTATION);
     }},
    {"activation before the preset still wins",
     [](po::SpecResolver *r) {
       r->SetActivation(1, PIMOE_ACT_RELU);
       r->SetPreset(1, PIMOE_PRESET_REASONING);
     }},
    {"activation after the preset wins",
     [](po::SpecResolver *r) {
       r->SetPreset(1, PIMOE_PRESET_REASONING);
       r->SetActivation(1, PIMOE_ACT_RELU);
     }},
    {"absolute width before a 2x preset wins",
     [](po::SpecResolver *r) {
       r->SetWidth(0, 7);
       r->SetPreset(0, PIMOE_PRESET_COMPUTATION);
     }},
    {"norm flag off after a norm preset",
     [](po::SpecResolver *r) {
       r->SetPreset(3, PIMOE_PRESET_ANALYTICAL);
       r->SetPreNorm(3, false);
     }},
    {"norm flag on before a no-norm preset",
     [](po::SpecResolver *r) {
       r->SetPreNorm(2, true);
       r->SetPreset(2, PIMOE_PRESET_LANGUAGE);
     }},
    {"later call wins for the same field",
     [](po::SpecResolver *r) {
       r->SetActivation(2, PIMOE_ACT_TANH);
       r->SetActivation(2, PIMOE_ACT_SILU);
       r->SetPreset(3, PIMOE_PRESET_LOGICAL);
       r->SetPreset(3, PIMOE_PRESET_COMPUTATION);
       r->SetWidth(1, 9);
       r->SetWidth(1, 3);
     }},
    {"GENERIC preset after another restores the layer defaults",
     [](po::SpecResolver *r) {
       r->SetPreset(0, PIMOE_PRESET_LANGUAGE);
       r->SetPreset(0, PIMOE_PRESET_GENERIC);
     }},
    {"explicit values without any preset",
     [](po::SpecResolver *r) {
       r->SetActivation(-1, PIMOE_ACT_SWIGLU);
       r->SetWidth(3, 40);
       r->SetPreNorm(1, true);
     }},
};

TEST(ParityExperts, OverrideRulesOfTheHeader) {
  // Per-expert calls are made before the layer options (intermediate, activation, pre_norm) are set, so presets
  // must scale the final intermediate size and GENERIC must follow the final layer defaults.
  for (const OverrideScenario &sc : kOverrideScenarios) {
    SCOPED_TRACE(sc.what);
    Layer l;
    l.experts = 4;
    l.top_k = 2;
    l.hidden = 10;
    l.intermediate = 12;
    l.activation = PIMOE_ACT_GELU_TANH;
    l.pre_norm = false;
    l.expert_bias = true;
    l.seed = 90;
    sc.build(&l.overrides);
    l.temperature = 2.5;
    CheckLayer(l, 2, 9, 1000);
  }
}

// Calls for expert -1. The header: "expert is an index ... or -1 for every expert", "Later calls win over earlier
// ones for the same expert and field" and "an explicit activation, width or norm flag given for that expert overrides
// the preset's value whatever the call order". Read literally, a call for -1 is a call for each expert: a later -1
// call overrides an earlier per-expert one, and an explicit value given through -1 beats a per-expert preset.
TEST(ParityExperts, CallsForEveryExpertFollowTheSameRules) {
  {
    SCOPED_TRACE("calls for one expert are applied after the calls for every expert, whatever the order");
    Layer l;
    l.experts = 3;
    l.hidden = 8;
    l.intermediate = 6;
    l.seed = 92;
    l.overrides.SetPreset(-1, PIMOE_PRESET_MATHEMATICAL);
    l.overrides.SetPreset(1, PIMOE_PRESET_CREATIVE);
    l.overrides.SetPreset(-1, PIMOE_PRESET_LOGICAL);  // -> LOGICAL for experts 0 and 2, CREATIVE for expert 1
    CheckLayer(l, 1, 6, 1101);
  }
  {
    SCOPED_TRACE("a per-expert preset replaces what was set for every expert");
    Layer l;
    l.experts = 3;
    l.hidden = 8;
    l.intermediate = 6;
    l.seed = 91;
    l.overrides.SetWidth(-1, 11);
    l.overrides.SetActivation(-1, PIMOE_ACT_SILU);
    l.overrides.SetPreset(1, PIMOE_PRESET_COMPUTATION);  // -> GELU, width 12, no norm (expert 0: SiLU, width 11)
    l.overrides.SetPreset(2, PIMOE_PRESET_ANALYTICAL);   // -> ReLU, width 6, norm
    CheckLayer(l, 1, 6, 1100);
  }
}

// ================================================================================================ threads and shapes

bool BuildHasOpenBlas() {
  return std::string(pimoe_build_info()).find("openblas") != std::string::npos;
}

// Both CPU GEMMs (the packed default and OpenBLAS), each thread count, gated and plain experts with bias and norm.
TEST(ParityShapes, ThreadCountsAndCpuGemms) {
  std::vector<std::string> gemms = {"packed"};
  if (BuildHasOpenBlas()) gemms.push_back("openblas");
  for (const std::string &gemm : gemms)
    for (int threads : {1, 2, 4})
      for (pimoe_activation act : {PIMOE_ACT_SWIGLU, PIMOE_ACT_GELU}) {
        Layer l;
        l.cpu_gemm = gemm;
        l.deterministic = gemm == "packed" && threads == 2;
        l.experts = 8;
        l.top_k = 2;
        l.hidden = 32;
        l.intermediate = 48;
        l.activation = act;
        l.expert_bias = act == PIMOE_ACT_GELU;
        l.pre_norm = act == PIMOE_ACT_GELU;
        l.threads = threads;
        l.seed = 100;
        CheckLayer(l, 4, 64, 1200);
        CheckLayer(l, 1, 1, 1201);
        l.capacity_factor = 1.0;
        CheckLayer(l, 4, 64, 1202);
      }
}

TEST(ParityShapes, BatchAndSequenceShapes) {
  Layer l;
  l.experts = 6;
  l.top_k = 2;
  l.seed = 101;
  l.threads = 2;
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  const int64_t shapes[][2] = {{1, 1}, {3, 7}, {4, 64}, {1, 300}, {17, 1}, {1, 1}};
  uint64_t seed = 1300;
  for (const auto &sh : shapes) {
    SCOPED_TRACE(std::to_string(sh[0]) + "x" + std::to_string(sh[1]));
    const std::vector<float> x = RandomInput(static_cast<size_t>(sh[0] * sh[1] * l.hidden), seed++);
    CheckSummary s;
    ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, l.Hyper(), sh[0], sh[1], x, &s));
  }
}

TEST(ParityShapes, HiddenSizesAndExpertCounts) {
  struct Case {
    int64_t hidden, intermediate;
    int32_t experts, top_k;
    pimoe_activation act;
  };
  const Case cases[] = {
      {13, 29, 4, 2, PIMOE_ACT_GELU},  {1, 1, 2, 1, PIMOE_ACT_SILU},    {7, 5, 3, 3, PIMOE_ACT_SWIGLU},
      {64, 96, 16, 4, PIMOE_ACT_RELU}, {33, 130, 1, 1, PIMOE_ACT_TANH}, {100, 3, 5, 2, PIMOE_ACT_GELU_TANH},
  };
  for (const Case &c : cases) {
    Layer l;
    l.hidden = c.hidden;
    l.intermediate = c.intermediate;
    l.experts = c.experts;
    l.top_k = c.top_k;
    l.activation = c.act;
    l.pre_norm = c.hidden > 1;  // LayerNorm over one element is degenerate (output = bias), still well defined
    l.expert_bias = true;
    l.seed = 110 + c.hidden;
    l.threads = 2;
    CheckLayer(l, 3, 7, 1400 + static_cast<uint64_t>(c.hidden));
  }
}

TEST(ParityShapes, DefaultShape) {
  // Every layer option left at the header's default: H=512, E=8, k=2, I=2048, GELU, no norm, no bias, seed 0.
  const Layer l = DefaultLayer();
  SCOPED_TRACE(l.Describe());
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  CheckSummary s;
  const std::vector<float> x = RandomInput(static_cast<size_t>(2 * 4 * l.hidden), 1500);
  ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, l.Hyper(), 2, 4, x, &s));
  // The default weights follow the documented initialisation too (router and expert 0 suffice).
  const std::vector<std::vector<float>> init = po::InitAllTensors(0, l.hidden, l.Specs(), false);
  ASSERT_EQ(init[0].size(), w.router.size());
  ASSERT_EQ(init[1].size(), w.experts[0].up_weight.size());
  ASSERT_EQ(init[2].size(), w.experts[0].down_weight.size());
  size_t bad = 0;
  for (size_t i = 0; i < init[0].size(); ++i) bad += std::fabs(init[0][i] - w.router[i]) > 1e-6f;
  for (size_t i = 0; i < init[1].size(); ++i) bad += std::fabs(init[1][i] - w.experts[0].up_weight[i]) > 1e-6f;
  for (size_t i = 0; i < init[2].size(); ++i) bad += std::fabs(init[2][i] - w.experts[0].down_weight[i]) > 1e-6f;
  EXPECT_EQ(bad, 0u) << "default weights differ from the documented initialisation";
}

// ================================================================================================ determinism

void ExpectSameBits(const float *a, const float *b, size_t n, const std::string &what) {
  EXPECT_EQ(std::memcmp(a, b, n * sizeof(float)), 0) << what << ": not bit-identical";
}

TEST(Determinism, TokenAloneOrInsideABatch) {
  for (pimoe_activation act : {PIMOE_ACT_GELU, PIMOE_ACT_SWIGLU}) {
    for (int threads : {1, 4}) {
      Layer l;
      l.experts = 8;
      l.top_k = 2;
      l.hidden = 32;
      l.intermediate = 64;
      l.activation = act;
      l.pre_norm = act == PIMOE_ACT_GELU;
      l.expert_bias = true;
      l.threads = threads;
      l.deterministic = true;  // batch invariance is promised only in deterministic mode (pimoe.h)
      l.seed = 120;
      SCOPED_TRACE(l.Describe());
      ModelPtr model;
      ASSERT_NO_FATAL_FAILURE(Create(l, &model));
      const int64_t tokens = 200;
      const size_t hd = static_cast<size_t>(l.hidden);
      const std::vector<float> x = RandomInput(static_cast<size_t>(tokens) * hd, 1600);
      LibOutput batch;
      ASSERT_NO_FATAL_FAILURE(LibForward(model.get(), x, 4, 50, l.hidden, l.top_k, &batch));
      // The same tokens in reverse order, as a different batch composition.
      std::vector<float> rev(x.size());
      for (int64_t t = 0; t < tokens; ++t) {
        std::copy_n(x.begin() + t * l.hidden, hd, rev.begin() + (tokens - 1 - t) * l.hidden);
      }
      LibOutput reversed;
      ASSERT_NO_FATAL_FAILURE(LibForward(model.get(), rev, 1, tokens, l.hidden, l.top_k, &reversed));
      for (int64_t t = 0; t < tokens; ++t) {
        const size_t r = static_cast<size_t>(tokens - 1 - t);
        ExpectSameBits(&batch.output[static_cast<size_t>(t) * hd], &reversed.output[r * hd], hd,
                       "token " + std::to_string(t) + " at position " + std::to_string(t) + " vs " + std::to_string(r));
      }
      for (int64_t t = 0; t < tokens; t += (t < 20 ? 1 : 9)) {
        const std::vector<float> one(x.begin() + t * l.hidden, x.begin() + (t + 1) * l.hidden);
        LibOutput alone;
        ASSERT_NO_FATAL_FAILURE(LibForward(model.get(), one, 1, 1, l.hidden, l.top_k, &alone));
        const size_t ts = static_cast<size_t>(t);
        ExpectSameBits(alone.output.data(), &batch.output[ts * hd], hd, "token " + std::to_string(t) + " alone");
        for (int32_t j = 0; j < l.top_k; ++j) {
          const size_t i = ts * static_cast<size_t>(l.top_k) + static_cast<size_t>(j);
          EXPECT_EQ(alone.ids[static_cast<size_t>(j)], batch.ids[i]) << "token " << t;
          ExpectSameBits(&alone.weights[static_cast<size_t>(j)], &batch.weights[i], 1,
                         "routing weight of token " + std::to_string(t));
        }
      }
    }
  }
}

TEST(Determinism, AcrossThreadCountsAndRepeatedCalls) {
  for (pimoe_activation act : {PIMOE_ACT_SILU, PIMOE_ACT_SWIGLU}) {
    Layer l;
    l.experts = 8;
    l.top_k = 2;
    l.hidden = 48;
    l.intermediate = 80;
    l.activation = act;
    l.seed = 130;
    const int64_t shapes[][2] = {{1, 1}, {3, 7}, {4, 64}, {2, 150}};
    std::vector<LibOutput> reference;
    for (int threads : {1, 2, 4}) {
      l.threads = threads;
      SCOPED_TRACE(l.Describe());
      ModelPtr model;
      ASSERT_NO_FATAL_FAILURE(Create(l, &model));
      size_t index = 0;
      for (const auto &sh : shapes) {
        const std::vector<float> x = RandomInput(static_cast<size_t>(sh[0] * sh[1] * l.hidden), 1700 + index);
        LibOutput out, again;
        ASSERT_NO_FATAL_FAILURE(LibForward(model.get(), x, sh[0], sh[1], l.hidden, l.top_k, &out));
        ASSERT_NO_FATAL_FAILURE(LibForward(model.get(), x, sh[0], sh[1], l.hidden, l.top_k, &again));
        const std::string what = std::to_string(sh[0]) + "x" + std::to_string(sh[1]);
        ExpectSameBits(out.output.data(), again.output.data(), out.output.size(), what + " repeated call");
        if (threads == 1) {
          reference.push_back(out);
        } else {
          ExpectSameBits(out.output.data(), reference[index].output.data(), out.output.size(),
                         what + " threads " + std::to_string(threads) + " vs 1");
          EXPECT_EQ(out.ids, reference[index].ids) << what;
          ExpectSameBits(out.weights.data(), reference[index].weights.data(), out.weights.size(), what + " weights");
        }
        ++index;
      }
    }
  }
}

TEST(Determinism, RoutingBuffersAreOptional) {
  Layer l;
  l.seed = 140;
  ModelPtr model;
  ASSERT_NO_FATAL_FAILURE(Create(l, &model));
  const std::vector<float> x = RandomInput(static_cast<size_t>(21 * l.hidden), 1800);
  LibOutput with;
  ASSERT_NO_FATAL_FAILURE(LibForward(model.get(), x, 3, 7, l.hidden, l.top_k, &with));
  std::vector<float> without(x.size(), std::nanf(""));
  PIMOE_ASSERT_OK(
      pimoe_forward(model.get(), x.data(), x.size(), 3, 7, without.data(), without.size(), nullptr, nullptr, 0));
  ExpectSameBits(with.output.data(), without.data(), x.size(), "output with vs without routing buffers");
}

// ================================================================================================ statistics

TEST(ParityStats, LoadsDropsLossesAndConfidenceOverCalls) {
  struct Case {
    double cf, tau, alpha;
    bool renorm;
  };
  for (const Case &c : {Case{0.0, 1.0, 1.0, true}, Case{1.0, 2.5, 0.01, false}, Case{0.5, 0.5, 1.0, true}}) {
    Layer l;
    l.experts = 6;
    l.top_k = 2;
    l.capacity_factor = c.cf;
    l.temperature = c.tau;
    l.aux_loss_coef = c.alpha;
    l.renormalize = c.renorm;
    l.seed = 150;
    l.threads = 2;
    SCOPED_TRACE(l.Describe());
    ModelPtr model;
    po::Weights w;
    ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
    const po::Hyper hp = l.Hyper();
    StatsExpectation ex;
    ex.loads.assign(static_cast<size_t>(l.experts), 0);
    const int64_t shapes[][2] = {{3, 7}, {1, 1}, {4, 32}};
    uint64_t seed = 1900;
    for (const auto &sh : shapes) {
      const std::vector<float> x = TieFreeInput(w, hp, sh[0] * sh[1], seed++);
      CheckSummary s;
      ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, hp, sh[0], sh[1], x, &s));
      ex.Add(s.oracle);
      SCOPED_TRACE("after a call of " + std::to_string(sh[0] * sh[1]) + " tokens");
      CheckStats(model.get(), ex);
    }
    if (c.cf == 0.5) {
      EXPECT_GT(ex.dropped, 0u);
    }
    // A reset clears everything; the next call starts the counts afresh.
    PIMOE_ASSERT_OK(pimoe_stats_reset(model.get()));
    std::vector<uint64_t> loads(static_cast<size_t>(l.experts), 1);
    PIMOE_ASSERT_OK(pimoe_stats_expert_loads(model.get(), loads.data(), loads.size()));
    EXPECT_EQ(loads, std::vector<uint64_t>(static_cast<size_t>(l.experts), 0));
    StatsExpectation fresh;
    fresh.loads.assign(static_cast<size_t>(l.experts), 0);
    const std::vector<float> x = TieFreeInput(w, hp, 10, seed++);
    CheckSummary s;
    ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, hp, 2, 5, x, &s));
    fresh.Add(s.oracle);
    CheckStats(model.get(), fresh);
  }
}

// ================================================================================================ router extensions
// Sigmoid scoring, selection bias, routed scaling, group-limited routing and the shared expert (pimoe.h).

// How many tokens' chosen expert sets differ between two oracle configurations of the same weights: a test of a
// feature is meaningful only if the feature changes the routing.
int64_t RoutingDifferences(const po::Weights &w, const po::Hyper &a, const po::Hyper &b, const std::vector<float> &x,
                           int64_t tokens) {
  const po::Result ra = po::Forward(w, a, x.data(), tokens), rb = po::Forward(w, b, x.data(), tokens);
  const size_t k = static_cast<size_t>(a.top_k);
  int64_t differ = 0;
  for (size_t t = 0; t < static_cast<size_t>(tokens); ++t) {
    std::vector<int32_t> ia(ra.ids.begin() + static_cast<std::ptrdiff_t>(t * k),
                            ra.ids.begin() + static_cast<std::ptrdiff_t>(t * k + k));
    std::vector<int32_t> ib(rb.ids.begin() + static_cast<std::ptrdiff_t>(t * k),
                            rb.ids.begin() + static_cast<std::ptrdiff_t>(t * k + k));
    std::sort(ia.begin(), ia.end());
    std::sort(ib.begin(), ib.end());
    differ += ia != ib ? 1 : 0;
  }
  return differ;
}

TEST(ParityRouterExt, SigmoidScoringWithAndWithoutSelectionBias) {
  for (bool bias : {false, true}) {
    for (bool renorm : {true, false}) {
      for (double tau : {1.0, 0.7}) {
        Layer l;
        l.experts = 8;
        l.top_k = 3;
        l.sigmoid = true;
        l.router_bias = bias;
        l.renormalize = renorm;
        l.temperature = tau;
        l.threads = 2;
        l.seed = 300 + (bias ? 1 : 0);
        CheckLayer(l, 3, 11, 3001);
        CheckLayer(l, 1, 1, 3002);
      }
    }
  }
  // The selection bias must change which experts are chosen (weights from the unbiased scores), else the test is void.
  Layer l;
  l.experts = 8;
  l.top_k = 3;
  l.sigmoid = true;
  l.router_bias = true;
  l.seed = 301;
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  po::Hyper unbiased = l.Hyper();
  unbiased.router_bias = false;
  const std::vector<float> x = RandomInput(static_cast<size_t>(64 * l.hidden), 3003);
  EXPECT_GT(RoutingDifferences(w, l.Hyper(), unbiased, x, 64), 4);
}

TEST(ParityRouterExt, RoutedScalingFactor) {
  for (bool sigmoid : {false, true}) {
    for (bool renorm : {true, false}) {
      Layer l;
      l.experts = 6;
      l.top_k = 2;
      l.sigmoid = sigmoid;
      l.renormalize = renorm;
      l.routed_scaling = 2.5;
      l.seed = 310;
      CheckSummary s;
      CheckLayer(l, 2, 9, 3101, &s);
      // The reported weights carry the factor: renormalised ones sum to it.
      if (renorm) {
        for (int64_t t = 0; t < s.tokens; ++t) {
          EXPECT_NEAR(s.oracle.weights[static_cast<size_t>(2 * t)] + s.oracle.weights[static_cast<size_t>(2 * t + 1)],
                      2.5, 1e-9);
        }
      }
    }
  }
}

TEST(ParityRouterExt, GroupLimitedRouting) {
  struct Case {
    int32_t experts, groups, kept, top_k;
    bool group_max, sigmoid, bias;
  };
  const Case cases[] = {
      {16, 1, 1, 4, false, false, false}, {16, 1, 1, 4, false, true, true},  {16, 2, 1, 4, false, false, false},
      {16, 4, 2, 4, false, true, true},   {16, 4, 2, 8, true, true, false},  {16, 8, 3, 5, false, true, true},
      {16, 8, 3, 6, true, false, false},  {16, 16, 4, 4, false, true, true}, {16, 16, 5, 3, true, true, true},
      {12, 3, 3, 4, false, true, true},   {32, 8, 4, 8, false, true, true},  {32, 8, 4, 16, true, false, true},
  };
  for (const Case &c : cases) {
    Layer l;
    l.experts = c.experts;
    l.num_groups = c.groups;
    l.topk_groups = c.kept;
    l.top_k = c.top_k;
    l.group_max = c.group_max;
    l.sigmoid = c.sigmoid;
    l.router_bias = c.bias;
    l.threads = 2;
    l.seed = 320 + c.groups;
    CheckLayer(l, 4, 8, 3201);
    CheckLayer(l, 1, 1, 3202);
  }
  // Group limiting must change the routing of some tokens (with both group scores).
  for (bool group_max : {false, true}) {
    Layer l;
    l.experts = 16;
    l.num_groups = 4;
    l.topk_groups = 1;
    l.top_k = 4;
    l.group_max = group_max;
    l.sigmoid = true;
    l.seed = 324;
    ModelPtr model;
    po::Weights w;
    ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
    po::Hyper flat = l.Hyper();
    flat.num_groups = 1;
    const std::vector<float> x = RandomInput(static_cast<size_t>(64 * l.hidden), 3203);
    EXPECT_GT(RoutingDifferences(w, l.Hyper(), flat, x, 64), 8);
    CheckLayer(l, 8, 8, 3204);
  }
  // top2_sum and max rank groups differently on some tokens.
  {
    Layer l;
    l.experts = 16;
    l.num_groups = 4;
    l.topk_groups = 2;
    l.top_k = 2;
    l.seed = 325;
    ModelPtr model;
    po::Weights w;
    ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
    po::Hyper by_max = l.Hyper();
    by_max.group_max = true;
    const std::vector<float> x = RandomInput(static_cast<size_t>(256 * l.hidden), 3205);
    EXPECT_GT(RoutingDifferences(w, l.Hyper(), by_max, x, 256), 0);
  }
}

TEST(ParityRouterExt, SharedExpertWithAndWithoutGate) {
  for (bool gate : {false, true}) {
    for (pimoe_activation act : {PIMOE_ACT_GELU, PIMOE_ACT_SWIGLU}) {
      for (int threads : {1, 2}) {
        Layer l;
        l.activation = act;
        l.shared_width = 40;
        l.shared_gate = gate;
        l.expert_bias = act == PIMOE_ACT_GELU;
        l.pre_norm = act == PIMOE_ACT_GELU;
        l.threads = threads;
        l.seed = 330;
        CheckLayer(l, 3, 13, 3301);
        CheckLayer(l, 1, 1, 3302);
        CheckLayer(l, 2, 50, 3303);  // several row tiles of the shared expert
      }
    }
  }
  // Wide shared expert and odd widths (partial panels).
  for (int64_t width : {1, 17, 300}) {
    Layer l;
    l.shared_width = width;
    l.shared_gate = true;
    l.seed = 331;
    CheckLayer(l, 2, 5, 3304);
  }
  // The shared expert contributes: the output with it differs from the output without it.
  Layer l;
  l.shared_width = 32;
  l.shared_gate = true;
  l.seed = 332;
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  po::Hyper none = l.Hyper();
  none.shared_width = 0;
  const std::vector<float> x = RandomInput(static_cast<size_t>(4 * l.hidden), 3305);
  const po::Result with = po::Forward(w, l.Hyper(), x.data(), 4), without = po::Forward(w, none, x.data(), 4);
  double diff = 0.0;
  for (size_t i = 0; i < with.output.size(); ++i) diff = std::max(diff, std::fabs(with.output[i] - without.output[i]));
  EXPECT_GT(diff, 1e-3);
}

TEST(ParityRouterExt, EveryFeatureOnBothCpuGemms) {
  std::vector<std::string> gemms = {"packed"};
  if (BuildHasOpenBlas()) gemms.push_back("openblas");
  for (const std::string &gemm : gemms) {
    Layer l;
    l.experts = 16;
    l.top_k = 4;
    l.activation = PIMOE_ACT_SWIGLU;
    l.sigmoid = true;
    l.router_bias = true;
    l.num_groups = 4;
    l.topk_groups = 2;
    l.routed_scaling = 1.5;
    l.shared_width = 48;
    l.shared_gate = true;
    l.cpu_gemm = gemm;
    l.threads = 2;
    l.seed = 340;
    CheckLayer(l, 2, 21, 3401);
    CheckLayer(l, 1, 1, 3402);
  }
}

// DeepSeek-V3's MoE block, scaled down: sigmoid scores, selection bias, 8 groups with 4 kept (top2_sum), top-8,
// renormalised weights times 2.5, one SwiGLU shared expert.
Layer DeepSeekV3Like() {
  Layer l;
  l.hidden = 64;
  l.experts = 64;
  l.top_k = 8;
  l.intermediate = 32;
  l.activation = PIMOE_ACT_SWIGLU;
  l.sigmoid = true;
  l.router_bias = true;
  l.num_groups = 8;
  l.topk_groups = 4;
  l.routed_scaling = 2.5;
  l.renormalize = true;
  l.shared_width = 32;
  l.threads = 2;
  l.seed = 350;
  return l;
}

// Qwen2-MoE's block, scaled down: softmax top-4 without renormalisation, SwiGLU experts, a gated shared expert.
Layer Qwen2MoeLike() {
  Layer l;
  l.hidden = 48;
  l.experts = 16;
  l.top_k = 4;
  l.intermediate = 24;
  l.activation = PIMOE_ACT_SWIGLU;
  l.renormalize = false;
  l.shared_width = 96;
  l.shared_gate = true;
  l.threads = 2;
  l.seed = 360;
  return l;
}

TEST(ParityRouterExt, DeepSeekV3LikeLayer) {
  Layer l = DeepSeekV3Like();
  CheckLayer(l, 4, 16, 3501);
  CheckLayer(l, 1, 1, 3502);
  CheckLayer(l, 1, 37, 3503);
  l.threads = 1;
  CheckLayer(l, 2, 9, 3504);
}

TEST(ParityRouterExt, Qwen2MoeLikeLayer) {
  Layer l = Qwen2MoeLike();
  CheckLayer(l, 4, 16, 3601);
  CheckLayer(l, 1, 1, 3602);
  l.threads = 1;
  CheckLayer(l, 3, 7, 3603);
}

TEST(ParityRouterExt, CapacityWithTheNewFeatures) {
  for (double cf : {0.5, 1.0, 1.25}) {
    Layer l = DeepSeekV3Like();
    l.capacity_factor = cf;
    CheckSummary s;
    CheckLayer(l, 2, 24, 3701, &s);
    if (cf == 0.5) {
      EXPECT_GT(s.oracle.dropped_count, 0u);
    }
    Layer q = Qwen2MoeLike();
    q.capacity_factor = cf;
    CheckLayer(q, 2, 24, 3702, &s);
    if (cf == 0.5) {
      EXPECT_GT(s.oracle.dropped_count, 0u);
    }
  }
}

TEST(ParityRouterExt, StatsWithSigmoidScoresAndGroups) {
  for (bool sigmoid : {true, false}) {
    Layer l;
    l.experts = 8;
    l.top_k = 2;
    l.sigmoid = sigmoid;
    l.router_bias = true;
    l.num_groups = 4;
    l.topk_groups = 2;
    l.routed_scaling = 3.0;
    l.capacity_factor = 1.0;
    l.aux_loss_coef = 0.01;
    l.shared_width = 16;
    l.seed = 380;
    l.threads = 2;
    SCOPED_TRACE(l.Describe());
    ModelPtr model;
    po::Weights w;
    ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
    const po::Hyper hp = l.Hyper();
    StatsExpectation ex;
    ex.loads.assign(static_cast<size_t>(l.experts), 0);
    const int64_t shapes[][2] = {{3, 7}, {1, 1}, {4, 32}};
    uint64_t seed = 3800;
    for (const auto &sh : shapes) {
      const std::vector<float> x = TieFreeInput(w, hp, sh[0] * sh[1], seed++);
      CheckSummary s;
      ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(model.get(), w, hp, sh[0], sh[1], x, &s));
      ex.Add(s.oracle);
      CheckStats(model.get(), ex);
    }
  }
}

TEST(ParityRouterExt, DeterministicModeWithTheNewFeatures) {
  Layer l = DeepSeekV3Like();
  l.shared_gate = true;
  l.deterministic = true;
  ModelPtr one, two;
  l.threads = 1;
  ASSERT_NO_FATAL_FAILURE(Create(l, &one));
  l.threads = 2;
  ASSERT_NO_FATAL_FAILURE(Create(l, &two));
  const int64_t tokens = 40;
  const std::vector<float> x = RandomInput(static_cast<size_t>(tokens * l.hidden), 3901);
  LibOutput batch1, batch2;
  ASSERT_NO_FATAL_FAILURE(LibForward(one.get(), x, 1, tokens, l.hidden, l.top_k, &batch1));
  ASSERT_NO_FATAL_FAILURE(LibForward(two.get(), x, 1, tokens, l.hidden, l.top_k, &batch2));
  ExpectSameBits(batch1.output.data(), batch2.output.data(), batch1.output.size(), "1 vs 2 threads");
  for (int64_t t : {0, 17, 39}) {
    const std::vector<float> row(x.begin() + t * l.hidden, x.begin() + (t + 1) * l.hidden);
    LibOutput alone;
    ASSERT_NO_FATAL_FAILURE(LibForward(two.get(), row, 1, 1, l.hidden, l.top_k, &alone));
    ExpectSameBits(alone.output.data(), batch2.output.data() + t * l.hidden, static_cast<size_t>(l.hidden),
                   "token " + std::to_string(t) + " alone vs in the batch");
  }
}

}  // namespace

// bf16/fp16 weight storage: the expert matrices are rounded to the type (so the oracle, reading them back, sees the
// stored values and parity stays at 1e-5), the router stays fp32, and the layer stays within 1e-2 of its fp32 self.
// The 1e-5 check uses a call of 7 tokens (3.5 rows an expert), one that every backend computes in fp32 arithmetic;
// CUDA's tensor-core calls round the activations (pimoe.h, WEIGHT_DTYPE) and are checked at 1e-2 in tests/cuda.
TEST(ParityWeightDtype, RoundedExpertMatricesKeepParity) {
  for (const char *dtype : {"bf16", "fp16"}) {
    for (pimoe_activation act : {PIMOE_ACT_GELU, PIMOE_ACT_SWIGLU}) {
      Layer l;
      l.weight_dtype = dtype;
      l.activation = act;
      l.shared_width = 24;
      l.seed = 2500;
      CheckLayer(l, 1, 7, 2501);

      ModelPtr low, full;
      ASSERT_NO_FATAL_FAILURE(Create(l, &low));
      Layer l32 = l;
      l32.weight_dtype = "fp32";
      ASSERT_NO_FATAL_FAILURE(Create(l32, &full));
      // Stored values: every element of an expert matrix is representable in the type, the router is untouched.
      for (const char *name : {"experts.1.up.weight", "shared.down.weight", "router.weight"}) {
        int64_t shape[4] = {0, 0, 0, 0};
        int32_t rank = 0;
        PIMOE_ASSERT_OK(pimoe_tensor_shape(low.get(), name, &rank, shape));
        size_t n = 1;
        for (int32_t i = 0; i < rank; ++i) n *= static_cast<size_t>(shape[i]);
        std::vector<float> a(n), b(n);
        PIMOE_ASSERT_OK(pimoe_tensor_read(low.get(), name, a.data(), n));
        PIMOE_ASSERT_OK(pimoe_tensor_read(full.get(), name, b.data(), n));
        const bool router = std::string(name) == "router.weight";
        size_t changed = 0;
        for (size_t i = 0; i < n; ++i) {
          const double rel = std::fabs(a[i] - b[i]) / std::max(1e-30, static_cast<double>(std::fabs(b[i])));
          if (router) {
            ASSERT_EQ(a[i], b[i]) << name << "[" << i << "]";
          } else {
            ASSERT_LE(rel, std::string(dtype) == "bf16" ? 1.0 / 256 : 1.0 / 2048) << name << "[" << i << "]";
          }
          changed += a[i] != b[i];
        }
        if (!router) {
          EXPECT_GT(changed, n / 2) << name << " was not rounded to " << dtype;
        }
      }
      const std::vector<float> x = RandomInput(static_cast<size_t>(6 * l.hidden), 2502);
      std::vector<float> ya(x.size()), yb(x.size());
      PIMOE_ASSERT_OK(pimoe_forward(low.get(), x.data(), x.size(), 1, 6, ya.data(), ya.size(), nullptr, nullptr, 0));
      PIMOE_ASSERT_OK(pimoe_forward(full.get(), x.data(), x.size(), 1, 6, yb.data(), yb.size(), nullptr, nullptr, 0));
      double rms = 0.0, err = 0.0;
      for (size_t i = 0; i < x.size(); ++i) {
        rms += static_cast<double>(yb[i]) * yb[i];
        err = std::max(err, std::fabs(static_cast<double>(ya[i]) - yb[i]));
      }
      rms = std::sqrt(rms / static_cast<double>(x.size()));
      EXPECT_LE(err, 1e-2 * rms) << dtype;
      EXPECT_GT(err, 0.0) << dtype << " storage changed nothing";
    }
  }
}
