/* Reference outputs for the Java binding's tests, computed by the C library through its C API only.
 *
 *   pimoe_java_reference OUT_DIR
 *
 * Writes OUT_DIR/case_<name>.bin for each model case (the input, the output, the routing, per-expert loads, the
 * statistics and the router weights after one forward call) and OUT_DIR/errors.txt ("name<TAB>status<TAB>message"
 * per error scenario). The Java tests run the same cases and scenarios through the binding and compare. Every value
 * is written in the machine's byte order (the reader runs on the same machine). */
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

/* Every option key and every kind of per-expert override (the Java test builds the same with typed setters). */
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
  snprintf(path, sizeof path, "%s/case_%s.safetensors", dir, name); /* the Java test loads it */
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

/* The routing features (the Java tests build the same with the typed setters of Options). */
static pimoe_options *options_features(void) {
  pimoe_options *o = options_basic();
  CHECK(pimoe_options_set_by_name(o, "deterministic", "0")); /* not promisable with adaptive routing */
  CHECK(pimoe_options_set_by_name(o, "threads", "1"));
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

static pimoe_options *options_expert_choice(void) {
  pimoe_options *o = options_basic();
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_ROUTING_MODE, "expert_choice"));
  CHECK(pimoe_options_set_float(o, PIMOE_OPT_CAPACITY_FACTOR, 1.5));
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
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_TOP_K, 9));
  record("top_k_exceeds", create_with(o));
  o = options_basic();
  CHECK(pimoe_options_set_expert_preset(o, 9, PIMOE_PRESET_LOGICAL));
  record("expert_index", create_with(o));
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

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  mkdir(argv[1], 0777); /* may exist already; fopen reports any real problem */
  write_case(argv[1], "basic", options_basic(), 2, 3, 42);
  write_case(argv[1], "rich", options_rich(), 3, 5, 43);
  write_routing_case(argv[1], "basic", options_basic(), 2, 3, 1);
  write_routing_case(argv[1], "features", options_features(), 2, 6, 3);
  write_routing_case(argv[1], "router_extensions", options_router_extensions(), 2, 6, 1);
  write_routing_case(argv[1], "expert_choice", options_expert_choice(), 2, 6, 1);
  write_errors(argv[1]);
  printf("reference outputs written to %s\n", argv[1]);
  return 0;
}
