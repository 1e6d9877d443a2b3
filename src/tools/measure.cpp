// SPDX-License-Identifier: MIT
#include "tools/measure.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include <sys/resource.h>
#include <unistd.h>

#ifdef PIMOE_TOOLS_HAVE_CBLAS
#include <cblas.h>
extern "C" {
// Declared here too: some cblas.h variants (netlib's) do not declare OpenBLAS's extensions.
char *openblas_get_corename(void);
void openblas_set_num_threads(int num_threads);
}
#endif

namespace pimoe_tools {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
double vmin(const std::vector<double> &v) { return v.empty() ? NAN : *std::min_element(v.begin(), v.end()); }
double vmax(const std::vector<double> &v) { return v.empty() ? NAN : *std::max_element(v.begin(), v.end()); }

bool Noise::read(double &busy_s, double &self_s) {
  FILE *f = std::fopen("/proc/stat", "r");
  if (!f) return false;
  unsigned long long v[8] = {0};
  const int n = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                            &v[6], &v[7]);
  std::fclose(f);
  if (n < 8) return false;
  const double tck = static_cast<double>(sysconf(_SC_CLK_TCK));
  busy_s = static_cast<double>(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tck;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  self_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
  return true;
}
void Noise::start() {
  wall = now_s();
  if (!read(busy, self)) wall = NAN;
}
double Noise::others() const {
  double b = 0, s = 0;
  if (!std::isfinite(wall) || !read(b, s)) return NAN;
  return std::max(0.0, ((b - busy) - (s - self)) / (now_s() - wall));
}

Buf::Buf(size_t count) : n(count) {
  size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  p = static_cast<float *>(std::aligned_alloc(64, bytes));
  if (!p) {
    std::fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
    std::exit(2);
  }
}
Buf::Buf(Buf &&o) noexcept : p(o.p), n(o.n) {
  o.p = nullptr;
  o.n = 0;
}
Buf &Buf::operator=(Buf &&o) noexcept {
  std::swap(p, o.p);
  std::swap(n, o.n);
  return *this;
}
Buf::~Buf() { std::free(p); }

void fill_uniform(float *p, size_t n, uint64_t seed, float scale) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  for (size_t i = 0; i < n; i++) p[i] = d(g);
}

double time_batch(const std::function<void(int)> &fn, int n) {
  const double t0 = now_s();
  for (int i = 0; i < n; i++) fn(i);
  return (now_s() - t0) / n;
}

int calibrate(const std::function<void(int)> &fn, double min_time) {
  fn(0);  // warm-up
  fn(1);
  const double t = time_batch(fn, 1);
  if (t <= 0) return 1000;
  return std::max(1, std::min(100000, static_cast<int>(std::ceil(min_time / t))));
}

typedef float v8f __attribute__((vector_size(32)));

MemBw measure_membw(int threads, size_t mb, int reps) {
  const size_t n = mb * 1024 * 1024 / sizeof(float) / 256 * 256;
  Buf src(n), dst(n);
  {
    std::vector<std::thread> ts;  // first touch from the threads that will read
    for (int t = 0; t < threads; t++)
      ts.emplace_back([&, t] {
        const size_t b = n / threads * t, e = t == threads - 1 ? n : n / threads * (t + 1);
        for (size_t i = b; i < e; i++) {
          src.p[i] = static_cast<float>(i & 1023) * 1e-3f;
          dst.p[i] = 0;
        }
      });
    for (auto &t : ts) t.join();
  }
  std::vector<double> tr, tc;
  volatile float sink = 0;
  for (int r = 0; r < reps + 1; r++) {
    std::vector<float> part(threads, 0.f);
    const double t0 = now_s();
    {
      std::vector<std::thread> ts;
      for (int t = 0; t < threads; t++)
        ts.emplace_back([&, t] {
          const size_t chunk = n / threads / 32 * 32;
          const size_t b = chunk * t, e = t == threads - 1 ? n / 32 * 32 : b + chunk;
          v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
          for (size_t i = b; i < e; i += 32) {
            v8f x0, x1, x2, x3;
            std::memcpy(&x0, src.p + i, 32);
            std::memcpy(&x1, src.p + i + 8, 32);
            std::memcpy(&x2, src.p + i + 16, 32);
            std::memcpy(&x3, src.p + i + 24, 32);
            a0 += x0;
            a1 += x1;
            a2 += x2;
            a3 += x3;
          }
          v8f s = a0 + a1 + a2 + a3;
          float tot = 0;
          for (int j = 0; j < 8; j++) tot += s[j];
          part[t] = tot;
        });
      for (auto &t : ts) t.join();
    }
    const double t1 = now_s();
    {
      std::vector<std::thread> ts;
      for (int t = 0; t < threads; t++)
        ts.emplace_back([&, t] {
          const size_t b = n / threads * t, e = t == threads - 1 ? n : n / threads * (t + 1);
          std::memcpy(dst.p + b, src.p + b, (e - b) * sizeof(float));
        });
      for (auto &t : ts) t.join();
    }
    const double t2 = now_s();
    for (float f : part) sink = sink + f;
    if (r > 0) {
      tr.push_back(t1 - t0);
      tc.push_back(t2 - t1);
    }
  }
  (void)sink;
  MemBw m;
  const double bytes = static_cast<double>(n) * sizeof(float);
  m.read_gbs = bytes / median(tr) / 1e9;
  m.copy_gbs = 2 * bytes / median(tc) / 1e9;
  return m;
}

#ifdef PIMOE_TOOLS_HAVE_CBLAS
bool have_sgemm_reference() { return true; }
std::string sgemm_core_name() { return openblas_get_corename(); }
double square_sgemm_gflops(int threads, int n) {
  Buf a(size_t(n) * n), b(size_t(n) * n), c(size_t(n) * n);
  fill_uniform(a.p, a.n, 1, 1.f);
  fill_uniform(b.p, b.n, 2, 1.f);
  openblas_set_num_threads(threads);
  std::vector<double> t;
  for (int rep = 0; rep < 4; rep++) {
    const double t0 = now_s();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.p, n, b.p, n, 0.f, c.p, n);
    if (rep) t.push_back(now_s() - t0);
  }
  return 2.0 * n * n * n / median(t) / 1e9;
}
#else
bool have_sgemm_reference() { return false; }
std::string sgemm_core_name() { return ""; }
double square_sgemm_gflops(int, int) { return NAN; }
#endif

}  // namespace pimoe_tools
