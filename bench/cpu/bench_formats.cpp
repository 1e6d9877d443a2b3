// SPDX-License-Identifier: MIT
// bench_formats: the CPU backend's weight formats (weight_dtype) side by side, interleaved round by round, reported
// as tokens/s medians and as ratios to fp32 in the same run.
//
// Decode (T = 1) is measured with cold weights: the bench builds enough copies of the layer that the bytes they hold
// are at least --cold-mb (default 256 MB, eight times this machine's 32 MB L3) and sends each call to the next copy,
// so every call streams its experts' weights from memory, as a model with many layers does. Calls of more tokens
// use one copy (prefill is bound by arithmetic, and its weights are read many times per call).
//
// Usage: bench_formats [--shape S|F|M|all] [--formats fp32,int8,int4,...] [--tokens 1,256] [--threads 2]
//                      [--rounds 5] [--min-time 0.3] [--cold-mb 256]
// Formats: fp32, bf16, fp16, int8, int4 (group 32), int4-g64, int4-g128, int4-zp (group 32, zero point), fp8_e4m3,
// mxfp4; a name ending in "/a32" (e.g. int4/a32) runs int8/int4 on fp32 activations (activation_dtype fp32)
// instead of the default int8 ones. Shapes (docs/design.md, "Standard shapes"): S = H 512, 8 experts of 2048, top-2, GELU; F = H 2048,
// 128 experts of 768, top-8, SwiGLU; M = Mixtral-size, H 4096, 8 experts of 14336, top-2, SwiGLU.
#include <pimoe/pimoe.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Shape {
  const char *name;
  int64_t H, I;
  int E, k;
  pimoe_activation act;
  const char *tokens;  // default token counts
};

const Shape kShapes[] = {
    {"S", 512, 2048, 8, 2, PIMOE_ACT_GELU, "1,256"},
    {"F", 2048, 768, 128, 8, PIMOE_ACT_SWIGLU, "1,512"},
    {"M", 4096, 14336, 8, 2, PIMOE_ACT_SWIGLU, "64"},
};

struct Format {
  std::string name, dtype;
  int64_t group = 32;
  bool zero_point = false;
  std::string activations = "auto";  // activation_dtype: "/a32" after a name runs int8/int4 on fp32 activations
};

bool parse_format(const std::string &full, Format &f) {
  f.name = full;
  std::string name = full;
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "/a32") == 0) {
    name.resize(name.size() - 4);
    f.activations = "fp32";
  }
  if (name == "int4-g64" || name == "int4-g128") {
    f.dtype = "int4";
    f.group = name == "int4-g64" ? 64 : 128;
  } else if (name == "int4-zp") {
    f.dtype = "int4";
    f.zero_point = true;
  } else {
    f.dtype = name;
  }
  const char *known[] = {"fp32", "bf16", "fp16", "int8", "int4", "fp8_e4m3", "mxfp4"};
  for (const char *k : known) {
    if (f.dtype == k) return true;
  }
  return false;
}

std::vector<std::string> split(const std::string &s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

void check(pimoe_status s, const char *what) {
  if (s != PIMOE_OK) {
    std::fprintf(stderr, "%s failed: %s\n", what, pimoe_last_error());
    std::exit(1);
  }
}

struct ModelDeleter {
  void operator()(pimoe_model *m) const { pimoe_destroy(m); }
};
using ModelPtr = std::unique_ptr<pimoe_model, ModelDeleter>;

ModelPtr make_model(const Shape &sh, const Format &f, int threads, int64_t seed) {
  pimoe_options *o = nullptr;
  check(pimoe_options_create(&o), "pimoe_options_create");
  check(pimoe_options_set_int(o, PIMOE_OPT_HIDDEN, sh.H), "hidden");
  check(pimoe_options_set_int(o, PIMOE_OPT_NUM_EXPERTS, sh.E), "num_experts");
  check(pimoe_options_set_int(o, PIMOE_OPT_TOP_K, sh.k), "top_k");
  check(pimoe_options_set_int(o, PIMOE_OPT_INTERMEDIATE, sh.I), "intermediate");
  check(pimoe_options_set_int(o, PIMOE_OPT_ACTIVATION, sh.act), "activation");
  check(pimoe_options_set_int(o, PIMOE_OPT_THREADS, threads), "threads");
  check(pimoe_options_set_int(o, PIMOE_OPT_SEED, seed), "seed");
  check(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cpu"), "backend");
  check(pimoe_options_set_string(o, PIMOE_OPT_WEIGHT_DTYPE, f.dtype.c_str()), "weight_dtype");
  check(pimoe_options_set_int(o, PIMOE_OPT_WEIGHT_GROUP_SIZE, f.group), "weight_group_size");
  check(pimoe_options_set_string(o, PIMOE_OPT_ACTIVATION_DTYPE, f.activations.c_str()), "activation_dtype");
  check(pimoe_options_set_int(o, PIMOE_OPT_WEIGHT_ZERO_POINT, f.zero_point ? 1 : 0), "weight_zero_point");
  pimoe_model *m = nullptr;
  check(pimoe_create(o, &m), "pimoe_create");
  pimoe_options_destroy(o);
  return ModelPtr(m);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

long resident_kb() {
  FILE *f = std::fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (f) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * 4;
}

struct Case {
  Format format;
  std::vector<ModelPtr> copies;
  double weight_mb = 0;
  std::vector<double> tokens_per_s;  // one per round
  size_t next = 0;
};

}  // namespace

int main(int argc, char **argv) {
  std::string shapes = "S,F", formats = "fp32,bf16,int8,int4,int4-g128,fp8_e4m3,mxfp4", tokens_arg;
  int threads = 2, rounds = 5;
  double min_time = 0.3, cold_mb = 256;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--shape") shapes = next();
    else if (a == "--formats") formats = next();
    else if (a == "--tokens") tokens_arg = next();
    else if (a == "--threads") threads = std::atoi(next().c_str());
    else if (a == "--rounds") rounds = std::atoi(next().c_str());
    else if (a == "--min-time") min_time = std::atof(next().c_str());
    else if (a == "--cold-mb") cold_mb = std::atof(next().c_str());
    else {
      std::fprintf(stderr, "usage: bench_formats [--shape S|F|M|all] [--formats LIST] [--tokens T,...] [--threads N]\n"
                           "                     [--rounds R] [--min-time S] [--cold-mb MB]\n");
      return 2;
    }
  }
  if (shapes == "all") shapes = "S,F,M";
  std::printf("libpimoe %s, %d threads, %d rounds, cold weights: >= %.0f MB of layer copies for T = 1\n",
              pimoe_version_string(), threads, rounds, cold_mb);
  for (const std::string &shape_name : split(shapes)) {
    const Shape *sh = nullptr;
    for (const Shape &s : kShapes) {
      if (shape_name == s.name) sh = &s;
    }
    if (!sh) {
      std::fprintf(stderr, "unknown shape %s\n", shape_name.c_str());
      return 2;
    }
    for (const std::string &tok : split(tokens_arg.empty() ? sh->tokens : tokens_arg)) {
      const int64_t T = std::atoll(tok.c_str());
      std::vector<Case> cases;
      double smallest_mb = 0;
      for (const std::string &name : split(formats)) {
        Case c;
        if (!parse_format(name, c.format)) {
          std::fprintf(stderr, "unknown format %s\n", name.c_str());
          return 2;
        }
        const long before = resident_kb();
        c.copies.push_back(make_model(*sh, c.format, threads, 1));
        pimoe_stats_snapshot st{};
        st.struct_size = sizeof st;
        check(pimoe_stats(c.copies[0].get(), &st), "pimoe_stats");
        c.weight_mb = static_cast<double>(st.weight_bytes) / 1e6;
        smallest_mb = smallest_mb == 0 ? c.weight_mb : std::min(smallest_mb, c.weight_mb);
        std::fprintf(stderr, "%s %s: %.1f MB of weights, resident +%.1f MB\n", sh->name, name.c_str(), c.weight_mb,
                     static_cast<double>(resident_kb() - before) / 1e3);
        cases.push_back(std::move(c));
      }
      // Every format gets the same number of copies (each copy is a model with its own thread pool), enough that
      // the smallest format's copies hold cold_mb.
      const int copies = T == 1 ? std::max(1, static_cast<int>(cold_mb / smallest_mb + 0.999)) : 1;
      for (Case &c : cases) {
        for (int i = 1; i < copies; ++i) c.copies.push_back(make_model(*sh, c.format, threads, 1 + i));
      }
      std::mt19937 rng(7);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      std::vector<std::vector<float>> inputs(16);
      for (auto &x : inputs) {
        x.resize(static_cast<size_t>(T * sh->H));
        for (float &v : x) v = normal(rng);
      }
      std::vector<float> y(static_cast<size_t>(T * sh->H));
      for (int r = 0; r < rounds; ++r) {
        for (Case &c : cases) {  // interleaved: every format once per round
          int calls = 0;
          const auto start = std::chrono::steady_clock::now();
          double elapsed = 0;
          while (elapsed < min_time || calls < 3) {
            pimoe_model *m = c.copies[c.next++ % c.copies.size()].get();
            const std::vector<float> &x = inputs[static_cast<size_t>(calls) % inputs.size()];
            check(pimoe_forward(m, x.data(), x.size(), 1, T, y.data(), y.size(), nullptr, nullptr, 0), "forward");
            ++calls;
            elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          }
          c.tokens_per_s.push_back(static_cast<double>(calls * T) / elapsed);
        }
      }
      double fp32 = 0;
      for (const Case &c : cases) {
        if (c.format.name == "fp32") fp32 = median(c.tokens_per_s);
      }
      std::printf("\n%-4s T=%-5lld %-10s %10s %12s %10s %9s\n", sh->name, static_cast<long long>(T), "format",
                  "weight MB", "tokens/s", "vs fp32", "copies");
      for (const Case &c : cases) {
        const double tps = median(c.tokens_per_s);
        std::printf("%-4s T=%-5lld %-10s %10.1f %12.1f %10s %9zu\n", sh->name, static_cast<long long>(T),
                    c.format.name.c_str(), c.weight_mb, tps,
                    fp32 > 0 ? (std::to_string(tps / fp32).substr(0, 5) + "x").c_str() : "-", c.copies.size());
      }
      for (const Case &c : cases) {
        std::printf("RESULT shape=%s T=%lld format=%s threads=%d weight_mb=%.2f tokens_per_s=%.2f vs_fp32=%.3f\n",
                    sh->name, static_cast<long long>(T), c.format.name.c_str(), threads, c.weight_mb,
                    median(c.tokens_per_s), fp32 > 0 ? median(c.tokens_per_s) / fp32 : 0.0);
      }
    }
  }
  return 0;
}
