/* SPDX-License-Identifier: MIT */
/* The C side of the C# overhead benchmark (Bench.cs): times pimoe_forward called from C on the very model handle and
 * buffers the C# side uses, so that both timings see the same model, memory and machine state. */
#include <pimoe/pimoe.h>
#include <stdint.h>
#include <time.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Runs `iters` forward calls from C; returns the mean nanoseconds per call, or -status on failure. */
double pimoe_csharp_bench_c_forward(void *model, const float *input, float *output, int64_t tokens, int64_t hidden,
                                    int iters) {
  size_t n = (size_t)(tokens * hidden);
  double t0 = now_ns();
  for (int i = 0; i < iters; i++) {
    pimoe_status st = pimoe_forward((pimoe_model *)model, input, n, 1, tokens, output, n, NULL, NULL, 0);
    if (st != PIMOE_OK) return -(double)st;
  }
  return (now_ns() - t0) / iters;
}
