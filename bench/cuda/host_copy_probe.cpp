// SPDX-License-Identifier: MIT
// host_copy_probe: the host-side rates that pimoe_forward's host-buffer path on the CUDA backend depends on, by thread
// count: memcpy pageable -> page-locked and back, and a read-only scan like the front end's NaN/Inf check (GB/s of the
// buffer); then cudaMemcpyAsync H2D/D2H from page-locked and from pageable memory. Medians of 15, 32 and 64 MiB.
// Not part of the build (it needs no libpimoe):
//   g++ -O2 -std=c++17 -I/usr/local/cuda/include bench/cuda/host_copy_probe.cpp -L/usr/local/cuda/lib64 \
//       -lcudart_static -ldl -lrt -lpthread -o host_copy_probe
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>
using Clock = std::chrono::steady_clock;
static double med(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
template <class F>
double par(int threads, size_t bytes, F f) {
  std::vector<double> t;
  for (int r = 0; r < 15; ++r) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> th;
    const size_t step = (bytes / threads + 63) / 64 * 64;
    Clock::time_point t0;
    for (int i = 0; i < threads; ++i)
      th.emplace_back([&, i] {
        ready++;
        while (!go) {
        }
        size_t b = i * step;
        if (b < bytes) f(b, std::min(step, bytes - b));
      });
    while (ready < threads) {
    }
    t0 = Clock::now();
    go = true;
    for (auto &x : th) x.join();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return med(t);
}
int main() {
  const size_t N = 64u << 20;
  std::vector<char> src(N, 1), back(N, 0);
  char *pin;
  cudaHostAlloc((void **)&pin, N, cudaHostAllocDefault);
  memset(pin, 2, N);
  void *dev;
  cudaMalloc(&dev, N);
  cudaStream_t st;
  cudaStreamCreate(&st);
  for (size_t bytes : {size_t(32) << 20, size_t(64) << 20}) {
    for (int th : {1, 2, 4, 8, 12, 16}) {
      double a = par(th, bytes, [&](size_t b, size_t n) { memcpy(pin + b, src.data() + b, n); });
      double c = par(th, bytes, [&](size_t b, size_t n) { memcpy(back.data() + b, pin + b, n); });
      volatile uint32_t sink = 0;
      double s = par(th, bytes, [&](size_t b, size_t n) {
        uint32_t acc = 0;
        const uint32_t *p = (const uint32_t *)(src.data() + b);
        for (size_t i = 0; i < n / 4; ++i) acc |= (p[i] & 0x7f800000u) + 0x00800000u;
        sink = acc;
      });
      printf("%3zu MiB %2d threads: pageable->pinned %6.1f GB/s  pinned->pageable %6.1f GB/s  scan %6.1f GB/s\n",
             bytes >> 20, th, bytes / a / 1e9, bytes / c / 1e9, bytes / s / 1e9);
    }
    for (int kind = 0; kind < 4; ++kind) {
      std::vector<double> t;
      for (int r = 0; r < 15; ++r) {
        auto t0 = Clock::now();
        if (kind == 0) cudaMemcpyAsync(dev, pin, bytes, cudaMemcpyHostToDevice, st);
        if (kind == 1) cudaMemcpyAsync(pin, dev, bytes, cudaMemcpyDeviceToHost, st);
        if (kind == 2) cudaMemcpyAsync(dev, src.data(), bytes, cudaMemcpyHostToDevice, st);
        if (kind == 3) cudaMemcpyAsync(back.data(), dev, bytes, cudaMemcpyDeviceToHost, st);
        cudaStreamSynchronize(st);
        t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      }
      const char *names[] = {"H2D pinned", "D2H pinned", "H2D pageable", "D2H pageable"};
      printf("%3zu MiB %-13s %6.1f GB/s (%.3f ms)\n", bytes >> 20, names[kind], bytes / med(t) / 1e9, med(t) * 1e3);
    }
  }
  return 0;
}
