// SPDX-License-Identifier: MIT
// bench_peer_method: libpimoe timed exactly as the peers of the compact-weights comparison are timed
// (bench/cpu/ort_qmoe_peer.py for ONNX Runtime; ggml with the same method, see bench/cpu/README.md), so its rows sit
// in one table with theirs. Public C ABI, backend cpu, any weight_dtype. Decode (T = 1) cycles C independent model
// copies (C = ceil(--cold-mb / one copy's weight bytes in its format), seeds 1234 + c) and 32 input tokens, so every
// call reads its experts from memory; prefill uses one copy and 2 inputs. Each result line reports `others`: the CPU
// time other processes took during the timing, in cores (a run with others > 0.25 is disturbed).
//
// Usage: bench_peer_method [--cases S-gelu@1,F@1,S-gelu@256,F@512,C@64] [--types fp32,int8,int4,int4-g128]
//                          [--threads 2] [--reps 5] [--min-time 0.2] [--cold-mb 512]
// Types: any weight_dtype value, "int4-g128" (int4, groups of 128), and a "/a32" suffix for activation_dtype fp32.
// Shapes: S-gelu and S-swiglu (H 512, 8 experts of 2048, top-2), F (H 2048, 128 experts of 768, top-8, SwiGLU),
// C (H 4096, 8 experts of 14336, top-2, SwiGLU: a Mixtral-8x7B-size layer).
#include <pimoe/pimoe.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

namespace {
struct Shape { const char *name; int64_t H, I, E, k; pimoe_activation act; };
const Shape kShapes[] = {
    {"S-gelu", 512, 2048, 8, 2, PIMOE_ACT_GELU},
    {"S-swiglu", 512, 2048, 8, 2, PIMOE_ACT_SWIGLU},
    {"F", 2048, 768, 128, 8, PIMOE_ACT_SWIGLU},
    {"C", 4096, 14336, 8, 2, PIMOE_ACT_SWIGLU},
};
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
void check(pimoe_status s, const char *what) {
  if (s != PIMOE_OK) { std::fprintf(stderr, "%s: %s (%s)\n", what, pimoe_status_string(s), pimoe_last_error()); std::exit(3); }
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
void cpu_seconds(double &busy, double &self) {
  FILE *f = std::fopen("/proc/stat", "r");
  unsigned long long v[8] = {0};
  if (f) { (void)!std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]); std::fclose(f); }
  const double tck = static_cast<double>(sysconf(_SC_CLK_TCK));
  busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tck;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  self = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}
}  // namespace

int main(int argc, char **argv) {
  int threads = 2, reps = 5;
  double min_time = 0.2, cold_mb = 512;
  std::string cases = "S-gelu@1,F@1,S-gelu@256,F@512,C@64", types = "fp32";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--threads") threads = std::stoi(v);
    else if (a == "--reps") reps = std::stoi(v);
    else if (a == "--min-time") min_time = std::stod(v);
    else if (a == "--cases") cases = v;
    else if (a == "--cold-mb") cold_mb = std::stod(v);
    else if (a == "--types") types = v;
    else { std::fprintf(stderr, "unknown argument %s\n", a.c_str()); return 1; }
  }
  size_t p = 0;
  while (p < cases.size()) {
    size_t q = cases.find(',', p);
    if (q == std::string::npos) q = cases.size();
    const std::string cs = cases.substr(p, q - p);
    p = q + 1;
    const size_t at = cs.find('@');
    const std::string sname = cs.substr(0, at);
    const int64_t T = std::stoll(cs.substr(at + 1));
    const Shape *sh = nullptr;
    for (const Shape &s : kShapes) if (sname == s.name) sh = &s;
    if (!sh) { std::fprintf(stderr, "unknown shape %s\n", sname.c_str()); return 1; }
    const int64_t g = sh->act == PIMOE_ACT_SWIGLU ? 3 : 2;
    const double layer_bytes = 4.0 * (sh->E * sh->H + sh->E * g * sh->H * sh->I);
    size_t tp = 0;
    while (tp < types.size()) {
    size_t tq = types.find(',', tp);
    if (tq == std::string::npos) tq = types.size();
    const std::string type = types.substr(tp, tq - tp);
    tp = tq + 1;
      int ncopies = 1;  // decode: enough copies that their bytes in this format reach cold_mb (as the peers count)
      double copy_bytes = layer_bytes;
      const double t0 = now_s();
      std::vector<pimoe_model *> models;
      for (int c = 0; c < ncopies; c++) {
        pimoe_options *o = nullptr;
        check(pimoe_options_create(&o), "options");
        check(pimoe_options_set_int(o, PIMOE_OPT_HIDDEN, sh->H), "H");
        check(pimoe_options_set_int(o, PIMOE_OPT_INTERMEDIATE, sh->I), "I");
        check(pimoe_options_set_int(o, PIMOE_OPT_NUM_EXPERTS, sh->E), "E");
        check(pimoe_options_set_int(o, PIMOE_OPT_TOP_K, sh->k), "k");
        check(pimoe_options_set_int(o, PIMOE_OPT_ACTIVATION, sh->act), "act");
        check(pimoe_options_set_int(o, PIMOE_OPT_THREADS, threads), "threads");
        check(pimoe_options_set_int(o, PIMOE_OPT_SEED, 1234 + c), "seed");
        check(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cpu"), "backend");
        std::string dt = type, act = "auto";
        if (dt.size() > 4 && dt.compare(dt.size() - 4, 4, "/a32") == 0) { dt.resize(dt.size() - 4); act = "fp32"; }
        int64_t grp = 32;
        if (dt == "int4-g128") { dt = "int4"; grp = 128; }
        check(pimoe_options_set_string(o, PIMOE_OPT_WEIGHT_DTYPE, dt.c_str()), "weight_dtype");
        check(pimoe_options_set_int(o, PIMOE_OPT_WEIGHT_GROUP_SIZE, grp), "group");
        check(pimoe_options_set_string(o, PIMOE_OPT_ACTIVATION_DTYPE, act.c_str()), "activation_dtype");
        pimoe_model *m = nullptr;
        check(pimoe_create(o, &m), "pimoe_create");
        pimoe_options_destroy(o);
        models.push_back(m);
        if (c == 0 && T == 1) {
          pimoe_stats_snapshot st{};
          st.struct_size = sizeof st;
          check(pimoe_stats(m, &st), "stats");
          copy_bytes = static_cast<double>(st.weight_bytes);
          ncopies = std::max(1, static_cast<int>(std::ceil(cold_mb * 1e6 / copy_bytes)));
        }
      }
      std::fprintf(stderr, "%s@%lld pimoe %s: %d copies x %.1f MB, set up in %.1f s\n", sh->name, (long long)T, type.c_str(), ncopies,
                   copy_bytes / 1e6, now_s() - t0);
      const int pool = T == 1 ? 32 : 2;
      std::vector<std::vector<float>> xs(pool, std::vector<float>(sh->H * T));
      for (int q2 = 0; q2 < pool; q2++) {
        uint64_t s = (100 + q2) * 0x9E3779B97F4A7C15ull + 1;
        for (float &v : xs[q2]) { s ^= s >> 12; s ^= s << 25; s ^= s >> 27; v = ((s * 0x2545F4914F6CDD1Dull) >> 40) * (2.0f / 16777216.0f) - 1.0f; }
      }
      std::vector<float> y(sh->H * T);
      long it = 0;
      auto run = [&](long n) {
        const double t = now_s();
        for (long j = 0; j < n; j++, it++) {
          const std::vector<float> &x = xs[it % pool];
          check(pimoe_forward(models[it % ncopies], x.data(), x.size(), 1, T, y.data(), y.size(), nullptr, nullptr, 0), "forward");
        }
        return (now_s() - t) / n;
      };
      run(std::max(2, ncopies));
      const double t1 = run(std::min(16, ncopies));
      const long calls = std::max(1L, std::min(100000L, static_cast<long>(min_time / std::max(t1, 1e-9)) + 1));
      double b0, s0, b1, s1;
      cpu_seconds(b0, s0);
      const double w0 = now_s();
      std::vector<double> times;
      for (int r = 0; r < reps; r++) times.push_back(run(calls));
      cpu_seconds(b1, s1);
      const double others = std::max(0.0, ((b1 - b0) - (s1 - s0)) / (now_s() - w0));
      const double med = median(times);
      const double flops = 2.0 * T * sh->k * sh->H * sh->I * g + 2.0 * T * sh->H * sh->E;
      const auto mm = std::minmax_element(times.begin(), times.end());
      std::printf("%-8s T=%4lld %-10s  %10.3f ms %11.1f tokens/s %7.1f GFLOP/s  (copies %d x %.1f MB, rounds %.3f..%.3f ms; others %.2f cores)\n",
                  sh->name, (long long)T, type.c_str(), med * 1e3, T / med, flops / med / 1e9, ncopies, copy_bytes / 1e6, *mm.first * 1e3,
                  *mm.second * 1e3, others);
      std::printf("RESULT peer=pimoe pimoe=%s shape=%s T=%lld threads=%d type=%s copies=%d ms=%.4f tokens_per_s=%.2f gflops=%.3f others=%.3f\n",
                  pimoe_version_string(), sh->name, (long long)T, threads, type.c_str(), ncopies, med * 1e3, T / med, flops / med / 1e9, others);
      std::fflush(stdout);
      for (pimoe_model *m : models) pimoe_destroy(m);
    }
  }
  return 0;
}
