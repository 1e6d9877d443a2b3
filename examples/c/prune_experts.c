/* SPDX-License-Identifier: MIT */
/*
 * libpimoe pruning on shape S (H 512, I 2048, 8 experts, top-2, SwiGLU): a calibration stream skewed towards a few
 * experts (Zipf(1) over the experts), then
 *   1. 25% of the experts dropped by routing mass (pimoe_prune, PIMOE_PRUNE_EXPERTS_BY_MASS)
 *   2. 25% dropped at random, mean over 8 seeds (PIMOE_PRUNE_EXPERTS_RANDOM): the baseline
 *   3. 25% of every expert's channels dropped by weight norm (PIMOE_PRUNE_CHANNELS_BY_NORM)
 * each with the bytes saved and the output error on a second stream drawn the same way; then the expert-pruned layer
 * is saved, loaded back and run. It exits 1 when routing-mass pruning does not beat the random baseline or the saved
 * layer computes something else.
 *
 *   usage: prune_experts [backend] [out.safetensors]     default: cpu, prune_experts.safetensors in the temp folder
 *
 * Build it against an installed libpimoe with:
 *   cc -std=c99 prune_experts.c $(pkg-config --cflags --libs pimoe) -lm -o prune_experts
 */
#include <pimoe/pimoe.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H 512
#define E 8
#define CAL_TOKENS 1024
#define TEST_TOKENS 512
#define SEEDS 8

#define CHECK(call)                                                                                               \
  do {                                                                                                            \
    pimoe_status check_status_ = (call);                                                                          \
    if (check_status_ != PIMOE_OK) {                                                                              \
      fprintf(stderr, "prune_experts: %s failed: %s (%d): %s\n", #call, pimoe_status_string(check_status_),      \
              (int)check_status_, pimoe_last_error());                                                            \
      exit(1);                                                                                                    \
    }                                                                                                             \
  } while (0)

static uint64_t g_state = 12345;
static double uniform01(void) { /* SplitMix64, 53 bits */
  uint64_t z = (g_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Tokens near the router row of one expert each, the expert drawn with Zipf(1) weights (expert 3 most often, then
 * 6, 1, ...: not in index order), plus noise: the router sends most of the stream to a few experts. */
static void skewed_stream(const float *router, float *x, int64_t tokens) {
  double zipf[E], total = 0.0;
  for (int e = 0; e < E; ++e) total += zipf[e] = 1.0 / (e + 1);
  for (int64_t t = 0; t < tokens; ++t) {
    double u = uniform01() * total;
    int e = 0;
    while (e + 1 < E && u >= zipf[e]) u -= zipf[e++];
    const int expert = (e * 3 + 3) % E;
    for (int h = 0; h < H; ++h) {
      x[t * H + h] = (float)(4.0 * router[expert * H + h] * sqrt((double)H) + 0.5 * (uniform01() * 2.0 - 1.0));
    }
  }
}

static double relative_rms(const float *got, const float *want, size_t n) {
  double d = 0.0, r = 0.0;
  for (size_t i = 0; i < n; ++i) {
    d += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
    r += (double)want[i] * want[i];
  }
  return sqrt(d / r);
}

/* The output error of `pruned` against `model` on the test stream. */
static double test_error(pimoe_model *model, pimoe_model *pruned, const float *x, float *want, float *got) {
  const size_t n = (size_t)TEST_TOKENS * H;
  CHECK(pimoe_forward(model, x, n, 1, TEST_TOKENS, want, n, NULL, NULL, 0));
  CHECK(pimoe_forward(pruned, x, n, 1, TEST_TOKENS, got, n, NULL, NULL, 0));
  return relative_rms(got, want, n);
}

static pimoe_model *prune(pimoe_model *model, pimoe_prune_method method, uint64_t seed, const float *cal,
                          pimoe_prune_report *report) {
  pimoe_model *out = NULL;
  memset(report, 0, sizeof *report);
  report->struct_size = sizeof *report;
  CHECK(pimoe_prune(model, method, 0.25, seed, cal, (size_t)CAL_TOKENS * H, CAL_TOKENS, &out, report));
  return out;
}

int main(int argc, char **argv) {
  const char *backend = argc > 1 ? argv[1] : "cpu";
  char default_path[1024];
  const char *tmp = getenv("TMPDIR");
  snprintf(default_path, sizeof default_path, "%s/prune_experts.safetensors", tmp && *tmp ? tmp : "/tmp");
  const char *path = argc > 2 ? argv[2] : default_path;

  pimoe_options *o = NULL;
  CHECK(pimoe_options_create(&o));
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, backend));
  CHECK(pimoe_options_set_by_name(o, "activation", "swiglu"));
  pimoe_model *model = NULL;
  CHECK(pimoe_create(o, &model));
  pimoe_options_destroy(o);

  float *router = malloc(sizeof(float) * E * H);
  float *cal = malloc(sizeof(float) * CAL_TOKENS * H);
  float *test = malloc(sizeof(float) * TEST_TOKENS * H);
  float *want = malloc(sizeof(float) * TEST_TOKENS * H);
  float *got = malloc(sizeof(float) * TEST_TOKENS * H);
  if (!router || !cal || !test || !want || !got) {
    fprintf(stderr, "prune_experts: out of memory\n");
    return 1;
  }
  CHECK(pimoe_tensor_read(model, "router.weight", router, (size_t)E * H));
  skewed_stream(router, cal, CAL_TOKENS);
  skewed_stream(router, test, TEST_TOKENS);
  printf("shape S on %s: %d experts, calibration %d tokens, test %d tokens (Zipf(1)-skewed over the experts)\n",
         pimoe_model_backend(model), E, CAL_TOKENS, TEST_TOKENS);

  pimoe_prune_report r;
  pimoe_model *by_mass = prune(model, PIMOE_PRUNE_EXPERTS_BY_MASS, 0, cal, &r);
  const double mass_error = test_error(model, by_mass, test, want, got);
  printf("  by routing mass:   %d -> %d experts, %.1f -> %.1f MiB, output error %.4f (calibration %.4f)\n",
         r.experts_before, r.experts_after, (double)r.weight_bytes_before / 1048576.0,
         (double)r.weight_bytes_after / 1048576.0, mass_error, r.output_error);

  double random_error = 0.0;
  for (uint64_t seed = 1; seed <= SEEDS; ++seed) {
    pimoe_model *random = prune(model, PIMOE_PRUNE_EXPERTS_RANDOM, seed, cal, &r);
    random_error += test_error(model, random, test, want, got) / SEEDS;
    pimoe_destroy(random);
  }
  printf("  at random:         %d -> %d experts, output error %.4f (mean of %d seeds)\n", r.experts_before,
         r.experts_after, random_error, SEEDS);

  pimoe_model *channels = prune(model, PIMOE_PRUNE_CHANNELS_BY_NORM, 0, cal, &r);
  printf("  channels by norm:  %lld -> %lld channels, %.1f -> %.1f MiB, output error %.4f\n",
         (long long)r.channels_before, (long long)r.channels_after, (double)r.weight_bytes_before / 1048576.0,
         (double)r.weight_bytes_after / 1048576.0, test_error(model, channels, test, want, got));
  pimoe_destroy(channels);

  /* The pruned layer is kept by saving it. */
  CHECK(pimoe_save(by_mass, path));
  pimoe_model *loaded = NULL;
  CHECK(pimoe_load(path, NULL, &loaded));
  const size_t n = (size_t)TEST_TOKENS * H;
  CHECK(pimoe_forward(by_mass, test, n, 1, TEST_TOKENS, want, n, NULL, NULL, 0));
  CHECK(pimoe_forward(loaded, test, n, 1, TEST_TOKENS, got, n, NULL, NULL, 0));
  const int same = memcmp(want, got, n * sizeof(float)) == 0;
  printf("  saved to %s, loaded back: %s\n", path, same ? "the same outputs" : "DIFFERENT outputs");
  remove(path);

  const int ok = same && mass_error < random_error;
  if (mass_error >= random_error) printf("routing-mass pruning did not beat the random baseline\n");
  pimoe_destroy(loaded);
  pimoe_destroy(by_mass);
  pimoe_destroy(model);
  free(router);
  free(cal);
  free(test);
  free(want);
  free(got);
  return ok ? 0 : 1;
}
