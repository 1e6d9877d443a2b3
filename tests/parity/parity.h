/* SPDX-License-Identifier: MIT */
// The harness of test_parity: parity of libpimoe against the reference oracle (tests/oracle), at fp32: every router
// option, activation, expert preset and override rule, thread counts and shapes, determinism, and the statistics the
// header defines. Defined in harness.cpp; the test files of this folder (one a topic) use it.
//
//
// Tolerances (docs/design.md, "Numerics and tolerances"): output max |lib - oracle| <= 1e-5 * RMS(oracle output) per call; routing weights
// within 1e-6 + 1e-5 * w; losses and confidence within 1e-5 relative.
//
// Near ties: when two ranked router probabilities of a token differ by less than kTieProb (or their z/tau by less
// than kTieLogit), fp32 rounding may legitimately order them either way. Such tokens are skipped, and only them: a
// near tie between ranks k and k+1 skips the token's output and routing checks; a near tie inside the top k skips
// only its per-slot routing check (the set of chosen experts is still compared). Every comparison also requires that
// at most a quarter of a call's tokens were skipped (none for a single token), so a check cannot pass vacuously.
// Under a capacity limit a near tie would change which later assignments are dropped, so those tests draw inputs
// without near ties (TieFreeInput) and fail if one slips through.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "backend_under_test.h"
#include "layer_options.h"
#include "oracle.h"
#include "pimoe/pimoe.h"

namespace pimoe_parity {

namespace po = pimoe_oracle;

constexpr double kOutputTol = 1e-5;  // relative to the RMS of the oracle output
constexpr double kTieProb = 1e-6;
constexpr double kTieLogit = 1e-5;

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
  bool router_logit_bias = false;  // gpt-oss's router bias (ROUTER_LOGIT_BIAS)
  double swiglu_alpha = 1.702;     // SWIGLU_OAI's alpha and limit
  double swiglu_limit = 7.0;
  std::string weight_dtype = "fp32";  // a runtime setting: applied even when set_layer_options is false
  int64_t weight_group_size = 32;     // int4's group (runtime, like weight_dtype)
  bool weight_zero_point = false;     // int4's zero point (runtime)
  std::vector<std::pair<int32_t, std::string>> expert_weight_dtypes;  // per-expert storage overrides
  // The CPU backend's activations for int8/int4 matrices (runtime). The harness default is "fp32", the exact path
  // whose oracle is the dequantised layer at kOutputTol; "int8" layers are checked at output_tol (of the RMS).
  std::string activation_dtype = "fp32";
  double output_tol = kOutputTol;
  bool set_layer_options = true;      // false: leave every layer option at its default (except threads and backend)
  po::SpecResolver overrides;         // per-expert calls, replayed in order before the layer options are set

  po::Hyper Hyper() const;
  std::vector<po::ExpertSpec> Specs() const { return overrides.Resolve(experts, intermediate, activation, pre_norm); }
  std::string Describe() const;
};

// Every layer option left at the header's default: H=512, E=8, k=2, I=2048, GELU, no norm, no bias, seed 0.
Layer DefaultLayer();
void MakeOptions(const Layer &l, OptionsPtr *out);
void Create(const Layer &l, ModelPtr *out);
// On a GPU backend, a layer with an expert it does not implement (BackendRefusesExperts): checks that pimoe_create
// refuses it and returns true; the caller then returns, having nothing to compare. False otherwise.
bool RefusedByBackend(const Layer &l);
// Creates the model and reads it into the oracle, checking dims and resolved expert specs against the options.
void CreateAndLoad(const Layer &l, ModelPtr *model, po::Weights *w);
// Uniform values of unit variance, from SplitMix64 (portable, independent of the library's generator use).
std::vector<float> RandomInput(size_t n, uint64_t seed, double scale = 1.0);
bool NearTie(double prob_gap, double logit_gap);
// Random input whose tokens have no near tie among their top k+1 router ranks (rows are redrawn until they have none).
std::vector<float> TieFreeInput(const po::Weights &w, const po::Hyper &hp, int64_t tokens, uint64_t seed);

struct LibOutput {
  std::vector<float> output;
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

void LibForward(pimoe_model *m, const std::vector<float> &x, int64_t batch, int64_t seq, int64_t hidden, int32_t top_k,
                LibOutput *out);

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
                       const std::vector<float> &x, CheckSummary *summary,
                       double output_tol = kOutputTol);
// Creates the layer and checks one forward of shape [batch, seq] against the oracle.
void CheckLayer(const Layer &l, int64_t batch, int64_t seq, uint64_t input_seed, CheckSummary *summary = nullptr);
void ExpectRel(double actual, double expected, double rel, double abs_tol, const char *what);

// Running totals of what the oracle says the model's statistics must be.
struct StatsExpectation {
  std::vector<uint64_t> loads;
  uint64_t dropped = 0;
  uint64_t tokens = 0;
  uint64_t calls = 0;
  double top1_sum = 0.0;
  double aux_loss = 0.0;
  double z_loss = 0.0;

  void Add(const po::Result &r);
};

void CheckStats(const pimoe_model *m, const StatsExpectation &ex);
// Calls of shapes 3x7, 1x1 and 4x32 (tie-free inputs from *seed on, advanced), each compared with the oracle and
// followed by CheckStats on the running totals `ex`.
void CheckStatsOverCalls(pimoe_model *m, const po::Weights &w, const po::Hyper &hp, uint64_t *seed,
                         StatsExpectation *ex);

extern const pimoe_activation kAllActivations[7];

// How many tokens' chosen expert sets differ between two oracle configurations of the same weights: a test of a
// feature is meaningful only if the feature changes the routing.
int64_t RoutingDifferences(const po::Weights &w, const po::Hyper &a, const po::Hyper &b, const std::vector<float> &x,
                           int64_t tokens);
void ExpectSameBits(const float *a, const float *b, size_t n, const std::string &what);
bool BuildHasOpenBlas();
// "packed", and "openblas" where the build has it.
std::vector<std::string> CpuGemms();
// DeepSeek-V3's MoE block, scaled down: sigmoid scores, selection bias, 8 groups with 4 kept (top2_sum), top-8,
// renormalised weights times 2.5, one SwiGLU shared expert.
Layer DeepSeekV3Like();
// Qwen2-MoE's block, scaled down: softmax top-4 without renormalisation, SwiGLU experts, a gated shared expert.
Layer Qwen2MoeLike();
std::string ActivationName(pimoe_activation a);
// A parameter's name for INSTANTIATE_TEST_SUITE_P: letters and digits kept, anything else '_'.
std::string ParamName(const std::string &text);

}  // namespace pimoe_parity
