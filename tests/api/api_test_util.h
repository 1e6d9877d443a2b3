/* SPDX-License-Identifier: MIT */
// Small helpers shared by the C-ABI behaviour tests (test_api_*.cpp, test_stats.cpp, test_concurrency.cpp).
// They use only the public C header: these tests check the contract, not the implementation.
#ifndef PIMOE_TESTS_API_TEST_UTIL_H
#define PIMOE_TESTS_API_TEST_UTIL_H

#include <pimoe/pimoe.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace pimoe_test {

struct OptionsDeleter {
  void operator()(pimoe_options *o) const { pimoe_options_destroy(o); }
};
struct ModelDeleter {
  void operator()(pimoe_model *m) const { pimoe_destroy(m); }
};
using OptionsPtr = std::unique_ptr<pimoe_options, OptionsDeleter>;
using ModelPtr = std::unique_ptr<pimoe_model, ModelDeleter>;

inline std::string last_error() {
  const char *e = pimoe_last_error();
  return e ? std::string(e) : std::string("<NULL>");
}

// "status (name): last_error" for assertion messages.
inline std::string describe(pimoe_status s) {
  return std::to_string(static_cast<int>(s)) + " (" + pimoe_status_string(s) + "): " + last_error();
}

#define PIMOE_ASSERT_OK(expr)                                                                                        \
  do {                                                                                                               \
    pimoe_status pimoe_s_ = (expr);                                                                                  \
    ASSERT_EQ(pimoe_s_, PIMOE_OK) << #expr << " -> " << ::pimoe_test::describe(pimoe_s_);                           \
  } while (0)

#define PIMOE_EXPECT_OK(expr)                                                                                        \
  do {                                                                                                               \
    pimoe_status pimoe_s_ = (expr);                                                                                  \
    EXPECT_EQ(pimoe_s_, PIMOE_OK) << #expr << " -> " << ::pimoe_test::describe(pimoe_s_);                           \
  } while (0)

inline bool contains(const std::string &hay, const std::string &needle) { return hay.find(needle) != std::string::npos; }

inline std::string lower(std::string s) {
  for (char &c : s) c = static_cast<char>((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
  return s;
}

inline OptionsPtr make_options() {
  pimoe_options *o = nullptr;
  pimoe_status s = pimoe_options_create(&o);
  EXPECT_EQ(s, PIMOE_OK) << describe(s);
  EXPECT_NE(o, nullptr);
  return OptionsPtr(o);
}

// A small layer that runs in microseconds: the defaults (H=512, I=2048) are far too big for unit tests.
struct SmallConfig {
  int64_t hidden = 16;
  int64_t experts = 8;
  int64_t top_k = 2;
  int64_t intermediate = 32;
  int64_t seed = 42;
  int64_t threads = 1;
  const char *backend = "cpu";
};

inline OptionsPtr small_options(const SmallConfig &c = SmallConfig()) {
  OptionsPtr o = make_options();
  if (!o) return o;
  EXPECT_EQ(pimoe_options_set_int(o.get(), PIMOE_OPT_HIDDEN, c.hidden), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_int(o.get(), PIMOE_OPT_NUM_EXPERTS, c.experts), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_int(o.get(), PIMOE_OPT_TOP_K, c.top_k), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_int(o.get(), PIMOE_OPT_INTERMEDIATE, c.intermediate), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_int(o.get(), PIMOE_OPT_SEED, c.seed), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_int(o.get(), PIMOE_OPT_THREADS, c.threads), PIMOE_OK) << last_error();
  if (c.backend) {
    EXPECT_EQ(pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, c.backend), PIMOE_OK) << last_error();
  }
  return o;
}

inline ModelPtr create_model(const pimoe_options *o) {
  pimoe_model *m = nullptr;
  pimoe_status s = pimoe_create(o, &m);
  EXPECT_EQ(s, PIMOE_OK) << describe(s);
  return ModelPtr(s == PIMOE_OK ? m : nullptr);
}

inline ModelPtr small_model(const SmallConfig &c = SmallConfig()) {
  OptionsPtr o = small_options(c);
  return create_model(o.get());
}

// Deterministic pseudo-random input in [-2, 2) (SplitMix64-based, independent of the library).
inline std::vector<float> random_input(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 0x1234567ULL;
  for (size_t i = 0; i < n; ++i) {
    state += 0x9E3779B97F4A7C15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    v[i] = static_cast<float>(static_cast<double>(z >> 40) * (1.0 / 16777216.0) * 4.0 - 2.0);
  }
  return v;
}

struct ForwardResult {
  pimoe_status status = PIMOE_ERR_INTERNAL;
  std::vector<float> output;
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

// Runs one forward of `tokens` tokens (batch=1, seq=tokens unless batch given), optionally with routing output.
inline ForwardResult forward(pimoe_model *m, const std::vector<float> &input, int64_t batch, int64_t seq,
                             int64_t hidden, int64_t top_k, bool routing) {
  ForwardResult r;
  const size_t n = static_cast<size_t>(batch * seq * hidden);
  r.output.assign(n, -777.0f);
  if (routing) {
    r.ids.assign(static_cast<size_t>(batch * seq * top_k), -1);
    r.weights.assign(static_cast<size_t>(batch * seq * top_k), -1.0f);
  }
  r.status = pimoe_forward(m, input.data(), input.size(), batch, seq, r.output.data(), r.output.size(),
                           routing ? r.ids.data() : nullptr, routing ? r.weights.data() : nullptr,
                           routing ? r.ids.size() : 0);
  return r;
}

inline bool bitwise_equal(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

inline pimoe_stats_snapshot get_stats(const pimoe_model *m) {
  pimoe_stats_snapshot s;
  std::memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  pimoe_status st = pimoe_stats(m, &s);
  EXPECT_EQ(st, PIMOE_OK) << describe(st);
  return s;
}

// Number of elements of a named tensor, from pimoe_tensor_shape.
inline int64_t tensor_elements(const pimoe_model *m, const char *name) {
  int32_t ndim = -1;
  int64_t dims[4] = {-1, -1, -1, -1};
  pimoe_status s = pimoe_tensor_shape(m, name, &ndim, dims);
  EXPECT_EQ(s, PIMOE_OK) << name << ": " << describe(s);
  if (s != PIMOE_OK) return -1;
  int64_t n = 1;
  for (int32_t i = 0; i < ndim; ++i) n *= dims[i];
  return n;
}

inline std::vector<float> read_tensor(const pimoe_model *m, const char *name) {
  int64_t n = tensor_elements(m, name);
  if (n < 0) return {};
  std::vector<float> v(static_cast<size_t>(n), -12345.0f);
  pimoe_status s = pimoe_tensor_read(m, name, v.data(), v.size());
  EXPECT_EQ(s, PIMOE_OK) << name << ": " << describe(s);
  return v;
}

}  // namespace pimoe_test

#endif  // PIMOE_TESTS_API_TEST_UTIL_H
