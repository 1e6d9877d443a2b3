// SPDX-License-Identifier: MIT
// Pins "the workspace bytes pimoe_stats reports are the bytes the per-call scratch objects hold": the heap a model
// keeps after its forward calls, counted by replacing the global operator new (libpimoe's allocations go through it
// too), equals the reported workspace_bytes exactly, for every routing feature that brings scratch of its own.
#include <gtest/gtest.h>
#include <pimoe/pimoe.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace {
std::atomic<long long> g_live_bytes{0};
constexpr std::size_t kHeader = alignof(std::max_align_t);  // keeps the caller's block aligned

void *tracked_alloc(std::size_t size) {
  void *raw = std::malloc(size + kHeader);
  if (!raw) throw std::bad_alloc();
  *static_cast<std::size_t *>(raw) = size;
  g_live_bytes.fetch_add(static_cast<long long>(size), std::memory_order_relaxed);
  return static_cast<char *>(raw) + kHeader;
}
void tracked_free(void *p) noexcept {
  if (!p) return;
  void *raw = static_cast<char *>(p) - kHeader;
  g_live_bytes.fetch_sub(static_cast<long long>(*static_cast<std::size_t *>(raw)), std::memory_order_relaxed);
  std::free(raw);
}
}  // namespace

void *operator new(std::size_t size) { return tracked_alloc(size); }
void *operator new[](std::size_t size) { return tracked_alloc(size); }
void operator delete(void *p) noexcept { tracked_free(p); }
void operator delete[](void *p) noexcept { tracked_free(p); }
void operator delete(void *p, std::size_t) noexcept { tracked_free(p); }
void operator delete[](void *p, std::size_t) noexcept { tracked_free(p); }

namespace {

int identity_expert(void *, int32_t, const float *input, int64_t rows, int64_t hidden, float *output) {
  for (int64_t i = 0; i < rows * hidden; ++i) output[i] = 0.5f * input[i];
  return 0;
}

struct Case {
  const char *name;
  std::vector<std::pair<const char *, const char *>> options;
  bool callback = false;
};

void PrintTo(const Case &c, std::ostream *os) { *os << c.name; }

class WorkspaceBytes : public ::testing::TestWithParam<Case> {};

uint64_t reported_workspace(const pimoe_model *m) {
  pimoe_stats_snapshot s{};
  s.struct_size = sizeof s;
  EXPECT_EQ(pimoe_stats(m, &s), PIMOE_OK) << pimoe_last_error();
  return s.workspace_bytes;
}

TEST_P(WorkspaceBytes, EqualsTheHeapTheScratchHolds) {
  const Case &c = GetParam();
  pimoe_options *o = nullptr;
  ASSERT_EQ(pimoe_options_create(&o), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_int(o, PIMOE_OPT_HIDDEN, 64), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_int(o, PIMOE_OPT_INTERMEDIATE, 96), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_int(o, PIMOE_OPT_THREADS, 1), PIMOE_OK);  // no worker threads come and go
  ASSERT_EQ(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cpu"), PIMOE_OK);
  for (const auto &kv : c.options) ASSERT_EQ(pimoe_options_set_by_name(o, kv.first, kv.second), PIMOE_OK) << kv.first;
  if (c.callback) ASSERT_EQ(pimoe_options_set_expert_callback(o, 2, identity_expert, nullptr), PIMOE_OK);
  pimoe_model *m = nullptr;
  ASSERT_EQ(pimoe_create(o, &m), PIMOE_OK) << pimoe_last_error();
  pimoe_options_destroy(o);

  const int64_t H = 64, max_tokens = 96;
  const int64_t slots = pimoe_model_routing_slots(m);
  std::vector<float> x(max_tokens * H), y(max_tokens * H), w(max_tokens * slots);
  std::vector<int32_t> ids(max_tokens * slots);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7919 % 2003) / 1001.5 - 1.0);

  EXPECT_EQ(reported_workspace(m), 0u) << "no call has run yet";
  const long long before = g_live_bytes.load();
  // Calls of several sizes, with and without routing outputs: the workspace grows to the largest.
  for (int64_t tokens : {1, 17, 96, 5}) {
    const size_t n = static_cast<size_t>(tokens * H), r = static_cast<size_t>(tokens * slots);
    ASSERT_EQ(pimoe_forward(m, x.data(), n, 1, tokens, y.data(), n, ids.data(), w.data(), r), PIMOE_OK)
        << pimoe_last_error();
    ASSERT_EQ(pimoe_forward(m, x.data(), n, 1, tokens, y.data(), n, nullptr, nullptr, 0), PIMOE_OK)
        << pimoe_last_error();
  }
  const long long held = g_live_bytes.load() - before;
  EXPECT_GT(held, 0);
  EXPECT_EQ(static_cast<long long>(reported_workspace(m)), held) << c.name;
  pimoe_destroy(m);
}

INSTANTIATE_TEST_SUITE_P(
    Features, WorkspaceBytes,
    ::testing::Values(
        Case{"plain", {}},
        Case{"shared_gated_prenorm_swiglu",
             {{"shared_width", "48"}, {"shared_gate", "1"}, {"pre_norm", "1"}, {"activation", "swiglu"}}},
        Case{"sigmoid_groups_capacity",
             {{"router_scoring", "sigmoid"}, {"router_bias", "1"}, {"num_groups", "4"}, {"topk_groups", "2"},
              {"capacity_factor", "1.0"}}},
        Case{"group_tree", {{"num_experts", "16"}, {"group_levels", "4:2,2:1"}}},
        Case{"expert_choice", {{"routing_mode", "expert_choice"}}},
        Case{"attention_router", {{"router_attention_heads", "2"}}},
        Case{"attention_combine", {{"combine_attention_dim", "16"}, {"shared_width", "32"}}},
        Case{"adaptive_dynamic", {{"adaptive_bias_rate", "0.01"}, {"dynamic_capacity", "1"}, {"capacity_factor", "1.5"}}},
        Case{"callback_expert", {}, true}),
    [](const ::testing::TestParamInfo<Case> &info) { return std::string(info.param.name); });

}  // namespace
