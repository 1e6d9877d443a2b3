/* SPDX-License-Identifier: MIT */
// Timing and the machine's reference rates, shared by `pimoe bench` and bench/cpu/bench_moe: medians over rounds,
// batches calibrated to a minimum time, how busy the rest of the machine was, the memory read and copy bandwidth, and
// OpenBLAS's sgemm rate on a square GEMM (when the build has OpenBLAS: have_sgemm_reference()).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pimoe_tools {

double now_s();
double median(std::vector<double> v);
double vmin(const std::vector<double> &v);
double vmax(const std::vector<double> &v);

// How busy the rest of the machine is: CPU seconds of every process (from /proc/stat) minus this process's own
// (getrusage), divided by wall time = the mean number of cores other processes took while we measured. On a shared
// machine, a case measured while others > ~0.2 did not get the machine to itself.
struct Noise {
  double wall = 0, busy = 0, self = 0;
  static bool read(double &busy_s, double &self_s);
  void start();
  double others() const;  // mean cores used by other processes since start(); NAN when /proc/stat is unreadable
};

// A 64-byte aligned float buffer (exits with status 2 when memory runs out: a benchmark has nothing to fall back on).
struct Buf {
  float *p = nullptr;
  size_t n = 0;
  Buf() = default;
  explicit Buf(size_t count);
  Buf(const Buf &) = delete;
  Buf &operator=(const Buf &) = delete;
  Buf(Buf &&o) noexcept;
  Buf &operator=(Buf &&o) noexcept;
  ~Buf();
};

void fill_uniform(float *p, size_t n, uint64_t seed, float scale);

// Runs fn n times and returns seconds per call.
double time_batch(const std::function<void(int)> &fn, int n);
// Calls per batch so that one batch lasts about min_time seconds (at least 1), from one timed call after warm-up.
int calibrate(const std::function<void(int)> &fn, double min_time);

struct MemBw {
  double read_gbs = NAN;  // bytes read / s, `threads` threads each summing its slice
  double copy_gbs = NAN;  // (bytes read + bytes written) / s, `threads` threads each memcpy-ing its slice
};
// Median over `reps` of reading and copying a buffer of `mb` MiB.
MemBw measure_membw(int threads, size_t mb, int reps);

// Whether this build has OpenBLAS for the sgemm reference, and its core's name ("" without).
bool have_sgemm_reference();
std::string sgemm_core_name();
// OpenBLAS sgemm on n x n x n with `threads` threads: GFLOP/s, the median of 3 after a warm-up (NAN without OpenBLAS).
double square_sgemm_gflops(int threads, int n = 2048);

}  // namespace pimoe_tools
