// SPDX-License-Identifier: MIT
// pimoe bench [MODEL | --shape S] [--layer N] [--backend B] [--threads LIST] [--tokens LIST] [--dtype LIST]
// [--reps R] [--min-time S] [-o md|json|csv]: pimoe_forward timed over every (threads, tokens, dtype) case, rounds of
// calibrated batches as bench/cpu/bench_moe times it (same inputs, same seeds: the two agree within noise), reported
// as the median and spread over rounds, beside the machine's same-run rates (src/tools/measure.h): OpenBLAS sgemm on
// 2048^3 before and after the cases, and the memory read bandwidth at each thread count.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/commands.h"
#include "tools/layer_info.h"
#include "tools/measure.h"
#include "tools/tool_model.h"

namespace pimoe_tools {

namespace {

using nlohmann::json;

struct BenchArgs {
  std::string model, shape, backend = "cpu", format = "md";
  int32_t layer = -1;
  std::vector<int64_t> threads, tokens = {1, 256};
  std::vector<std::string> dtypes = {"auto"};
  int reps = 7;
  double min_time = 0.2;
  bool references = true;
};

// A shape: H, I, E, k and the experts' activation. The standard shapes by name (docs/design.md): S is bench_moe's
// S-gelu.
struct Shape {
  int64_t hidden = 0, width = 0, experts = 0, top_k = 0;
  std::string activation;
};

Shape parse_shape(const std::string &text) {
  if (text == "S" || text == "S-gelu") return {512, 2048, 8, 2, "gelu"};
  if (text == "S-swiglu") return {512, 2048, 8, 2, "swiglu"};
  if (text == "F") return {2048, 768, 128, 8, "swiglu"};
  Shape s;
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) parts.push_back(part);
  try {
    if (parts.size() != 5) throw std::invalid_argument("fields");
    s = {std::stoll(parts[0]), std::stoll(parts[1]), std::stoll(parts[2]), std::stoll(parts[3]), parts[4]};
  } catch (const std::exception &) {
    throw ToolError("--shape '" + text + "': expected S, S-swiglu, F or H,I,E,k,ACTIVATION (e.g. 512,2048,8,2,gelu)");
  }
  return s;
}

ModelPtr make_model(const BenchArgs &a, int64_t threads, const std::string &dtype) {
  RuntimeChoice runtime{a.backend, threads, dtype == "auto" ? "" : dtype};
  if (!a.model.empty()) return open_model(a.model, a.layer, runtime);
  const Shape s = parse_shape(a.shape);
  pimoe_options *raw = nullptr;
  check(pimoe_options_create(&raw), "pimoe_options_create");
  const std::unique_ptr<pimoe_options, void (*)(pimoe_options *)> options(raw, pimoe_options_destroy);
  check(pimoe_options_set_int(raw, PIMOE_OPT_HIDDEN, s.hidden), "--shape H");
  check(pimoe_options_set_int(raw, PIMOE_OPT_INTERMEDIATE, s.width), "--shape I");
  check(pimoe_options_set_int(raw, PIMOE_OPT_NUM_EXPERTS, s.experts), "--shape E");
  check(pimoe_options_set_int(raw, PIMOE_OPT_TOP_K, s.top_k), "--shape k");
  check(pimoe_options_set_by_name(raw, "activation", s.activation.c_str()), "--shape activation");
  check(pimoe_options_set_int(raw, PIMOE_OPT_SEED, 1234), "seed");  // bench_moe's
  check(pimoe_options_set_string(raw, PIMOE_OPT_BACKEND, a.backend.c_str()), "--backend " + a.backend);
  check(pimoe_options_set_int(raw, PIMOE_OPT_THREADS, threads), "--threads");
  if (dtype != "auto") check(pimoe_options_set_string(raw, PIMOE_OPT_WEIGHT_DTYPE, dtype.c_str()), "--dtype " + dtype);
  pimoe_model *model = nullptr;
  check(pimoe_create(raw, &model), "pimoe_create");
  return ModelPtr(model);
}

// FLOPs per token the layer needs: the router GEMM, each routed slot's expert (the mean over experts: they may differ
// in width and activation), as bench_moe counts them. The shared expert, when the model has one, is not visible
// through the C API and is left out.
double flops_per_token(const pimoe_model *model) {
  int64_t hidden = 0;
  int32_t experts = 0, top_k = 0;
  check(pimoe_model_dims(model, &hidden, &experts, &top_k), "pimoe_model_dims");
  double expert_flops = 0;
  for (int32_t e = 0; e < experts; ++e) {
    pimoe_activation act{};
    int64_t width = 0;
    int32_t pre_norm = 0;
    if (pimoe_model_expert(model, e, &act, &width, &pre_norm) != PIMOE_OK) continue;  // a callback expert
    const bool gated = act == PIMOE_ACT_SWIGLU || act == PIMOE_ACT_SWIGLU_OAI;
    expert_flops += 2.0 * static_cast<double>(hidden * width) * (gated ? 3 : 2);
  }
  return 2.0 * static_cast<double>(hidden) * experts + top_k * expert_flops / experts;
}

// Progress: a bar redrawn in place on a terminal, plain lines otherwise (a log, CI).
class Progress {
 public:
  explicit Progress(size_t total) : total_(total), tty_(isatty(STDERR_FILENO) != 0) {}
  void step(const std::string &what) {
    ++done_;
    if (tty_) {
      const int width = 30, filled = static_cast<int>(width * (done_ - 1) / total_);
      std::fprintf(stderr, "\r[%s%s] %zu/%zu %-40s", std::string(filled, '#').c_str(),
                   std::string(width - filled, ' ').c_str(), done_, total_, what.c_str());
    } else {
      std::fprintf(stderr, "pimoe bench: case %zu/%zu: %s\n", done_, total_, what.c_str());
    }
    std::fflush(stderr);
  }
  ~Progress() {
    if (tty_) std::fprintf(stderr, "\r%80s\r", "");
  }

 private:
  size_t total_, done_ = 0;
  bool tty_;
};

json run_case(const BenchArgs &a, int64_t threads, int64_t tokens, const std::string &dtype) {
  const ModelPtr model = make_model(a, threads, dtype);
  int64_t hidden = 0;
  int32_t experts = 0, top_k = 0;
  check(pimoe_model_dims(model.get(), &hidden, &experts, &top_k), "pimoe_model_dims");
  // bench_moe's inputs: a pool cycled through, so that a decode-sized call does not find "its" experts hot in cache.
  const int pool = tokens == 1 ? 32 : 2;
  std::vector<Buf> xs;
  for (int p = 0; p < pool; p++) {
    xs.emplace_back(static_cast<size_t>(tokens * hidden));
    fill_uniform(xs.back().p, xs.back().n, 100 + p, 1.0f);
  }
  Buf y(static_cast<size_t>(tokens * hidden));
  const auto call = [&](int i) {
    const Buf &x = xs[static_cast<size_t>(i) % xs.size()];
    check(pimoe_forward(model.get(), x.p, x.n, 1, tokens, y.p, y.n, nullptr, nullptr, 0), "pimoe_forward");
  };
  const int calls = calibrate(call, a.min_time);
  std::vector<double> ms;
  Noise noise;
  noise.start();
  for (int round = 0; round < a.reps; ++round) ms.push_back(time_batch(call, calls) * 1e3);
  const double others = noise.others();
  const double med = median(ms), flops = flops_per_token(model.get()) * static_cast<double>(tokens);
  const auto number = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  return {{"backend", pimoe_model_backend(model.get())},
          {"hidden", hidden},
          {"num_experts", experts},
          {"top_k", top_k},
          {"flops_per_token", flops / static_cast<double>(tokens)},
          {"threads", threads},
          {"tokens", tokens},
          {"dtype", dtype},
          {"rounds", a.reps},
          {"calls_per_round", calls},
          {"ms", ms},
          {"median_ms", med},
          {"min_ms", vmin(ms)},
          {"max_ms", vmax(ms)},
          {"spread_pct", 100.0 * (vmax(ms) - vmin(ms)) / med},
          {"tokens_per_s", static_cast<double>(tokens) / med * 1e3},
          {"gflops", flops / med / 1e6},
          {"others_cores", number(others)}};
}

std::string fmt(const char *format, double v) {
  char text[64];
  std::snprintf(text, sizeof text, format, v);
  return text;
}

std::string num_text(const json &v) { return v.is_number() ? fmt("%.1f", v.get<double>()) : std::string("-"); }

void print_table(const json &report, const std::string &format) {
  const bool md = format == "md";
  const char *sep = md ? " | " : ",";
  const std::vector<std::string> head = {"backend", "threads", "tokens", "dtype", "median ms", "min ms", "max ms",
                                         "tokens/s", "GFLOP/s", "of sgemm", "read GB/s", "others"};
  std::string out;
  if (md) {  // what was measured, with which library
    const json &src = report.at("source");
    const json &first = report.at("cases").at(0);
    out += "pimoe bench: " + (src.contains("shape") ? "shape " + src["shape"].get<std::string>()
                                                      : src["model"].get<std::string>()) +
           " (hidden " + std::to_string(first["hidden"].get<int64_t>()) + ", " +
           std::to_string(first["num_experts"].get<int64_t>()) + " experts, top_k " +
           std::to_string(first["top_k"].get<int64_t>()) + "); " + report["build"].get<std::string>() + "\n\n| ";
  }
  for (size_t i = 0; i < head.size(); ++i) out += head[i] + (i + 1 < head.size() ? sep : "");
  out += md ? " |\n|" : "\n";
  if (md) {
    for (size_t i = 0; i < head.size(); ++i) out += "---|";
    out += "\n";
  }
  for (const json &c : report.at("cases")) {
    const auto num = [&](const char *f, const json &v) { return v.is_null() ? std::string("-") : fmt(f, v.get<double>()); };
    const std::vector<std::string> cells = {
        c["backend"].get<std::string>(), std::to_string(c["threads"].get<int64_t>()),
        std::to_string(c["tokens"].get<int64_t>()), c["dtype"].get<std::string>(), num("%.4f", c["median_ms"]),
        num("%.4f", c["min_ms"]), num("%.4f", c["max_ms"]), num("%.1f", c["tokens_per_s"]), num("%.2f", c["gflops"]),
        num("%.3f", c["gemm_fraction"]), num("%.2f", c["read_gbs"]), num("%.2f", c["others_cores"])};
    out += md ? "| " : "";
    for (size_t i = 0; i < cells.size(); ++i) out += cells[i] + (i + 1 < cells.size() ? sep : "");
    out += md ? " |\n" : "\n";
  }
  if (md) {
    for (const auto &[threads, ref] : report.at("machine").at("by_threads").items()) {
      if (!ref.contains("sgemm_gflops_before")) continue;
      out += "\n" + threads + " threads: sgemm 2048^3 (" + report["machine"]["sgemm_core"].get<std::string>() +
             ", same run) before " + num_text(ref["sgemm_gflops_before"]) + ", after " +
             num_text(ref["sgemm_gflops_after"]) + " GFLOP/s; memory read " + num_text(ref["read_gbs"]) + " GB/s";
    }
    out += "\nof sgemm = GFLOP/s / the mean of the two sgemm rates at its thread count; others = mean cores other "
           "processes used meanwhile (> 0.2: the case was disturbed)\n";
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
}

int run_bench(BenchArgs a) {
  if (a.model.empty() == a.shape.empty()) throw ToolError("give a MODEL or --shape (one of the two)");
  if (a.threads.empty()) a.threads = {static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()))};
  const size_t total = a.threads.size() * a.tokens.size() * a.dtypes.size();
  json report = {{"library", pimoe_version_string()}, {"build", pimoe_build_info()}};
  report["source"] = a.model.empty() ? json{{"shape", a.shape}}
                                      : json{{"model", a.model}, {"layer", a.layer < 0 ? json(nullptr) : json(a.layer)}};
  // The references at each thread count, measured around that count's cases: sgemm before and after them (the
  // machine's rate may drift while it is shared), the memory read bandwidth before them.
  const auto number = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json by_threads = json::object();
  json cases = json::array();
  {
    Progress progress(total);
    for (int64_t threads : a.threads) {
      json ref = json::object();
      const double before = a.references ? square_sgemm_gflops(static_cast<int>(threads)) : NAN;
      if (a.references) ref["read_gbs"] = number(measure_membw(static_cast<int>(threads), 256, 5).read_gbs);
      const size_t first = cases.size();
      for (const std::string &dtype : a.dtypes) {
        for (int64_t tokens : a.tokens) {
          progress.step("threads " + std::to_string(threads) + ", tokens " + std::to_string(tokens) + ", " + dtype);
          cases.push_back(run_case(a, threads, tokens, dtype));
        }
      }
      const double after = a.references ? square_sgemm_gflops(static_cast<int>(threads)) : NAN;
      if (a.references) {
        ref["sgemm_gflops_before"] = number(before);
        ref["sgemm_gflops_after"] = number(after);
      }
      for (size_t i = first; i < cases.size(); ++i) {
        json &c = cases[i];
        c["sgemm_gflops"] = number(0.5 * (before + after));
        c["gemm_fraction"] = number(c["gflops"].get<double>() / (0.5 * (before + after)));
        c["read_gbs"] = ref.value("read_gbs", json(nullptr));
      }
      by_threads[std::to_string(threads)] = ref;
    }
  }
  report["machine"] = {{"sgemm_core", sgemm_core_name()}, {"by_threads", by_threads}};
  report["cases"] = cases;
  if (a.format == "json") {
    std::printf("%s\n", report.dump(2).c_str());
  } else {
    print_table(report, a.format);
  }
  return 0;
}
}  // namespace

void add_bench_command(CLI::App &app, int &status) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App *cmd = app.add_subcommand("bench", "Time a layer over thread, token and weight-format sweeps, beside the "
                                              "machine's same-run sgemm rate and memory bandwidth");
  cmd->add_option("MODEL", args->model, "A libpimoe native file, or a Hugging Face checkpoint folder");
  cmd->add_option("--shape", args->shape,
                  "A layer of random weights instead of MODEL: S (512,2048,8,2,gelu), S-swiglu, F "
                  "(2048,768,128,8,swiglu) or H,I,E,k,ACTIVATION");
  cmd->add_option("--layer", args->layer, "Decoder layer of a checkpoint folder (default: its first MoE layer)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--backend", args->backend, "Backend: cpu, auto, cuda, vulkan, cuda:N, vulkan:N")->capture_default_str();
  cmd->add_option("--threads", args->threads, "Comma-separated thread counts (default: the cores)")
      ->delimiter(',')->check(CLI::PositiveNumber);
  cmd->add_option("--tokens", args->tokens, "Comma-separated tokens per call")
      ->delimiter(',')->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--dtype", args->dtypes, "Comma-separated weight storage formats (weight_dtype): auto, fp32, bf16, "
                                           "fp16, int8, int4, fp8_e4m3, mxfp4")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("--reps", args->reps, "Timed rounds per case; the median and spread are over them")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--min-time", args->min_time, "Seconds per timed batch of calls within a round")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_flag_callback("--no-reference", [args] { args->references = false; },
                         "Skip the sgemm rate and memory bandwidth references");
  cmd->add_option("-o,--output-format", args->format, "Output: md (a Markdown table), json or csv")
      ->check(CLI::IsMember({"md", "json", "csv"}))->capture_default_str();
  cmd->callback([args, &status] { status = run_bench(*args); });
}

}  // namespace pimoe_tools
