/* SPDX-License-Identifier: MIT */
/* The C reference of the language bindings' tests: libpimoe's own outputs, computed through its C API only, for the
 * cases that the Java, C# and Python tests run through their bindings and compare bit for bit
 * (bindings/reference/README.md).
 *
 *   pimoe_bindings_reference OUT_DIR
 *
 * Writes, into OUT_DIR (created if missing):
 *   binary records (read by bindings/java/src/test/java/org/pimoe/Reference.java and bindings/python/tests/conftest.py),
 *   in the machine's byte order:
 *     case_<name>.bin          per model case: the input, the output, the routing, per-expert loads, the statistics
 *                              and the router weights after one forward call (write_case)
 *     case_<name>.safetensors  that model, saved (the Java and Python tests load it)
 *     routing_<name>.bin       the full routing of several calls, then of call 0 again after a reset of the adaptive
 *                              state (write_routing_case)
 *     errors.txt               "name<TAB>status<TAB>message" per error scenario (write_errors)
 *   text records (read by bindings/csharp/tests/TestUtil.cs, Expected()):
 *     expected_output.txt      one record per line, "name count v0 v1 ...", floats as %.9g, doubles as %.17g: a
 *                              fixed model's forward, statistics, expert specs and tensors, then routing cases
 *                              and a compact-weights model (write_text_records)
 * The two sets use different models and inputs (each binding's tests build theirs with their own setters); the
 * option settings they share are built by one function each (add_routing_features, add_expert_choice,
 * add_compact_weights). */
#include <pimoe/pimoe.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static FILE *errors_file;

#define CHECK(call)                                                                                               \
  do {                                                                                                            \
    pimoe_status s_ = (call);                                                                                     \
    if (s_ != PIMOE_OK) {                                                                                         \
      fprintf(stderr, "reference: %s failed (%d): %s\n", #call, (int)s_, pimoe_last_error());                   \
      exit(1);                                                                                                    \
    }                                                                                                             \
  } while (0)

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static void fill_input(float *x, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; ++i) x[i] = (float)((double)(splitmix64(&seed) >> 40) * (2.0 / 16777216.0) - 1.0);
}

static void write_all(FILE *f, const void *data, size_t bytes) {
  if (bytes && fwrite(data, 1, bytes, f) != bytes) {
    fprintf(stderr, "reference: write failed\n");
    exit(1);
  }
}

/* --------------------------------------------------------------------------------------------- binary records */

static pimoe_options *options_basic(void) {
  pimoe_options *o = NULL;
  CHECK(pimoe_options_create(&o));
  CHECK(pimoe_options_set_by_name(o, "hidden", "64"));
  CHECK(pimoe_options_set_by_name(o, "num_experts", "8"));
  CHECK(pimoe_options_set_by_name(o, "top_k", "2"));
  CHECK(pimoe_options_set_by_name(o, "intermediate", "96"));
  CHECK(pimoe_options_set_by_name(o, "seed", "7"));
  CHECK(pimoe_options_set_by_name(o, "deterministic", "1"));
  CHECK(pimoe_options_set_by_name(o, "threads", "2"));
  CHECK(pimoe_options_set_by_name(o, "backend", "cpu"));
  return o;
}

/* Every option key and every kind of per-expert override (the Java test builds the same with typed setters, the
 * Python test by name: bindings/python/tests/conftest.py). */
static pimoe_options *options_rich(void) {
  pimoe_options *o = NULL;
  CHECK(pimoe_options_create(&o));
  CHECK(pimoe_options_set_by_name(o, "hidden", "48"));
  CHECK(pimoe_options_set_by_name(o, "num_experts", "6"));
  CHECK(pimoe_options_set_by_name(o, "top_k", "3"));
  CHECK(pimoe_options_set_by_name(o, "intermediate", "64"));
  CHECK(pimoe_options_set_by_name(o, "activation", "silu"));
  CHECK(pimoe_options_set_by_name(o, "pre_norm", "1"));
  CHECK(pimoe_options_set_by_name(o, "expert_bias", "1"));
  CHECK(pimoe_options_set_by_name(o, "temperature", "0.7"));
  CHECK(pimoe_options_set_by_name(o, "renormalize", "0"));
  CHECK(pimoe_options_set_by_name(o, "capacity_factor", "0.75"));
  CHECK(pimoe_options_set_by_name(o, "aux_loss_coef", "0.01"));
  CHECK(pimoe_options_set_by_name(o, "layer_norm_eps", "1e-6"));
  CHECK(pimoe_options_set_by_name(o, "seed", "11"));
  CHECK(pimoe_options_set_by_name(o, "threads", "1"));
  CHECK(pimoe_options_set_by_name(o, "backend", "cpu"));
  CHECK(pimoe_options_set_by_name(o, "deterministic", "1"));
  CHECK(pimoe_options_set_by_name(o, "cpu_gemm", "packed"));
  CHECK(pimoe_options_set_expert_preset(o, -1, PIMOE_PRESET_CREATIVE));
  CHECK(pimoe_options_set_expert_preset(o, 0, PIMOE_PRESET_REASONING));
  CHECK(pimoe_options_set_expert_preset(o, 1, PIMOE_PRESET_COMPUTATION));
  CHECK(pimoe_options_set_expert_preset(o, 2, PIMOE_PRESET_LANGUAGE));
  CHECK(pimoe_options_set_expert_activation(o, 3, PIMOE_ACT_RELU));
  CHECK(pimoe_options_set_expert_width(o, 4, 40));
  CHECK(pimoe_options_set_expert_pre_norm(o, 5, 0));
  CHECK(pimoe_options_set_expert_preset(o, 5, PIMOE_PRESET_GENERIC));
  return o;
}

static void write_case(const char *dir, const char *name, pimoe_options *o, int64_t batch, int64_t seq,
                       uint64_t input_seed) {
  pimoe_model *m = NULL;
  CHECK(pimoe_create(o, &m));
  pimoe_options_destroy(o);
  int64_t hidden = 0;
  int32_t experts = 0, top_k = 0;
  CHECK(pimoe_model_dims(m, &hidden, &experts, &top_k));
  size_t n = (size_t)(batch * seq * hidden), r = (size_t)(batch * seq * top_k);
  float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float)), *w = malloc(r * sizeof(float));
  int32_t *ids = malloc(r * sizeof(int32_t));
  uint64_t *loads = malloc((size_t)experts * sizeof(uint64_t));
  fill_input(x, n, input_seed);
  CHECK(pimoe_forward(m, x, n, batch, seq, y, n, ids, w, r));
  CHECK(pimoe_stats_expert_loads(m, loads, (size_t)experts));
  pimoe_stats_snapshot st;
  memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  CHECK(pimoe_stats(m, &st));
  size_t rw = (size_t)experts * (size_t)hidden;
  float *router = malloc(rw * sizeof(float));
  CHECK(pimoe_tensor_read(m, "router.weight", router, rw));
  int64_t tensors = pimoe_tensor_count(m);
  char path[4096];
  snprintf(path, sizeof path, "%s/case_%s.safetensors", dir, name); /* the Java and Python tests load it */
  CHECK(pimoe_save(m, path));

  snprintf(path, sizeof path, "%s/case_%s.bin", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    exit(1);
  }
  int64_t header[6] = {batch, seq, hidden, top_k, experts, tensors};
  write_all(f, header, sizeof header);
  write_all(f, x, n * sizeof(float));
  write_all(f, y, n * sizeof(float));
  write_all(f, ids, r * sizeof(int32_t));
  write_all(f, w, r * sizeof(float));
  write_all(f, loads, (size_t)experts * sizeof(uint64_t));
  uint64_t counters[3] = {st.forward_calls, st.tokens, st.dropped_tokens};
  write_all(f, counters, sizeof counters);
  double metrics[8] = {st.expert_utilization, st.load_cv,           st.load_max_violation, st.load_jain_index,
                       st.load_normalized_entropy, st.routing_confidence, st.aux_loss,       st.z_loss};
  write_all(f, metrics, sizeof metrics);
  write_all(f, router, rw * sizeof(float));
  fclose(f);
  free(x), free(y), free(w), free(ids), free(loads), free(router);
  pimoe_destroy(m);
}

/* Full routing (pimoe_forward_routing) over CALLS calls with different inputs, written as routing_<name>.bin: header
 * {batch, seq, hidden, slots, experts, calls} (int64), then per call the input, output, expert ids (int32), weights,
 * dropped (uint8) and probabilities. After the calls the adaptive state is reset and call 0 is run again: its
 * results are appended as one more call. */
static void write_routing_case(const char *dir, const char *name, pimoe_options *o, int64_t batch, int64_t seq,
                               int calls) {
  pimoe_model *m = NULL;
  CHECK(pimoe_create(o, &m));
  pimoe_options_destroy(o);
  int64_t hidden = 0;
  int32_t experts = 0;
  CHECK(pimoe_model_dims(m, &hidden, &experts, NULL));
  int64_t slots = pimoe_model_routing_slots(m);
  size_t n = (size_t)(batch * seq * hidden), r = (size_t)(batch * seq * slots), p = (size_t)(batch * seq * experts);
  float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float)), *w = malloc(r * sizeof(float));
  float *probs = malloc(p * sizeof(float));
  int32_t *ids = malloc(r * sizeof(int32_t));
  uint8_t *dropped = malloc(r);
  char path[4096];
  snprintf(path, sizeof path, "%s/routing_%s.bin", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    exit(1);
  }
  int64_t header[6] = {batch, seq, hidden, slots, experts, calls + 1};
  write_all(f, header, sizeof header);
  for (int c = 0; c <= calls; ++c) {
    if (c == calls) CHECK(pimoe_model_reset_adaptive_state(m));
    fill_input(x, n, (uint64_t)(100 + (c == calls ? 0 : c)));
    pimoe_routing routing;
    memset(&routing, 0, sizeof routing);
    routing.struct_size = sizeof routing;
    routing.expert_ids = ids;
    routing.weights = w;
    routing.dropped = dropped;
    routing.slot_count = r;
    routing.probabilities = probs;
    routing.probability_count = p;
    CHECK(pimoe_forward_routing(m, x, n, batch, seq, y, n, &routing));
    write_all(f, x, n * sizeof(float));
    write_all(f, y, n * sizeof(float));
    write_all(f, ids, r * sizeof(int32_t));
    write_all(f, w, r * sizeof(float));
    write_all(f, dropped, r);
    write_all(f, probs, p * sizeof(float));
  }
  fclose(f);
  free(x), free(y), free(w), free(probs), free(ids), free(dropped);
  pimoe_destroy(m);
}

/* The routing features, the same in the Java and C# cases (their tests build the same with typed setters). */
static void add_routing_features(pimoe_options *o) {
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
}

static void add_expert_choice(pimoe_options *o) {
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_ROUTING_MODE, "expert_choice"));
  CHECK(pimoe_options_set_float(o, PIMOE_OPT_CAPACITY_FACTOR, 1.5));
}

/* Compact weights, the same in the Java and C# cases: an int4 layer (64-element groups with zero points) whose
 * expert 0 is kept at bf16 and expert 3 at int8 (pimoe_options_set_expert_weight_dtype). */
static void add_compact_weights(pimoe_options *o) {
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_WEIGHT_DTYPE, "int4"));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_WEIGHT_GROUP_SIZE, 64));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_WEIGHT_ZERO_POINT, 1));
  CHECK(pimoe_options_set_expert_weight_dtype(o, 0, "bf16"));
  CHECK(pimoe_options_set_expert_weight_dtype(o, 3, "int8"));
}

/* The routing features on the basic model (Java, Python). */
static pimoe_options *options_features(void) {
  pimoe_options *o = options_basic();
  CHECK(pimoe_options_set_by_name(o, "deterministic", "0")); /* not promisable with adaptive routing */
  CHECK(pimoe_options_set_by_name(o, "threads", "1"));
  add_routing_features(o);
  return o;
}

static pimoe_options *options_router_extensions(void) {
  pimoe_options *o = options_basic();
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_ROUTER_SCORING, "sigmoid"));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_ROUTER_BIAS, 1));
  CHECK(pimoe_options_set_float(o, PIMOE_OPT_ROUTED_SCALING, 2.5));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_NUM_GROUPS, 4));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_TOPK_GROUPS, 2));
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_GROUP_SCORE, "max"));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_SHARED_WIDTH, 32));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_SHARED_GATE, 1));
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_WEIGHT_DTYPE, "fp16"));
  return o;
}


/* Compact weights on the basic model (Java, Python). */
static pimoe_options *options_compact(void) {
  pimoe_options *o = options_basic();
  add_compact_weights(o);
  return o;
}

static pimoe_options *options_expert_choice(void) {
  pimoe_options *o = options_basic();
  add_expert_choice(o);
  return o;
}

static void record(const char *name, pimoe_status status) {
  if (status == PIMOE_OK) {
    fprintf(stderr, "reference: error scenario %s unexpectedly succeeded\n", name);
    exit(1);
  }
  fprintf(errors_file, "%s\t%d\t%s\n", name, (int)status, pimoe_last_error());
}

/* Creation with one setter applied to the basic options: the setter's failure or else pimoe_create's. */
static pimoe_status create_with(pimoe_options *o) {
  pimoe_model *m = NULL;
  pimoe_status s = pimoe_create(o, &m);
  pimoe_destroy(m);
  pimoe_options_destroy(o);
  return s;
}

static void write_errors(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/errors.txt", dir);
  errors_file = fopen(path, "w");
  if (!errors_file) {
    perror(path);
    exit(1);
  }
  pimoe_options *o;
  pimoe_status s;

  o = options_basic();
  record("unknown_option_name", pimoe_options_set_by_name(o, "no_such_option", "1"));
  pimoe_options_destroy(o);
  o = options_basic();
  record("wrong_type", pimoe_options_set_int(o, PIMOE_OPT_TEMPERATURE, 1));
  pimoe_options_destroy(o);
  o = options_basic();
  record("bad_value_by_name", pimoe_options_set_by_name(o, "top_k", "abc"));
  pimoe_options_destroy(o);
  o = options_basic();
  record("hidden_zero", pimoe_options_set_int(o, PIMOE_OPT_HIDDEN, 0));
  pimoe_options_destroy(o);
  o = options_basic();
  record("bad_activation_name", pimoe_options_set_by_name(o, "activation", "mish"));
  pimoe_options_destroy(o);
  o = options_basic();
  record("negative_width", pimoe_options_set_expert_width(o, 0, -5));
  pimoe_options_destroy(o);
  o = options_basic();
  record("bad_temperature", pimoe_options_set_float(o, PIMOE_OPT_TEMPERATURE, -1.0));
  pimoe_options_destroy(o);
  o = options_basic();
  record("bad_expert_weight_dtype", pimoe_options_set_expert_weight_dtype(o, 0, "int3"));
  pimoe_options_destroy(o);

  o = options_basic();
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_TOP_K, 9));
  record("top_k_exceeds", create_with(o));
  o = options_basic();
  CHECK(pimoe_options_set_expert_preset(o, 9, PIMOE_PRESET_LOGICAL));
  record("expert_index", create_with(o));
  o = options_basic();
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_WEIGHT_GROUP_SIZE, 48)); /* in the setter's range, not a group size */
  record("bad_weight_group_size", create_with(o));
  o = options_basic();
  s = pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "no_such_backend");
  record("bad_backend", s != PIMOE_OK ? s : create_with(o));
  if (s != PIMOE_OK) pimoe_options_destroy(o);
  o = options_basic();
  s = pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cuda");
  record("cuda_backend", s != PIMOE_OK ? s : create_with(o));
  if (s != PIMOE_OK) pimoe_options_destroy(o);

  pimoe_model *m = NULL;
  o = options_basic();
  CHECK(pimoe_create(o, &m));
  pimoe_options_destroy(o);
  float x[2 * 64], y[2 * 64], w[4];
  int32_t ids[4];
  fill_input(x, 128, 1);
  record("input_size_mismatch", pimoe_forward(m, x, 100, 2, 1, y, 128, NULL, NULL, 0));
  record("output_size_mismatch", pimoe_forward(m, x, 128, 2, 1, y, 64, NULL, NULL, 0));
  record("routing_size_mismatch", pimoe_forward(m, x, 128, 2, 1, y, 128, ids, w, 3));
  record("batch_zero", pimoe_forward(m, x, 128, 0, 2, y, 128, NULL, NULL, 0));
  record("null_input", pimoe_forward(m, NULL, 0, 2, 1, y, 128, NULL, NULL, 0));
  record("null_output", pimoe_forward(m, x, 128, 2, 1, NULL, 0, NULL, NULL, 0));
  x[70] = NAN;
  record("non_finite_input", pimoe_forward(m, x, 128, 2, 1, y, 128, ids, w, 4));
  int32_t ndim = 0;
  int64_t dims[4];
  record("tensor_not_found", pimoe_tensor_shape(m, "no.such.tensor", &ndim, dims));
  record("tensor_read_count", pimoe_tensor_read(m, "router.weight", w, 4));
  record("expert_out_of_range", pimoe_model_expert(m, 99, NULL, NULL, NULL));
  int32_t usable = 0;
  record("probe_unknown", pimoe_backend_probe("no_such_backend", &usable));
  snprintf(path, sizeof path, "%s/no_such_file.safetensors", dir);
  pimoe_model *loaded = NULL;
  record("load_missing", pimoe_load(path, NULL, &loaded));
  snprintf(path, sizeof path, "%s/errors.txt", dir); /* not a safetensors file */
  fflush(errors_file);
  record("load_not_a_model", pimoe_load(path, NULL, &loaded));
  snprintf(path, sizeof path, "%s/no_such_dir/model.safetensors", dir);
  record("save_unwritable", pimoe_save(m, path));
  pimoe_destroy(m);
  fclose(errors_file);
}

/* ----------------------------------------------------------------------------------------------- text records */

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
  add_routing_features(o);
  put_routing(f, "features", o, 3);

  o = routing_base();
  add_expert_choice(o);
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

static uint64_t weight_bytes(const pimoe_model *m) {
  pimoe_stats_snapshot s;
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  CHECK(pimoe_stats(m, &s));
  return s.weight_bytes;
}

/* Compact weights (keep in step with CompactWeightsTests.cs): routing_base() plus add_compact_weights, on
 * TestUtil.Input(0, T): "compact:output|ids|weights", "compact:weight_bytes", the values read back of expert 0's and
 * expert 1's up projections ("compact:tensor:<name>"), and "compact:fp32_weight_bytes", those of routing_base()
 * alone. */
static void put_compact(FILE *f) {
  pimoe_options *o = routing_base();
  add_compact_weights(o);
  pimoe_model *m = NULL;
  CHECK(pimoe_create(o, &m));
  pimoe_options_destroy(o);
  static float in[T * H], out[T * H], w[T * K];
  static int32_t ids[T * K];
  for (int i = 0; i < T * H; i++) in[i] = (float)((i * 29) % 97 - 48) / 40.0f; /* TestUtil.Input(0, T) */
  CHECK(pimoe_forward(m, in, T * H, BATCH, SEQ, out, T * H, ids, w, T * K));
  put_floats(f, "compact:output", out, T * H);
  fprintf(f, "compact:ids %d", T * K);
  for (int i = 0; i < T * K; i++) fprintf(f, " %d", ids[i]);
  fputc('\n', f);
  put_floats(f, "compact:weights", w, T * K);
  fprintf(f, "compact:weight_bytes 1 %llu\n", (unsigned long long)weight_bytes(m));
  const char *tensors[] = {"experts.0.up.weight", "experts.1.up.weight"};
  for (int i = 0; i < 2; i++) {
    static float v[H * I];
    char key[128];
    CHECK(pimoe_tensor_read(m, tensors[i], v, H * I));
    snprintf(key, sizeof key, "compact:tensor:%s", tensors[i]);
    put_floats(f, key, v, H * I);
  }
  pimoe_destroy(m);
  o = routing_base();
  CHECK(pimoe_create(o, &m));
  pimoe_options_destroy(o);
  fprintf(f, "compact:fp32_weight_bytes 1 %llu\n", (unsigned long long)weight_bytes(m));
  pimoe_destroy(m);
}

/* expected_output.txt: the C# tests' fixed model (keep in step with TestUtil.MakeOptions()) and input, then the
 * routing cases and the compact-weights records. */
static void write_text_records(const char *dir) {
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

  char path[4096];
  snprintf(path, sizeof path, "%s/expected_output.txt", dir);
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(1);
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
  put_compact(f);
  fclose(f);
  pimoe_destroy(m);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  mkdir(argv[1], 0777); /* may exist already; fopen reports any real problem */
  /* Binary records (Java, Python). */
  write_case(argv[1], "basic", options_basic(), 2, 3, 42);
  write_case(argv[1], "rich", options_rich(), 3, 5, 43);
  write_case(argv[1], "compact", options_compact(), 2, 3, 44);
  write_routing_case(argv[1], "basic", options_basic(), 2, 3, 1);
  write_routing_case(argv[1], "features", options_features(), 2, 6, 3);
  write_routing_case(argv[1], "router_extensions", options_router_extensions(), 2, 6, 1);
  write_routing_case(argv[1], "expert_choice", options_expert_choice(), 2, 6, 1);
  write_errors(argv[1]);
  /* Text records (C#). */
  write_text_records(argv[1]);
  printf("reference outputs written to %s\n", argv[1]);
  return 0;
}
