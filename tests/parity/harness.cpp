// SPDX-License-Identifier: MIT
// The harness of test_parity: see parity.h.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include "parity.h"

namespace pimoe_parity {

namespace {
const bool kBackendChecked = ExitUnlessBackendUsable("test_parity");
}  // namespace

po::Hyper Layer::Hyper() const {
  po::Hyper h = LayerHyper(*this);
  h.layer_norm_eps = layer_norm_eps;
  h.aux_loss_coef = aux_loss_coef;
  return h;
}

std::string Layer::Describe() const {
  std::ostringstream s;
  s << "H=" << hidden << " E=" << experts << " k=" << top_k << " I=" << intermediate << " act=" << activation
    << " pre_norm=" << pre_norm << " bias=" << expert_bias << " tau=" << temperature << " renorm=" << renormalize
    << " cf=" << capacity_factor << " alpha=" << aux_loss_coef << " eps=" << layer_norm_eps << " seed=" << seed
    << " threads=" << threads << " deterministic=" << deterministic << " cpu_gemm=" << cpu_gemm
    << " scoring=" << (sigmoid ? "sigmoid" : "softmax") << " router_bias=" << router_bias
    << " scaling=" << routed_scaling << " groups=" << num_groups << "/" << topk_groups << "("
    << (group_max ? "max" : "top2_sum") << ") shared=" << shared_width << (shared_gate ? "+gate" : "")
    << " weight_dtype=" << weight_dtype;
  if (router_logit_bias) s << " router_logit_bias";
  if (swiglu_alpha != 1.702 || swiglu_limit != 7.0) s << " swiglu_alpha=" << swiglu_alpha << " limit=" << swiglu_limit;
  if (weight_dtype == "int4") s << "-g" << weight_group_size << (weight_zero_point ? "-zp" : "");
  for (const auto &[e, d] : expert_weight_dtypes) s << " expert" << e << "=" << d;
  if (activation_dtype != "fp32") s << " activation_dtype=" << activation_dtype;
  s << " backend=" << Backend();
  return s.str();
}

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

void MakeOptions(const Layer &l, OptionsPtr *out) {
  pimoe_options *raw = nullptr;
  PIMOE_ASSERT_OK(pimoe_options_create(&raw));
  OptionsPtr o(raw);
  PIMOE_ASSERT_OK(l.overrides.Apply(o.get()));
  if (l.set_layer_options) {
    ASSERT_NO_FATAL_FAILURE(SetLayerOptions(o.get(), l));
    PIMOE_ASSERT_OK(pimoe_options_set_float(o.get(), PIMOE_OPT_AUX_LOSS_COEF, l.aux_loss_coef));
    PIMOE_ASSERT_OK(pimoe_options_set_float(o.get(), PIMOE_OPT_LAYER_NORM_EPS, l.layer_norm_eps));
  }
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_THREADS, l.threads));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_DETERMINISTIC, l.deterministic ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_CPU_GEMM, l.cpu_gemm.c_str()));
  PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_WEIGHT_DTYPE, l.weight_dtype.c_str()));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_WEIGHT_GROUP_SIZE, l.weight_group_size));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_WEIGHT_ZERO_POINT, l.weight_zero_point ? 1 : 0));
  PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_ACTIVATION_DTYPE, l.activation_dtype.c_str()));
  for (const auto &[e, d] : l.expert_weight_dtypes) {
    PIMOE_ASSERT_OK(pimoe_options_set_expert_weight_dtype(o.get(), e, d.c_str()));
  }
  PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, Backend()));
  *out = std::move(o);
}

void Create(const Layer &l, ModelPtr *out) {
  OptionsPtr o;
  ASSERT_NO_FATAL_FAILURE(MakeOptions(l, &o));
  pimoe_model *m = nullptr;
  PIMOE_ASSERT_OK(pimoe_create(o.get(), &m));
  ASSERT_NE(m, nullptr);
  out->reset(m);
}

bool RefusedByBackend(const Layer &l) {
  if (!BackendRefusesExperts(l.Specs(), l.expert_bias)) return false;
  OptionsPtr o;
  MakeOptions(l, &o);
  if (o) ExpectBackendRefuses(o.get());
  return true;
}

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

std::vector<float> RandomInput(size_t n, uint64_t seed, double scale) {
  return SplitMixInput(n, seed, 0x1234567ULL, scale);
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

// One forward through the library and the oracle on input x [batch*seq, H]; compares output and routing.
void ForwardAndCompare(pimoe_model *m, const po::Weights &w, const po::Hyper &hp, int64_t batch, int64_t seq,
                       const std::vector<float> &x, CheckSummary *summary, double output_tol) {
  const int64_t tokens = batch * seq;
  const size_t hd = static_cast<size_t>(w.hidden);
  const size_t k = static_cast<size_t>(hp.top_k);
  LibOutput lib;
  ASSERT_NO_FATAL_FAILURE(LibForward(m, x, batch, seq, w.hidden, hp.top_k, &lib));
  po::Result r = po::Forward(w, hp, x.data(), tokens);

  double sum_sq = 0.0;
  for (double v : r.output) sum_sq += v * v;
  const double rms = std::sqrt(sum_sq / static_cast<double>(r.output.size()));
  const double tol = output_tol * rms;
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
                          << " = " << output_tol << " * RMS " << rms << "); worst at " << worst;
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
void CheckLayer(const Layer &l, int64_t batch, int64_t seq, uint64_t input_seed, CheckSummary *summary) {
  SCOPED_TRACE(l.Describe() + " shape " + std::to_string(batch) + "x" + std::to_string(seq));
  if (RefusedByBackend(l)) return;
  ModelPtr model;
  po::Weights w;
  ASSERT_NO_FATAL_FAILURE(CreateAndLoad(l, &model, &w));
  const po::Hyper hp = l.Hyper();
  const std::vector<float> x = l.capacity_factor > 0.0
                                   ? TieFreeInput(w, hp, batch * seq, input_seed)
                                   : RandomInput(static_cast<size_t>(batch * seq * l.hidden), input_seed);
  CheckSummary local;
  ASSERT_NO_FATAL_FAILURE(
      ForwardAndCompare(model.get(), w, hp, batch, seq, x, summary ? summary : &local, l.output_tol));
}
void ExpectRel(double actual, double expected, double rel, double abs_tol, const char *what) {
  EXPECT_LE(std::fabs(actual - expected), rel * std::fabs(expected) + abs_tol)
      << what << ": library " << actual << ", oracle " << expected;
}

void StatsExpectation::Add(const po::Result &r) {
  if (loads.empty()) loads.assign(r.loads.size(), 0);
  for (size_t e = 0; e < loads.size(); ++e) loads[e] += r.loads[e];
  dropped += r.dropped_count;
  tokens += static_cast<uint64_t>(r.tokens);
  ++calls;
  top1_sum += r.top1_sum;
  aux_loss = r.aux_loss;
  z_loss = r.z_loss;
}

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

void CheckStatsOverCalls(pimoe_model *m, const po::Weights &w, const po::Hyper &hp, uint64_t *seed,
                         StatsExpectation *ex) {
  const int64_t shapes[][2] = {{3, 7}, {1, 1}, {4, 32}};
  for (const auto &sh : shapes) {
    const std::vector<float> x = TieFreeInput(w, hp, sh[0] * sh[1], (*seed)++);
    CheckSummary s;
    ASSERT_NO_FATAL_FAILURE(ForwardAndCompare(m, w, hp, sh[0], sh[1], x, &s));
    ex->Add(s.oracle);
    SCOPED_TRACE("after a call of " + std::to_string(sh[0] * sh[1]) + " tokens");
    CheckStats(m, *ex);
  }
}

const pimoe_activation kAllActivations[7] = {PIMOE_ACT_GELU, PIMOE_ACT_GELU_TANH, PIMOE_ACT_SILU,      PIMOE_ACT_RELU,
                                             PIMOE_ACT_TANH, PIMOE_ACT_SWIGLU,    PIMOE_ACT_SWIGLU_OAI};

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

void ExpectSameBits(const float *a, const float *b, size_t n, const std::string &what) {
  EXPECT_EQ(std::memcmp(a, b, n * sizeof(float)), 0) << what << ": not bit-identical";
}

bool BuildHasOpenBlas() {
  return std::string(pimoe_build_info()).find("openblas") != std::string::npos;
}

std::vector<std::string> CpuGemms() {
  std::vector<std::string> gemms = {"packed"};
  if (BuildHasOpenBlas()) gemms.push_back("openblas");
  return gemms;
}

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
std::string ActivationName(pimoe_activation a) { return pimoe_oracle::ActivationName(a); }

std::string ParamName(const std::string &text) {
  std::string name;
  for (char ch : text) name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return name;
}

}  // namespace pimoe_parity
