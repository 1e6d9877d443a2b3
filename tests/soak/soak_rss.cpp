// SPDX-License-Identifier: MIT
// Soak: many forwards with varying token counts on layers of several shapes, thread counts, storage formats and
// backends (cpu; vulkan where a device is usable), with the model lifecycle mixed in (create/destroy, save/load,
// statistics and their reset), while the process's resident memory is sampled from /proc/self/statm. After the
// warm-up (every model has run its largest call, and one lifecycle round has run), the resident memory may not grow
// by more than a small bound at any checkpoint: a leak or an unbounded cache of a few kilobytes per call shows within
// seconds. Not a unit test: ctest runs it briefly (soak_rss_short); a long run is `soak_rss --seconds 3600`.
//   usage: soak_rss [--seconds S] [--bound-mib M] [--backends cpu,vulkan]
// Exit status: 0 flat, 1 grown (or a call failed), 2 usage.
#include <pimoe/pimoe.h>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

struct ModelDeleter {
  void operator()(pimoe_model *m) const { pimoe_destroy(m); }
};
using ModelPtr = std::unique_ptr<pimoe_model, ModelDeleter>;
struct OptionsDeleter {
  void operator()(pimoe_options *o) const { pimoe_options_destroy(o); }
};
using OptionsPtr = std::unique_ptr<pimoe_options, OptionsDeleter>;

[[noreturn]] void die(const std::string &what) {
  std::fprintf(stderr, "soak_rss: FAIL: %s: %s\n", what.c_str(), pimoe_last_error());
  std::exit(1);
}

double resident_mib() {
  FILE *f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) die("cannot open /proc/self/statm");
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (n != 2) die("cannot read /proc/self/statm");
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

struct LayerSpec {
  std::string name;
  std::vector<std::pair<std::string, std::string>> settings;
  int64_t hidden, top_k, max_tokens;
  int calls_per_visit = 16;  // fewer on a GPU backend run by a software driver, whose calls take far longer
};

// The layers of one backend: shapes, thread counts and storage formats the soak cycles through.
std::vector<LayerSpec> layers_for(const std::string &backend) {
  const std::vector<std::pair<std::string, std::string>> base = {{"backend", backend}, {"seed", "3"}};
  auto with = [&](std::vector<std::pair<std::string, std::string>> extra) {
    extra.insert(extra.begin(), base.begin(), base.end());
    return extra;
  };
  if (backend == "cpu") {
    return {
        {"cpu fp32 t1", with({{"hidden", "128"}, {"intermediate", "256"}, {"num_experts", "16"}, {"top_k", "2"},
                              {"threads", "1"}}), 128, 2, 256},
        {"cpu fp32 shared t2", with({{"hidden", "96"}, {"intermediate", "160"}, {"num_experts", "8"}, {"top_k", "2"},
                                     {"shared_width", "128"}, {"threads", "2"}}), 96, 2, 384},
        {"cpu int4 t4", with({{"hidden", "128"}, {"intermediate", "192"}, {"num_experts", "8"}, {"top_k", "2"},
                              {"weight_dtype", "int4"}, {"threads", "4"}}), 128, 2, 192},
        {"cpu capacity+adaptive t2", with({{"hidden", "64"}, {"intermediate", "128"}, {"num_experts", "8"},
                                           {"top_k", "3"}, {"capacity_factor", "1.25"},
                                           {"adaptive_bias_rate", "0.001"}, {"threads", "2"}}), 64, 3, 300},
    };
  }
  return {
      {backend + " fp32", with({{"hidden", "64"}, {"intermediate", "128"}, {"num_experts", "8"}, {"top_k", "2"}}), 64,
       2, 48, 2},
      {backend + " fp32 shared", with({{"hidden", "64"}, {"intermediate", "96"}, {"num_experts", "8"}, {"top_k", "2"},
                                       {"shared_width", "64"}}), 64, 2, 32, 2},
  };
}

OptionsPtr options_for(const LayerSpec &spec) {
  pimoe_options *o = nullptr;
  if (pimoe_options_create(&o) != PIMOE_OK) die("options_create");
  OptionsPtr p(o);
  for (const auto &kv : spec.settings)
    if (pimoe_options_set_by_name(o, kv.first.c_str(), kv.second.c_str()) != PIMOE_OK)
      die(spec.name + ": " + kv.first + "=" + kv.second);
  return p;
}

struct Running {
  LayerSpec spec;
  OptionsPtr options;
  ModelPtr model;
};

ModelPtr create(const Running &r) {
  pimoe_model *m = nullptr;
  if (pimoe_create(r.options.get(), &m) != PIMOE_OK) die(r.spec.name + ": create");
  return ModelPtr(m);
}

struct Buffers {
  std::vector<float> x, y, weights;
  std::vector<int32_t> ids;
};

void forward(Running &r, int64_t tokens, bool routing, Buffers &b) {
  const size_t n = static_cast<size_t>(tokens * r.spec.hidden), slots = static_cast<size_t>(tokens * r.spec.top_k);
  const pimoe_status s = pimoe_forward(r.model.get(), b.x.data(), n, 1, tokens, b.y.data(), n,
                                       routing ? b.ids.data() : nullptr, routing ? b.weights.data() : nullptr,
                                       routing ? slots : 0);
  if (s != PIMOE_OK) die(r.spec.name + ": forward of " + std::to_string(tokens) + " tokens");
}

// One lifecycle round on a model: statistics and their reset, save and load into a second model that runs a call,
// destroy and create again.
void lifecycle(Running &r, const std::string &file, Buffers &b) {
  pimoe_stats_snapshot s;
  std::memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  if (pimoe_stats(r.model.get(), &s) != PIMOE_OK) die(r.spec.name + ": stats");
  if (pimoe_stats_reset(r.model.get()) != PIMOE_OK) die(r.spec.name + ": stats_reset");
  if (pimoe_save(r.model.get(), file.c_str()) != PIMOE_OK) die(r.spec.name + ": save");
  pimoe_model *loaded = nullptr;
  if (pimoe_load(file.c_str(), r.options.get(), &loaded) != PIMOE_OK) die(r.spec.name + ": load");
  Running copy{r.spec, nullptr, ModelPtr(loaded)};
  forward(copy, 7, true, b);
  copy.model.reset();
  r.model = create(r);
  forward(r, r.spec.max_tokens, true, b);  // its workspace at full size again, as after the warm-up
}

}  // namespace

int main(int argc, char **argv) {
  double seconds = 15.0, bound_mib = 8.0;
  std::string backends;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--bound-mib" && i + 1 < argc) {
      bound_mib = std::atof(argv[++i]);
    } else if (a == "--backends" && i + 1 < argc) {
      backends = argv[++i];
    } else {
      std::fprintf(stderr, "usage: soak_rss [--seconds S] [--bound-mib M] [--backends cpu,vulkan]\n");
      return 2;
    }
  }
  std::vector<std::string> names;
  if (backends.empty()) {
    names.push_back("cpu");
    int32_t usable = 0;
    if (pimoe_backend_probe("vulkan", &usable) == PIMOE_OK && usable) names.push_back("vulkan");
  } else {
    for (size_t start = 0; start <= backends.size();) {
      const size_t comma = backends.find(',', start);
      names.push_back(backends.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }

  std::vector<Running> running;
  for (const std::string &backend : names)
    for (LayerSpec &spec : layers_for(backend)) {
      Running r{spec, options_for(spec), nullptr};
      r.model = create(r);
      running.push_back(std::move(r));
    }
  int64_t biggest = 0;
  for (const Running &r : running) biggest = std::max(biggest, r.spec.max_tokens * std::max(r.spec.hidden, r.spec.top_k));
  Buffers b;
  b.x.resize(static_cast<size_t>(biggest));
  b.y.resize(b.x.size());
  b.ids.resize(static_cast<size_t>(biggest));
  b.weights.resize(b.ids.size());
  std::mt19937_64 rng(20261207);
  std::uniform_real_distribution<float> value(-2.0f, 2.0f);
  for (float &v : b.x) v = value(rng);
  char file[] = "/tmp/pimoe_soak_XXXXXX";
  const int fd = mkstemp(file);
  if (fd < 0) die("mkstemp");
  close(fd);

  // Warm-up: every model's largest call with and without routing output and one lifecycle round each; then the first
  // fifth of the run's time of ordinary calls, so that the allocator's free lists settle before the baseline.
  for (Running &r : running) {
    forward(r, r.spec.max_tokens, true, b);
    forward(r, r.spec.max_tokens, false, b);
    lifecycle(r, file, b);
  }
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  const double warm_until = seconds * 0.2;
  const double checkpoint_every = std::max(0.5, seconds / 40.0);
  double baseline = -1.0, peak = 0.0, next_checkpoint = warm_until;
  uint64_t calls = 0;
  int checkpoints = 0;
  std::printf("soak_rss: %zu layers on %zu backend(s), %.0f s, bound %.1f MiB; resident %.1f MiB after the first "
              "calls\n",
              running.size(), names.size(), seconds, bound_mib, resident_mib());
  // Round robin over the layers, calls_per_visit calls at a time; a lifecycle round every lifecycle_every seconds,
  // layer by layer.
  const double lifecycle_every = std::max(2.0, seconds / 30.0);
  double next_lifecycle = lifecycle_every;
  size_t next_layer = 0, next_lifecycle_layer = 0;
  uint64_t lifecycles = 0;
  while (elapsed() < seconds) {
    Running &r = running[next_layer++ % running.size()];
    std::uniform_int_distribution<int64_t> tokens(1, r.spec.max_tokens);
    for (int i = 0; i < r.spec.calls_per_visit; ++i) forward(r, tokens(rng), (rng() & 1) != 0, b);
    calls += static_cast<uint64_t>(r.spec.calls_per_visit);
    if (elapsed() >= next_lifecycle) {
      lifecycle(running[next_lifecycle_layer++ % running.size()], file, b);
      ++lifecycles;
      next_lifecycle = elapsed() + lifecycle_every;
    }
    const double t = elapsed();
    if (t >= next_checkpoint) {
      const double rss = resident_mib();
      if (baseline < 0) {
        baseline = rss;
        std::printf("soak_rss: warm at %.1f s: %.1f MiB resident (baseline), %llu calls\n", t, rss,
                    static_cast<unsigned long long>(calls));
      } else {
        ++checkpoints;
        peak = std::max(peak, rss);
        if (rss > baseline + bound_mib) {
          std::fprintf(stderr, "soak_rss: FAIL: resident memory grew from %.1f to %.1f MiB (bound %.1f) at %.1f s, "
                       "%llu calls\n",
                       baseline, rss, bound_mib, t, static_cast<unsigned long long>(calls));
          std::remove(file);
          return 1;
        }
      }
      next_checkpoint = t + checkpoint_every;
    }
  }
  std::remove(file);
  if (checkpoints < 3) {
    std::fprintf(stderr, "soak_rss: FAIL: only %d checkpoints after the warm-up: run longer\n", checkpoints);
    return 1;
  }
  std::printf("soak_rss: flat: %llu calls, %llu lifecycle rounds, %d checkpoints, baseline %.1f MiB, peak %.1f MiB "
              "(+%.2f)\n",
              static_cast<unsigned long long>(calls), static_cast<unsigned long long>(lifecycles), checkpoints,
              baseline, peak, peak - baseline);
  return 0;
}
