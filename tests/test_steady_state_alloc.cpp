// SPDX-License-Identifier: MIT
// Pins "no heap allocation per call in steady state": after warm-up calls of the largest shape, further forwards
// (any token count up to that size, with or without routing output, from one or several pool threads) allocate
// nothing. Counted by replacing the global operator new, which libpimoe's own allocations also go through.
#include <gtest/gtest.h>
#include <pimoe/pimoe.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <new>
#include <string>
#include <utility>
#include <vector>

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};

void *counted_alloc(std::size_t size) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void *p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
}  // namespace

void *operator new(std::size_t size) {
  return counted_alloc(size);
}
void *operator new[](std::size_t size) {
  return counted_alloc(size);
}
void operator delete(void *p) noexcept {
  std::free(p);
}
void operator delete[](void *p) noexcept {
  std::free(p);
}
void operator delete(void *p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void *p, std::size_t) noexcept {
  std::free(p);
}

namespace {

long allocations_during(const std::function<void()> &work) {
  g_allocations = 0;
  g_counting = true;
  work();
  g_counting = false;
  return g_allocations.load();
}

void check_steady_state(const char *activation, int threads, double capacity_factor,
                        const std::vector<std::pair<const char *, const char *>> &extra = {}) {
  SCOPED_TRACE(std::string(activation) + " threads=" + std::to_string(threads) +
               " capacity=" + std::to_string(capacity_factor));
  pimoe_options *o = nullptr;
  ASSERT_EQ(pimoe_options_create(&o), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_int(o, PIMOE_OPT_HIDDEN, 64), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_int(o, PIMOE_OPT_INTERMEDIATE, 96), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_int(o, PIMOE_OPT_THREADS, threads), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_float(o, PIMOE_OPT_CAPACITY_FACTOR, capacity_factor), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_by_name(o, "activation", activation), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_expert_pre_norm(o, 3, 1), PIMOE_OK);
  for (const auto &kv : extra) ASSERT_EQ(pimoe_options_set_by_name(o, kv.first, kv.second), PIMOE_OK) << kv.first;
  pimoe_model *m = nullptr;
  ASSERT_EQ(pimoe_create(o, &m), PIMOE_OK);
  pimoe_options_destroy(o);

  const int64_t H = 64, k = 2, max_tokens = 200;
  std::vector<float> x(max_tokens * H), y(max_tokens * H), w(max_tokens * k);
  std::vector<int32_t> ids(max_tokens * k);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7919 % 2003) / 1001.5 - 1.0);
  auto forward = [&](int64_t tokens, bool routing) {
    const size_t n = static_cast<size_t>(tokens * H);
    return pimoe_forward(m, x.data(), n, 1, tokens, y.data(), n, routing ? ids.data() : nullptr,
                         routing ? w.data() : nullptr, routing ? static_cast<size_t>(tokens * k) : 0);
  };
  // Warm-up: the largest call grows every buffer; a different input order makes every expert see its largest share.
  for (int rep = 0; rep < 3; ++rep) ASSERT_EQ(forward(max_tokens, true), PIMOE_OK);
  std::reverse(x.begin(), x.end());
  ASSERT_EQ(forward(max_tokens, true), PIMOE_OK);
  std::reverse(x.begin(), x.end());

  pimoe_status worst = PIMOE_OK;
  const long count = allocations_during([&] {
    for (int64_t tokens : {1, 7, 64, 113, 200, 1, 200}) {
      pimoe_status s = forward(tokens, tokens % 2 == 1);
      if (s != PIMOE_OK) worst = s;
    }
  });
  EXPECT_EQ(worst, PIMOE_OK) << pimoe_last_error();
  EXPECT_EQ(count, 0) << "forward calls allocated after warm-up";
  pimoe_destroy(m);
}

TEST(SteadyState, ForwardAllocatesNothingAfterWarmUp) {
  for (const char *act : {"gelu", "swiglu"}) {
    for (int threads : {1, 2}) check_steady_state(act, threads, 0.0);
  }
  check_steady_state("silu", 2, 1.25);
  // Sigmoid scores, selection bias, group-limited routing, routed scaling and a gated shared expert.
  const std::vector<std::pair<const char *, const char *>> extended = {
      {"router_scoring", "sigmoid"},    {"router_bias", "1"},   {"num_groups", "4"}, {"topk_groups", "2"},
      {"routed_scaling_factor", "2.5"}, {"shared_width", "48"}, {"shared_gate", "1"}};
  for (int threads : {1, 2}) check_steady_state("swiglu", threads, 0.0, extended);
  check_steady_state("gelu", 2, 1.25, extended);
}

}  // namespace
