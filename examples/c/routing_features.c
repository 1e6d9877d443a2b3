/* SPDX-License-Identifier: MIT */
/*
 * libpimoe routing features, one after another, each printing what it does (pimoe.h documents every formula):
 *   1. routing introspection: a per-token routing table (experts, weights, dropped flags, router probabilities)
 *   2. group-limited routing over a two-level tree of groups
 *   3. expert-choice routing: every expert takes exactly C tokens
 *   4. the attention router: a token's route depends on its neighbours
 *   5. adaptive routing (auxiliary-loss-free bias): Jain's index over calls on a skewed input stream
 *   6. dynamic capacity: fewer dropped tokens than static capacity at the same total
 *   7. cross-expert attention combine: router weights w versus combine weights w'
 *   8. shared experts: always-on, optionally gated
 *   9. a physically isolated expert: an exact host callback whose output appears in the layer's output
 *  10. expert input scaling (Llama 4): the routing weight scales the expert's input, not its output
 *  11. sparsemixer routing (Phi-3.5-MoE): top-2, each weight a softmax over the logits near its expert's
 *
 *   usage: routing_features [backend]          default: cpu
 *
 * Build it against an installed libpimoe with:
 *   cc -std=c99 routing_features.c $(pkg-config --cflags --libs pimoe) -lm -o routing_features
 */
#include <pimoe/pimoe.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H 32
#define E 8

static const char *g_backend = "cpu";

#define CHECK(call)                                                                                               \
  do {                                                                                                            \
    pimoe_status check_status_ = (call);                                                                          \
    if (check_status_ != PIMOE_OK) {                                                                              \
      fprintf(stderr, "routing_features: %s failed: %s (%d): %s\n", #call, pimoe_status_string(check_status_),   \
              (int)check_status_, pimoe_last_error());                                                            \
      exit(1);                                                                                                    \
    }                                                                                                             \
  } while (0)

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static float uniform_pm1(uint64_t *state) {
  return (float)((double)(splitmix64(state) >> 40) * (1.0 / 8388608.0) - 1.0);
}

static void fill_input(float *x, size_t n, uint64_t seed) {
  size_t i;
  for (i = 0; i < n; ++i) x[i] = 2.0f * uniform_pm1(&seed);
}

/* Options of a small layer (H = 32, E = 8, top-2, GELU experts of width 64) plus `extra` name=value pairs. */
static pimoe_model *make_layer(const char *const *extra, size_t n_extra) {
  pimoe_options *o = NULL;
  pimoe_model *m = NULL;
  size_t i;
  CHECK(pimoe_options_create(&o));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_HIDDEN, H));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_NUM_EXPERTS, E));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_TOP_K, 2));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_INTERMEDIATE, 64));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_SEED, 7));
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, g_backend));
  for (i = 0; i + 1 < n_extra; i += 2) CHECK(pimoe_options_set_by_name(o, extra[i], extra[i + 1]));
  CHECK(pimoe_create(o, &m));
  pimoe_options_destroy(o);
  return m;
}

/* Jain's index of per-expert counts: (sum c)^2 / (E * sum c^2). */
static double jain(const uint64_t *c, int n) {
  double s = 0.0, s2 = 0.0;
  int i;
  for (i = 0; i < n; ++i) {
    s += (double)c[i];
    s2 += (double)c[i] * (double)c[i];
  }
  return s2 > 0.0 ? s * s / ((double)n * s2) : 1.0;
}

/* The example checks what it shows, so that it fails loudly (exit 1) if a feature stops doing what it prints. */
static void expect(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "routing_features: unexpected: %s\n", what);
    exit(1);
  }
}

static void section(const char *title) {
  printf("\n== %s\n", title);
}

/* 1. The full routing of a call with a capacity limit: who went where, with which weight, what was dropped. */
static void routing_table(void) {
  enum { T = 6, K = 2 };
  const char *const opts[] = {"capacity_factor", "0.75"};
  pimoe_model *m = make_layer(opts, 2);
  float x[T * H], y[T * H], w[T * K], probs[T * E];
  int32_t ids[T * K];
  uint8_t dropped[T * K];
  pimoe_routing r;
  int t, j;
  fill_input(x, T * H, 1);
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.expert_ids = ids;
  r.weights = w;
  r.dropped = dropped;
  r.slot_count = T * K;
  r.probabilities = probs;
  r.probability_count = T * E;
  CHECK(pimoe_forward_routing(m, x, T * H, 1, T, y, T * H, &r));
  section("1. routing table (top-2 softmax, capacity_factor 0.75: C = ceil(6*2*0.75/8) = 2 slots per expert)");
  printf("token  slot1 (weight)      slot2 (weight)      p(top1)  p(top2)\n");
  for (t = 0; t < T; ++t) {
    printf("%5d", t);
    for (j = 0; j < K; ++j) {
      const int a = t * K + j;
      printf("  e%d %-7s %6.4f", ids[a], dropped[a] ? "DROPPED" : "", w[a]);
    }
    printf("   %6.4f   %6.4f\n", probs[t * E + ids[t * K]], probs[t * E + ids[t * K + 1]]);
  }
  pimoe_destroy(m);
}

/* 2. A two-level tree: 2 halves keep 1, then 2 quarters of it keep 1: every token's experts lie in one quarter. */
static void group_tree(void) {
  enum { T = 64, K = 2 };
  const char *const opts[] = {"group_levels", "2:1,2:1", "router_scoring", "sigmoid"};
  pimoe_model *m = make_layer(opts, 4);
  float x[T * H], y[T * H], w[T * K];
  int32_t ids[T * K];
  int t, outside = 0, per_quarter[4] = {0, 0, 0, 0};
  fill_input(x, T * H, 2);
  CHECK(pimoe_forward(m, x, T * H, 1, T, y, T * H, ids, w, T * K));
  for (t = 0; t < T; ++t) {
    outside += ids[t * K] / 2 != ids[t * K + 1] / 2;
    ++per_quarter[ids[t * K] / 2];
  }
  section("2. group tree \"2:1,2:1\" (sigmoid scores): experts {0,1} {2,3} {4,5} {6,7} are the leaves");
  printf("tokens whose two experts share one leaf group: %d of %d; tokens per leaf: %d %d %d %d\n", T - outside, T,
         per_quarter[0], per_quarter[1], per_quarter[2], per_quarter[3]);
  expect(outside == 0, "a token's experts outside its kept leaf group");
  pimoe_destroy(m);
}

/* 3. Expert choice: each expert takes its C best tokens; tokens get 0..E experts. */
static void expert_choice(void) {
  enum { T = 16 };
  const char *const opts[] = {"routing_mode", "expert_choice", "capacity_factor", "1.5"};
  pimoe_model *m = make_layer(opts, 4);
  const int64_t S = pimoe_model_routing_slots(m);
  float x[T * H], y[T * H], w[T * E];
  int32_t ids[T * E];
  int per_expert[E] = {0}, per_token_hist[E + 1] = {0};
  int t, j;
  fill_input(x, T * H, 3);
  CHECK(pimoe_forward(m, x, T * H, 1, T, y, T * H, ids, w, (size_t)(T * S)));
  for (t = 0; t < T; ++t) {
    int n = 0;
    for (j = 0; j < S; ++j) {
      if (ids[t * S + j] >= 0) {
        ++per_expert[ids[t * S + j]];
        ++n;
      }
    }
    ++per_token_hist[n];
  }
  section("3. expert choice, capacity_factor 1.5: C = ceil(16*1.5/8) = 3 tokens per expert");
  printf("tokens per expert:");
  for (j = 0; j < E; ++j) printf(" %d", per_expert[j]);
  printf("\nexperts per token (count of tokens with 0, 1, 2, ... experts):");
  for (j = 0; j <= 4; ++j) printf(" %d", per_token_hist[j]);
  printf(" ...\n");
  for (j = 0; j < E; ++j) expect(per_expert[j] == 3, "an expert did not take exactly C = 3 tokens");
  pimoe_destroy(m);
}

/* 4. The attention router: the last token of a sequence, alone and after different neighbours. */
static void attention_router(void) {
  enum { T = 8 };
  const char *const opts[] = {"router_attention_heads", "2", "router_attention_head_dim", "8",
                              "router_attention_causal", "1"};
  pimoe_model *m = make_layer(opts, 6);
  float a[T * H], b[T * H], y[T * H], w[T * 2];
  int32_t ids_a[T * 2], ids_b[T * 2];
  int t, changed = 0;
  fill_input(a, T * H, 4);
  memcpy(b, a, sizeof a);
  for (t = 0; t < (T - 1) * H; ++t) b[t] = -a[t]; /* same tokens at the end, different neighbours before them */
  CHECK(pimoe_forward(m, a, T * H, 1, T, y, T * H, ids_a, w, T * 2));
  CHECK(pimoe_forward(m, b, T * H, 1, T, y, T * H, ids_b, w, T * 2));
  for (t = 0; t < 2; ++t) changed += ids_a[(T - 1) * 2 + t] != ids_b[(T - 1) * 2 + t];
  section("4. attention router (2 heads of 8, causal): the same last token after different neighbours");
  printf("last token's experts: e%d e%d after sequence A, e%d e%d after sequence B (%s)\n", ids_a[(T - 1) * 2],
         ids_a[(T - 1) * 2 + 1], ids_b[(T - 1) * 2], ids_b[(T - 1) * 2 + 1],
         changed ? "the context changed its route" : "same route this time; its logits still differ");
  pimoe_destroy(m);
}

/* A skewed stream: every token leans along router row 0, which unbalances the top-2 choices. */
static void skewed_input(const pimoe_model *m, float *x, int tokens, uint64_t seed) {
  float router[E * H];
  const float *row = router; /* row 0: expert 0's router weights */
  int t, i;
  CHECK(pimoe_tensor_read(m, "router.weight", router, E * H));
  fill_input(x, (size_t)tokens * H, seed);
  for (t = 0; t < tokens; ++t) {
    for (i = 0; i < H; ++i) x[t * H + i] = x[t * H + i] + 4.0f * row[i];
  }
}

/* 5. Adaptive bias: per-call Jain's index rises as the bias steers tokens away from the overloaded expert. */
static void adaptive_bias(void) {
  enum { T = 128, CALLS = 60 };
  const char *const opts[] = {"adaptive_bias_rate", "0.02"};
  pimoe_model *m = make_layer(opts, 2);
  static float x[T * H], y[T * H], w[T * 2];
  static int32_t ids[T * 2];
  int call, i;
  section("5. adaptive routing (bias rate 0.02) on a skewed stream: per-call Jain index");
  for (call = 0; call < CALLS; ++call) {
    uint64_t c[E] = {0};
    skewed_input(m, x, T, 100 + (uint64_t)call);
    CHECK(pimoe_forward(m, x, T * H, 1, T, y, T * H, ids, w, T * 2));
    for (i = 0; i < T * 2; ++i) ++c[ids[i]];
    if (call % 10 == 0 || call == CALLS - 1) {
      uint64_t most = 0;
      for (i = 0; i < E; ++i) most = c[i] > most ? c[i] : most;
      printf("call %2d: Jain %.3f, busiest expert took %3llu of %d assignments\n", call, jain(c, E),
             (unsigned long long)most, T * 2);
    }
  }
  CHECK(pimoe_model_reset_adaptive_state(m));
  printf("pimoe_model_reset_adaptive_state() puts the bias back to its value at creation\n");
  pimoe_destroy(m);
}

/* 6. Dynamic capacity: the same skewed stream through static and dynamic capacity, same total slots. */
static void dynamic_capacity(void) {
  enum { T = 128, CALLS = 30 };
  const char *const fixed[] = {"capacity_factor", "1.25"};
  const char *const dynamic[] = {"capacity_factor", "1.25", "dynamic_capacity", "1", "capacity_momentum", "0.8"};
  pimoe_model *ms = make_layer(fixed, 2), *md = make_layer(dynamic, 6);
  static float x[T * H], y[T * H];
  pimoe_stats_snapshot s, d;
  int call;
  for (call = 0; call < CALLS; ++call) {
    skewed_input(ms, x, T, 500 + (uint64_t)call);
    CHECK(pimoe_forward(ms, x, T * H, 1, T, y, T * H, NULL, NULL, 0));
    CHECK(pimoe_forward(md, x, T * H, 1, T, y, T * H, NULL, NULL, 0));
  }
  s.struct_size = d.struct_size = sizeof s;
  CHECK(pimoe_stats(ms, &s));
  CHECK(pimoe_stats(md, &d));
  section("6. dynamic capacity (capacity_factor 1.25, 40 slots per expert, 320 per call) on the skewed stream");
  printf("dropped assignments over %d calls: static %llu, dynamic %llu\n", CALLS,
         (unsigned long long)s.dropped_tokens, (unsigned long long)d.dropped_tokens);
  expect(d.dropped_tokens < s.dropped_tokens, "dynamic capacity dropped no fewer tokens than static capacity");
  pimoe_destroy(ms);
  pimoe_destroy(md);
}

/* 7. Attention combine: the router's weights w, and the weights w' the outputs were combined with. */
static void attention_combine(void) {
  enum { T = 4 };
  const char *const plain_opts[] = {"seed", "7"};
  const char *const opts[] = {"combine_attention_dim", "8"};
  pimoe_model *plain = make_layer(plain_opts, 2), *m = make_layer(opts, 2);
  float x[T * H], y[T * H], w[T * 2], wc[T * 2];
  int32_t ids[T * 2], idc[T * 2];
  int t;
  fill_input(x, T * H, 7);
  CHECK(pimoe_forward(plain, x, T * H, 1, T, y, T * H, ids, w, T * 2));
  CHECK(pimoe_forward(m, x, T * H, 1, T, y, T * H, idc, wc, T * 2));
  section("7. cross-expert attention combine (d_c = 8): w' = softmax(q.k_j/sqrt(d_c) + log w_j)");
  for (t = 0; t < T; ++t) {
    printf("token %d: e%d w %.4f -> w' %.4f   e%d w %.4f -> w' %.4f\n", t, ids[t * 2], w[t * 2], wc[t * 2],
           ids[t * 2 + 1], w[t * 2 + 1], wc[t * 2 + 1]);
  }
  pimoe_destroy(plain);
  pimoe_destroy(m);
}

/* 8. Shared expert: the output with and without it. */
static void shared_expert(void) {
  enum { T = 4 };
  const char *const none[] = {"seed", "7"};
  const char *const opts[] = {"shared_width", "48", "shared_gate", "1"};
  pimoe_model *a = make_layer(none, 2), *b = make_layer(opts, 4);
  float x[T * H], ya[T * H], yb[T * H];
  double diff = 0.0;
  int i;
  fill_input(x, T * H, 8);
  CHECK(pimoe_forward(a, x, T * H, 1, T, ya, T * H, NULL, NULL, 0));
  CHECK(pimoe_forward(b, x, T * H, 1, T, yb, T * H, NULL, NULL, 0));
  for (i = 0; i < T * H; ++i) diff += fabs((double)yb[i] - ya[i]);
  section("8. shared expert (SwiGLU, width 48, sigmoid gate) added to every token");
  printf("mean |y_with - y_without| = %.4f (the shared expert's gated contribution)\n", diff / (T * H));
  pimoe_destroy(a);
  pimoe_destroy(b);
}

/* 9. An exact arithmetic expert: computes 3*x in the host, and is called with the rows routed to it. */
static int exact_triple(void *user_data, int32_t expert, const float *in, int64_t rows, int64_t hidden, float *out) {
  int64_t i;
  int *calls = (int *)user_data;
  (void)expert;
  ++*calls;
  for (i = 0; i < rows * hidden; ++i) out[i] = 3.0f * in[i];
  return 0;
}

static void callback_expert(void) {
  enum { T = 16 };
  pimoe_options *o = NULL;
  pimoe_model *m = NULL;
  float x[T * H], y[T * H], w[T];
  int32_t ids[T];
  int calls = 0, t, i, routed = 0, exact = 0;
  CHECK(pimoe_options_create(&o));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_HIDDEN, H));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_NUM_EXPERTS, 4));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_TOP_K, 1));
  CHECK(pimoe_options_set_int(o, PIMOE_OPT_INTERMEDIATE, 64));
  CHECK(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, g_backend));
  CHECK(pimoe_options_set_expert_callback(o, 2, exact_triple, &calls));
  CHECK(pimoe_create(o, &m));
  pimoe_options_destroy(o);
  fill_input(x, T * H, 9);
  CHECK(pimoe_forward(m, x, T * H, 1, T, y, T * H, ids, w, T));
  for (t = 0; t < T; ++t) {
    if (ids[t] != 2) continue;
    ++routed;
    for (i = 0; i < H && y[t * H + i] == w[t] * 3.0f * x[t * H + i]; ++i) {
    }
    exact += i == H;
  }
  section("9. physically isolated expert: expert 2 is a host callback computing 3*x exactly (top-1, renormalised)");
  printf("callback calls: %d; tokens routed to it: %d of %d; outputs equal to 3*x bit for bit: %d of %d\n", calls,
         routed, T, exact, routed);
  expect(calls == 1 && routed > 0 && exact == routed, "the callback's outputs are not exactly in the layer output");
  pimoe_destroy(m);
}

/* 10. Expert input scaling (Llama 4): sigmoid top-1, the expert runs on w * x; against the same layer weighing the
 * expert's output instead. */
static void expert_input_scaling(void) {
  enum { T = 4 };
  const char *const out_opts[] = {"top_k", "1", "router_scoring", "sigmoid", "renormalize", "0",
                                  "activation", "swiglu"};
  const char *const in_opts[] = {"top_k", "1", "router_scoring", "sigmoid", "renormalize", "0",
                                 "activation", "swiglu", "expert_input_scaling", "1"};
  pimoe_model *a = make_layer(out_opts, 8), *b = make_layer(in_opts, 10);
  float x[T * H], ya[T * H], yb[T * H], w[T];
  int32_t ids[T];
  int t, i, differs = 0;
  fill_input(x, T * H, 10);
  CHECK(pimoe_forward(a, x, T * H, 1, T, ya, T * H, NULL, NULL, 0));
  CHECK(pimoe_forward(b, x, T * H, 1, T, yb, T * H, ids, w, T));
  section("10. expert input scaling (sigmoid top-1): y = expert(w * x) instead of w * expert(x)");
  for (t = 0; t < T; ++t) {
    double diff = 0.0;
    for (i = 0; i < H; ++i) diff += fabs((double)yb[t * H + i] - ya[t * H + i]);
    printf("token %d: e%d w %.4f, mean |expert(w x) - w expert(x)| = %.4f\n", t, ids[t], w[t], diff / H);
    differs += diff > 0.0 && w[t] > 0.0f && w[t] < 1.0f;
  }
  expect(differs == T, "every token's output differs from the weighted output (sigmoid weights in (0, 1))");
  pimoe_destroy(a);
  pimoe_destroy(b);
}

/* 11. Sparsemixer (Phi-3.5-MoE): two experts, each weighted by a softmax over the logits near it. */
static void sparsemixer(void) {
  enum { T = 4 };
  const char *const opts[] = {"sparsemixer_eps", "0.3"};
  pimoe_model *m = make_layer(opts, 2);
  float x[T * H], y[T * H], w[T * 2];
  int32_t ids[T * 2];
  int t, in_range = 1;
  fill_input(x, T * H, 11);
  CHECK(pimoe_forward(m, x, T * H, 1, T, y, T * H, ids, w, T * 2));
  section("11. sparsemixer (eps 0.3): each weight a softmax over the logits within 2 eps (relative) of its expert's");
  for (t = 0; t < T; ++t) {
    printf("token %d: e%d w %.4f   e%d w %.4f\n", t, ids[t * 2], w[t * 2], ids[t * 2 + 1], w[t * 2 + 1]);
    in_range = in_range && w[t * 2] > 0.0f && w[t * 2] <= 1.0f && w[t * 2 + 1] > 0.0f && w[t * 2 + 1] <= 1.0f &&
               ids[t * 2] != ids[t * 2 + 1];
  }
  expect(in_range, "two distinct experts per token, each weight in (0, 1]");
  pimoe_destroy(m);
}

int main(int argc, char **argv) {
  if (argc > 1) g_backend = argv[1];
  printf("libpimoe %s, routing features on backend \"%s\"\n", pimoe_version_string(), g_backend);
  routing_table();
  group_tree();
  expert_choice();
  attention_router();
  adaptive_bias();
  dynamic_capacity();
  attention_combine();
  shared_expert();
  callback_expert();
  expert_input_scaling();
  sparsemixer();
  return 0;
}
