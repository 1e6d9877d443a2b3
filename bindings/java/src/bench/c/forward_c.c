/* SPDX-License-Identifier: MIT */
/* C baseline of the Java forward-overhead benchmark: pimoe_forward at shape S (hidden 512, 8 experts, top-2,
 * intermediate 2048), 1 token per call, timed from C exactly like ForwardOverhead.java times it from Java.
 * Also on a tiny layer (hidden 8, 2 experts, top-1, intermediate 8) where the layer's own work is negligible, so the
 * difference to Java is the binding's overhead alone.
 *   pimoe_java_bench_c [calls]      (default 2000; the tiny layer runs 100x as many) */
#define _POSIX_C_SOURCE 199309L
#include <pimoe/pimoe.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int run(int calls, int tiny) {
  pimoe_options *o = NULL;
  pimoe_model *m = NULL;
  if (pimoe_options_create(&o) != PIMOE_OK || pimoe_options_set_by_name(o, "backend", "cpu") != PIMOE_OK ||
      (tiny && (pimoe_options_set_by_name(o, "hidden", "8") != PIMOE_OK ||
                pimoe_options_set_by_name(o, "num_experts", "2") != PIMOE_OK ||
                pimoe_options_set_by_name(o, "top_k", "1") != PIMOE_OK ||
                pimoe_options_set_by_name(o, "intermediate", "8") != PIMOE_OK)) ||
      pimoe_create(o, &m) != PIMOE_OK) {
    fprintf(stderr, "bench: %s\n", pimoe_last_error());
    return 1;
  }
  pimoe_options_destroy(o);
  size_t h = tiny ? 8 : 512;
  float x[512], y[512];
  for (int i = 0; i < 512; ++i) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
  for (int i = 0; i < calls / 4; ++i) pimoe_forward(m, x, h, 1, 1, y, h, NULL, NULL, 0); /* warm-up */
  /* Per round: wall time per call, and the library's own latency_mean over the same calls (paired, so machine
   * load cancels out of the difference, which is the cost of the call outside the library's timer). */
  double best = 1e300, best_outside = 1e300;
  for (int round = 0; round < 5; ++round) {
    pimoe_stats_reset(m);
    double t0 = now_ns();
    for (int i = 0; i < calls; ++i) {
      if (pimoe_forward(m, x, h, 1, 1, y, h, NULL, NULL, 0) != PIMOE_OK) return 1;
    }
    double per_call = (now_ns() - t0) / calls;
    pimoe_stats_snapshot st;
    st.struct_size = sizeof st;
    pimoe_stats(m, &st);
    double outside = per_call - st.latency_mean_ms * 1e6;
    if (per_call < best) best = per_call;
    if (outside < best_outside) best_outside = outside;
  }
  printf("C     pimoe_forward,             %-10s 1 token: %9.3f us/call, outside the library's timer %6.3f us"
         " (best of 5 rounds of %d calls)\n", tiny ? "tiny layer" : "shape S,", best / 1e3, best_outside / 1e3, calls);
  pimoe_destroy(m);
  return 0;
}

int main(int argc, char **argv) {
  int calls = argc > 1 ? atoi(argv[1]) : 2000;
  return run(calls, 0) || run(calls * 100, 1);
}
