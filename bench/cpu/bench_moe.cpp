// SPDX-License-Identifier: MIT
// bench_moe: libpimoe's CPU backend on the standard shapes (docs/design.md, "Standard shapes"), against
// same-run references.
//
// For every (shape, tokens) case it measures, interleaved round by round (A B C A B C ...) and reported as medians:
//   lib      pimoe_forward() through the public C ABI (backend "cpu"), input [1, T, H]
//   dense    OpenBLAS sgemm on the dense GEMMs of the same FLOPs: the router GEMM [T,H]x[H,E] plus, with M = T*k,
//            [M,H]x[H,g*I] and [M,I]x[I,H] (g = 2 for SwiGLU's gate+up, else 1): what the layer would cost if every
//            (token, slot) row went through one big GEMM with no routing, gather, activation or combine.
//   grouped  OpenBLAS sgemm per expert at the expert's real row count (taken from the routing libpimoe reports for the
//            same input), each expert with its own weights: a per-expert GEMM loop (what HF's eager loop and a
//            straightforward implementation do), again without gather/activation/combine costs.
// and, once per case, the memory read and copy bandwidth (for T = 1, where the layer is bound by weight streaming).
//
// Effective FLOPs count only the work needed: 2*T*k*H*I*(3 for SwiGLU, else 2) + 2*T*H*E (router).
// Effective weight bytes (T = 1): router weights + the weights of the distinct experts the token touched.
//
// Usage: bench_moe [--threads N] [--reps ROUNDS] [--shape S-gelu|S-swiglu|F|all] [--tokens T[,T...]]
//                  [--min-time SECONDS] [--json FILE] [--no-grouped] [--lib-only]
#include <pimoe/pimoe.h>

#include "tools/measure.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#ifdef PIMOE_BENCH_HAVE_CBLAS
#include <cblas.h>
extern "C" {
// Declared here too: some cblas.h variants (netlib's) do not declare OpenBLAS's extensions.
char *openblas_get_corename(void);
char *openblas_get_config(void);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);
}
#endif

namespace {

// The timing helpers and the memory bandwidth probe are pimoe bench's (src/tools/measure.h): one copy of each.
using pimoe_tools::Buf;
using pimoe_tools::calibrate;
using pimoe_tools::fill_uniform;
using pimoe_tools::measure_membw;
using pimoe_tools::median;
using pimoe_tools::MemBw;
using pimoe_tools::Noise;
using pimoe_tools::now_s;
using pimoe_tools::time_batch;
using pimoe_tools::vmax;
using pimoe_tools::vmin;

// ------------------------------------------------------------------------------------------ shapes
struct Shape {
  std::string name;
  int64_t H, I;
  int E, k;
  pimoe_activation act;
  std::vector<int64_t> tokens;
};

const std::vector<Shape> kShapes = {
    {"S-gelu", 512, 2048, 8, 2, PIMOE_ACT_GELU, {1, 256}},
    {"S-swiglu", 512, 2048, 8, 2, PIMOE_ACT_SWIGLU, {1, 256}},
    {"F", 2048, 768, 128, 8, PIMOE_ACT_SWIGLU, {1, 512}},
};

struct Result {
  std::string shape;
  int64_t T = 0, H = 0, I = 0;
  int E = 0, k = 0;
  bool swiglu = false;
  int threads = 0, rounds = 0;
  int calls_lib = 0, calls_dense = 0, calls_grouped = 0;
  double flops = 0, weight_bytes = 0;
  std::vector<double> t_lib, t_dense, t_grouped;  // seconds per call, one entry per round
  MemBw bw;
  int experts_touched = 0;
  int rows_min = 0, rows_max = 0;  // rows per expert (assignments) of the first pooled input, over hit experts
  std::string core;
  double others = NAN;  // mean cores other processes used during the timed rounds (see Noise)
};

[[noreturn]] void die_pimoe(const char *what, pimoe_status s) {
  std::fprintf(stderr, "%s failed: %s (%s)\n", what, pimoe_status_string(s), pimoe_last_error());
  std::exit(3);
}

#define PIMOE_CHECK(call)                              \
  do {                                                 \
    pimoe_status s_ = (call);                          \
    if (s_ != PIMOE_OK) die_pimoe(#call, s_);          \
  } while (0)

struct Options {
  int threads = 0;
  int rounds = 7;
  double min_time = 0.2;
  std::string shape = "all";
  std::vector<int64_t> tokens;
  std::string json;
  bool grouped = true;
  bool lib_only = false;  // time libpimoe alone (for profiling it with perf): no references
};

#ifdef PIMOE_BENCH_HAVE_CBLAS
// C[m,n] = A[m,kk] * W[n,kk]^T (W in nn.Linear layout), row-major.
inline void sgemm_nt(int m, int n, int kk, const float *a, int lda, const float *w, int ldw, float *c, int ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, kk, 1.0f, a, lda, w, ldw, 0.0f, c, ldc);
}
#endif

Result run_case(const Shape &sh, int64_t T, const Options &opt) {
  Result r;
  r.shape = sh.name;
  r.T = T; r.H = sh.H; r.I = sh.I; r.E = sh.E; r.k = sh.k;
  r.swiglu = sh.act == PIMOE_ACT_SWIGLU;
  r.threads = opt.threads;
  r.rounds = opt.rounds;
  const int64_t H = sh.H, I = sh.I, E = sh.E, k = sh.k, M = T * k;
  const int64_t g = r.swiglu ? 2 : 1;  // up projections per expert (gate + up for SwiGLU)
  r.flops = 2.0 * static_cast<double>(T * k * H * I * (g + 1)) + 2.0 * static_cast<double>(T * H * E);
  const double expert_bytes = static_cast<double>((g + 1) * H * I) * sizeof(float);

  // ---- the model
  pimoe_options *o = nullptr;
  PIMOE_CHECK(pimoe_options_create(&o));
  PIMOE_CHECK(pimoe_options_set_int(o, PIMOE_OPT_HIDDEN, H));
  PIMOE_CHECK(pimoe_options_set_int(o, PIMOE_OPT_INTERMEDIATE, I));
  PIMOE_CHECK(pimoe_options_set_int(o, PIMOE_OPT_NUM_EXPERTS, E));
  PIMOE_CHECK(pimoe_options_set_int(o, PIMOE_OPT_TOP_K, k));
  PIMOE_CHECK(pimoe_options_set_int(o, PIMOE_OPT_ACTIVATION, sh.act));
  PIMOE_CHECK(pimoe_options_set_int(o, PIMOE_OPT_THREADS, opt.threads));
  PIMOE_CHECK(pimoe_options_set_int(o, PIMOE_OPT_SEED, 1234));
  PIMOE_CHECK(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cpu"));
  pimoe_model *model = nullptr;
  PIMOE_CHECK(pimoe_create(o, &model));
  pimoe_options_destroy(o);

  // ---- inputs: a pool, cycled through, so that a decode-sized call does not find "its" experts hot in the cache
  const int pool = T == 1 ? 32 : 2;
  std::vector<Buf> xs;
  for (int p = 0; p < pool; p++) {
    xs.emplace_back(static_cast<size_t>(T * H));
    fill_uniform(xs.back().p, xs.back().n, 100 + p, 1.0f);
  }
  Buf y(static_cast<size_t>(T * H));
  // Routing of every pooled input, for the grouped reference and the weight-bytes count.
  std::vector<std::vector<int>> counts(pool, std::vector<int>(E, 0));
  {
    std::vector<int32_t> ids(static_cast<size_t>(T * k));
    std::vector<float> wts(static_cast<size_t>(T * k));
    double touched_sum = 0;
    for (int p = 0; p < pool; p++) {
      PIMOE_CHECK(pimoe_forward(model, xs[p].p, xs[p].n, 1, T, y.p, y.n, ids.data(), wts.data(), ids.size()));
      for (int32_t id : ids) counts[p][id]++;
      touched_sum += static_cast<double>(std::count_if(counts[p].begin(), counts[p].end(), [](int c) { return c > 0; }));
    }
    r.experts_touched = static_cast<int>(std::lround(touched_sum / pool));
    r.rows_min = INT32_MAX;
    for (int c : counts[0]) {
      if (c > 0) r.rows_min = std::min(r.rows_min, c);
      r.rows_max = std::max(r.rows_max, c);
    }
    // Weight bytes a call must read at least once: router + the experts it touches (mean over the pool).
    r.weight_bytes = static_cast<double>(E * H) * sizeof(float) + touched_sum / pool * expert_bytes;
  }

  auto lib = [&](int i) {
    const Buf &x = xs[static_cast<size_t>(i) % xs.size()];
    pimoe_status s = pimoe_forward(model, x.p, x.n, 1, T, y.p, y.n, nullptr, nullptr, 0);
    if (s != PIMOE_OK) die_pimoe("pimoe_forward", s);
  };

  const bool refs = !opt.lib_only;
#ifdef PIMOE_BENCH_HAVE_CBLAS
  openblas_set_num_threads(opt.threads);
  r.core = openblas_get_corename();
  // ---- dense reference: weight sets cycled so that together they exceed the last-level cache (decode honesty)
  const double set_bytes = expert_bytes + static_cast<double>(E * H) * sizeof(float);
  const int nsets = refs ? static_cast<int>(std::max(1.0, std::min(64.0, std::ceil(128e6 / set_bytes)))) : 0;
  std::vector<Buf> w_up, w_down, w_r;
  for (int s = 0; s < nsets; s++) {
    w_up.emplace_back(static_cast<size_t>(g * I * H));
    fill_uniform(w_up.back().p, w_up.back().n, 1000 + s, 0.04f);
    w_down.emplace_back(static_cast<size_t>(H * I));
    fill_uniform(w_down.back().p, w_down.back().n, 2000 + s, 0.02f);
    w_r.emplace_back(static_cast<size_t>(E * H));
    fill_uniform(w_r.back().p, w_r.back().n, 3000 + s, 0.04f);
  }
  Buf xd(static_cast<size_t>(refs ? M * H : 0)), hd(static_cast<size_t>(refs ? M * g * I : 0)),
      yd(static_cast<size_t>(refs ? M * H : 0)), logits(static_cast<size_t>(refs ? T * E : 0));
  fill_uniform(xd.p, xd.n, 7, 1.0f);
  auto dense = [&](int i) {
    const int s = i % nsets;
    sgemm_nt((int)T, (int)E, (int)H, xd.p, (int)H, w_r[s].p, (int)H, logits.p, (int)E);
    sgemm_nt((int)M, (int)(g * I), (int)H, xd.p, (int)H, w_up[s].p, (int)H, hd.p, (int)(g * I));
    sgemm_nt((int)M, (int)H, (int)I, hd.p, (int)(g * I), w_down[s].p, (int)I, yd.p, (int)H);
  };

  // ---- grouped reference: every expert its own weights, rows per expert from libpimoe's routing
  std::vector<Buf> ge_up, ge_down;
  Buf gr;
  if (opt.grouped && refs) {
    for (int64_t e = 0; e < E; e++) {
      ge_up.emplace_back(static_cast<size_t>(g * I * H));
      fill_uniform(ge_up.back().p, ge_up.back().n, 5000 + e, 0.04f);
      ge_down.emplace_back(static_cast<size_t>(H * I));
      fill_uniform(ge_down.back().p, ge_down.back().n, 6000 + e, 0.02f);
    }
    gr = Buf(static_cast<size_t>(E * H));
    fill_uniform(gr.p, gr.n, 4000, 0.04f);
  }
  auto grouped = [&](int i) {
    const std::vector<int> &c = counts[static_cast<size_t>(i) % counts.size()];
    sgemm_nt((int)T, (int)E, (int)H, xd.p, (int)H, gr.p, (int)H, logits.p, (int)E);
    for (int64_t e = 0; e < E; e++) {
      if (c[e] == 0) continue;
      sgemm_nt(c[e], (int)(g * I), (int)H, xd.p, (int)H, ge_up[e].p, (int)H, hd.p, (int)(g * I));
      sgemm_nt(c[e], (int)H, (int)I, hd.p, (int)(g * I), ge_down[e].p, (int)I, yd.p, (int)H);
    }
  };
#endif

  // ---- calibrate, then interleave rounds: lib, dense, grouped, lib, dense, grouped, ...
  r.calls_lib = calibrate(lib, opt.min_time);
#ifdef PIMOE_BENCH_HAVE_CBLAS
  openblas_set_num_threads(opt.threads);
  if (refs) r.calls_dense = calibrate(dense, opt.min_time);
  if (refs && opt.grouped) r.calls_grouped = calibrate(grouped, opt.min_time);
#endif
  Noise noise;
  noise.start();
  for (int round = 0; round < opt.rounds; round++) {
    r.t_lib.push_back(time_batch(lib, r.calls_lib));
#ifdef PIMOE_BENCH_HAVE_CBLAS
    openblas_set_num_threads(opt.threads);  // the library may have changed OpenBLAS's thread count
    if (refs) r.t_dense.push_back(time_batch(dense, r.calls_dense));
    if (refs && opt.grouped) r.t_grouped.push_back(time_batch(grouped, r.calls_grouped));
#endif
  }
  r.others = noise.others();
  if (T == 1 && refs) r.bw = measure_membw(opt.threads, 256, 5);
  pimoe_destroy(model);
  return r;
}

std::vector<int64_t> parse_list(const char *s) {
  std::vector<int64_t> v;
  const char *p = s;
  while (*p) {
    char *end = nullptr;
    long long x = std::strtoll(p, &end, 10);
    if (end == p || x <= 0) { std::fprintf(stderr, "bad --tokens list: %s\n", s); std::exit(1); }
    v.push_back(x);
    p = *end == ',' ? end + 1 : end;
    if (*end && *end != ',') { std::fprintf(stderr, "bad --tokens list: %s\n", s); std::exit(1); }
  }
  return v;
}

void usage() {
  std::printf(
      "usage: bench_moe [--threads N] [--reps ROUNDS] [--shape S-gelu|S-swiglu|F|all] [--tokens T[,T...]]\n"
      "                 [--min-time SECONDS] [--json FILE] [--no-grouped] [--lib-only]\n"
      "  --threads   threads for libpimoe (PIMOE_OPT_THREADS), OpenBLAS and the bandwidth probe (default: cores)\n"
      "  --reps      interleaved rounds per case; medians are over rounds (default 7)\n"
      "  --min-time  seconds per timed batch of calls inside one round (default 0.2)\n"
      "  --tokens    override the shape's token counts (S: 1,256; F: 1,512)\n"
      "  --json      also write the results to FILE\n"
      "  --no-grouped  skip the per-expert sgemm reference\n"
      "  --lib-only  time libpimoe alone, no references (to profile it: perf record ... bench_moe --lib-only)\n");
}

double gf(double flops, double t) { return flops / t / 1e9; }

}  // namespace

int main(int argc, char **argv) {
  Options opt;
  opt.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> const char * {
      if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(1); }
      return argv[++i];
    };
    if (a == "--threads") opt.threads = std::atoi(next());
    else if (a == "--reps") opt.rounds = std::atoi(next());
    else if (a == "--min-time") opt.min_time = std::atof(next());
    else if (a == "--shape") opt.shape = next();
    else if (a == "--tokens") opt.tokens = parse_list(next());
    else if (a == "--json") opt.json = next();
    else if (a == "--no-grouped") opt.grouped = false;
    else if (a == "--lib-only") opt.lib_only = true;
    else if (a == "-h" || a == "--help") { usage(); return 0; }
    else { std::fprintf(stderr, "unknown argument %s\n", a.c_str()); usage(); return 1; }
  }
  if (opt.threads < 1 || opt.rounds < 1) { std::fprintf(stderr, "--threads and --reps must be >= 1\n"); return 1; }

  std::printf("libpimoe %s | %s\n", pimoe_version_string(), pimoe_build_info());
  const char *dev = pimoe_backend_device("cpu");
  std::printf("cpu backend: %s\n", dev ? dev : "(unusable)");
#ifdef PIMOE_BENCH_HAVE_CBLAS
  openblas_set_num_threads(opt.threads);
  std::printf("openblas core: %s | config: %s | OPENBLAS_CORETYPE=%s\n", openblas_get_corename(),
              openblas_get_config(), std::getenv("OPENBLAS_CORETYPE") ? std::getenv("OPENBLAS_CORETYPE") : "(unset)");
  // Context: the machine's big-GEMM rate right now (n = 2048), before and after the cases.
  auto square_gflops = [&]() { return pimoe_tools::square_sgemm_gflops(opt.threads); };
  const double sq_before = square_gflops();
  std::printf("sgemm 2048^3 (context) before: %.1f GFLOP/s\n", sq_before);
#else
  std::printf("built without cblas: no OpenBLAS references (ratios unavailable)\n");
  const double sq_before = NAN;
#endif
  std::printf("threads %d, rounds %d (interleaved lib/dense/grouped), min batch %.2fs\n\n", opt.threads, opt.rounds,
              opt.min_time);

  std::vector<Result> results;
  for (const Shape &sh : kShapes) {
    if (opt.shape != "all" && opt.shape != sh.name) continue;
    for (int64_t T : opt.tokens.empty() ? sh.tokens : opt.tokens) {
      std::fprintf(stderr, "running %s T=%lld ...\n", sh.name.c_str(), static_cast<long long>(T));
      results.push_back(run_case(sh, T, opt));
    }
  }
  if (results.empty()) { std::fprintf(stderr, "no shape named %s\n", opt.shape.c_str()); return 1; }

#ifdef PIMOE_BENCH_HAVE_CBLAS
  const double sq_after = square_gflops();
#else
  const double sq_after = NAN;
#endif

  // ---- table
  std::printf("%-9s %5s %10s %11s %9s | %9s %7s | %9s %7s | %9s %9s %6s | %6s\n", "shape", "T", "lib ms", "tokens/s",
              "GFLOP/s", "dense GF", "ratio", "group GF", "ratio", "wt GB/s", "read GB/s", "ratio", "others");
  for (const Result &r : results) {
    const double tl = median(r.t_lib), td = median(r.t_dense), tg = median(r.t_grouped);
    std::printf("%-9s %5lld %10.3f %11.1f %9.1f | %9.1f %7.3f | %9.1f %7.3f |", r.shape.c_str(),
                static_cast<long long>(r.T), tl * 1e3, static_cast<double>(r.T) / tl, gf(r.flops, tl), gf(r.flops, td), td / tl,
                gf(r.flops, tg), tg / tl);
    if (r.T == 1)
      std::printf(" %9.2f %9.2f %6.3f", r.weight_bytes / tl / 1e9, r.bw.read_gbs, r.weight_bytes / tl / 1e9 / r.bw.read_gbs);
    else
      std::printf(" %9s %9s %6s", "-", "-", "-");
    std::printf(" | %6.2f\n", r.others);
  }
  std::printf("\nratio = libpimoe GFLOP/s / reference GFLOP/s on the same FLOPs (= reference time / libpimoe time).\n");
  std::printf("dense: one sgemm per projection over all M=T*k rows; group: per-expert sgemm at the real row counts.\n");
  std::printf("wt GB/s: (router + touched experts' weights) / time, vs %d-thread read bandwidth (T=1 only).\n",
              opt.threads);
  std::printf("others: mean cores other processes used meanwhile (shared machine; > 0.2 means the case was disturbed).\n");
  std::printf("spread over rounds (min..max ms): ");
  for (const Result &r : results)
    std::printf("%s@%lld lib %.3f..%.3f dense %.3f..%.3f; ", r.shape.c_str(), static_cast<long long>(r.T),
                vmin(r.t_lib) * 1e3, vmax(r.t_lib) * 1e3, vmin(r.t_dense) * 1e3, vmax(r.t_dense) * 1e3);
  std::printf("\n");
#ifdef PIMOE_BENCH_HAVE_CBLAS
  std::printf("sgemm 2048^3 (context) before %.1f, after %.1f GFLOP/s; core %s\n", sq_before, sq_after,
              openblas_get_corename());
#endif
  for (const Result &r : results)
    if (r.T == 1)
      std::printf("%s@1: copy bandwidth %.2f GB/s (read+write bytes), %d experts touched per token\n", r.shape.c_str(),
                  r.bw.copy_gbs, r.experts_touched);
    else
      std::printf("%s@%lld: rows per expert %d..%d (mean %.1f), %d of %d experts hit\n", r.shape.c_str(),
                  static_cast<long long>(r.T), r.rows_min, r.rows_max,
                  static_cast<double>(r.T * r.k) / r.experts_touched, r.experts_touched, r.E);

  // ---- machine-readable lines (grep RESULT) and JSON
  for (const Result &r : results) {
    const double tl = median(r.t_lib), td = median(r.t_dense), tg = median(r.t_grouped);
    std::printf("RESULT shape=%s T=%lld threads=%d core=%s lib_ms=%.4f tokens_per_s=%.2f gflops=%.3f dense_gflops=%.3f "
                "ratio_dense=%.4f grouped_gflops=%.3f ratio_grouped=%.4f others=%.3f",
                r.shape.c_str(), static_cast<long long>(r.T), r.threads, r.core.c_str(), tl * 1e3, static_cast<double>(r.T) / tl,
                gf(r.flops, tl), gf(r.flops, td), td / tl, gf(r.flops, tg), tg / tl, r.others);
    if (r.T == 1)
      std::printf(" weight_gbs=%.3f read_gbs=%.3f copy_gbs=%.3f ratio_bw=%.4f", r.weight_bytes / tl / 1e9,
                  r.bw.read_gbs, r.bw.copy_gbs, r.weight_bytes / tl / 1e9 / r.bw.read_gbs);
    std::printf("\n");
  }
  if (!opt.json.empty()) {
    FILE *f = std::fopen(opt.json.c_str(), "w");
    if (!f) { std::perror(opt.json.c_str()); return 1; }
    auto arr = [&](const std::vector<double> &v) {
      std::fprintf(f, "[");
      for (size_t i = 0; i < v.size(); i++) std::fprintf(f, "%s%.6g", i ? ", " : "", v[i] * 1e3);
      std::fprintf(f, "]");
    };
    auto num = [&](double v) {
      if (std::isfinite(v)) std::fprintf(f, "%.6g", v); else std::fprintf(f, "null");
    };
    std::fprintf(f, "{\n  \"library\": \"%s\",\n  \"threads\": %d,\n  \"rounds\": %d,\n", pimoe_version_string(),
                 opt.threads, opt.rounds);
#ifdef PIMOE_BENCH_HAVE_CBLAS
    std::fprintf(f, "  \"openblas_core\": \"%s\",\n  \"openblas_config\": \"%s\",\n", openblas_get_corename(),
                 openblas_get_config());
#endif
    std::fprintf(f, "  \"sgemm2048_gflops_before\": "); num(sq_before);
    std::fprintf(f, ",\n  \"sgemm2048_gflops_after\": "); num(sq_after);
    std::fprintf(f, ",\n  \"cases\": [\n");
    for (size_t i = 0; i < results.size(); i++) {
      const Result &r = results[i];
      const double tl = median(r.t_lib), td = median(r.t_dense), tg = median(r.t_grouped);
      std::fprintf(f,
                   "    {\"shape\": \"%s\", \"tokens\": %lld, \"H\": %lld, \"I\": %lld, \"E\": %d, \"k\": %d, "
                   "\"swiglu\": %s, \"flops\": %.6g, \"weight_bytes\": %.6g, \"experts_touched\": %d, \"rows_min\": %d, \"rows_max\": %d,\n"
                   "     \"calls_per_round\": {\"lib\": %d, \"dense\": %d, \"grouped\": %d},\n     \"lib_ms\": ",
                   r.shape.c_str(), static_cast<long long>(r.T), static_cast<long long>(r.H),
                   static_cast<long long>(r.I), r.E, r.k, r.swiglu ? "true" : "false", r.flops, r.weight_bytes,
                   r.experts_touched, r.rows_min, r.rows_max, r.calls_lib, r.calls_dense, r.calls_grouped);
      arr(r.t_lib);
      std::fprintf(f, ", \"dense_ms\": "); arr(r.t_dense);
      std::fprintf(f, ", \"grouped_ms\": "); arr(r.t_grouped);
      std::fprintf(f, ",\n     \"tokens_per_s\": "); num(static_cast<double>(r.T) / tl);
      std::fprintf(f, ", \"gflops\": "); num(gf(r.flops, tl));
      std::fprintf(f, ", \"dense_gflops\": "); num(gf(r.flops, td));
      std::fprintf(f, ", \"ratio_dense\": "); num(td / tl);
      std::fprintf(f, ", \"grouped_gflops\": "); num(gf(r.flops, tg));
      std::fprintf(f, ", \"ratio_grouped\": "); num(tg / tl);
      std::fprintf(f, ", \"others_cores\": "); num(r.others);
      if (r.T == 1) {
        std::fprintf(f, ", \"weight_gbs\": "); num(r.weight_bytes / tl / 1e9);
        std::fprintf(f, ", \"read_gbs\": "); num(r.bw.read_gbs);
        std::fprintf(f, ", \"copy_gbs\": "); num(r.bw.copy_gbs);
      }
      std::fprintf(f, "}%s\n", i + 1 < results.size() ? "," : "");
    }
    std::fprintf(f, "  ]\n}\n");
    std::fclose(f);
  }
  return 0;
}
