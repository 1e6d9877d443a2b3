/* SPDX-License-Identifier: MIT */
// A fixed set of worker threads that runs parallel loops. Several callers may run loops at the same time (concurrent
// pimoe_forward calls share one model's pool); each caller also works on its own loop, so progress never depends on
// a free worker. Idle threads spin for a short while (kSpinMicroseconds) before they sleep: a decode call runs a few
// loops of tens of microseconds each, and waking a sleeping thread costs about as much as such a loop.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace pimoe {

class ThreadPool {
 public:
  // threads = total parallelism including the calling thread; threads - 1 workers are started.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls body(i) for every i in [0, n), on the workers and the calling thread, and returns when all are done.
  // The first exception thrown by a body is rethrown here after the loop has drained. Allocates nothing.
  template <typename Body>
  void parallel_for(int64_t n, const Body &body) {
    run(
        n, [](const void *context, int64_t i) { (*static_cast<const Body *>(context))(i); }, &body);
  }

 private:
  // The body type-erased by hand: std::function could allocate for a capturing lambda on every call.
  using Invoke = void (*)(const void *context, int64_t i);
  void run(int64_t n, Invoke invoke, const void *context);

  struct Loop;
  void worker_main();
  static void run_iterations(Loop &loop);

  std::mutex mutex_;
  std::condition_variable work_available_;
  std::atomic<uint64_t> posted_{0};      // loops ever posted: a spinning worker watches it change
  std::atomic<bool> stopping_flag_{false};  // stopping_, readable without the mutex
  std::vector<Loop *> loops_;  // loops that may still have unclaimed iterations
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace pimoe
