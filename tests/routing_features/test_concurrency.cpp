// SPDX-License-Identifier: MIT
// test_routing_features, concurrency: forwards from many threads on one model with callback experts, the attention
// combine and the shared expert equal serial ones bit for bit; the adaptive state under concurrent forwards, reads
// and resets. See routing_features.h.
#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include "routing_features.h"

namespace {

using namespace pimoe_rf;

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
// reads of the state tensors and pimoe_model_reset_adaptive_state (thread-safe per pimoe.h); every call succeeds, the state
// stays finite and in range, and a final reset restores the initial state bit for bit.
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
