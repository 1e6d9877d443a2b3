// SPDX-License-Identifier: MIT
#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

namespace pimoe {
namespace {

constexpr int64_t kSpinMicroseconds = 100;

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Spins until ready() or kSpinMicroseconds pass; returns ready()'s last answer.
template <typename Ready>
bool spin_until(Ready ready) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicroseconds);
  for (int i = 0;; ++i) {
    if (ready()) return true;
    cpu_relax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() >= end) return ready();
  }
}

}  // namespace

struct ThreadPool::Loop {
  Invoke invoke;
  const void *context;
  int64_t n;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> finished{0};
  std::atomic<int> active_workers{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  std::mutex done_mutex;
  std::condition_variable done;
};

ThreadPool::ThreadPool(int threads) {
  const int workers = std::max(threads, 1) - 1;
  loops_.reserve(64);
  workers_.reserve(static_cast<size_t>(workers));
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { worker_main(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    stopping_flag_.store(true, std::memory_order_release);
  }
  work_available_.notify_all();
  for (std::thread &worker : workers_) worker.join();
}

void ThreadPool::run_iterations(Loop &loop) {
  for (;;) {
    const int64_t i = loop.next.fetch_add(1, std::memory_order_relaxed);
    if (i >= loop.n) return;
    try {
      loop.invoke(loop.context, i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(loop.error_mutex);
      if (!loop.error) loop.error = std::current_exception();
    }
    if (loop.finished.fetch_add(1, std::memory_order_acq_rel) + 1 == loop.n) {
      std::lock_guard<std::mutex> lock(loop.done_mutex);
      loop.done.notify_all();
    }
  }
}

void ThreadPool::worker_main() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    Loop *loop = nullptr;
    auto found = [&] {
      if (stopping_) return true;
      for (Loop *candidate : loops_) {
        if (candidate->next.load(std::memory_order_relaxed) < candidate->n) {
          loop = candidate;
          return true;
        }
      }
      return false;
    };
    if (!found()) {
      // Nothing to do: watch for a new loop for a moment before sleeping (the predicate is checked again under
      // the mutex below, so a loop posted meanwhile is never missed).
      const uint64_t seen = posted_.load(std::memory_order_acquire);
      lock.unlock();
      spin_until([&] {
        return posted_.load(std::memory_order_acquire) != seen || stopping_flag_.load(std::memory_order_acquire);
      });
      lock.lock();
    }
    work_available_.wait(lock, found);
    if (stopping_) return;
    // The owner removes its loop only after active_workers drops to zero, so `loop` stays alive while we use it.
    loop->active_workers.fetch_add(1, std::memory_order_acq_rel);
    lock.unlock();
    run_iterations(*loop);
    {
      // Leave under done_mutex: the owner may destroy the loop as soon as it sees no active worker, so the count
      // must not drop before the notification is under way.
      std::lock_guard<std::mutex> done_lock(loop->done_mutex);
      loop->active_workers.fetch_sub(1, std::memory_order_acq_rel);
      loop->done.notify_all();
    }
    lock.lock();
  }
}

void ThreadPool::run(int64_t n, Invoke invoke, const void *context) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int64_t i = 0; i < n; ++i) invoke(context, i);
    return;
  }
  Loop loop;
  loop.invoke = invoke;
  loop.context = context;
  loop.n = n;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    loops_.push_back(&loop);
    posted_.fetch_add(1, std::memory_order_release);
  }
  work_available_.notify_all();
  run_iterations(loop);
  {
    std::unique_lock<std::mutex> lock(mutex_);
    loops_.erase(std::find(loops_.begin(), loops_.end(), &loop));
  }
  {
    // After removal no new worker can join; wait for every iteration and every worker that joined to leave
    // (spinning first: the last iterations usually end within microseconds).
    auto drained = [&] {
      return loop.finished.load(std::memory_order_acquire) == n &&
             loop.active_workers.load(std::memory_order_acquire) == 0;
    };
    spin_until(drained);
    std::unique_lock<std::mutex> lock(loop.done_mutex);
    loop.done.wait(lock, drained);
  }
  if (loop.error) std::rethrow_exception(loop.error);
}

}  // namespace pimoe
