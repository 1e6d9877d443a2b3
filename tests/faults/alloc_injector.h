/* SPDX-License-Identifier: MIT */
// Allocation-failure injection for the test binary that links tests/faults/alloc_injector.cpp: that file replaces
// the global operator new (every form that reports failure by throwing std::bad_alloc) and interposes mmap for the
// anonymous mappings libpimoe itself makes (the CPU backend's weight arena). Once armed with N, the N-th such
// allocation from any thread fails (bad_alloc, or MAP_FAILED with ENOMEM): once, or, armed sticky, it and every later
// one until disarmed (memory stays exhausted while the library cleans up and reports).
//
// Not failed, on purpose: the nothrow forms of operator new (whoever asks for them handles nullptr themselves, e.g.
// std::stable_sort falls back to an in-place sort), malloc called directly (libpimoe does not; the C runtime's and the
// sanitizers' own memory is not the library's to handle), and mappings of files (their failure is an IO error of the
// file, tested with the format's hostile files).
#pragma once

#include <cstdint>

namespace pimoe_test {

// Arms the injector: the n-th counted allocation from now on fails (n >= 1); sticky: every later one fails too.
void arm_allocation_failure(int64_t n, bool sticky);
// Disarms it and says whether the armed failure was delivered (the call needed at least n allocations).
bool disarm_allocation_failure();
// Counted allocations since the last arm (all of them, while armed).
int64_t counted_allocations();
// Anonymous mappings made by libpimoe that the injector failed, since the process started (proves the mmap path is
// reached: a sweep that never fails one would test operator new alone).
int64_t failed_mappings();
// Blocks from operator new not yet deleted (any thread): equal before and after a failed call that must leave nothing.
int64_t live_blocks();

}  // namespace pimoe_test
