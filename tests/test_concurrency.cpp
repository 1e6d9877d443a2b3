// SPDX-License-Identifier: MIT
// Threading contract (top of pimoe.h): one model handle shared by many threads, pimoe_forward concurrent with
// itself and with every read-only call; statistics updated under a lock; reset atomic with respect to forwards; and
// the whole API mix on one handle at once (forwards, statistics and their reset, save, the adaptive state's reads and
// reset, read-only queries, and pimoe_model_set_expert_callback kept apart from forwards only, as its contract asks).
// Kept small so that it runs under ThreadSanitizer (PIMOE_SANITIZE=thread) in well under a minute.
#include "api/api_test_util.h"

#include <pimoe/pimoe.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cmath>
#include <unistd.h>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

using namespace pimoe_test;

namespace {

constexpr int64_t kH = 32, kE = 8, kK = 2, kI = 64;
constexpr int kThreads = 8;

struct Case {
  int64_t batch, seq;
  std::vector<float> input;
  ForwardResult ref;  // single-threaded result
};

ModelPtr make_model(int64_t seed, int64_t threads) {
  SmallConfig c;
  c.hidden = kH;
  c.experts = kE;
  c.top_k = kK;
  c.intermediate = kI;
  c.seed = seed;
  c.threads = threads;
  return small_model(c);
}

std::vector<Case> make_cases(pimoe_model *m) {
  const int64_t shapes[][2] = {{1, 1}, {1, 2}, {3, 1}, {1, 4}, {1, 5}, {1, 7}, {2, 4},
                               {1, 11}, {4, 4}, {1, 17}, {3, 8}, {1, 33}};
  std::vector<Case> cases;
  uint64_t seed = 1000;
  for (auto &s : shapes) {
    Case c;
    c.batch = s[0];
    c.seq = s[1];
    c.input = random_input(static_cast<size_t>(s[0] * s[1] * kH), seed++);
    c.ref = forward(m, c.input, c.batch, c.seq, kH, kK, true);
    EXPECT_EQ(c.ref.status, PIMOE_OK) << last_error();
    cases.push_back(std::move(c));
  }
  return cases;
}

// Collects the first few mismatches from worker threads (gtest assertions are thread-safe on Linux, but a single
// summarised failure is easier to read).
struct Failures {
  std::atomic<int> count{0};
  std::mutex mu;
  std::string first;
  void add(const std::string &what) {
    if (count.fetch_add(1) < 5) {
      std::lock_guard<std::mutex> lock(mu);
      first += what + "\n";
    }
  }
};

void check_against_ref(pimoe_model *m, const Case &c, bool routing, Failures &f, int tid, int it) {
  ForwardResult r = forward(m, c.input, c.batch, c.seq, kH, kK, routing);
  const std::string where = "thread " + std::to_string(tid) + " iter " + std::to_string(it) + " tokens " +
                            std::to_string(c.batch * c.seq);
  if (r.status != PIMOE_OK) {
    f.add(where + ": status " + std::to_string(r.status) + " " + last_error());
    return;
  }
  if (!bitwise_equal(r.output, c.ref.output)) f.add(where + ": output differs from the single-threaded result");
  if (routing && (r.ids != c.ref.ids || !bitwise_equal(r.weights, c.ref.weights)))
    f.add(where + ": routing differs from the single-threaded result");
}

}  // namespace

TEST(Concurrency, SharedHandleForwardsMatchSingleThreadedResults) {
  for (int64_t pool_threads : {1, 2}) {
    SCOPED_TRACE("model threads option = " + std::to_string(pool_threads));
    ModelPtr m = make_model(5, pool_threads);
    ASSERT_NE(m, nullptr);
    const std::vector<Case> cases = make_cases(m.get());
    uint64_t expect_calls = cases.size(), expect_tokens = 0;
    for (const Case &c : cases) expect_tokens += static_cast<uint64_t>(c.batch * c.seq);

    constexpr int kIters = 30;
    Failures f;
    std::vector<std::thread> pool;
    for (int tid = 0; tid < kThreads; ++tid)
      pool.emplace_back([&, tid] {
        for (int it = 0; it < kIters; ++it) {
          const Case &c = cases[(tid * 5 + it * 7) % cases.size()];
          check_against_ref(m.get(), c, (tid + it) % 2 == 0, f, tid, it);
        }
      });
    for (std::thread &t : pool) t.join();
    EXPECT_EQ(f.count.load(), 0) << f.first;

    for (int tid = 0; tid < kThreads; ++tid)
      for (int it = 0; it < kIters; ++it) {
        const Case &c = cases[(tid * 5 + it * 7) % cases.size()];
        expect_tokens += static_cast<uint64_t>(c.batch * c.seq);
        ++expect_calls;
      }
    // No reset: every call counted exactly once.
    pimoe_stats_snapshot s = get_stats(m.get());
    EXPECT_EQ(s.forward_calls, expect_calls);
    EXPECT_EQ(s.tokens, expect_tokens);
    std::vector<uint64_t> loads(kE);
    PIMOE_ASSERT_OK(pimoe_stats_expert_loads(m.get(), loads.data(), loads.size()));
    uint64_t total = 0;
    for (uint64_t l : loads) total += l;
    EXPECT_EQ(total, expect_tokens * kK);
  }
}

TEST(Concurrency, StatsReadsResetsAndTensorReadsWhileForwarding) {
  ModelPtr m = make_model(6, 2);
  ASSERT_NE(m, nullptr);
  const std::vector<Case> cases = make_cases(m.get());
  const std::vector<float> router_ref = read_tensor(m.get(), "router.weight");

  constexpr int kForwarders = 6, kIters = 25;
  std::atomic<int> running{kForwarders};
  Failures f;
  std::vector<std::thread> pool;
  for (int tid = 0; tid < kForwarders; ++tid)
    pool.emplace_back([&, tid] {
      for (int it = 0; it < kIters; ++it) check_against_ref(m.get(), cases[(tid + it * 3) % cases.size()], it % 2, f, tid, it);
      running.fetch_sub(1);
    });
  // Statistics reader and resetter.
  std::atomic<int> resets{0}, reads{0};
  pool.emplace_back([&] {
    std::vector<uint64_t> loads(kE);
    do {
      pimoe_stats_snapshot s;
      std::memset(&s, 0, sizeof s);
      s.struct_size = sizeof s;
      if (pimoe_stats(m.get(), &s) != PIMOE_OK) f.add("pimoe_stats failed: " + last_error());
      // One snapshot is consistent: every call has at least one token, dropless top-k.
      if (s.tokens < s.forward_calls) f.add("snapshot with fewer tokens than calls");
      if (s.num_experts != kE) f.add("snapshot num_experts wrong");
      if (s.latency_p50_ms > s.latency_p99_ms) f.add("snapshot with p50 > p99");
      if (pimoe_stats_expert_loads(m.get(), loads.data(), loads.size()) != PIMOE_OK)
        f.add("expert_loads failed: " + last_error());
      if (reads.fetch_add(1) % 4 == 3) {
        if (pimoe_stats_reset(m.get()) != PIMOE_OK) f.add("stats_reset failed: " + last_error());
        resets.fetch_add(1);
      }
      std::this_thread::yield();
    } while (running.load() > 0);
  });
  // Read-only model queries.
  pool.emplace_back([&] {
    do {
      std::vector<float> w(router_ref.size());
      if (pimoe_tensor_read(m.get(), "router.weight", w.data(), w.size()) != PIMOE_OK || !bitwise_equal(w, router_ref))
        f.add("concurrent tensor_read differs");
      int64_t h = 0;
      int32_t e = 0, k = 0;
      if (pimoe_model_dims(m.get(), &h, &e, &k) != PIMOE_OK || h != kH || e != kE || k != kK)
        f.add("concurrent model_dims wrong");
      if (pimoe_tensor_count(m.get()) != 1 + 2 * kE) f.add("concurrent tensor_count wrong");
      std::this_thread::yield();
    } while (running.load() > 0);
  });
  for (std::thread &t : pool) t.join();
  EXPECT_EQ(f.count.load(), 0) << f.first;
  EXPECT_GT(reads.load(), 0);

  // Forwards land before or after a reset, never half: loads and token counts agree.
  pimoe_stats_snapshot s = get_stats(m.get());
  std::vector<uint64_t> loads(kE);
  PIMOE_ASSERT_OK(pimoe_stats_expert_loads(m.get(), loads.data(), loads.size()));
  uint64_t total = 0;
  for (uint64_t l : loads) total += l;
  EXPECT_EQ(total, s.tokens * kK);
  EXPECT_LE(s.forward_calls, static_cast<uint64_t>(cases.size() + kForwarders * kIters));
  std::printf("[ info ] %d stats reads, %d resets during the forwards\n", reads.load(), resets.load());

  // After a final reset and quiescence, counts restart from zero.
  PIMOE_ASSERT_OK(pimoe_stats_reset(m.get()));
  ForwardResult r = forward(m.get(), cases[0].input, cases[0].batch, cases[0].seq, kH, kK, false);
  ASSERT_EQ(r.status, PIMOE_OK);
  s = get_stats(m.get());
  EXPECT_EQ(s.forward_calls, 1u);
  EXPECT_EQ(s.tokens, static_cast<uint64_t>(cases[0].batch * cases[0].seq));
}

TEST(Concurrency, ErrorsOnSomeThreadsDoNotDisturbOthers) {
  ModelPtr m = make_model(7, 2);
  ASSERT_NE(m, nullptr);
  const std::vector<Case> cases = make_cases(m.get());
  Failures f;
  std::vector<std::thread> pool;
  for (int tid = 0; tid < 4; ++tid)
    pool.emplace_back([&, tid] {
      for (int it = 0; it < 20; ++it) {
        const Case &c = cases[(tid * 3 + it) % cases.size()];
        if (tid % 2 == 0) {
          check_against_ref(m.get(), c, true, f, tid, it);
          if (std::strcmp(pimoe_last_error(), "") != 0) f.add("successful forward left a message on its thread");
        } else {
          std::vector<float> out(c.input.size());
          std::vector<float> bad = c.input;
          bad[bad.size() / 2] = std::numeric_limits<float>::quiet_NaN();
          pimoe_status s = pimoe_forward(m.get(), bad.data(), bad.size(), c.batch, c.seq, out.data(), out.size(),
                                         nullptr, nullptr, 0);
          if (s != PIMOE_ERR_NON_FINITE_INPUT) f.add("bad forward: status " + std::to_string(s));
          if (!contains(last_error(), std::to_string(bad.size() / 2)))
            f.add("bad forward: message \"" + last_error() + "\" does not name element " +
                  std::to_string(bad.size() / 2));
        }
      }
    });
  for (std::thread &t : pool) t.join();
  EXPECT_EQ(f.count.load(), 0) << f.first;
  // Only the good calls were counted.
  pimoe_stats_snapshot s = get_stats(m.get());
  EXPECT_EQ(s.forward_calls, cases.size() + 2u * 20u);
  std::string me = pimoe_model_last_error(m.get());
  EXPECT_TRUE(contains(lower(me), "nan")) << me;
}

TEST(Concurrency, IndependentModelsCreatedOnManyThreads) {
  // Global state (backend registry, thread pools, error slots) under concurrent create/forward/destroy.
  std::vector<ForwardResult> refs;
  const std::vector<float> input = random_input(9 * kH, 42);
  for (int tid = 0; tid < 4; ++tid) {
    ModelPtr m = make_model(100 + tid, 1 + tid % 2);
    ASSERT_NE(m, nullptr);
    refs.push_back(forward(m.get(), input, 1, 9, kH, kK, true));
    ASSERT_EQ(refs.back().status, PIMOE_OK);
  }
  Failures f;
  std::vector<std::thread> pool;
  for (int tid = 0; tid < 4; ++tid)
    pool.emplace_back([&, tid] {
      for (int it = 0; it < 4; ++it) {
        SmallConfig c;
        c.hidden = kH;
        c.experts = kE;
        c.top_k = kK;
        c.intermediate = kI;
        c.seed = 100 + tid;
        c.threads = 1 + tid % 2;
        pimoe_options *o = nullptr;
        pimoe_model *m = nullptr;
        if (pimoe_options_create(&o) != PIMOE_OK) {
          f.add("options_create failed");
          continue;
        }
        pimoe_options_set_int(o, PIMOE_OPT_HIDDEN, c.hidden);
        pimoe_options_set_int(o, PIMOE_OPT_NUM_EXPERTS, c.experts);
        pimoe_options_set_int(o, PIMOE_OPT_TOP_K, c.top_k);
        pimoe_options_set_int(o, PIMOE_OPT_INTERMEDIATE, c.intermediate);
        pimoe_options_set_int(o, PIMOE_OPT_SEED, c.seed);
        pimoe_options_set_int(o, PIMOE_OPT_THREADS, c.threads);
        pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cpu");
        const pimoe_status s = pimoe_create(o, &m);
        pimoe_options_destroy(o);
        if (s != PIMOE_OK) {
          f.add("create failed: " + last_error());
          continue;
        }
        ForwardResult r = forward(m, input, 1, 9, kH, kK, true);
        if (r.status != PIMOE_OK || !bitwise_equal(r.output, refs[tid].output) || r.ids != refs[tid].ids)
          f.add("thread " + std::to_string(tid) + ": result differs from the same model built alone");
        pimoe_destroy(m);
      }
    });
  for (std::thread &t : pool) t.join();
  EXPECT_EQ(f.count.load(), 0) << f.first;
}

namespace {

// Callback expert functions for the API mix: thread-safe (they touch only their counter), and the same arithmetic,
// so a forward gives the same result whichever is set.
std::atomic<int> g_callback_a{0}, g_callback_b{0};
int halve(const float *input, int64_t rows, int64_t hidden, float *output) {
  for (int64_t i = 0; i < rows * hidden; ++i) output[i] = 0.5f * input[i];
  return 0;
}
int callback_a(void *, int32_t, const float *input, int64_t rows, int64_t hidden, float *output) {
  g_callback_a.fetch_add(1);
  return halve(input, rows, hidden, output);
}
int callback_b(void *, int32_t, const float *input, int64_t rows, int64_t hidden, float *output) {
  g_callback_b.fetch_add(1);
  return halve(input, rows, hidden, output);
}

bool all_finite(const std::vector<float> &v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

}  // namespace

// Every call pimoe.h allows on one handle at the same time, at once: forwards (plain, with routing, with the full
// routing), pimoe_stats / expert loads / reset, pimoe_save (and a load of what it wrote, on another handle), the
// adaptive state's reads and reset, the read-only queries; and pimoe_model_set_expert_callback, which must not race
// with pimoe_forward only: the forwarders hold a shared gate per call, the callback setter takes it exclusively,
// every other thread ignores it. Every call succeeds, outputs are finite, saved files load and run, and the
// statistics agree with themselves at the end.
TEST(Concurrency, FullApiMixOnOneHandle) {
  OptionsPtr o = small_options([] {
    SmallConfig c;
    c.hidden = kH;
    c.experts = kE;
    c.top_k = kK;
    c.intermediate = kI;
    c.seed = 9;
    c.threads = 2;
    return c;
  }());
  for (const auto &kv : std::vector<std::pair<const char *, const char *>>{{"shared_width", "48"},
                                                                          {"adaptive_bias_rate", "0.01"},
                                                                          {"capacity_factor", "1.5"},
                                                                          {"dynamic_capacity", "1"}})
    PIMOE_ASSERT_OK(pimoe_options_set_by_name(o.get(), kv.first, kv.second));
  constexpr int32_t kCallbackExpert = kE - 1;
  PIMOE_ASSERT_OK(pimoe_options_set_expert_callback(o.get(), kCallbackExpert, callback_a, nullptr));
  ModelPtr m = create_model(o.get());
  ASSERT_NE(m, nullptr);
  OptionsPtr runtime = small_options(SmallConfig());  // backend cpu, threads 1 for the loaded copies
  char path[] = "/tmp/pimoe_concurrency_mix_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);

  constexpr int kForwarders = 3, kIters = 16;
  std::shared_mutex forward_gate;  // shared per forward, exclusive for pimoe_model_set_expert_callback
  std::atomic<bool> swap_wanted{false};  // forwarders step aside while set (a reader-preferring lock starves writers)
  std::atomic<int> running{kForwarders};
  std::atomic<uint64_t> good_calls{0}, calls{0};
  std::atomic<int> stats_reads{0}, saves{0}, adaptive_resets{0}, swaps{0};
  Failures f;
  // Forwarders go on past kIters until every other kind of call has overlapped them a few times (bounded, and
  // cut short by a failure), so that the mix really is concurrent however the threads are scheduled.
  auto overlapped = [&] { return saves.load() >= 2 && swaps.load() >= 3 && stats_reads.load() >= 3; };
  std::vector<std::thread> pool;
  for (int tid = 0; tid < kForwarders; ++tid)
    pool.emplace_back([&, tid] {
      for (int it = 0; it < kIters || (!overlapped() && f.count.load() == 0 && it < 100 * kIters); ++it) {
        calls.fetch_add(1);
        const int64_t seq = 1 + (tid * 7 + it * 5) % 24;
        const std::vector<float> x = random_input(static_cast<size_t>(seq * kH), 500 + tid * 100 + it);
        std::vector<float> y(x.size()), probabilities(static_cast<size_t>(seq * kE)), weights(seq * kK);
        std::vector<int32_t> ids(seq * kK);
        while (swap_wanted.load()) std::this_thread::yield();
        std::shared_lock<std::shared_mutex> gate(forward_gate);
        pimoe_status s;
        if (it % 3 == 2) {
          pimoe_routing r;
          std::memset(&r, 0, sizeof r);
          r.struct_size = sizeof r;
          r.probabilities = probabilities.data();
          r.probability_count = probabilities.size();
          s = pimoe_forward_routing(m.get(), x.data(), x.size(), 1, seq, y.data(), y.size(), &r);
        } else {
          const bool routing = it % 3 == 1;
          s = pimoe_forward(m.get(), x.data(), x.size(), 1, seq, y.data(), y.size(), routing ? ids.data() : nullptr,
                            routing ? weights.data() : nullptr, routing ? ids.size() : 0);
        }
        if (s != PIMOE_OK) f.add("forward: " + describe(s) + " " + last_error());
        else if (!all_finite(y)) f.add("forward: non-finite output");
        else good_calls.fetch_add(1);
      }
      running.fetch_sub(1);
    });
  pool.emplace_back([&] {  // statistics, read and reset
    std::vector<uint64_t> loads(kE);
    do {
      pimoe_stats_snapshot s;
      std::memset(&s, 0, sizeof s);
      s.struct_size = sizeof s;
      if (pimoe_stats(m.get(), &s) != PIMOE_OK) f.add("stats: " + last_error());
      if (pimoe_stats_expert_loads(m.get(), loads.data(), loads.size()) != PIMOE_OK) f.add("loads: " + last_error());
      if (stats_reads.fetch_add(1) % 3 == 2 && pimoe_stats_reset(m.get()) != PIMOE_OK) f.add("reset: " + last_error());
      std::this_thread::yield();
    } while (running.load() > 0);
  });
  pool.emplace_back([&] {  // save, and the saved file loads and runs on another handle
    do {
      if (pimoe_save(m.get(), path) != PIMOE_OK) {
        f.add("save: " + last_error());
        break;
      }
      pimoe_model *loaded = nullptr;
      if (pimoe_load(path, runtime.get(), &loaded) != PIMOE_OK) {
        f.add("load of a file saved during forwards: " + last_error());
        break;
      }
      ModelPtr copy(loaded);
      if (pimoe_model_set_expert_callback(loaded, kCallbackExpert, callback_b, nullptr) != PIMOE_OK)
        f.add("set callback on the loaded copy: " + last_error());
      const std::vector<float> x = random_input(5 * kH, 9000);
      if (forward(loaded, x, 1, 5, kH, kK, true).status != PIMOE_OK) f.add("forward on the loaded copy: " + last_error());
      saves.fetch_add(1);
    } while (running.load() > 0);
  });
  pool.emplace_back([&] {  // the adaptive state: read and reset (thread-safe per pimoe_model.h)
    std::vector<float> bias(kE), ema(kE);
    do {
      if (pimoe_tensor_read(m.get(), "router.selection_bias", bias.data(), bias.size()) != PIMOE_OK ||
          pimoe_tensor_read(m.get(), "router.load_ema", ema.data(), ema.size()) != PIMOE_OK)
        f.add("adaptive state read: " + last_error());
      if (!all_finite(bias) || !all_finite(ema)) f.add("adaptive state not finite");
      if (adaptive_resets.fetch_add(1) % 2 == 1 && pimoe_model_reset_adaptive_state(m.get()) != PIMOE_OK)
        f.add("reset_adaptive_state: " + last_error());
      std::this_thread::yield();
    } while (running.load() > 0);
  });
  pool.emplace_back([&] {  // read-only queries
    do {
      int64_t h = 0, width = -1;
      int32_t e = 0, k = 0, pre_norm = -1, ndim = 0;
      int64_t dims[8];
      pimoe_activation act;
      if (pimoe_model_dims(m.get(), &h, &e, &k) != PIMOE_OK || h != kH || e != kE || k != kK)
        f.add("model_dims wrong");
      if (pimoe_model_expert(m.get(), kCallbackExpert, &act, &width, &pre_norm) != PIMOE_OK || width != 0)
        f.add("model_expert of the callback expert wrong");
      if (std::strcmp(pimoe_model_backend(m.get()), "cpu") != 0) f.add("model_backend wrong");
      if (pimoe_model_routing_slots(m.get()) != kK) f.add("routing_slots wrong");
      const int64_t n = pimoe_tensor_count(m.get());
      for (int64_t i = 0; i < n; ++i)
        if (pimoe_tensor_shape(m.get(), pimoe_tensor_name(m.get(), i), &ndim, dims) != PIMOE_OK)
          f.add("tensor_shape: " + last_error());
      (void)pimoe_model_last_error(m.get());
      std::this_thread::yield();
    } while (running.load() > 0);
  });
  // This thread: swap the callback function while no forward runs (the other threads go on).
  while (running.load() > 0) {
    {
      swap_wanted = true;
      std::unique_lock<std::shared_mutex> gate(forward_gate);
      swap_wanted = false;
      const pimoe_expert_fn fn = swaps.load() % 2 == 0 ? callback_b : callback_a;
      if (pimoe_model_set_expert_callback(m.get(), kCallbackExpert, fn, nullptr) != PIMOE_OK)
        f.add("set_expert_callback: " + last_error());
      swaps.fetch_add(1);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  for (std::thread &t : pool) t.join();
  std::remove(path);
  EXPECT_EQ(f.count.load(), 0) << f.first;
  EXPECT_EQ(good_calls.load(), calls.load());
  EXPECT_TRUE(overlapped()) << saves.load() << " saves, " << swaps.load() << " callback swaps, " << stats_reads.load()
                            << " statistics reads during the forwards";
  EXPECT_GT(g_callback_a.load() + g_callback_b.load(), 0) << "the callback expert was never routed to";
  std::printf("[ info ] %d stats reads, %d saves, %d adaptive-state rounds, %d callback swaps during %llu forwards\n",
              stats_reads.load(), saves.load(), adaptive_resets.load(), swaps.load(),
              static_cast<unsigned long long>(calls.load()));
  // The statistics agree with themselves after the storm: expert loads sum to the kept slots of the counted tokens
  // at most (capacity drops), and a reset then one call counts exactly that call.
  PIMOE_ASSERT_OK(pimoe_stats_reset(m.get()));
  const std::vector<float> x = random_input(3 * kH, 77);
  ASSERT_EQ(forward(m.get(), x, 1, 3, kH, kK, false).status, PIMOE_OK) << last_error();
  pimoe_stats_snapshot s = get_stats(m.get());
  EXPECT_EQ(s.forward_calls, 1u);
  EXPECT_EQ(s.tokens, 3u);
}
