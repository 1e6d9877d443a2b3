// SPDX-License-Identifier: MIT
// C-ABI error behaviour of the calls on a model (the rest of test_api_errors): forward shapes, buffer lengths and
// non-finite input, statistics struct sizes, expert and tensor queries, backend names.
#include <gtest/gtest.h>
#include <pimoe/pimoe.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "api/api_errors_fixture.h"

using namespace pimoe_test;

// ------------------------------------------------------------------------------------------------ forward

TEST_F(ModelErrors, ZeroNegativeAndOverflowingShapes) {
  std::vector<float> out(input_.size(), 0.0f);
  const size_t n = input_.size();
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, 0, kT, out.data(), n, nullptr, nullptr, 0),
                          {PIMOE_ERR_INVALID_ARGUMENT}, {"batch"}));
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, 1, 0, out.data(), n, nullptr, nullptr, 0), {PIMOE_ERR_INVALID_ARGUMENT},
                          {"seq"}));
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, 1, -1, out.data(), n, nullptr, nullptr, 0),
                          {PIMOE_ERR_INVALID_ARGUMENT}, {"seq"}));
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, -2, kT, out.data(), n, nullptr, nullptr, 0),
                          {PIMOE_ERR_INVALID_ARGUMENT}, {"batch"}));
  // Two negatives whose product matches the buffer.
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, -1, -kT, out.data(), n, nullptr, nullptr, 0),
                          {PIMOE_ERR_INVALID_ARGUMENT}, {}));
  // batch*seq*hidden wraps around 2^64 to exactly the buffer length (2^62+4)*1*16 = 2^66+64 = 64 mod 2^64.
  const int64_t wrap = (int64_t{1} << 62) + kT;
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, wrap, 1, out.data(), n, nullptr, nullptr, 0),
                          {PIMOE_ERR_INVALID_ARGUMENT, PIMOE_ERR_SIZE_MISMATCH}, {}));
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, 1, wrap, out.data(), n, nullptr, nullptr, 0),
                          {PIMOE_ERR_INVALID_ARGUMENT, PIMOE_ERR_SIZE_MISMATCH}, {}));
  // batch*seq itself overflows int64.
  const int64_t big = std::numeric_limits<int64_t>::max();
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, big, big, out.data(), n, nullptr, nullptr, 0),
                          {PIMOE_ERR_INVALID_ARGUMENT, PIMOE_ERR_SIZE_MISMATCH}, {}));
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, int64_t{1} << 32, int64_t{1} << 32, out.data(), n, nullptr, nullptr, 0),
                          {PIMOE_ERR_INVALID_ARGUMENT, PIMOE_ERR_SIZE_MISMATCH}, {}));
  // Routing count wrapping: tokens*top_k*... with routing buffers.
  std::vector<int32_t> ids(kT * kK);
  std::vector<float> w(kT * kK);
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, wrap, 1, out.data(), n, ids.data(), w.data(), ids.size()),
                          {PIMOE_ERR_INVALID_ARGUMENT, PIMOE_ERR_SIZE_MISMATCH}, {}));
}

TEST_F(ModelErrors, MismatchedBufferLengths) {
  const size_t n = input_.size();
  std::vector<float> out(n + 8, 0.0f);
  std::vector<int32_t> ids(kT * kK + 4, -1);
  std::vector<float> w(kT * kK + 4, -1.0f);
  EXPECT_TRUE(failed_with(fwd(input_.data(), n - 1, 1, kT, out.data(), n, nullptr, nullptr, 0),
                          {PIMOE_ERR_SIZE_MISMATCH}, {"input_count", "63"}));
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, 1, kT - 1, out.data(), n, nullptr, nullptr, 0),
                          {PIMOE_ERR_SIZE_MISMATCH}, {"input_count"}));
  EXPECT_TRUE(failed_with(fwd(input_.data(), 0, 1, kT, out.data(), n, nullptr, nullptr, 0),
                          {PIMOE_ERR_SIZE_MISMATCH, PIMOE_ERR_INVALID_ARGUMENT}, {"input_count"}));
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, 1, kT, out.data(), n + 1, nullptr, nullptr, 0),
                          {PIMOE_ERR_SIZE_MISMATCH}, {"output_count", "65"}));
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, 1, kT, out.data(), n - 16, nullptr, nullptr, 0),
                          {PIMOE_ERR_SIZE_MISMATCH}, {"output_count"}));
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, 1, kT, out.data(), n, ids.data(), w.data(), kT * kK - 1),
                          {PIMOE_ERR_SIZE_MISMATCH}, {"routing_count", "7"}));
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, 1, kT, out.data(), n, ids.data(), w.data(), kT * kK + 1),
                          {PIMOE_ERR_SIZE_MISMATCH}, {"routing_count"}));
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, 1, kT, out.data(), n, ids.data(), w.data(), 0),
                          {PIMOE_ERR_SIZE_MISMATCH, PIMOE_ERR_INVALID_ARGUMENT}, {"routing_count"}));
  // Only one of ids/weights given.
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, 1, kT, out.data(), n, ids.data(), nullptr, kT * kK),
                          {PIMOE_ERR_NULL_POINTER, PIMOE_ERR_INVALID_ARGUMENT}, {"expert_weights"}));
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, 1, kT, out.data(), n, nullptr, w.data(), kT * kK),
                          {PIMOE_ERR_NULL_POINTER, PIMOE_ERR_INVALID_ARGUMENT}, {"expert_ids"}));
  // The same layer with batch=2, seq=2 is fine (shape, not the split, matters).
  ForwardResult r = forward(model_.get(), input_, 2, kT / 2, kH, kK, true);
  ASSERT_EQ(r.status, PIMOE_OK) << last_error();
  ++calls_;
  before_ = get_stats(model_.get());
}

TEST_F(ModelErrors, NonFiniteInputNamesTheFirstBadElement) {
  const size_t n = input_.size();
  std::vector<float> out(n);
  struct Case {
    std::vector<size_t> where;
    float value;
    const char *index;
    const char *word;
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const Case cases[] = {
      {{37}, nan, "37", "~nan"}, {{45}, inf, "45", "~inf"},     {{63}, -inf, "63", "~inf"},
      {{0}, nan, "0", "~nan"},   {{20, 50}, nan, "20", "~nan"},  // first of two
  };
  for (const Case &c : cases) {
    std::vector<float> bad = input_;
    for (size_t i : c.where) bad[i] = c.value;
    EXPECT_TRUE(failed_with(fwd(bad.data(), n, 1, kT, out.data(), n, nullptr, nullptr, 0), {PIMOE_ERR_NON_FINITE_INPUT},
                            {c.index, c.word}))
        << "bad element at " << c.index;
  }
  // NaN first, Inf later: names the NaN's index.
  std::vector<float> bad = input_;
  bad[41] = nan;
  bad[58] = inf;
  EXPECT_TRUE(failed_with(fwd(bad.data(), n, 1, kT, out.data(), n, nullptr, nullptr, 0), {PIMOE_ERR_NON_FINITE_INPUT},
                          {"41", "~nan"}));
  // Inf first, NaN later.
  bad = input_;
  bad[19] = -inf;
  bad[33] = nan;
  EXPECT_TRUE(failed_with(fwd(bad.data(), n, 1, kT, out.data(), n, nullptr, nullptr, 0), {PIMOE_ERR_NON_FINITE_INPUT},
                          {"19", "~inf"}));
  // With routing output too.
  std::vector<int32_t> ids(kT * kK);
  std::vector<float> w(kT * kK);
  bad = input_;
  bad[n - 1] = nan;
  EXPECT_TRUE(failed_with(fwd(bad.data(), n, 1, kT, out.data(), n, ids.data(), w.data(), ids.size()),
                          {PIMOE_ERR_NON_FINITE_INPUT}, {"63"}));
}

// A large input is checked in pieces on several threads (HostParallel); the message still names the first bad
// element, whichever piece holds it and whatever later pieces hold.
TEST(LargeInput, NonFiniteInputNamesTheFirstBadElement) {
  SmallConfig config;
  config.threads = 8;  // the check's most threads (as many as the machine has)
  ModelPtr model = small_model(config);
  ASSERT_NE(model, nullptr);
  const size_t n = size_t{4} << 20;  // 16 MiB: a piece for each of 8 threads
  const auto tokens = static_cast<int64_t>(n / kH);
  const std::vector<float> input = random_input(kT * kH, 1);
  std::vector<float> big(n), out(n);
  for (size_t i = 0; i < n; ++i) big[i] = input[i % input.size()];
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    std::vector<std::pair<size_t, float>> bad;
    size_t first;
  };
  const size_t half = n / 2, eighth = n / 8;
  const Case cases[] = {
      {{{n - 1, nan}}, n - 1},
      {{{half + 5, inf}, {n - 3, nan}}, half + 5},
      {{{half - 1, nan}, {half, -inf}}, half - 1},
      {{{eighth + 1, -inf}, {3 * eighth, nan}, {7 * eighth, nan}}, eighth + 1},
      {{{7 * eighth + 2, nan}}, 7 * eighth + 2},
  };
  for (const Case &c : cases) {
    for (const auto &b : c.bad) big[b.first] = b.second;
    const std::string index = std::to_string(c.first);
    EXPECT_TRUE(failed_with(pimoe_forward(model.get(), big.data(), n, 1, tokens, out.data(), n, nullptr, nullptr, 0),
                            {PIMOE_ERR_NON_FINITE_INPUT}, {index.c_str(), std::isnan(big[c.first]) ? "~nan" : "~inf"}))
        << "first bad element at " << index;
    for (const auto &b : c.bad) big[b.first] = input[b.first % input.size()];
  }
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](float v) { return v == 0.0f; })) << "a rejected call wrote";
}

// ------------------------------------------------------------------------------------------------ stats

TEST_F(ModelErrors, StatsStructSize) {
  alignas(8) unsigned char buf[sizeof(pimoe_stats_snapshot) + 64];
  auto prepare = [&](uint32_t size) {
    std::memset(buf, 0xAB, sizeof buf);
    std::memcpy(buf, &size, sizeof size);
  };
  auto guard_intact_from = [&](size_t from) {
    for (size_t i = from; i < sizeof buf; ++i)
      if (buf[i] != 0xAB) return ::testing::AssertionFailure() << "byte " << i << " written";
    return ::testing::AssertionSuccess();
  };
  auto *snap = reinterpret_cast<pimoe_stats_snapshot *>(buf);

  for (uint32_t too_small : {0u, 1u, 4u, 7u}) {
    prepare(too_small);
    EXPECT_TRUE(failed_with(pimoe_stats(model_.get(), snap), {PIMOE_ERR_INVALID_ARGUMENT, PIMOE_ERR_SIZE_MISMATCH},
                            {"struct_size"}))
        << too_small;
    EXPECT_TRUE(guard_intact_from(4)) << "struct_size " << too_small;
  }

  // The smallest valid snapshot: struct_size and num_experts.
  prepare(8);
  PIMOE_ASSERT_OK(pimoe_stats(model_.get(), snap));
  uint32_t e = 0;
  std::memcpy(&e, buf + offsetof(pimoe_stats_snapshot, num_experts), sizeof e);
  EXPECT_EQ(e, static_cast<uint32_t>(kE));
  EXPECT_TRUE(guard_intact_from(8));

  // An "old program" whose struct ends after `tokens`.
  const uint32_t old_size = static_cast<uint32_t>(offsetof(pimoe_stats_snapshot, tokens) + sizeof(uint64_t));
  prepare(old_size);
  PIMOE_ASSERT_OK(pimoe_stats(model_.get(), snap));
  uint64_t calls = 0, tokens = 0;
  std::memcpy(&calls, buf + offsetof(pimoe_stats_snapshot, forward_calls), sizeof calls);
  std::memcpy(&tokens, buf + offsetof(pimoe_stats_snapshot, tokens), sizeof tokens);
  EXPECT_EQ(calls, 1u);
  EXPECT_EQ(tokens, static_cast<uint64_t>(kT));
  EXPECT_TRUE(guard_intact_from(old_size));

  // An older program that ends right after weight_bytes.
  const uint32_t old2 = static_cast<uint32_t>(offsetof(pimoe_stats_snapshot, weight_bytes) + sizeof(uint64_t));
  prepare(old2);
  PIMOE_ASSERT_OK(pimoe_stats(model_.get(), snap));
  EXPECT_TRUE(guard_intact_from(old2));
  uint64_t wb = 0;
  std::memcpy(&wb, buf + offsetof(pimoe_stats_snapshot, weight_bytes), sizeof wb);
  EXPECT_GT(wb, 0u);

  // Exactly this header's struct: everything, nothing past it.
  prepare(sizeof(pimoe_stats_snapshot));
  PIMOE_ASSERT_OK(pimoe_stats(model_.get(), snap));
  EXPECT_TRUE(guard_intact_from(sizeof(pimoe_stats_snapshot)));
  EXPECT_EQ(snap->num_experts, static_cast<uint32_t>(kE));
  EXPECT_EQ(snap->forward_calls, 1u);

  // A "newer program" with a bigger struct: works, known fields filled.
  prepare(sizeof(pimoe_stats_snapshot) + 32);
  PIMOE_ASSERT_OK(pimoe_stats(model_.get(), snap));
  EXPECT_EQ(snap->num_experts, static_cast<uint32_t>(kE));
  EXPECT_EQ(snap->forward_calls, 1u);
  EXPECT_EQ(snap->tokens, static_cast<uint64_t>(kT));
}

TEST_F(ModelErrors, ExpertLoadsCountTooSmall) {
  std::vector<uint64_t> loads(kE, 12345);
  EXPECT_TRUE(failed_with(pimoe_stats_expert_loads(model_.get(), loads.data(), kE - 1),
                          {PIMOE_ERR_SIZE_MISMATCH, PIMOE_ERR_INVALID_ARGUMENT}, {"7"}));
  EXPECT_TRUE(failed_with(pimoe_stats_expert_loads(model_.get(), loads.data(), 0),
                          {PIMOE_ERR_SIZE_MISMATCH, PIMOE_ERR_INVALID_ARGUMENT}, {}));
  EXPECT_EQ(loads, std::vector<uint64_t>(kE, 12345));
  // A larger buffer is fine ("count must be >= num_experts").
  std::vector<uint64_t> big(kE + 3, 0);
  PIMOE_EXPECT_OK(pimoe_stats_expert_loads(model_.get(), big.data(), big.size()));
}

// ------------------------------------------------------------------------------------------------ model queries

TEST_F(ModelErrors, ExpertIndexOutOfRange) {
  for (int32_t bad : {static_cast<int32_t>(kE), -1, 1 << 20}) {
    pimoe_activation act = PIMOE_ACT_SWIGLU;  // sentinel: every expert of this model is GELU
    int64_t width = -5;
    int32_t norm = -5;
    EXPECT_TRUE(failed_with(pimoe_model_expert(model_.get(), bad, &act, &width, &norm),
                            {PIMOE_ERR_NOT_FOUND, PIMOE_ERR_INVALID_ARGUMENT}, {std::to_string(bad).c_str()}))
        << bad;
    EXPECT_EQ(act, PIMOE_ACT_SWIGLU);
    EXPECT_EQ(width, -5);
    EXPECT_EQ(norm, -5);
  }
}

TEST_F(ModelErrors, TensorErrors) {
  int32_t nd = -5;
  int64_t dims[4] = {-5, -5, -5, -5};
  EXPECT_TRUE(failed_with(pimoe_tensor_shape(model_.get(), "no.such.tensor", &nd, dims), {PIMOE_ERR_NOT_FOUND},
                          {"no.such.tensor"}));
  EXPECT_TRUE(failed_with(pimoe_tensor_shape(model_.get(), "experts.8.up.weight", &nd, dims), {PIMOE_ERR_NOT_FOUND},
                          {"experts.8.up.weight"}));
  EXPECT_TRUE(failed_with(pimoe_tensor_shape(model_.get(), "experts.0.up.bias", &nd, dims), {PIMOE_ERR_NOT_FOUND},
                          {"experts.0.up.bias"}));
  EXPECT_EQ(nd, -5);
  for (int64_t d : dims) EXPECT_EQ(d, -5);

  std::vector<float> buf(kE * kH + 1, 3.5f);
  EXPECT_TRUE(failed_with(pimoe_tensor_read(model_.get(), "router.weight", buf.data(), kE * kH - 1),
                          {PIMOE_ERR_SIZE_MISMATCH}, {"router.weight"}));
  EXPECT_TRUE(failed_with(pimoe_tensor_read(model_.get(), "router.weight", buf.data(), kE * kH + 1),
                          {PIMOE_ERR_SIZE_MISMATCH}, {"router.weight"}));
  EXPECT_TRUE(failed_with(pimoe_tensor_read(model_.get(), "no.such.tensor", buf.data(), buf.size()),
                          {PIMOE_ERR_NOT_FOUND}, {"no.such.tensor"}));
  for (float v : buf) ASSERT_EQ(v, 3.5f) << "a failed tensor_read wrote into the buffer";

  EXPECT_EQ(pimoe_tensor_name(model_.get(), -1), nullptr);
  EXPECT_EQ(pimoe_tensor_name(model_.get(), pimoe_tensor_count(model_.get())), nullptr);
}

TEST(Backends, UnknownNames) {
  int32_t usable = 77;
  EXPECT_TRUE(failed_with(pimoe_backend_probe("no-such-backend", &usable), {PIMOE_ERR_NOT_FOUND}, {"no-such-backend"}));
  EXPECT_EQ(usable, 77);
  EXPECT_TRUE(failed_with(pimoe_backend_probe("", &usable), {PIMOE_ERR_NOT_FOUND}, {}));
  EXPECT_EQ(usable, 77);
  EXPECT_EQ(pimoe_backend_device("no-such-backend"), nullptr);
}
