// SPDX-License-Identifier: MIT
// Allocation failure on the four entry points that allocate: pimoe_create, pimoe_load, pimoe_import_hf and
// pimoe_forward. tests/faults/alloc_injector.cpp fails the N-th allocation (operator new, and libpimoe's anonymous
// mappings); every entry point is swept over N = 1, 2, 3, ... until the call completes without needing the N-th
// allocation. The rule pinned at every N:
//   - the armed failure was delivered  =>  the call returns PIMOE_ERR_OUT_OF_MEMORY, pimoe_last_error() says
//     "out of memory" (or names what it could not allocate), and the out-parameter is untouched;
//   - it was not delivered (the call needed fewer than N allocations)  =>  the call succeeds; the sweep ends there;
//   - nothing leaks: the blocks the program holds after a failed create/load/import equal those before it, and after
//     each sweep LeakSanitizer (in the ASan build) finds nothing unreachable;
//   - after a failed forward the model is unchanged and usable: its statistics count no call, and a normal forward
//     gives output and routing bit-identical to an identical model's first forward.
// Two modes: the N-th allocation fails once (the later ones succeed: the library's cleanup and error reporting run
// with memory), and every allocation from the N-th on fails (memory stays exhausted while the error is reported).
#include "api/api_test_util.h"
#include "faults/alloc_injector.h"

#include <pimoe/pimoe.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <unistd.h>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define PIMOE_TEST_HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PIMOE_TEST_HAVE_LSAN 1
#endif
#endif
#ifdef PIMOE_TEST_HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

using namespace pimoe_test;

namespace {

// A pointer value no successful call returns: a failed call must leave it in place.
pimoe_model *const kUntouched = reinterpret_cast<pimoe_model *>(static_cast<uintptr_t>(0x5a5a5a5a));
constexpr int64_t kMaxAllocations = 200000;  // a sweep that gets here is in a loop, not a long call
constexpr int64_t kH = 32, kK = 2;

enum class Mode { Once, FromThenOn };
const char *mode_name(Mode m) { return m == Mode::Once ? "N-th fails once" : "N-th and every later one fail"; }

std::string layer_option(const char *key, const char *value) { return std::string(key) + "=" + value; }

OptionsPtr layer_options(int64_t threads, const std::vector<std::pair<const char *, const char *>> &extra) {
  SmallConfig c;
  c.hidden = kH;
  c.top_k = kK;
  c.intermediate = 48;
  c.threads = threads;
  OptionsPtr o = small_options(c);
  for (const auto &kv : extra)
    EXPECT_EQ(pimoe_options_set_by_name(o.get(), kv.first, kv.second), PIMOE_OK) << layer_option(kv.first, kv.second);
  return o;
}

// Whether the thread's message after an injected failure says what happened.
bool says_out_of_memory(const std::string &message) {
  return contains(message, "out of memory") || contains(message, "cannot map") || contains(message, "cannot allocate");
}

void expect_no_leak(const std::string &what) {
#ifdef PIMOE_TEST_HAVE_LSAN
  EXPECT_EQ(__lsan_do_recoverable_leak_check(), 0) << what << ": LeakSanitizer found unreachable memory (above)";
#else
  (void)what;
#endif
}

// Grows this thread's error message buffer beyond any message of an injected failure, so that the message a failed
// call leaves (kept per thread until the next call, by design) reuses it and the heap-block count compares exactly.
void reserve_thread_message() {
  OptionsPtr o = make_options();
  const std::string key(300, 'k');
  EXPECT_EQ(pimoe_options_set_by_name(o.get(), key.c_str(), "1"), PIMOE_ERR_UNKNOWN_OPTION);
}

struct Attempt {
  pimoe_status status;
  bool delivered;
  std::string message;
  pimoe_model *out;
  int64_t blocks_left;  // heap blocks held after the call that were not before it
};

Attempt attempt(int64_t n, Mode mode, const std::function<pimoe_status(pimoe_model **)> &call) {
  Attempt a{PIMOE_ERR_INTERNAL, false, "", kUntouched, 0};
  reserve_thread_message();
  const int64_t live_before = live_blocks();
  arm_allocation_failure(n, mode == Mode::FromThenOn);
  a.status = call(&a.out);
  a.delivered = disarm_allocation_failure();
  if (a.status == PIMOE_OK) pimoe_destroy(a.out);
  a.blocks_left = live_blocks() - live_before;  // counted before the message is copied into a.message
  a.message = pimoe_last_error();
  return a;
}

// Sweeps one model-making call (create, load, import) over N; returns the allocations it needs.
// `expected` is the call's status without an injected failure: PIMOE_OK, or the status of an input it must reject
// (the error path under memory pressure: every N gives that status or PIMOE_ERR_OUT_OF_MEMORY).
int64_t sweep_model_call(const std::string &what, Mode mode, const std::function<pimoe_status(pimoe_model **)> &call,
                         pimoe_status expected = PIMOE_OK) {
  SCOPED_TRACE(what + ", " + mode_name(mode));
  int64_t failures = 0;
  for (int64_t n = 1; n <= kMaxAllocations; ++n) {
    Attempt a = attempt(n, mode, call);
    // A block left by the first call that got this far may be a function-local static of the library or of the C++
    // runtime, built once on first use: the same N again must leave nothing.
    if (a.delivered && a.blocks_left != 0) a = attempt(n, mode, call);
    if (!a.delivered) {
      EXPECT_EQ(a.status, expected) << "N=" << n << " (no failure injected): " << a.message;
      expect_no_leak(what);
      std::printf("[ info ] %s, %s: %lld allocations, %lld failed calls\n", what.c_str(), mode_name(mode),
                  static_cast<long long>(n - 1), static_cast<long long>(failures));
      return n - 1;
    }
    ++failures;
    if (expected == PIMOE_OK || a.status != expected) {
      EXPECT_EQ(a.status, PIMOE_ERR_OUT_OF_MEMORY) << "N=" << n << ": " << describe(a.status) << " " << a.message;
      EXPECT_TRUE(says_out_of_memory(a.message)) << "N=" << n << ": message \"" << a.message << "\"";
    } else {
      EXPECT_FALSE(a.message.empty()) << "N=" << n;
    }
    EXPECT_EQ(a.out, kUntouched) << "N=" << n << ": the out-parameter was written by a failed call";
    EXPECT_EQ(a.blocks_left, 0) << "N=" << n << ": heap blocks left behind by the failed call (twice)";
    if (::testing::Test::HasFailure()) return -1;  // one broken N is enough to read
  }
  ADD_FAILURE() << what << " still allocating after " << kMaxAllocations << " allocations";
  return -1;
}

struct ForwardCase {
  const char *name;
  int64_t threads;
  std::vector<std::pair<const char *, const char *>> layer;
  int64_t tokens;
  bool routing;
};

// Sweeps the first forward of a fresh model (which sizes its workspace) over N.
void sweep_forward(const ForwardCase &fc, Mode mode) {
  SCOPED_TRACE(std::string("forward ") + fc.name + ", " + mode_name(mode));
  OptionsPtr o = layer_options(fc.threads, fc.layer);
  const std::vector<float> input = random_input(static_cast<size_t>(fc.tokens * kH), 77);
  ForwardResult ref;
  {
    ModelPtr reference = create_model(o.get());
    ASSERT_NE(reference, nullptr);
    ref = forward(reference.get(), input, 1, fc.tokens, kH, kK, fc.routing);
    ASSERT_EQ(ref.status, PIMOE_OK) << last_error();
  }
  std::vector<float> output(input.size());
  std::vector<int32_t> ids(static_cast<size_t>(fc.tokens * kK));
  std::vector<float> weights(ids.size());
  int64_t failures = 0;
  for (int64_t n = 1; n <= kMaxAllocations; ++n) {
    ModelPtr m = create_model(o.get());
    ASSERT_NE(m, nullptr);
    arm_allocation_failure(n, mode == Mode::FromThenOn);
    const pimoe_status s =
        pimoe_forward(m.get(), input.data(), input.size(), 1, fc.tokens, output.data(), output.size(),
                      fc.routing ? ids.data() : nullptr, fc.routing ? weights.data() : nullptr,
                      fc.routing ? ids.size() : 0);
    const bool delivered = disarm_allocation_failure();
    const std::string message = pimoe_last_error();
    if (!delivered) {
      EXPECT_EQ(s, PIMOE_OK) << "N=" << n << " (no failure injected): " << message;
      EXPECT_TRUE(bitwise_equal(output, ref.output));
      m.reset();
      expect_no_leak(fc.name);
      std::printf("[ info ] forward %s, %s: %lld allocations, %lld failed calls\n", fc.name, mode_name(mode),
                  static_cast<long long>(n - 1), static_cast<long long>(failures));
      return;
    }
    ++failures;
    EXPECT_EQ(s, PIMOE_ERR_OUT_OF_MEMORY) << "N=" << n << ": " << describe(s) << " " << message;
    EXPECT_TRUE(says_out_of_memory(message)) << "N=" << n << ": message \"" << message << "\"";
    EXPECT_TRUE(says_out_of_memory(pimoe_model_last_error(m.get()))) << "N=" << n;
    EXPECT_EQ(get_stats(m.get()).forward_calls, 0u) << "N=" << n << ": a failed forward was counted";
    // Still usable, and unchanged: the same result as an identical model's first forward.
    const ForwardResult after = forward(m.get(), input, 1, fc.tokens, kH, kK, fc.routing);
    EXPECT_EQ(after.status, PIMOE_OK) << "N=" << n << ": " << last_error();
    EXPECT_TRUE(bitwise_equal(after.output, ref.output)) << "N=" << n << ": output differs after the failure";
    if (fc.routing) {
      EXPECT_EQ(after.ids, ref.ids) << "N=" << n;
      EXPECT_TRUE(bitwise_equal(after.weights, ref.weights)) << "N=" << n;
    }
    EXPECT_EQ(get_stats(m.get()).forward_calls, 1u) << "N=" << n;
    if (::testing::Test::HasFailure()) return;
  }
  ADD_FAILURE() << fc.name << " still allocating after " << kMaxAllocations << " allocations";
}

struct TempFile {
  std::string path;
  TempFile() {
    char name[] = "/tmp/pimoe_alloc_failure_XXXXXX";
    const int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    if (fd >= 0) close(fd);
    path = name;
  }
  ~TempFile() { std::remove(path.c_str()); }
};

const std::vector<std::pair<const char *, const char *>> kSharedExpert = {{"shared_width", "40"}};
const std::vector<std::pair<const char *, const char *>> kInt4 = {{"weight_dtype", "int4"}, {"shared_width", "40"}};

class AllocationFailure : public ::testing::TestWithParam<Mode> {};

}  // namespace

TEST_P(AllocationFailure, Create) {
  const int64_t mappings_before = failed_mappings();
  for (int64_t threads : {1, 2}) {
    OptionsPtr fp32 = layer_options(threads, kSharedExpert), int4 = layer_options(threads, kInt4);
    const std::string t = " threads=" + std::to_string(threads);
    EXPECT_GT(sweep_model_call("create fp32" + t, GetParam(),
                               [&](pimoe_model **out) { return pimoe_create(fp32.get(), out); }), 0);
    EXPECT_GT(sweep_model_call("create int4" + t, GetParam(),
                               [&](pimoe_model **out) { return pimoe_create(int4.get(), out); }), 0);
  }
  // The weight arena's mapping was among the failed allocations: the mmap path is covered, not only operator new.
  EXPECT_GT(failed_mappings(), mappings_before);
}

TEST_P(AllocationFailure, Load) {
  for (const auto *layer : {&kSharedExpert, &kInt4}) {
    TempFile file;
    {
      // 4 experts: a load's allocations grow with the tensors, and the sweep's time with their square.
      std::vector<std::pair<const char *, const char *>> settings = *layer;
      settings.emplace_back("num_experts", "4");
      OptionsPtr o = layer_options(1, settings);
      ModelPtr m = create_model(o.get());
      ASSERT_NE(m, nullptr);
      ASSERT_EQ(pimoe_save(m.get(), file.path.c_str()), PIMOE_OK) << last_error();
    }
    OptionsPtr runtime = make_options();
    ASSERT_EQ(pimoe_options_set_string(runtime.get(), PIMOE_OPT_BACKEND, "cpu"), PIMOE_OK);
    ASSERT_EQ(pimoe_options_set_int(runtime.get(), PIMOE_OPT_THREADS, 1), PIMOE_OK);
    EXPECT_GT(sweep_model_call(layer == &kInt4 ? "load int4" : "load fp32 + shared expert", GetParam(),
                               [&](pimoe_model **out) { return pimoe_load(file.path.c_str(), runtime.get(), out); }),
              0);
  }
}

TEST_P(AllocationFailure, ImportHuggingFace) {
  OptionsPtr runtime = make_options();
  ASSERT_EQ(pimoe_options_set_string(runtime.get(), PIMOE_OPT_BACKEND, "cpu"), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_int(runtime.get(), PIMOE_OPT_THREADS, 1), PIMOE_OK);
  // BF16 weights converted (OLMoE), a sharded checkpoint with a shared expert behind a sigmoid gate (Qwen2-MoE), and
  // MXFP4 experts kept compact straight from the file with the router's bias (gpt-oss). (DeepSeek-V3's FP8 checkpoint
  // needs 3207 allocations: its sweep alone would take longer than the rest under ASan.)
  for (const char *family : {"olmoe", "qwen2_moe", "gpt_oss"}) {
    const std::string dir = std::string(PIMOE_HF_FIXTURE_DIR) + "/" + family;
    EXPECT_GT(sweep_model_call(std::string("import ") + family, GetParam(),
                               [&](pimoe_model **out) { return pimoe_import_hf(dir.c_str(), 1, runtime.get(), out); }),
              0);
  }
}

// The error paths under memory pressure: calls that must fail on their input fail with that status, or with
// PIMOE_ERR_OUT_OF_MEMORY, at every N; building and recording the message never terminates the process.
TEST_P(AllocationFailure, ErrorPaths) {
  OptionsPtr runtime = make_options();
  ASSERT_EQ(pimoe_options_set_string(runtime.get(), PIMOE_OPT_BACKEND, "cpu"), PIMOE_OK);
  const std::string olmoe = std::string(PIMOE_HF_FIXTURE_DIR) + "/olmoe";
  // Layer 0 of the fixture has no tensors (it holds decoder layer 1 only): FORMAT, naming the missing tensor.
  EXPECT_GT(sweep_model_call("import of a missing layer", GetParam(),
                             [&](pimoe_model **out) { return pimoe_import_hf(olmoe.c_str(), 0, runtime.get(), out); },
                             PIMOE_ERR_FORMAT),
            0);
  // A safetensors file that is not a native file (no pimoe metadata): FORMAT.
  const std::string expected = olmoe + "/expected.safetensors";
  EXPECT_GT(sweep_model_call("load of a foreign safetensors file", GetParam(),
                             [&](pimoe_model **out) { return pimoe_load(expected.c_str(), runtime.get(), out); },
                             PIMOE_ERR_FORMAT),
            0);
  // An option out of range: INVALID_OPTION from create, after the layer's options were resolved.
  OptionsPtr bad = layer_options(1, {{"top_k", "9"}});
  EXPECT_GE(sweep_model_call("create with top_k > num_experts", GetParam(),
                             [&](pimoe_model **out) { return pimoe_create(bad.get(), out); }, PIMOE_ERR_INVALID_OPTION),
            0);
}

TEST_P(AllocationFailure, Forward) {
  const std::vector<ForwardCase> cases = {
      {"fp32 threads=1", 1, kSharedExpert, 9, false},
      {"fp32 threads=2 routing", 2, kSharedExpert, 9, true},
      {"int4 threads=2", 2, kInt4, 5, true},
      {"adaptive bias threads=1", 1, {{"adaptive_bias_rate", "0.01"}}, 9, true},
  };
  for (const ForwardCase &fc : cases) sweep_forward(fc, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Modes, AllocationFailure, ::testing::Values(Mode::Once, Mode::FromThenOn),
                         [](const ::testing::TestParamInfo<Mode> &param) {
                           return param.param == Mode::Once ? std::string("Once") : std::string("FromThenOn");
                         });
