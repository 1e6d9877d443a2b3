// SPDX-License-Identifier: MIT
// C-ABI error behaviour: every bad input gets its pimoe_status, a message naming the culprit, untouched
// out-parameters, and leaves the model (and its statistics) exactly as it was. See the ERRORS section of pimoe.h.
// This file: status texts, last errors, NULL pointers, options and creation; test_api_errors_calls.cpp: forward, stats
// and model queries.
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

// ------------------------------------------------------------------------------------------------ status text

TEST(StatusString, EveryKnownCodeHasItsOwnText) {
  std::vector<std::string> seen;
  for (int c = PIMOE_OK; c <= PIMOE_ERR_CALLBACK; ++c) {
    const char *s = pimoe_status_string(static_cast<pimoe_status>(c));
    ASSERT_NE(s, nullptr) << c;
    EXPECT_GT(std::strlen(s), 0u) << c;
    EXPECT_STRNE(s, "unknown status") << c;
    for (const std::string &o : seen) EXPECT_NE(o, s) << "two codes share the text \"" << s << "\"";
    seen.emplace_back(s);
    // Static: the same pointer/text every time.
    EXPECT_STREQ(s, pimoe_status_string(static_cast<pimoe_status>(c)));
  }
}

TEST(StatusString, UnknownCodes) {
  for (int c : {15, 16, 99, 999, 1 << 20}) {
    const char *s = pimoe_status_string(static_cast<pimoe_status>(c));
    ASSERT_NE(s, nullptr) << c;
    EXPECT_STREQ(s, "unknown status") << c;
  }
}

// ------------------------------------------------------------------------------------------------ last_error

TEST(LastError, NeverNullAndClearedBySuccess) {
  ASSERT_NE(pimoe_last_error(), nullptr);

  EXPECT_EQ(pimoe_options_create(nullptr), PIMOE_ERR_NULL_POINTER);
  EXPECT_STRNE(pimoe_last_error(), "");
  pimoe_options *o = nullptr;
  ASSERT_EQ(pimoe_options_create(&o), PIMOE_OK);
  OptionsPtr opts(o);
  EXPECT_STREQ(pimoe_last_error(), "") << "pimoe_options_create success did not clear the message";

  EXPECT_NE(pimoe_options_set_int(opts.get(), PIMOE_OPT_TOP_K, 0), PIMOE_OK);
  EXPECT_STRNE(pimoe_last_error(), "");
  EXPECT_EQ(pimoe_options_set_int(opts.get(), PIMOE_OPT_HIDDEN, 16), PIMOE_OK);
  EXPECT_STREQ(pimoe_last_error(), "") << "pimoe_options_set_int success did not clear the message";

  EXPECT_NE(pimoe_options_set_by_name(opts.get(), "no_such_option", "1"), PIMOE_OK);
  EXPECT_EQ(pimoe_options_set_by_name(opts.get(), "intermediate", "8"), PIMOE_OK);
  EXPECT_STREQ(pimoe_last_error(), "");

  EXPECT_NE(pimoe_options_set_float(opts.get(), PIMOE_OPT_TEMPERATURE, -1.0), PIMOE_OK);
  pimoe_model *m = nullptr;
  ASSERT_EQ(pimoe_create(opts.get(), &m), PIMOE_OK) << last_error();
  ModelPtr model(m);
  EXPECT_STREQ(pimoe_last_error(), "") << "pimoe_create success did not clear the message";

  std::vector<float> in = random_input(16, 3), out(16);
  EXPECT_NE(pimoe_forward(m, in.data(), 15, 1, 1, out.data(), out.size(), nullptr, nullptr, 0), PIMOE_OK);
  EXPECT_STRNE(pimoe_last_error(), "");
  EXPECT_EQ(pimoe_forward(m, in.data(), in.size(), 1, 1, out.data(), out.size(), nullptr, nullptr, 0), PIMOE_OK);
  EXPECT_STREQ(pimoe_last_error(), "") << "pimoe_forward success did not clear the message";

  EXPECT_NE(pimoe_stats(m, nullptr), PIMOE_OK);
  pimoe_stats_snapshot s;
  s.struct_size = sizeof s;
  EXPECT_EQ(pimoe_stats(m, &s), PIMOE_OK);
  EXPECT_STREQ(pimoe_last_error(), "") << "pimoe_stats success did not clear the message";

  EXPECT_NE(pimoe_tensor_shape(m, "no.such.tensor", nullptr, nullptr), PIMOE_OK);
  int32_t nd = 0;
  int64_t dims[4];
  EXPECT_EQ(pimoe_tensor_shape(m, "router.weight", &nd, dims), PIMOE_OK);
  EXPECT_STREQ(pimoe_last_error(), "") << "pimoe_tensor_shape success did not clear the message";

  EXPECT_NE(pimoe_stats_reset(nullptr), PIMOE_OK);
  EXPECT_EQ(pimoe_stats_reset(m), PIMOE_OK);
  EXPECT_STREQ(pimoe_last_error(), "") << "pimoe_stats_reset success did not clear the message";

  EXPECT_NE(pimoe_model_dims(nullptr, nullptr, nullptr, nullptr), PIMOE_OK);
  EXPECT_EQ(pimoe_model_dims(m, nullptr, nullptr, nullptr), PIMOE_OK);
  EXPECT_STREQ(pimoe_last_error(), "") << "pimoe_model_dims success did not clear the message";
}

TEST(LastError, IsPerThread) {
  // A failure on another thread is invisible here; this thread's last call succeeded.
  pimoe_options *o = nullptr;
  ASSERT_EQ(pimoe_options_create(&o), PIMOE_OK);
  OptionsPtr opts(o);
  std::string other_msg;
  std::thread t([&] {
    EXPECT_EQ(pimoe_options_set_int(opts.get(), PIMOE_OPT_TOP_K, -3), PIMOE_ERR_INVALID_OPTION);
    other_msg = last_error();
  });
  t.join();
  EXPECT_TRUE(contains(other_msg, "top_k")) << other_msg;
  EXPECT_STREQ(pimoe_last_error(), "");

  // And the reverse: a failure here is not cleared by a success on another thread.
  EXPECT_EQ(pimoe_options_set_int(opts.get(), PIMOE_OPT_HIDDEN, 0), PIMOE_ERR_INVALID_OPTION);
  std::thread t2([&] { EXPECT_EQ(pimoe_options_create(&o), PIMOE_OK); });
  t2.join();
  pimoe_options_destroy(o);
  EXPECT_TRUE(contains(last_error(), "hidden")) << last_error();
}

TEST_F(ModelErrors, ModelLastErrorRecordsFailuresFromAnyThread) {
  const char *e = pimoe_model_last_error(model_.get());
  ASSERT_NE(e, nullptr);
  EXPECT_STREQ(e, "") << "fresh model has a recorded failure";

  std::thread t([&] {
    std::vector<float> out(input_.size());
    EXPECT_EQ(pimoe_forward(model_.get(), input_.data(), input_.size() - 1, 1, kT, out.data(), out.size(), nullptr,
                            nullptr, 0),
              PIMOE_ERR_SIZE_MISMATCH);
  });
  t.join();
  // This thread's own last error is untouched by the other thread ...
  pimoe_stats_snapshot s;
  s.struct_size = sizeof s;
  EXPECT_EQ(pimoe_stats(model_.get(), &s), PIMOE_OK);
  EXPECT_STREQ(pimoe_last_error(), "");
  // ... but the handle remembers the failure.
  std::string me = pimoe_model_last_error(model_.get());
  EXPECT_TRUE(contains(me, "input_count")) << "model_last_error: \"" << me << "\"";

  // A later failure replaces it.
  std::vector<float> out(input_.size());
  EXPECT_EQ(fwd(input_.data(), input_.size(), 1, kT, out.data(), out.size() + 3, nullptr, nullptr, 0),
            PIMOE_ERR_SIZE_MISMATCH);
  me = pimoe_model_last_error(model_.get());
  EXPECT_TRUE(contains(me, "output_count")) << "model_last_error: \"" << me << "\"";

  // NULL handle: must not crash.
  (void)pimoe_model_last_error(nullptr);
}

// ------------------------------------------------------------------------------------------------ NULL pointers

TEST(NullPointers, OptionsFunctions) {
  EXPECT_TRUE(failed_with(pimoe_options_create(nullptr), {PIMOE_ERR_NULL_POINTER}, {}));
  pimoe_options_destroy(nullptr);  // harmless

  EXPECT_TRUE(failed_with(pimoe_options_set_int(nullptr, PIMOE_OPT_TOP_K, 2), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_TRUE(failed_with(pimoe_options_set_float(nullptr, PIMOE_OPT_TEMPERATURE, 1.0), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_TRUE(failed_with(pimoe_options_set_string(nullptr, PIMOE_OPT_BACKEND, "cpu"), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(nullptr, "top_k", "2"), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_TRUE(
      failed_with(pimoe_options_set_expert_preset(nullptr, 0, PIMOE_PRESET_LANGUAGE), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_TRUE(
      failed_with(pimoe_options_set_expert_activation(nullptr, 0, PIMOE_ACT_RELU), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_TRUE(failed_with(pimoe_options_set_expert_width(nullptr, 0, 8), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_TRUE(failed_with(pimoe_options_set_expert_pre_norm(nullptr, 0, 1), {PIMOE_ERR_NULL_POINTER}, {}));

  OptionsPtr o = make_options();
  EXPECT_TRUE(failed_with(pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, nullptr), {PIMOE_ERR_NULL_POINTER},
                          {"backend"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), nullptr, "2"), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), "top_k", nullptr), {PIMOE_ERR_NULL_POINTER}, {"top_k"}));
}

TEST(NullPointers, CreateAndDestroy) {
  OptionsPtr o = small_options();
  EXPECT_TRUE(failed_with(pimoe_create(o.get(), nullptr), {PIMOE_ERR_NULL_POINTER}, {}));
  pimoe_destroy(nullptr);  // harmless
  pimoe_options_destroy(nullptr);
}

TEST_F(ModelErrors, NullPointersModelQueries) {
  int64_t h = -5;
  int32_t e = -5, k = -5;
  EXPECT_TRUE(failed_with(pimoe_model_dims(nullptr, &h, &e, &k), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_EQ(h, -5);
  EXPECT_EQ(e, -5);
  EXPECT_EQ(k, -5);
  // Any out-pointer may be NULL.
  PIMOE_EXPECT_OK(pimoe_model_dims(model_.get(), nullptr, nullptr, nullptr));
  PIMOE_EXPECT_OK(pimoe_model_dims(model_.get(), nullptr, &e, nullptr));
  EXPECT_EQ(e, kE);

  pimoe_activation act = PIMOE_ACT_SWIGLU;  // sentinel: every expert of this model is GELU
  int64_t width = -5;
  int32_t norm = -5;
  EXPECT_TRUE(failed_with(pimoe_model_expert(nullptr, 0, &act, &width, &norm), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_EQ(act, PIMOE_ACT_SWIGLU);
  EXPECT_EQ(width, -5);
  EXPECT_EQ(norm, -5);
  PIMOE_EXPECT_OK(pimoe_model_expert(model_.get(), 0, nullptr, nullptr, nullptr));

  (void)pimoe_model_backend(nullptr);  // must not crash
  EXPECT_LE(pimoe_tensor_count(nullptr), 0);
  EXPECT_EQ(pimoe_tensor_name(nullptr, 0), nullptr);
}

TEST_F(ModelErrors, NullPointersForward) {
  std::vector<float> out(input_.size(), 0.0f);
  std::vector<int32_t> ids(kT * kK);
  std::vector<float> w(kT * kK);
  const size_t n = input_.size();
  EXPECT_TRUE(failed_with(pimoe_forward(nullptr, input_.data(), n, 1, kT, out.data(), n, nullptr, nullptr, 0),
                          {PIMOE_ERR_NULL_POINTER}, {"model"}));
  EXPECT_TRUE(
      failed_with(fwd(nullptr, n, 1, kT, out.data(), n, nullptr, nullptr, 0), {PIMOE_ERR_NULL_POINTER}, {"input"}));
  EXPECT_TRUE(
      failed_with(fwd(input_.data(), n, 1, kT, nullptr, n, nullptr, nullptr, 0), {PIMOE_ERR_NULL_POINTER}, {"output"}));
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, 1, kT, out.data(), n, ids.data(), nullptr, ids.size()),
                          {PIMOE_ERR_NULL_POINTER, PIMOE_ERR_INVALID_ARGUMENT}, {"expert_weights"}));
  EXPECT_TRUE(failed_with(fwd(input_.data(), n, 1, kT, out.data(), n, nullptr, w.data(), w.size()),
                          {PIMOE_ERR_NULL_POINTER, PIMOE_ERR_INVALID_ARGUMENT}, {"expert_ids"}));
}

TEST_F(ModelErrors, NullPointersStats) {
  pimoe_stats_snapshot s;
  s.struct_size = sizeof s;
  EXPECT_TRUE(failed_with(pimoe_stats(nullptr, &s), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_TRUE(failed_with(pimoe_stats(model_.get(), nullptr), {PIMOE_ERR_NULL_POINTER}, {}));
  std::vector<uint64_t> loads(kE, 99);
  EXPECT_TRUE(failed_with(pimoe_stats_expert_loads(nullptr, loads.data(), loads.size()), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_EQ(loads, std::vector<uint64_t>(kE, 99));
  EXPECT_TRUE(failed_with(pimoe_stats_expert_loads(model_.get(), nullptr, kE), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_TRUE(failed_with(pimoe_stats_reset(nullptr), {PIMOE_ERR_NULL_POINTER}, {}));
}

TEST_F(ModelErrors, NullPointersTensors) {
  int32_t nd = -5;
  int64_t dims[4] = {-5, -5, -5, -5};
  EXPECT_TRUE(failed_with(pimoe_tensor_shape(nullptr, "router.weight", &nd, dims), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_TRUE(failed_with(pimoe_tensor_shape(model_.get(), nullptr, &nd, dims), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_TRUE(
      failed_with(pimoe_tensor_shape(model_.get(), "router.weight", nullptr, dims), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_TRUE(
      failed_with(pimoe_tensor_shape(model_.get(), "router.weight", &nd, nullptr), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_EQ(nd, -5);
  for (int64_t d : dims) EXPECT_EQ(d, -5);

  std::vector<float> buf(kE * kH, 3.5f);
  EXPECT_TRUE(
      failed_with(pimoe_tensor_read(nullptr, "router.weight", buf.data(), buf.size()), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_TRUE(
      failed_with(pimoe_tensor_read(model_.get(), nullptr, buf.data(), buf.size()), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_TRUE(
      failed_with(pimoe_tensor_read(model_.get(), "router.weight", nullptr, buf.size()), {PIMOE_ERR_NULL_POINTER}, {}));
  for (float v : buf) ASSERT_EQ(v, 3.5f);
}

TEST(NullPointers, Backends) {
  int32_t usable = 77;
  EXPECT_TRUE(failed_with(pimoe_backend_probe(nullptr, &usable), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_EQ(usable, 77);
  EXPECT_TRUE(failed_with(pimoe_backend_probe("cpu", nullptr), {PIMOE_ERR_NULL_POINTER}, {}));
  EXPECT_EQ(pimoe_backend_device(nullptr), nullptr);
  EXPECT_EQ(pimoe_backend_name(-1), nullptr);
  EXPECT_EQ(pimoe_backend_name(pimoe_backend_count()), nullptr);
  EXPECT_EQ(pimoe_backend_name(1 << 30), nullptr);
}

// ------------------------------------------------------------------------------------------------ options

TEST(Options, UnknownKeys) {
  OptionsPtr o = make_options();
  const pimoe_option bad = static_cast<pimoe_option>(999);
  EXPECT_TRUE(failed_with(pimoe_options_set_int(o.get(), bad, 1), {PIMOE_ERR_UNKNOWN_OPTION}, {"999"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_float(o.get(), bad, 1.0), {PIMOE_ERR_UNKNOWN_OPTION}, {"999"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_string(o.get(), bad, "x"), {PIMOE_ERR_UNKNOWN_OPTION}, {"999"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), "no_such_option", "1"), {PIMOE_ERR_UNKNOWN_OPTION},
                          {"no_such_option"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), "", "1"), {PIMOE_ERR_UNKNOWN_OPTION}, {}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), "TOP_K_X", "1"), {PIMOE_ERR_UNKNOWN_OPTION}, {"TOP_K_X"}));
}

// A number given by name is the whole value: whitespace before it is refused as whitespace after it is (strtoll
// alone would take " 8" and refuse "8 "), for integer and real keys alike.
TEST(Options, NumbersByNameRefuseWhitespaceOnEitherSide) {
  OptionsPtr o = make_options();
  for (const char *key : {"top_k", "temperature"}) {
    for (const char *value : {" 2", "2 ", "\t2", "2\n", " 2 "}) {
      EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), key, value), {PIMOE_ERR_INVALID_OPTION},
                              {key, "no whitespace"}))
          << key << " = '" << value << "'";
    }
    EXPECT_EQ(pimoe_options_set_by_name(o.get(), key, "2"), PIMOE_OK) << key << ": " << last_error();
  }
}

TEST(Options, OutOfRangeSizes) {
  OptionsPtr o = make_options();
  struct Case {
    pimoe_option key;
    int64_t value;
    const char *name;
  };
  const Case cases[] = {
      {PIMOE_OPT_HIDDEN, 0, "hidden"},
      {PIMOE_OPT_HIDDEN, -1, "hidden"},
      {PIMOE_OPT_HIDDEN, 1000000000000LL, "hidden"},
      {PIMOE_OPT_HIDDEN, 65537, "hidden"},
      {PIMOE_OPT_HIDDEN, std::numeric_limits<int64_t>::min(), "hidden"},
      {PIMOE_OPT_NUM_EXPERTS, 0, "num_experts"},
      {PIMOE_OPT_NUM_EXPERTS, 4097, "num_experts"},
      {PIMOE_OPT_TOP_K, 0, "top_k"},
      {PIMOE_OPT_TOP_K, -2, "top_k"},
      {PIMOE_OPT_INTERMEDIATE, 0, "intermediate"},
      {PIMOE_OPT_INTERMEDIATE, 262145, "intermediate"},
      {PIMOE_OPT_INTERMEDIATE, std::numeric_limits<int64_t>::max(), "intermediate"},
      {PIMOE_OPT_ACTIVATION, 42, "activation"},
      {PIMOE_OPT_ACTIVATION, -1, "activation"},
      {PIMOE_OPT_THREADS, -1, "threads"},
  };
  for (const Case &c : cases) {
    // The value is printed as the integer it is (never "1e+12" through a double).
    const std::string value_text = " = " + std::to_string(c.value) + " is out of range";
    EXPECT_TRUE(failed_with(pimoe_options_set_int(o.get(), c.key, c.value), {PIMOE_ERR_INVALID_OPTION},
                            {c.name, value_text.c_str()}))
        << c.name << " = " << c.value;
  }
  EXPECT_TRUE(failed_with(pimoe_options_set_int(o.get(), PIMOE_OPT_SEED, -1), {PIMOE_ERR_INVALID_OPTION},
                          {"'seed' = -1 is out of range [0, 9200000000000000000]"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_int(o.get(), PIMOE_OPT_ACTIVATION, 42), {PIMOE_ERR_INVALID_OPTION},
                          {"activation", "42"}));
  // The option set survives: all defaults, so the model is the default one.
  int64_t h = 0;
  int32_t e = 0, k = 0;
  pimoe_model *m = nullptr;
  PIMOE_ASSERT_OK(pimoe_create(o.get(), &m));
  ModelPtr model(m);
  PIMOE_EXPECT_OK(pimoe_model_dims(m, &h, &e, &k));
  EXPECT_EQ(h, 512);
  EXPECT_EQ(e, 8);
  EXPECT_EQ(k, 2);
}

TEST(Options, BadFloatValues) {
  OptionsPtr o = make_options();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    pimoe_option key;
    double value;
    const char *name;
  };
  const Case cases[] = {
      {PIMOE_OPT_TEMPERATURE, 0.0, "temperature"},          {PIMOE_OPT_TEMPERATURE, -0.5, "temperature"},
      {PIMOE_OPT_TEMPERATURE, nan, "temperature"},          {PIMOE_OPT_TEMPERATURE, -inf, "temperature"},
      {PIMOE_OPT_CAPACITY_FACTOR, -1.0, "capacity_factor"}, {PIMOE_OPT_CAPACITY_FACTOR, nan, "capacity_factor"},
      {PIMOE_OPT_AUX_LOSS_COEF, nan, "aux_loss_coef"},      {PIMOE_OPT_LAYER_NORM_EPS, nan, "layer_norm_eps"},
      {PIMOE_OPT_LAYER_NORM_EPS, -1.0, "layer_norm_eps"},
  };
  for (const Case &c : cases) {
    EXPECT_TRUE(failed_with(pimoe_options_set_float(o.get(), c.key, c.value), {PIMOE_ERR_INVALID_OPTION}, {c.name}))
        << c.name << " = " << c.value;
  }
  EXPECT_TRUE(
      failed_with(pimoe_options_set_by_name(o.get(), "temperature", "0"), {PIMOE_ERR_INVALID_OPTION}, {"temperature"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), "temperature", "nan"), {PIMOE_ERR_INVALID_OPTION},
                          {"temperature"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), "capacity_factor", "-1"), {PIMOE_ERR_INVALID_OPTION},
                          {"capacity_factor"}));
}

TEST(Options, BadStringValuesAndParsing) {
  OptionsPtr o = make_options();
  EXPECT_TRUE(failed_with(pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, "no-such-backend"),
                          {PIMOE_ERR_INVALID_OPTION, PIMOE_ERR_NOT_FOUND}, {"no-such-backend"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), "backend", "no-such-backend"),
                          {PIMOE_ERR_INVALID_OPTION, PIMOE_ERR_NOT_FOUND}, {"no-such-backend"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, ""),
                          {PIMOE_ERR_INVALID_OPTION, PIMOE_ERR_NOT_FOUND}, {"backend"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), "activation", "no_such_act"), {PIMOE_ERR_INVALID_OPTION},
                          {"activation", "no_such_act"}));
  EXPECT_TRUE(
      failed_with(pimoe_options_set_by_name(o.get(), "top_k", "abc"), {PIMOE_ERR_INVALID_OPTION}, {"top_k", "abc"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), "top_k", "2x"), {PIMOE_ERR_INVALID_OPTION}, {"top_k"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), "top_k", ""), {PIMOE_ERR_INVALID_OPTION}, {"top_k"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), "hidden", "99999999999999999999999"),
                          {PIMOE_ERR_INVALID_OPTION}, {"hidden"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), "temperature", "warm"), {PIMOE_ERR_INVALID_OPTION},
                          {"temperature"}));
}

TEST(Options, WrongTypedSetter) {
  OptionsPtr o = make_options();
  EXPECT_TRUE(
      failed_with(pimoe_options_set_float(o.get(), PIMOE_OPT_TOP_K, 2.0), {PIMOE_ERR_INVALID_OPTION}, {"top_k"}));
  EXPECT_TRUE(
      failed_with(pimoe_options_set_string(o.get(), PIMOE_OPT_TOP_K, "2"), {PIMOE_ERR_INVALID_OPTION}, {"top_k"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_int(o.get(), PIMOE_OPT_TEMPERATURE, 1), {PIMOE_ERR_INVALID_OPTION},
                          {"temperature"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_string(o.get(), PIMOE_OPT_CAPACITY_FACTOR, "1.0"),
                          {PIMOE_ERR_INVALID_OPTION}, {"capacity_factor"}));
  EXPECT_TRUE(
      failed_with(pimoe_options_set_int(o.get(), PIMOE_OPT_BACKEND, 0), {PIMOE_ERR_INVALID_OPTION}, {"backend"}));
  EXPECT_TRUE(
      failed_with(pimoe_options_set_float(o.get(), PIMOE_OPT_BACKEND, 0.0), {PIMOE_ERR_INVALID_OPTION}, {"backend"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_float(o.get(), PIMOE_OPT_ACTIVATION, 1.0), {PIMOE_ERR_INVALID_OPTION},
                          {"activation"}));
}

TEST(Options, FailedSetterKeepsPreviousValue) {
  OptionsPtr o = small_options();
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_TOP_K, 3));
  EXPECT_NE(pimoe_options_set_float(o.get(), PIMOE_OPT_TOP_K, 5.0), PIMOE_OK);
  EXPECT_NE(pimoe_options_set_int(o.get(), PIMOE_OPT_TOP_K, 0), PIMOE_OK);
  EXPECT_NE(pimoe_options_set_by_name(o.get(), "top_k", "seven"), PIMOE_OK);
  EXPECT_NE(pimoe_options_set_int(o.get(), PIMOE_OPT_HIDDEN, -4), PIMOE_OK);
  ModelPtr m = create_model(o.get());
  ASSERT_NE(m, nullptr);
  int64_t h = 0;
  int32_t e = 0, k = 0;
  PIMOE_EXPECT_OK(pimoe_model_dims(m.get(), &h, &e, &k));
  EXPECT_EQ(h, 16);
  EXPECT_EQ(e, 8);
  EXPECT_EQ(k, 3);
}

TEST(Options, ExpertSetterBadValues) {
  OptionsPtr o = small_options();
  EXPECT_TRUE(failed_with(pimoe_options_set_expert_activation(o.get(), 0, static_cast<pimoe_activation>(42)),
                          {PIMOE_ERR_INVALID_OPTION, PIMOE_ERR_INVALID_ARGUMENT}, {"activation"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_expert_preset(o.get(), 0, static_cast<pimoe_expert_preset>(99)),
                          {PIMOE_ERR_INVALID_OPTION, PIMOE_ERR_INVALID_ARGUMENT}, {"preset"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_expert_width(o.get(), 0, 0),
                          {PIMOE_ERR_INVALID_OPTION, PIMOE_ERR_INVALID_ARGUMENT}, {}));
  EXPECT_TRUE(failed_with(pimoe_options_set_expert_width(o.get(), 0, -16),
                          {PIMOE_ERR_INVALID_OPTION, PIMOE_ERR_INVALID_ARGUMENT}, {"-16"}));
  // The options are still good.
  ModelPtr m = create_model(o.get());
  EXPECT_NE(m, nullptr);
}

// ------------------------------------------------------------------------------------------------ pimoe_create

TEST(Create, TopKExceedsNumExperts) {
  OptionsPtr o = small_options();  // E = 8
  pimoe_status s = pimoe_options_set_int(o.get(), PIMOE_OPT_TOP_K, 9);
  if (s == PIMOE_OK) {
    pimoe_model *m = sentinel_model();
    s = pimoe_create(o.get(), &m);
    EXPECT_EQ(m, sentinel_model()) << "*out written by a failed pimoe_create";
  }
  EXPECT_TRUE(failed_with(s, {PIMOE_ERR_INVALID_OPTION}, {"top_k", "9", "num_experts", "8"}));
}

// The router extensions and the shared expert: bad values fail at the setter or at pimoe_create, naming the option.
TEST(Options, RouterExtensionBadValues) {
  OptionsPtr o = make_options();
  EXPECT_TRUE(failed_with(pimoe_options_set_string(o.get(), PIMOE_OPT_ROUTER_SCORING, "tanh"),
                          {PIMOE_ERR_INVALID_OPTION}, {"router_scoring", "tanh"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), "router_scoring", "Sigmoid"), {PIMOE_ERR_INVALID_OPTION},
                          {"router_scoring", "Sigmoid"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_string(o.get(), PIMOE_OPT_GROUP_SCORE, "top3_sum"),
                          {PIMOE_ERR_INVALID_OPTION}, {"group_score", "top3_sum"}));
  EXPECT_TRUE(
      failed_with(pimoe_options_set_by_name(o.get(), "group_score", ""), {PIMOE_ERR_INVALID_OPTION}, {"group_score"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_int(o.get(), PIMOE_OPT_SHARED_WIDTH, -1), {PIMOE_ERR_INVALID_OPTION},
                          {"shared_width", "-1"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_by_name(o.get(), "shared_width", "-64"), {PIMOE_ERR_INVALID_OPTION},
                          {"shared_width"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_int(o.get(), PIMOE_OPT_SHARED_WIDTH, 262145), {PIMOE_ERR_INVALID_OPTION},
                          {"shared_width"}));
  EXPECT_TRUE(
      failed_with(pimoe_options_set_int(o.get(), PIMOE_OPT_NUM_GROUPS, 0), {PIMOE_ERR_INVALID_OPTION}, {"num_groups"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_int(o.get(), PIMOE_OPT_TOPK_GROUPS, 0), {PIMOE_ERR_INVALID_OPTION},
                          {"topk_groups"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_int(o.get(), PIMOE_OPT_ROUTER_BIAS, 2), {PIMOE_ERR_INVALID_OPTION},
                          {"router_bias"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_int(o.get(), PIMOE_OPT_SHARED_GATE, -1), {PIMOE_ERR_INVALID_OPTION},
                          {"shared_gate"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_float(o.get(), PIMOE_OPT_ROUTED_SCALING, 0.0), {PIMOE_ERR_INVALID_OPTION},
                          {"routed_scaling_factor"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_float(o.get(), PIMOE_OPT_ROUTED_SCALING, std::nan("")),
                          {PIMOE_ERR_INVALID_OPTION}, {"routed_scaling_factor"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_int(o.get(), PIMOE_OPT_ROUTER_SCORING, 1), {PIMOE_ERR_INVALID_OPTION},
                          {"router_scoring"}));
  EXPECT_TRUE(failed_with(pimoe_options_set_string(o.get(), PIMOE_OPT_NUM_GROUPS, "4"), {PIMOE_ERR_INVALID_OPTION},
                          {"num_groups"}));
  // Good values by name and by typed setter.
  PIMOE_EXPECT_OK(pimoe_options_set_by_name(o.get(), "router_scoring", "sigmoid"));
  PIMOE_EXPECT_OK(pimoe_options_set_by_name(o.get(), "group_score", "max"));
  PIMOE_EXPECT_OK(pimoe_options_set_by_name(o.get(), "routed_scaling_factor", "2.5"));
  PIMOE_EXPECT_OK(pimoe_options_set_by_name(o.get(), "num_groups", "4"));
  PIMOE_EXPECT_OK(pimoe_options_set_by_name(o.get(), "topk_groups", "2"));
  PIMOE_EXPECT_OK(pimoe_options_set_by_name(o.get(), "router_bias", "1"));
  PIMOE_EXPECT_OK(pimoe_options_set_by_name(o.get(), "shared_width", "16"));
  PIMOE_EXPECT_OK(pimoe_options_set_by_name(o.get(), "shared_gate", "1"));
  PIMOE_EXPECT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_ROUTER_SCORING, "softmax"));
  PIMOE_EXPECT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_GROUP_SCORE, "top2_sum"));
}

// Cross-option constraints of group-limited routing and the shared expert, reported by pimoe_create.
TEST(Create, RouterExtensionConstraints) {
  struct Case {
    std::vector<std::pair<const char *, const char *>> set;
    std::vector<const char *> words;
  };
  const Case cases[] = {
      {{{"num_experts", "10"}, {"num_groups", "4"}}, {"num_experts (10) is not a multiple of num_groups (4)"}},
      {{{"num_groups", "4"}, {"topk_groups", "5"}}, {"topk_groups (5)", "num_groups (4)"}},
      {{{"num_groups", "4"}, {"topk_groups", "1"}, {"top_k", "3"}}, {"top_k (3)", "topk_groups (1)", "= 2"}},
      {{{"num_groups", "8"}, {"topk_groups", "2"}, {"top_k", "3"}}, {"top_k (3)", "topk_groups (2)"}},
      {{{"shared_gate", "1"}}, {"shared_gate", "shared_width"}},
  };
  for (const Case &c : cases) {
    OptionsPtr o = small_options();  // E = 8
    for (const auto &kv : c.set) PIMOE_ASSERT_OK(pimoe_options_set_by_name(o.get(), kv.first, kv.second));
    pimoe_model *m = sentinel_model();
    EXPECT_TRUE(failed_with(pimoe_create(o.get(), &m), {PIMOE_ERR_INVALID_OPTION}, {})) << c.set[0].first;
    const std::string msg = last_error();
    for (const char *word : c.words) EXPECT_NE(msg.find(word), std::string::npos) << msg << " lacks " << word;
    EXPECT_EQ(m, sentinel_model()) << "*out written by a failed pimoe_create";
  }
  // The limits themselves are fine: top_k equal to the kept groups' experts, G = E, G = 1.
  for (const auto &set : std::vector<std::vector<std::pair<const char *, const char *>>>{
           {{"num_groups", "4"}, {"topk_groups", "1"}, {"top_k", "2"}},
           {{"num_groups", "8"}, {"topk_groups", "8"}, {"top_k", "8"}},
           {{"num_groups", "1"}, {"topk_groups", "1"}, {"top_k", "8"}}}) {
    OptionsPtr o = small_options();
    for (const auto &kv : set) PIMOE_ASSERT_OK(pimoe_options_set_by_name(o.get(), kv.first, kv.second));
    EXPECT_NE(create_model(o.get()), nullptr) << pimoe_last_error();
  }
}

TEST(Create, TopKMayBeSetBeforeNumExperts) {
  // Options are order-independent: top_k = 9 is fine once num_experts becomes 16.
  OptionsPtr o = small_options();
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_TOP_K, 9));
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_NUM_EXPERTS, 16));
  ModelPtr m = create_model(o.get());
  ASSERT_NE(m, nullptr);
  int32_t e = 0, k = 0;
  PIMOE_EXPECT_OK(pimoe_model_dims(m.get(), nullptr, &e, &k));
  EXPECT_EQ(e, 16);
  EXPECT_EQ(k, 9);
}

TEST(Create, ExpertOverrideIndexOutOfRangeIsReportedAtCreate) {
  OptionsPtr o = small_options();  // E = 8
  // Setting it is fine (num_experts could still grow) ...
  PIMOE_ASSERT_OK(pimoe_options_set_expert_preset(o.get(), 8, PIMOE_PRESET_LANGUAGE));
  pimoe_model *m = sentinel_model();
  EXPECT_TRUE(
      failed_with(pimoe_create(o.get(), &m), {PIMOE_ERR_INVALID_OPTION, PIMOE_ERR_INVALID_ARGUMENT}, {"8", "~expert"}));
  EXPECT_EQ(m, sentinel_model());
  // ... and becomes valid when the layer has more experts.
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_NUM_EXPERTS, 9));
  ModelPtr ok = create_model(o.get());
  ASSERT_NE(ok, nullptr);
  pimoe_activation act = PIMOE_ACT_GELU;
  PIMOE_EXPECT_OK(pimoe_model_expert(ok.get(), 8, &act, nullptr, nullptr));
  EXPECT_EQ(act, PIMOE_ACT_SWIGLU);

  for (int which = 0; which < 3; ++which) {
    OptionsPtr o2 = small_options();
    const int32_t idx = 1000 + which;
    if (which == 0) PIMOE_ASSERT_OK(pimoe_options_set_expert_activation(o2.get(), idx, PIMOE_ACT_RELU));
    if (which == 1) PIMOE_ASSERT_OK(pimoe_options_set_expert_width(o2.get(), idx, 8));
    if (which == 2) PIMOE_ASSERT_OK(pimoe_options_set_expert_pre_norm(o2.get(), idx, 1));
    pimoe_model *m2 = sentinel_model();
    EXPECT_TRUE(failed_with(pimoe_create(o2.get(), &m2), {PIMOE_ERR_INVALID_OPTION, PIMOE_ERR_INVALID_ARGUMENT},
                            {std::to_string(idx).c_str()}));
    EXPECT_EQ(m2, sentinel_model());
  }
}

TEST(Create, NegativeExpertIndexOtherThanMinusOne) {
  OptionsPtr o = small_options();
  pimoe_status s = pimoe_options_set_expert_preset(o.get(), -2, PIMOE_PRESET_LANGUAGE);
  pimoe_model *m = sentinel_model();
  if (s == PIMOE_OK) s = pimoe_create(o.get(), &m);
  EXPECT_TRUE(failed_with(s, {PIMOE_ERR_INVALID_OPTION, PIMOE_ERR_INVALID_ARGUMENT}, {"-2"}));
  EXPECT_EQ(m, sentinel_model());
}

TEST(Create, UnavailableBackends) {
  for (const char *name : {"cuda", "vulkan", "vulkan:0"}) {
    int32_t usable = -1;
    pimoe_status ps = pimoe_backend_probe(name, &usable);
    ASSERT_EQ(ps, PIMOE_OK) << name << ": " << describe(ps);
    if (usable) {
      std::printf("[ note ] backend %s is usable here; skipping its unavailability check\n", name);
      continue;
    }
    EXPECT_STRNE(pimoe_last_error(), "") << "probe(" << name << ") = 0 must say why";
    OptionsPtr o = small_options();
    pimoe_status s = pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, name);
    pimoe_model *m = sentinel_model();
    if (s == PIMOE_OK) s = pimoe_create(o.get(), &m);
    // The message names the backend ("vulkan" for "vulkan:0" is enough).
    const std::string family = std::string(name).substr(0, std::string(name).find(':'));
    EXPECT_TRUE(failed_with(s, {PIMOE_ERR_BACKEND_UNAVAILABLE}, {family.c_str()})) << name;
    EXPECT_EQ(m, sentinel_model());
  }
}

TEST(Create, CpuGemmChoices) {
  {
    OptionsPtr o = small_options();
    EXPECT_TRUE(failed_with(pimoe_options_set_string(o.get(), PIMOE_OPT_CPU_GEMM, "mkl"), {PIMOE_ERR_INVALID_OPTION},
                            {"cpu_gemm", "mkl"}));
    EXPECT_TRUE(
        failed_with(pimoe_options_set_by_name(o.get(), "cpu_gemm", ""), {PIMOE_ERR_INVALID_OPTION}, {"cpu_gemm"}));
  }
  const bool have_blas = std::string(pimoe_build_info()).find("openblas") != std::string::npos;
  OptionsPtr o = small_options();
  PIMOE_ASSERT_OK(pimoe_options_set_string(o.get(), PIMOE_OPT_CPU_GEMM, "openblas"));
  pimoe_model *m = sentinel_model();
  if (!have_blas) {
    EXPECT_TRUE(failed_with(pimoe_create(o.get(), &m), {PIMOE_ERR_BACKEND_UNAVAILABLE}, {"cpu_gemm", "OpenBLAS"}));
    EXPECT_EQ(m, sentinel_model());
    return;
  }
  // OpenBLAS cannot keep the deterministic promise: asking for both fails at create, naming both.
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_DETERMINISTIC, 1));
  EXPECT_TRUE(failed_with(pimoe_create(o.get(), &m), {PIMOE_ERR_INVALID_OPTION}, {"deterministic", "packed"}));
  EXPECT_EQ(m, sentinel_model());
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_DETERMINISTIC, 0));
  PIMOE_ASSERT_OK(pimoe_create(o.get(), &m));
  pimoe_destroy(m);
}

