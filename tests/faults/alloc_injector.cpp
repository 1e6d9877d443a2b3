// SPDX-License-Identifier: MIT
// See alloc_injector.h. The replacements of operator new are the program's (the C++ rules allow one per program, and
// libpimoe's allocations go through them); mmap is interposed by symbol: the executable's definition comes first in
// the dynamic linker's search, so libpimoe's calls land here, and everything else is passed to the next definition
// (the C library's, or a sanitizer's interceptor in front of it).
#include "faults/alloc_injector.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <unistd.h>
#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

namespace {

// 0: disarmed. Otherwise the counted allocations left until the failing one (1: the next one fails).
std::atomic<int64_t> g_countdown{0};
std::atomic<int64_t> g_counted{0};
std::atomic<bool> g_delivered{false};
std::atomic<bool> g_sticky{false};
std::atomic<int64_t> g_failed_mappings{0};
std::atomic<int64_t> g_live_blocks{0};

// True when this allocation is to fail.
bool take_failure() {
  if (g_countdown.load(std::memory_order_acquire) == 0) return false;
  g_counted.fetch_add(1, std::memory_order_relaxed);
  if (g_delivered.load(std::memory_order_acquire)) return g_sticky.load(std::memory_order_relaxed);
  if (g_countdown.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    // Armed again until disarmed, so that a sticky failure keeps failing (the countdown stays non-zero).
    g_countdown.store(1, std::memory_order_release);
    g_delivered.store(true, std::memory_order_release);
    // For whoever reads a failing sweep: PIMOE_TEST_ALLOC_BACKTRACE=1 prints where each injected failure struck
    // (backtrace_symbols_fd writes to the descriptor without allocating).
    if (std::getenv("PIMOE_TEST_ALLOC_BACKTRACE") != nullptr) {
      void *frames[24];
      const char line[] = "-- injected allocation failure at:\n";
      (void)!write(2, line, sizeof line - 1);
      backtrace_symbols_fd(frames, backtrace(frames, 24), 2);
    }
    return true;
  }
  return false;
}

void release(void *p) noexcept {
  if (p == nullptr) return;
  g_live_blocks.fetch_sub(1, std::memory_order_relaxed);
  std::free(p);
}

void *allocate(std::size_t size, std::size_t alignment) {
  if (take_failure()) throw std::bad_alloc();
  if (size == 0) size = 1;
  void *p = nullptr;
  if (alignment <= alignof(std::max_align_t)) {
    p = std::malloc(size);
  } else if (posix_memalign(&p, alignment, size) != 0) {
    p = nullptr;
  }
  if (p == nullptr) throw std::bad_alloc();
  g_live_blocks.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void *allocate_nothrow(std::size_t size, std::size_t alignment) noexcept {
  if (size == 0) size = 1;
  void *p = nullptr;
  if (alignment <= alignof(std::max_align_t)) {
    p = std::malloc(size);
  } else if (posix_memalign(&p, alignment, size) != 0) {
    p = nullptr;
  }
  if (p != nullptr) g_live_blocks.fetch_add(1, std::memory_order_relaxed);
  return p;
}

using MmapFn = void *(*)(void *, size_t, int, int, int, off_t);

// Looked up on first use without a function-local static: the sanitizers' start-up maps memory through this mmap
// before their runtime can serve the static's guard (__cxa_guard_*, intercepted by ThreadSanitizer). Two threads that
// race here store the same address.
std::atomic<MmapFn> g_next_mmap{nullptr};

MmapFn next_mmap() {
  MmapFn next = g_next_mmap.load(std::memory_order_acquire);
  if (next == nullptr) {
    next = reinterpret_cast<MmapFn>(dlsym(RTLD_NEXT, "mmap"));
    g_next_mmap.store(next, std::memory_order_release);
  }
  return next;
}

// Whether the code at `address` belongs to libpimoe (the library under test), by the object file that holds it.
bool in_libpimoe(const void *address) {
  Dl_info info{};
  return dladdr(address, &info) != 0 && info.dli_fname != nullptr && std::strstr(info.dli_fname, "libpimoe") != nullptr;
}

}  // namespace

namespace pimoe_test {

void arm_allocation_failure(int64_t n, bool sticky) {
  g_counted.store(0);
  g_delivered.store(false);
  g_sticky.store(sticky);
  g_countdown.store(n < 1 ? 1 : n);
}

bool disarm_allocation_failure() {
  g_countdown.store(0);
  return g_delivered.load();
}

int64_t counted_allocations() { return g_counted.load(); }
int64_t failed_mappings() { return g_failed_mappings.load(); }
int64_t live_blocks() { return g_live_blocks.load(); }

}  // namespace pimoe_test

// Default visibility: the build hides symbols by default, and an interposer must be in the dynamic symbol table.
extern "C" __attribute__((visibility("default"))) void *mmap(void *address, size_t length, int protection, int flags, int fd, off_t offset) noexcept {
  if ((flags & MAP_ANONYMOUS) != 0 && g_countdown.load(std::memory_order_acquire) != 0 &&
      in_libpimoe(__builtin_return_address(0)) && take_failure()) {
    g_failed_mappings.fetch_add(1);
    errno = ENOMEM;
    return MAP_FAILED;
  }
  return next_mmap()(address, length, protection, flags, fd, offset);
}

void *operator new(std::size_t size) { return allocate(size, 0); }
void *operator new[](std::size_t size) { return allocate(size, 0); }
void *operator new(std::size_t size, std::align_val_t a) { return allocate(size, static_cast<std::size_t>(a)); }
void *operator new[](std::size_t size, std::align_val_t a) { return allocate(size, static_cast<std::size_t>(a)); }
void *operator new(std::size_t size, const std::nothrow_t &) noexcept { return allocate_nothrow(size, 0); }
void *operator new[](std::size_t size, const std::nothrow_t &) noexcept { return allocate_nothrow(size, 0); }
void *operator new(std::size_t size, std::align_val_t a, const std::nothrow_t &) noexcept {
  return allocate_nothrow(size, static_cast<std::size_t>(a));
}
void *operator new[](std::size_t size, std::align_val_t a, const std::nothrow_t &) noexcept {
  return allocate_nothrow(size, static_cast<std::size_t>(a));
}
void operator delete(void *p) noexcept { release(p); }
void operator delete[](void *p) noexcept { release(p); }
void operator delete(void *p, std::size_t) noexcept { release(p); }
void operator delete[](void *p, std::size_t) noexcept { release(p); }
void operator delete(void *p, std::align_val_t) noexcept { release(p); }
void operator delete[](void *p, std::align_val_t) noexcept { release(p); }
void operator delete(void *p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void *p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete(void *p, const std::nothrow_t &) noexcept { release(p); }
void operator delete[](void *p, const std::nothrow_t &) noexcept { release(p); }
void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept { release(p); }
void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept { release(p); }
