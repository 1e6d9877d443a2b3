/* SPDX-License-Identifier: MIT */
// The harness of test_routing_features (the routing features of issue 4: pimoe.h PIMOE_OPT_ROUTING_MODE ..
// PIMOE_OPT_COMBINE_ATTENTION_DIM, callback experts, pimoe_forward_routing, pimoe_model_reset_adaptive_state): the layer
// description Cfg, the callback experts, one call through pimoe_forward_routing, the comparison with the reference
// oracle (tests/oracle) and chains of calls with stateful features. Defined in harness.cpp; the test files of this
// folder (one a topic) use it.
//
// Parity: every call is compared in full through pimoe_forward_routing: output within 1e-5 * RMS(oracle output),
// expert ids and dropped flags exactly, weights within 1e-6 + 1e-5 * w, router probabilities within 1e-6 + 1e-5 * p.
// Near ties: instead of skipping tokens, inputs are redrawn until the oracle sees no near tie anywhere in the call
// (ranked scores, group scores or expert-choice thresholds closer than kTie): capacity limits, expert choice, the
// attention router and the stateful features make every token depend on the others, so a call is compared whole.
// Stateful features (adaptive bias, dynamic capacity) are compared over chained calls, the oracle's state advanced
// with AdaptiveBiasStep / LoadEmaStep after each call, and the library's state tensors must equal it bit for bit.
//
// The backend under test is "cpu", or $PIMOE_TEST_BACKEND (as test_parity), so GPU backends can reuse these files.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "backend_under_test.h"
#include "layer_options.h"
#include "oracle.h"
#include "pimoe/pimoe.h"

#define PIMOE_EXPECT_OK(expr) EXPECT_EQ((expr), PIMOE_OK) << #expr << ": " << pimoe_last_error()

namespace pimoe_rf {

namespace po = pimoe_oracle;

constexpr double kOutputTol = 1e-5;  // relative to the RMS of the oracle output
constexpr double kTie = 1e-5;        // a gap between ranked scores (or z/tau) below this is a near tie

bool Contains(const std::string &text, const std::string &part);

// ================================================================================================ callback experts

// The exact function every callback expert of these tests computes (the oracle calls the same function):
// even experts: y = 2*x + 1 element-wise; odd experts: every element of the row is its sum, accumulated in long
// double (a "high-precision arithmetic" expert).
int ComputeCallback(int32_t expert, const float *in, int64_t rows, int64_t hidden, float *out);

// Set by the test thread around its pimoe_forward* calls: the callback checks that it runs on such a thread (the
// header's thread contract: fn runs on the thread that called pimoe_forward). The thread_local flag stays inside
// harness.cpp (an extern thread_local read through GCC's TLS wrapper trips UBSan's null check).
void SetInForward(bool in_forward);

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

  void Clear();
};

extern CallbackState g_callbacks;  // the default user_data

int TestCallback(void *user_data, int32_t expert, const float *input, int64_t rows, int64_t hidden, float *output);

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
  bool router_logit_bias = false;
  double swiglu_alpha = 1.702;
  double swiglu_limit = 7.0;
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
  bool expert_input_scaling = false;
  double sparsemixer_eps = 0.0;
  std::vector<int32_t> callback_experts;
  CallbackState *callbacks = &g_callbacks;

  po::Hyper Hyper() const;
  std::string Describe() const;
};

void MakeOptions(const Cfg &c, OptionsPtr *out);
void Create(const Cfg &c, ModelPtr *out);
void CreateAndLoad(const Cfg &c, ModelPtr *model, po::Weights *w);

// Uniform values of unit variance, from SplitMix64.
std::vector<float> RandomInput(size_t n, uint64_t seed, double scale = 1.0);
std::vector<float> ReadTensor(const pimoe_model *m, const char *name);
bool SameBits(const std::vector<float> &a, const std::vector<float> &b);
// Bit-identical on the CPU backend. A GPU backend may route a call on its device (fused kernels) when no router
// probabilities are asked for and on the host when they are, so there the two only agree within parity tolerance.
bool SameOrParity(const std::vector<float> &a, const std::vector<float> &b);
std::string Show(const std::vector<float> &v);

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

pimoe_status LibRun(pimoe_model *m, const std::vector<float> &x, int64_t batch, int64_t seq, CallResult *out);
bool SameRun(const CallResult &a, const CallResult &b);
bool HasNearTie(const po::Result &r);
// An input [batch*seq, H] whose call has no near tie anywhere (per the oracle with the current state of w), and the
// oracle's result on it.
std::vector<float> DrawInput(const po::Weights &w, const po::Hyper &hp, int64_t batch, int64_t seq, uint64_t seed,
                             po::Result *result);
// Compares one library call with the oracle; returns "" or a description of the mismatches.
std::string Compare(const CallResult &lib, const po::Result &r, int64_t hidden, int32_t experts);

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
void CheckChain(const Cfg &c, int64_t batch, int64_t seq, int calls, uint64_t seed, ChainSummary *summary = nullptr);
// Runs CheckChain for every config, seed (of the weights and of the inputs), shape and thread count 1 and 2.
void CheckAll(const std::vector<Cfg> &configs, const std::vector<std::pair<int64_t, int64_t>> &shapes, int calls,
              const std::vector<uint64_t> &seeds, ChainSummary *summary = nullptr);

// ================================================================================================ behaviour

// The skewed stream: tokens x = noise + 4 * (router row 0), so expert 0 is everybody's favourite.
std::vector<float> SkewedInput(const std::vector<float> &router, int64_t hidden, int64_t tokens, uint64_t seed);
double Jain(const std::vector<uint64_t> &loads);
std::vector<uint64_t> Loads(const pimoe_model *m, size_t experts);
pimoe_stats_snapshot Stats(const pimoe_model *m);
pimoe_status Forward(pimoe_model *m, const std::vector<float> &x, int64_t batch, int64_t seq, std::vector<float> *y);

// ================================================================================================ files and errors

std::string TempPath(const std::string &name);
// The "__metadata__" of a safetensors file as raw JSON text.
std::string FileHeader(const std::string &path);
// The string value of metadata key `key` in the JSON header, or "<missing>".
std::string MetaValue(const std::string &header, const std::string &key);
// The call failed with `status` and pimoe_last_error() names every culprit.
::testing::AssertionResult FailedWith(pimoe_status got, pimoe_status want, const std::vector<std::string> &culprits);

// A parameter's name for INSTANTIATE_TEST_SUITE_P: letters and digits kept, anything else '_'.
std::string ParamName(const std::string &text);

}  // namespace pimoe_rf
