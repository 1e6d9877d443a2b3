/* SPDX-License-Identifier: MIT */
/*
 * libpimoe demo: the wishlist's default MoE layer (hidden 512, 8 experts, top-2) run from plain C99.
 *
 * Creates the layer, runs a number of forward calls on deterministic pseudo-random input, and prints the layer's
 * statistics: latency, throughput, memory, per-expert loads and the load-balance metrics.
 *
 *   usage: demo [tokens_per_call [backend [calls]]]        defaults: 256 auto 20
 *
 * Build it against an installed libpimoe with:
 *   cc -std=c99 demo.c $(pkg-config --cflags --libs pimoe) -o demo
 */
#include <pimoe/pimoe.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------ helpers */

/* Reports a failed call with the library's message and jumps to the cleanup. */
#define CHECK(call)                                                                                               \
  do {                                                                                                            \
    pimoe_status check_status_ = (call);                                                                          \
    if (check_status_ != PIMOE_OK) {                                                                              \
      fprintf(stderr, "demo: %s failed: %s (%d): %s\n", #call, pimoe_status_string(check_status_),               \
              (int)check_status_, pimoe_last_error());                                                            \
      goto fail;                                                                                                  \
    }                                                                                                             \
  } while (0)

/* SplitMix64: a tiny deterministic generator, so every run (and every platform) sees the same input. */
static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float uniform_pm1(uint64_t *state) {
  return (float)((double)(splitmix64(state) >> 40) * (1.0 / 8388608.0) - 1.0);
}

/* Roughly N(0, 1): the sum of four uniforms (Irwin-Hall), rescaled to unit variance; needs no libm. */
static float gaussianish(uint64_t *state) {
  float sum = uniform_pm1(state) + uniform_pm1(state) + uniform_pm1(state) + uniform_pm1(state);
  return sum * 0.8660254f; /* sqrt(3/4): each uniform on [-1, 1) has variance 1/3 */
}

static const char *activation_name(pimoe_activation a) {
  switch (a) {
    case PIMOE_ACT_GELU: return "gelu";
    case PIMOE_ACT_GELU_TANH: return "gelu_tanh";
    case PIMOE_ACT_SILU: return "silu";
    case PIMOE_ACT_RELU: return "relu";
    case PIMOE_ACT_TANH: return "tanh";
    case PIMOE_ACT_SWIGLU: return "swiglu";
    case PIMOE_ACT_SWIGLU_OAI: return "swiglu_oai";
  }
  return "?";
}

/* Formats a byte count as "64.0 MiB" into buf. */
static const char *human_bytes(uint64_t bytes, char *buf, size_t size) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = (double)bytes;
  int unit = 0;
  while (value >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  if (unit == 0) {
    snprintf(buf, size, "%llu B", (unsigned long long)bytes);
  } else {
    snprintf(buf, size, "%.1f %s", value, units[unit]);
  }
  return buf;
}

/* Whether the terminal's locale is UTF-8 (then bars use block characters, else '#'). */
static int locale_is_utf8(void) {
  const char *vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
  size_t i;
  for (i = 0; i < sizeof vars / sizeof vars[0]; ++i) {
    const char *v = getenv(vars[i]);
    if (v != NULL && v[0] != '\0') {
      const char *p;
      for (p = v; *p != '\0'; ++p) {
        if ((p[0] == 'U' || p[0] == 'u') && (p[1] == 'T' || p[1] == 't') && (p[2] == 'F' || p[2] == 'f')) return 1;
      }
      return 0; /* the first one set decides, as in setlocale() */
    }
  }
  return 0;
}

/* Prints a horizontal bar of fraction (0..1) of width cells, with eighth-cell resolution in UTF-8. */
static void print_bar(double fraction, int width, int utf8) {
  static const char *const eighths[] = {"", "\xe2\x96\x8f", "\xe2\x96\x8e", "\xe2\x96\x8d",
                                        "\xe2\x96\x8c", "\xe2\x96\x8b", "\xe2\x96\x8a", "\xe2\x96\x89"};
  int units, full, i, printed;
  if (fraction < 0.0) fraction = 0.0;
  if (fraction > 1.0) fraction = 1.0;
  units = (int)(fraction * (double)(width * 8) + 0.5);
  full = units / 8;
  printed = full;
  for (i = 0; i < full; ++i) fputs(utf8 ? "\xe2\x96\x88" : "#", stdout);
  if (utf8 && units % 8 != 0) {
    fputs(eighths[units % 8], stdout);
    ++printed;
  } else if (!utf8 && units % 8 >= 4) {
    fputc('#', stdout);
    ++printed;
  }
  for (i = printed; i < width; ++i) fputc(' ', stdout);
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: demo [tokens_per_call [backend [calls]]]\n"
          "  tokens_per_call  tokens in each forward call (default 256)\n"
          "  backend          auto, cpu, cuda, vulkan or vulkan:N (default auto)\n"
          "  calls            number of forward calls (default 20)\n");
}

/* Parses a positive integer argument; 0 on error. */
static long parse_positive(const char *text, long max) {
  char *end = NULL;
  long value = strtol(text, &end, 10);
  if (end == text || *end != '\0' || value <= 0 || value > max) return 0;
  return value;
}

/* -------------------------------------------------------------------------------------------------- main */

int main(int argc, char **argv) {
  long tokens = 256, calls = 20;
  const char *backend = "auto";
  const int64_t hidden_wanted = 512, experts_wanted = 8, top_k_wanted = 2;

  pimoe_options *options = NULL;
  pimoe_model *model = NULL;
  float *input = NULL, *output = NULL, *weights = NULL;
  int32_t *ids = NULL;
  uint64_t *loads = NULL;
  int exit_code = 1;

  int64_t hidden = 0;
  int32_t experts = 0, top_k = 0;
  size_t count, routing_count;
  pimoe_stats_snapshot st;
  uint64_t rng = UINT64_C(0x5EED);
  uint64_t max_load = 0, load_sum = 0;
  double checksum = 0.0;
  long c;
  size_t i;
  int e, utf8 = locale_is_utf8();
  char buf1[32], buf2[32];
  const char *device;

  if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
    usage(stdout);
    return 0;
  }
  if (argc > 4 || (argc > 1 && (tokens = parse_positive(argv[1], 1L << 20)) == 0) ||
      (argc > 3 && (calls = parse_positive(argv[3], 1000000L)) == 0)) {
    usage(stderr);
    return 2;
  }
  if (argc > 2) backend = argv[2];

  /* --- the layer: the wishlist's default, on the requested backend */
  CHECK(pimoe_options_create(&options));
  CHECK(pimoe_options_set_int(options, PIMOE_OPT_HIDDEN, hidden_wanted));
  CHECK(pimoe_options_set_int(options, PIMOE_OPT_NUM_EXPERTS, experts_wanted));
  CHECK(pimoe_options_set_int(options, PIMOE_OPT_TOP_K, top_k_wanted));
  CHECK(pimoe_options_set_string(options, PIMOE_OPT_BACKEND, backend));
  CHECK(pimoe_create(options, &model));
  pimoe_options_destroy(options); /* pimoe_create copied what it needs */
  options = NULL;

  CHECK(pimoe_model_dims(model, &hidden, &experts, &top_k));

  /* --- buffers: one call is [batch 1, seq tokens, hidden] */
  count = (size_t)tokens * (size_t)hidden;
  routing_count = (size_t)tokens * (size_t)top_k;
  input = (float *)malloc(count * sizeof *input);
  output = (float *)malloc(count * sizeof *output);
  ids = (int32_t *)malloc(routing_count * sizeof *ids);
  weights = (float *)malloc(routing_count * sizeof *weights);
  loads = (uint64_t *)calloc((size_t)experts, sizeof *loads);
  if (input == NULL || output == NULL || ids == NULL || weights == NULL || loads == NULL) {
    fprintf(stderr, "demo: out of memory\n");
    goto fail;
  }

  /* --- forward calls, each on fresh deterministic input */
  for (c = 0; c < calls; ++c) {
    for (i = 0; i < count; ++i) input[i] = gaussianish(&rng);
    CHECK(pimoe_forward(model, input, count, 1, (int64_t)tokens, output, count, ids, weights, routing_count));
  }
  for (i = 0; i < count; ++i) checksum += (double)output[i];

  /* --- statistics */
  memset(&st, 0, sizeof st);
  st.struct_size = (uint32_t)sizeof st;
  CHECK(pimoe_stats(model, &st));
  CHECK(pimoe_stats_expert_loads(model, loads, (size_t)experts));

  device = pimoe_backend_device(pimoe_model_backend(model));
  printf("libpimoe %s (ABI %u; headers %s)\n", pimoe_version_string(), (unsigned)pimoe_abi_version(),
         PIMOE_VERSION_STRING);
  printf("build    %s\n", pimoe_build_info());
  printf("backend  %s (requested \"%s\")%s%s\n", pimoe_model_backend(model), backend, device ? ": " : "",
         device ? device : "");
  printf("layer    hidden %lld, %d experts, top-%d\n", (long long)hidden, (int)experts, (int)top_k);
  printf("ran      %llu forward calls x %ld tokens (batch 1, seq %ld); output checksum %.6f\n\n",
         (unsigned long long)st.forward_calls, tokens, tokens, checksum);

  printf("  throughput\n");
  printf("    forward calls          %12llu\n", (unsigned long long)st.forward_calls);
  printf("    tokens                 %12llu\n", (unsigned long long)st.tokens);
  printf("    tokens/s               %12.0f\n", st.tokens_per_second);
  printf("  latency (ms)        last      mean       p50       p95       p99\n");
  printf("                 %9.3f %9.3f %9.3f %9.3f %9.3f\n", st.latency_last_ms, st.latency_mean_ms,
         st.latency_p50_ms, st.latency_p95_ms, st.latency_p99_ms);
  printf("  memory\n");
  printf("    weights                %12s\n", human_bytes(st.weight_bytes, buf1, sizeof buf1));
  printf("    workspace              %12s\n\n", human_bytes(st.workspace_bytes, buf2, sizeof buf2));

  for (e = 0; e < experts; ++e) {
    if (loads[e] > max_load) max_load = loads[e];
    load_sum += loads[e];
  }
  printf("  per-expert load (token assignments; ideal share %.1f%%)\n", 100.0 / (double)experts);
  printf("    expert  activation  width   norm        load   share\n");
  for (e = 0; e < experts; ++e) {
    pimoe_activation act = PIMOE_ACT_GELU;
    int64_t width = 0;
    int32_t norm = 0;
    CHECK(pimoe_model_expert(model, e, &act, &width, &norm));
    printf("    %6d  %-10s %6lld   %-4s %11llu  %5.1f%%  ", e, activation_name(act), (long long)width,
           norm ? "yes" : "no", (unsigned long long)loads[e], load_sum ? 100.0 * (double)loads[e] / (double)load_sum : 0.0);
    print_bar(max_load ? (double)loads[e] / (double)max_load : 0.0, 24, utf8);
    fputc('\n', stdout);
  }

  printf("\n  load balance and routing      value   balanced\n");
  printf("    expert utilisation     %9.1f%%       100%%   experts that received tokens\n",
         100.0 * st.expert_utilization);
  printf("    coefficient of var.    %10.4f          0   sd / mean of the loads\n", st.load_cv);
  printf("    max violation          %10.4f          0   (max - mean) / mean of the loads\n", st.load_max_violation);
  printf("    Jain's index           %10.4f          1   (sum l)^2 / (E sum l^2), in [1/E, 1]\n",
         st.load_jain_index);
  printf("    normalised entropy     %10.4f          1   entropy of the load shares / log E\n",
         st.load_normalized_entropy);
  printf("    routing confidence     %10.4f              mean top-1 router probability\n", st.routing_confidence);
  printf("    aux loss (last call)   %10.4f %10d   alpha E sum_i f_i P_i (Switch; alpha 1)\n", st.aux_loss,
         (int)top_k);
  printf("    z-loss (last call)     %10.4f              mean logsumexp(z)^2\n", st.z_loss);
  printf("    dropped assignments    %10llu          0   over the capacity limit (dropless here)\n",
         (unsigned long long)st.dropped_tokens);
  printf("\n  routing of the first tokens of the last call\n");
  for (i = 0; i < (size_t)tokens && i < 4; ++i) {
    int j;
    printf("    token %zu:", i);
    for (j = 0; j < top_k; ++j) {
      printf("  expert %d (%.3f)", (int)ids[i * (size_t)top_k + (size_t)j], (double)weights[i * (size_t)top_k + (size_t)j]);
    }
    fputc('\n', stdout);
  }
  exit_code = 0;

fail:
  free(loads);
  free(weights);
  free(ids);
  free(output);
  free(input);
  pimoe_destroy(model);
  pimoe_options_destroy(options);
  return exit_code;
}
