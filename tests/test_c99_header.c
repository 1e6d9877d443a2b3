/* SPDX-License-Identifier: MIT */
/* The public header from a strict C99 program (built with -std=c99 -Wall -Wextra -pedantic -Werror):
 * create a model, run a forward, read statistics and tensors, destroy. Exit status 0 on success. */
#include <pimoe/pimoe.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                                                                  \
  do {                                                                                                               \
    if (!(cond)) {                                                                                                   \
      fprintf(stderr, "%s:%d: check failed: %s (last error: \"%s\")\n", __FILE__, __LINE__, #cond,                 \
              pimoe_last_error());                                                                                   \
      ++failures;                                                                                                    \
    }                                                                                                                \
  } while (0)

#define CHECK_OK(expr)                                                                                               \
  do {                                                                                                               \
    pimoe_status st_ = (expr);                                                                                       \
    if (st_ != PIMOE_OK) {                                                                                           \
      fprintf(stderr, "%s:%d: %s -> %d (%s): %s\n", __FILE__, __LINE__, #expr, (int)st_, pimoe_status_string(st_), \
              pimoe_last_error());                                                                                   \
      ++failures;                                                                                                    \
    }                                                                                                                \
  } while (0)

int main(void) {
  enum { H = 16, E = 4, K = 2, BATCH = 2, SEQ = 3, T = BATCH * SEQ };
  pimoe_options *opts = NULL;
  pimoe_model *model = NULL;
  float input[T * H];
  float output[T * H];
  int32_t ids[T * K];
  float weights[T * K];
  uint64_t loads[E];
  pimoe_stats_snapshot stats;
  int64_t hidden = 0;
  int32_t experts = 0, top_k = 0;
  int64_t i, n_tensors, total_elems = 0;
  uint64_t load_sum = 0;

  printf("libpimoe %s (header %s), ABI %u: %s\n", pimoe_version_string(), PIMOE_VERSION_STRING,
         (unsigned)pimoe_abi_version(), pimoe_build_info());
  CHECK(strcmp(pimoe_version_string(), PIMOE_VERSION_STRING) == 0);
  CHECK(pimoe_version_number() == PIMOE_VERSION_NUMBER);
  CHECK(pimoe_abi_version() == PIMOE_ABI_VERSION);
  /* In C an enum is an int: an unknown code must be handled. */
  CHECK(strcmp(pimoe_status_string((pimoe_status)12345), "unknown status") == 0);
  CHECK(strcmp(pimoe_status_string(PIMOE_OK), "unknown status") != 0);

  CHECK_OK(pimoe_options_create(&opts));
  CHECK_OK(pimoe_options_set_int(opts, PIMOE_OPT_HIDDEN, H));
  CHECK_OK(pimoe_options_set_int(opts, PIMOE_OPT_NUM_EXPERTS, E));
  CHECK_OK(pimoe_options_set_int(opts, PIMOE_OPT_TOP_K, K));
  CHECK_OK(pimoe_options_set_by_name(opts, "intermediate", "24"));
  CHECK_OK(pimoe_options_set_float(opts, PIMOE_OPT_TEMPERATURE, 0.9));
  CHECK_OK(pimoe_options_set_string(opts, PIMOE_OPT_BACKEND, "cpu"));
  CHECK_OK(pimoe_options_set_int(opts, PIMOE_OPT_THREADS, 1));
  CHECK_OK(pimoe_options_set_expert_preset(opts, 1, PIMOE_PRESET_LANGUAGE));
  CHECK(pimoe_options_set_int(opts, (pimoe_option)999, 1) == PIMOE_ERR_UNKNOWN_OPTION);
  CHECK(strstr(pimoe_last_error(), "999") != NULL);
  CHECK_OK(pimoe_create(opts, &model));
  pimoe_options_destroy(opts);
  if (model == NULL) {
    fprintf(stderr, "no model, giving up\n");
    return 1;
  }

  CHECK_OK(pimoe_model_dims(model, &hidden, &experts, &top_k));
  CHECK(hidden == H && experts == E && top_k == K);
  CHECK(pimoe_model_backend(model) != NULL && strcmp(pimoe_model_backend(model), "cpu") == 0);

  for (i = 0; i < T * H; ++i) input[i] = (float)sin(0.37 * (double)i);
  CHECK_OK(pimoe_forward(model, input, T * H, BATCH, SEQ, output, T * H, ids, weights, T * K));
  CHECK(strcmp(pimoe_last_error(), "") == 0);
  for (i = 0; i < T * H; ++i) CHECK(isfinite(output[i]));
  for (i = 0; i < T * K; ++i) CHECK(ids[i] >= 0 && ids[i] < E && weights[i] > 0.0f);

  /* A bad call: its message names the culprit; the model is still usable. */
  CHECK(pimoe_forward(model, input, T * H - 1, BATCH, SEQ, output, T * H, NULL, NULL, 0) == PIMOE_ERR_SIZE_MISMATCH);
  CHECK(strstr(pimoe_last_error(), "input_count") != NULL);
  CHECK(strstr(pimoe_model_last_error(model), "input_count") != NULL);

  memset(&stats, 0, sizeof stats);
  stats.struct_size = (uint32_t)sizeof stats;
  CHECK_OK(pimoe_stats(model, &stats));
  CHECK(stats.num_experts == E);
  CHECK(stats.forward_calls == 1);
  CHECK(stats.tokens == T);
  CHECK(stats.latency_last_ms > 0.0);
  CHECK(stats.routing_confidence > 1.0 / E && stats.routing_confidence <= 1.0);
  CHECK_OK(pimoe_stats_expert_loads(model, loads, E));
  for (i = 0; i < E; ++i) load_sum += loads[i];
  CHECK(load_sum == (uint64_t)(T * K));

  n_tensors = pimoe_tensor_count(model);
  CHECK(n_tensors == 1 + 2 * E + 1); /* router, up/down per expert, gate for the SwiGLU expert 1 */
  for (i = 0; i < n_tensors; ++i) {
    const char *name = pimoe_tensor_name(model, i);
    int32_t ndim = 0;
    int64_t dims[4] = {0, 0, 0, 0};
    CHECK(name != NULL);
    if (name == NULL) continue;
    CHECK_OK(pimoe_tensor_shape(model, name, &ndim, dims));
    CHECK(ndim == 1 || ndim == 2);
    total_elems += ndim == 2 ? dims[0] * dims[1] : dims[0];
  }
  CHECK(stats.weight_bytes >= (uint64_t)(4 * total_elems)); /* packed layouts may pad */
  {
    float router[E * H];
    CHECK_OK(pimoe_tensor_read(model, "router.weight", router, E * H));
  }

  CHECK_OK(pimoe_stats_reset(model));
  CHECK_OK(pimoe_stats(model, &stats));
  CHECK(stats.forward_calls == 0 && stats.tokens == 0);

  pimoe_destroy(model);
  pimoe_destroy(NULL);
  pimoe_options_destroy(NULL);

  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return EXIT_FAILURE;
  }
  printf("C99 consumer: all checks passed\n");
  return EXIT_SUCCESS;
}
