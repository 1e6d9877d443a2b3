/* Writes libpimoe's own output on the C# tests' fixed model and input (tests/ExpectedOutputTests.cs reads it).
 * The C# test builds the same model with the same options, runs the same input through the binding and compares
 * the numbers bit for bit. Format: one record per line, "name count v0 v1 ...", floats as %.9g, doubles as %.17g. */
#include <pimoe/pimoe.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(call)                                                                                      \
  do {                                                                                                   \
    pimoe_status st_ = (call);                                                                           \
    if (st_ != PIMOE_OK) {                                                                               \
      fprintf(stderr, "%s failed: %s (%s)\n", #call, pimoe_status_string(st_), pimoe_last_error());     \
      exit(1);                                                                                           \
    }                                                                                                    \
  } while (0)

enum { H = 64, E = 8, K = 2, I = 96, BATCH = 2, SEQ = 5, T = BATCH * SEQ };

static void put_floats(FILE *f, const char *name, const float *v, size_t n) {
  fprintf(f, "%s %zu", name, n);
  for (size_t i = 0; i < n; i++) fprintf(f, " %.9g", (double)v[i]);
  fputc('\n', f);
}

/* The C# callback tests' expert: output = input * (expert + 1); fails with 1 while fail_callback is set. */
static int fail_callback;
static int scale_expert(void *user_data, int32_t expert, const float *input, int64_t rows, int64_t hidden,
                        float *output) {
  (void)user_data;
  if (fail_callback) return 1;
  for (int64_t i = 0; i < rows * hidden; i++) output[i] = input[i] * (float)(expert + 1);
  return 0;
}

/* Routing records of one model (keep in step with RoutingTests.cs): "<name>:slots", then per call c (the last one
 * after pimoe_model_reset_adaptive_state, on call 0's input) "<name>:<c>:output|ids|weights|dropped|probs". */
static void put_routing(FILE *f, const char *name, pimoe_options *o, int calls) {
  pimoe_model *m = NULL;
  CHECK(pimoe_create(o, &m));
  pimoe_options_destroy(o);
  int64_t slots = pimoe_model_routing_slots(m);
  fprintf(f, "%s:slots 1 %lld\n", name, (long long)slots);
  size_t r = (size_t)(T * slots);
  static float in[T * H], out[T * H], probs[T * E];
  float *w = malloc(r * sizeof *w);
  int32_t *ids = malloc(r * sizeof *ids);
  uint8_t *dropped = malloc(r);
  char key[128];
  for (int c = 0; c <= calls; c++) {
    int seed = c == calls ? 0 : c;
    if (c == calls) CHECK(pimoe_model_reset_adaptive_state(m));
    for (int i = 0; i < T * H; i++) in[i] = (float)(((i + 13 * seed) * 29) % 97 - 48) / 40.0f; /* TestUtil.Input */
    pimoe_routing routing = {sizeof(pimoe_routing), ids, w, dropped, r, probs, T * E};
    CHECK(pimoe_forward_routing(m, in, T * H, BATCH, SEQ, out, T * H, &routing));
    snprintf(key, sizeof key, "%s:%d:output", name, c);
    put_floats(f, key, out, T * H);
    fprintf(f, "%s:%d:ids %zu", name, c, r);
    for (size_t i = 0; i < r; i++) fprintf(f, " %d", ids[i]);
    fputc('\n', f);
    snprintf(key, sizeof key, "%s:%d:weights", name, c);
    put_floats(f, key, w, r);
    fprintf(f, "%s:%d:dropped %zu", name, c, r);
    for (size_t i = 0; i < r; i++) fprintf(f, " %d", (int)dropped[i]);
    fputc('\n', f);
    snprintf(key, sizeof key, "%s:%d:probs", name, c);
    put_floats(f, key, probs, T * E);
  }
  free(w), free(ids), free(dropped);
  pimoe_destroy(m);
}

static pimoe_options *routing_base(void) {
  pimoe_options *o = NULL;
  CHECK(pimoe_options_create(&o));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_HIDDEN, H));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_NUM_EXPERTS, E));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_TOP_K, K));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_INTERMEDIATE, I));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_SEED, 99));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_THREADS, 1));
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cpu"));
  return o;
}

static void put_routing_cases(FILE *f) {
  pimoe_options *o = routing_base();
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_WEIGHT_DTYPE, "bf16"));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_ATTENTION_HEADS, 2));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_ATTENTION_HEAD_DIM, 8));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_ATTENTION_CAUSAL, 1));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_COMBINE_ATTENTION_DIM, 16));
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_GROUP_LEVELS, "2:1,2:2"));
  CHECK(pimoe_options_set_float(o, PIMOE_OPT_ADAPTIVE_BIAS_RATE, 0.01));
  CHECK(pimoe_options_set_float(o, PIMOE_OPT_CAPACITY_FACTOR, 1.0));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_DYNAMIC_CAPACITY, 1));
  CHECK(pimoe_options_set_float(o, PIMOE_OPT_CAPACITY_MOMENTUM, 0.8));
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_ROUTING_MODE, "token_choice"));
  put_routing(f, "features", o, 3);

  o = routing_base();
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_ROUTING_MODE, "expert_choice"));
  CHECK(pimoe_options_set_float(o, PIMOE_OPT_CAPACITY_FACTOR, 1.5));
  put_routing(f, "expert_choice", o, 1);

  o = routing_base();
  CHECK(pimoe_options_set_float(o, PIMOE_OPT_CAPACITY_FACTOR, 1.25));
  CHECK(pimoe_options_set_expert_callback(o, 2, scale_expert, NULL));
  CHECK(pimoe_options_set_expert_callback(o, 5, scale_expert, NULL));
  pimoe_model *m = NULL;
  CHECK(pimoe_create(o, &m));
  put_routing(f, "callback", o, 1);
  /* The library's message for a failing callback (status 14). */
  static float in[T * H], out[T * H];
  for (int i = 0; i < T * H; i++) in[i] = (float)((i * 29) % 97 - 48) / 40.0f;
  fail_callback = 1;
  pimoe_status s = pimoe_forward(m, in, T * H, BATCH, SEQ, out, T * H, NULL, NULL, 0);
  fail_callback = 0;
  fprintf(f, "callback_failure_status 1 %d\n", (int)s);
  fprintf(f, "callback_failure_message 1 %s\n", pimoe_last_error());
  pimoe_destroy(m);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUT.txt\n", argv[0]);
    return 2;
  }
  /* Keep in step with ExpectedOutputTests.MakeOptions(). */
  pimoe_options *o = NULL;
  CHECK(pimoe_options_create(&o));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_HIDDEN, H));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_NUM_EXPERTS, E));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_TOP_K, K));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_INTERMEDIATE, I));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_ACTIVATION, PIMOE_ACT_SILU));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_EXPERT_BIAS, 1));
  CHECK(pimoe_options_set_float(o, PIMOE_OPT_TEMPERATURE, 0.9));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_RENORMALIZE, 0));
  CHECK(pimoe_options_set_float(o, PIMOE_OPT_CAPACITY_FACTOR, 1.0));
  CHECK(pimoe_options_set_float(o, PIMOE_OPT_AUX_LOSS_COEF, 0.01));
  CHECK(pimoe_options_set_float(o, PIMOE_OPT_LAYER_NORM_EPS, 1e-6));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_SEED, 1234));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_THREADS, 2));
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cpu"));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_DETERMINISTIC, 1));
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_CPU_GEMM, "packed"));
  CHECK(pimoe_options_set_by_name(o, "pre_norm", "1"));
  CHECK(pimoe_options_set_expert_preset(o, 1, PIMOE_PRESET_LANGUAGE));
  CHECK(pimoe_options_set_expert_preset(o, 2, PIMOE_PRESET_COMPUTATION));
  CHECK(pimoe_options_set_expert_activation(o, 3, PIMOE_ACT_GELU_TANH));
  CHECK(pimoe_options_set_expert_width(o, 4, 40));
  CHECK(pimoe_options_set_expert_pre_norm(o, 5, 0));
  pimoe_model *m = NULL;
  CHECK(pimoe_create(o, &m));
  pimoe_options_destroy(o);

  static float in[T * H], out[T * H], w[T * K];
  static int32_t ids[T * K];
  for (int i = 0; i < T * H; i++) in[i] = (float)((i * 37) % 101 - 50) / 32.0f; /* exact in fp32 and in C# */
  CHECK(pimoe_forward(m, in, T * H, BATCH, SEQ, out, T * H, ids, w, T * K));
  static float out2[T * H];
  CHECK(pimoe_forward(m, in, T * H, BATCH, SEQ, out2, T * H, NULL, NULL, 0));

  FILE *f = fopen(argv[1], "w");
  if (!f) {
    perror(argv[1]);
    return 1;
  }
  fprintf(f, "stats_struct_size 1 %zu\n", sizeof(pimoe_stats_snapshot));
  put_floats(f, "output", out, T * H);
  put_floats(f, "output_no_routing", out2, T * H);
  fprintf(f, "expert_ids %d", T * K);
  for (int i = 0; i < T * K; i++) fprintf(f, " %d", ids[i]);
  fputc('\n', f);
  put_floats(f, "expert_weights", w, T * K);

  uint64_t loads[E];
  CHECK(pimoe_stats_expert_loads(m, loads, E));
  fprintf(f, "loads %d", E);
  for (int i = 0; i < E; i++) fprintf(f, " %llu", (unsigned long long)loads[i]);
  fputc('\n', f);

  pimoe_stats_snapshot s;
  s.struct_size = sizeof s;
  CHECK(pimoe_stats(m, &s));
  fprintf(f, "stats 13 %u %llu %llu %llu %llu %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g\n", s.num_experts,
          (unsigned long long)s.forward_calls, (unsigned long long)s.tokens, (unsigned long long)s.dropped_tokens,
          (unsigned long long)s.weight_bytes, s.expert_utilization, s.load_cv, s.load_max_violation,
          s.load_jain_index, s.load_normalized_entropy, s.routing_confidence, s.aux_loss, s.z_loss);

  for (int e = 0; e < E; e++) {
    pimoe_activation act;
    int64_t width;
    int32_t norm;
    CHECK(pimoe_model_expert(m, e, &act, &width, &norm));
    fprintf(f, "expert_%d 3 %d %lld %d\n", e, (int)act, (long long)width, (int)norm);
  }
  int64_t nt = pimoe_tensor_count(m);
  fprintf(f, "tensor_count 1 %lld\n", (long long)nt);
  for (int64_t i = 0; i < nt; i++) {
    const char *name = pimoe_tensor_name(m, i);
    int32_t nd = 0;
    int64_t dims[4];
    CHECK(pimoe_tensor_shape(m, name, &nd, dims));
    size_t n = 1;
    for (int d = 0; d < nd; d++) n *= (size_t)dims[d];
    fprintf(f, "tensor_shape:%s %d", name, nd);
    for (int d = 0; d < nd; d++) fprintf(f, " %lld", (long long)dims[d]);
    fputc('\n', f);
    if (i < 4) { /* the values of the first few tensors */
      float *v = malloc(n * sizeof *v);
      CHECK(pimoe_tensor_read(m, name, v, n));
      char key[256];
      snprintf(key, sizeof key, "tensor:%s", name);
      put_floats(f, key, v, n);
      free(v);
    }
  }
  fprintf(f, "backend 1 %s\n", pimoe_model_backend(m));
  fprintf(f, "version 1 %s\n", pimoe_version_string());
  fprintf(f, "build_info 1 %s\n", pimoe_build_info());
  put_routing_cases(f);
  fclose(f);
  pimoe_destroy(m);
  return 0;
}
