// SPDX-License-Identifier: MIT
// `pimoe run` against pimoe_forward_routing on the same layer and input (outputs and routing bit for bit), its
// strict .npy reading (hostile files fail naming the file), and `pimoe bench -o json|csv` on a tiny shape.
#include <pimoe/pimoe.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_test_util.h"
#include "hf_import_util.h"

namespace {

using cli_test::read_file;
using cli_test::Result;
using cli_test::run_pimoe;
using cli_test::Scratch;
using nlohmann::json;

// A .npy file as numpy writes it (format 1.0, '<f4', C order, header padded to 64 bytes), built here byte by byte so
// that the program's reader is checked against the format rather than against its own writer.
std::string npy_bytes(const std::string &shape_text, const std::vector<float> &values, const char *descr = "<f4",
                      const char *order = "False") {
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': " + order + ", 'shape': (" +
                       shape_text + "), }";
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char *>(values.data()), values.size() * sizeof(float));
  return out;
}

void write(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::vector<float> tokens(int64_t count, int64_t hidden) {
  std::vector<float> x(static_cast<size_t>(count * hidden));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7919) % 263) / 131.0f - 1.0f;
  return x;
}

struct RunCase {
  const char *name;
  std::string model;  // a fixture folder, or "" for a created layer saved to a native file
  int64_t batch, seq;
};

void PrintTo(const RunCase &c, std::ostream *os) { *os << c.name; }

class RunMatchesForward : public ::testing::TestWithParam<RunCase> {};

TEST_P(RunMatchesForward, BitForBit) {
  const RunCase &c = GetParam();
  Scratch scratch;
  std::string model_path = c.model.empty() ? "" : std::string(PIMOE_HF_FIXTURE_DIR) + "/" + c.model;
  pimoe_options *o = nullptr;
  ASSERT_EQ(pimoe_options_create(&o), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_int(o, PIMOE_OPT_THREADS, 1), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cpu"), PIMOE_OK);
  pimoe_model *model = nullptr;
  if (c.model.empty()) {  // a layer with the attention router: its routing depends on the [B, S] split
    ASSERT_EQ(pimoe_options_set_by_name(o, "hidden", "32"), PIMOE_OK);
    ASSERT_EQ(pimoe_options_set_by_name(o, "router_attention_heads", "2"), PIMOE_OK);
    ASSERT_EQ(pimoe_options_set_by_name(o, "router_attention_causal", "1"), PIMOE_OK);
    pimoe_model *made = nullptr;
    ASSERT_EQ(pimoe_create(o, &made), PIMOE_OK) << pimoe_last_error();
    model_path = scratch.path("layer.safetensors");
    ASSERT_EQ(pimoe_save(made, model_path.c_str()), PIMOE_OK);
    pimoe_destroy(made);
    ASSERT_EQ(pimoe_load(model_path.c_str(), o, &model), PIMOE_OK) << pimoe_last_error();
  } else {
    ASSERT_EQ(pimoe_import_hf(model_path.c_str(), 1, o, &model), PIMOE_OK) << pimoe_last_error();
  }
  pimoe_options_destroy(o);
  int64_t hidden = 0;
  int32_t experts = 0, top_k = 0;
  ASSERT_EQ(pimoe_model_dims(model, &hidden, &experts, &top_k), PIMOE_OK);
  const int64_t T = c.batch * c.seq;
  const std::vector<float> x = tokens(T, hidden);
  const std::string shape = c.batch == 1 ? std::to_string(c.seq) + ", " + std::to_string(hidden)
                                         : std::to_string(c.batch) + ", " + std::to_string(c.seq) + ", " +
                                               std::to_string(hidden);
  write(scratch.path("x.npy"), npy_bytes(shape, x));

  std::vector<std::string> args = {"run", model_path, "--input", scratch.path("x.npy"), "--output",
                                   scratch.path("y.npy"), "--routing", scratch.path("r.json"), "--threads", "1",
                                   "--backend", "cpu"};
  if (!c.model.empty()) args.insert(args.end(), {"--layer", "1"});
  const Result r = run_pimoe(scratch, args);
  ASSERT_EQ(r.status, 0) << r.err;

  const int64_t S = pimoe_model_routing_slots(model);
  std::vector<float> y(x.size()), weights(static_cast<size_t>(T * S)), probs(static_cast<size_t>(T * experts));
  std::vector<int32_t> ids(static_cast<size_t>(T * S));
  std::vector<uint8_t> dropped(ids.size());
  pimoe_routing routing{sizeof(pimoe_routing), ids.data(), weights.data(), dropped.data(), ids.size(),
                        probs.data(), probs.size()};
  ASSERT_EQ(pimoe_forward_routing(model, x.data(), x.size(), c.batch, c.seq, y.data(), y.size(), &routing), PIMOE_OK);
  pimoe_destroy(model);

  const std::string out = read_file(scratch.path("y.npy"));
  ASSERT_EQ(out, npy_bytes(shape, y)) << "the output .npy is not pimoe_forward's output, as numpy would write it";
  const json routed = json::parse(read_file(scratch.path("r.json")));
  EXPECT_EQ(routed["tokens"], T);
  EXPECT_EQ(routed["slots"], S);
  ASSERT_EQ(routed["per_token"].size(), static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    const json &row = routed["per_token"][t];
    for (int64_t j = 0; j < S; ++j) {
      EXPECT_EQ(row["expert_ids"][j], ids[t * S + j]) << "token " << t;
      EXPECT_EQ(row["weights"][j].get<float>(), weights[t * S + j]) << "token " << t;
      EXPECT_EQ(row["dropped"][j], dropped[t * S + j]) << "token " << t;
    }
    for (int32_t e = 0; e < experts; ++e) EXPECT_EQ(row["probabilities"][e].get<float>(), probs[t * experts + e]);
  }
}

INSTANTIATE_TEST_SUITE_P(Layers, RunMatchesForward,
                         ::testing::Values(RunCase{"mixtral", "mixtral", 1, 24}, RunCase{"deepseek_v3", "deepseek_v3", 1, 5},
                                           RunCase{"gpt_oss", "gpt_oss", 1, 7},
                                           RunCase{"attention_router_batch", "", 3, 4}),
                         [](const auto &p) { return std::string(p.param.name); });

// Every importer family's fixture, its committed input (expected.safetensors' "input", read as a .safetensors token
// file) written back as .safetensors: pimoe_forward's output on it bit for bit, and the transformers block's output
// within the importer parity test's tolerance (test_hf_import's HfParity).
struct FamilyRun {
  const char *dir;
  double tolerance;  // max |error| relative to the output's RMS
};
void PrintTo(const FamilyRun &f, std::ostream *os) { *os << f.dir; }

class RunFamilyFixture : public ::testing::TestWithParam<FamilyRun> {};

TEST_P(RunFamilyFixture, SafetensorsInAndOut) {
  const std::string dir = std::string(PIMOE_HF_FIXTURE_DIR) + "/" + GetParam().dir;
  Scratch scratch;
  const Result r = run_pimoe(scratch, {"run", dir, "--layer", "1", "--threads", "1", "--backend", "cpu", "--input",
                                       dir + "/expected.safetensors", "--output", scratch.path("y.safetensors")});
  ASSERT_EQ(r.status, 0) << r.err;
  auto expected = pimoe_hf_test::read_f32_safetensors(dir + "/expected.safetensors");
  auto written = pimoe_hf_test::read_f32_safetensors(scratch.path("y.safetensors"));
  ASSERT_EQ(written.count("output"), 1u);
  const auto &x = expected["input"], &y_ref = expected["output"], &y = written["output"];
  ASSERT_EQ(y.shape, x.shape);

  pimoe_options *o = nullptr;
  ASSERT_EQ(pimoe_options_create(&o), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_int(o, PIMOE_OPT_THREADS, 1), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cpu"), PIMOE_OK);
  pimoe_model *model = nullptr;
  ASSERT_EQ(pimoe_import_hf(dir.c_str(), 1, o, &model), PIMOE_OK) << pimoe_last_error();
  pimoe_options_destroy(o);
  std::vector<float> out(x.data.size());
  ASSERT_EQ(pimoe_forward(model, x.data.data(), x.data.size(), 1, x.shape[0], out.data(), out.size(), nullptr,
                          nullptr, 0),
            PIMOE_OK);
  pimoe_destroy(model);
  ASSERT_EQ(std::memcmp(out.data(), y.data.data(), out.size() * sizeof(float)), 0) << "not pimoe_forward's output";
  double rms = 0, worst = 0;
  for (size_t i = 0; i < y.data.size(); ++i) {
    rms += double(y_ref.data[i]) * y_ref.data[i];
    worst = std::max(worst, std::abs(double(y.data[i]) - y_ref.data[i]));
  }
  rms = std::sqrt(rms / static_cast<double>(y.data.size()));
  EXPECT_LE(worst, GetParam().tolerance * rms) << "against the transformers block";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RunFamilyFixture,
                         ::testing::Values(FamilyRun{"mixtral", 1e-5}, FamilyRun{"qwen2_moe", 1e-5},
                                           FamilyRun{"qwen3_moe", 1e-5}, FamilyRun{"olmoe", 1e-2},
                                           FamilyRun{"deepseek_v2", 1e-5}, FamilyRun{"deepseek_v3", 1e-5},
                                           FamilyRun{"deepseek_v3_fp8", 1e-5}, FamilyRun{"gpt_oss", 1e-5}),
                         [](const auto &p) { return std::string(p.param.dir); });

TEST(RunTokenFiles, SafetensorsInputNeedsItsTensor) {
  Scratch scratch;
  const std::string dir = std::string(PIMOE_HF_FIXTURE_DIR) + "/mixtral";
  // expected.safetensors has "input" and "output": --input-tensor picks another, an absent one is named.
  Result r = run_pimoe(scratch, {"run", dir, "--layer", "1", "--input", dir + "/expected.safetensors",
                                 "--input-tensor", "nope", "--output", scratch.path("y.npy")});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("has no tensor 'nope'"), std::string::npos) << r.err;
  r = run_pimoe(scratch, {"run", dir, "--layer", "1", "--input", dir + "/expected.safetensors", "--input-tensor",
                          "output", "--output", scratch.path("y.npy")});
  EXPECT_EQ(r.status, 0) << r.err;
  r = run_pimoe(scratch, {"run", dir, "--layer", "1", "--input", dir + "/config.json", "--output",
                          scratch.path("y.npy")});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("a token file is a .npy or a .safetensors file"), std::string::npos) << r.err;
}

// Format 2.0 (a 4-byte header length, as numpy writes for a header past 64 KiB) and one token of shape [H]: the
// output keeps the input's shape and is the layer's output on that token.
TEST(RunNpy, Version2HeaderAndOneToken) {
  Scratch scratch;
  const std::string dir = std::string(PIMOE_HF_FIXTURE_DIR) + "/mixtral";
  const std::vector<float> x = tokens(1, 64);
  std::string v1 = npy_bytes("64,", x);
  const size_t header = static_cast<uint8_t>(v1[8]) | static_cast<size_t>(static_cast<uint8_t>(v1[9])) << 8;
  std::string v2 = "\x93NUMPY";
  v2 += '\x02';
  v2 += '\x00';
  v2 += std::string(1, static_cast<char>(header & 0xff)) + static_cast<char>(header >> 8) + std::string(2, '\0');
  v2 += v1.substr(10);
  write(scratch.path("x.npy"), v2);
  const Result r = run_pimoe(scratch, {"run", dir, "--layer", "1", "--threads", "1", "--backend", "cpu", "--input",
                                       scratch.path("x.npy"), "--output", scratch.path("y.npy")});
  ASSERT_EQ(r.status, 0) << r.err;
  pimoe_options *o = nullptr;
  ASSERT_EQ(pimoe_options_create(&o), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_int(o, PIMOE_OPT_THREADS, 1), PIMOE_OK);
  ASSERT_EQ(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cpu"), PIMOE_OK);
  pimoe_model *model = nullptr;
  ASSERT_EQ(pimoe_import_hf(dir.c_str(), 1, o, &model), PIMOE_OK) << pimoe_last_error();
  pimoe_options_destroy(o);
  std::vector<float> y(x.size());
  ASSERT_EQ(pimoe_forward(model, x.data(), x.size(), 1, 1, y.data(), y.size(), nullptr, nullptr, 0), PIMOE_OK);
  pimoe_destroy(model);
  EXPECT_EQ(read_file(scratch.path("y.npy")), npy_bytes("64,", y));
}

// Hostile inputs: each refused with exit status 1 and a message naming the file and what is wrong.
struct BadNpy {
  const char *name;
  std::string bytes;
  const char *message;
};

void PrintTo(const BadNpy &b, std::ostream *os) { *os << b.name; }

class RunRefusesBadNpy : public ::testing::TestWithParam<BadNpy> {};

TEST_P(RunRefusesBadNpy, NamingTheFile) {
  const BadNpy &b = GetParam();
  Scratch scratch;
  const std::string path = scratch.path(std::string(b.name) + ".npy");
  write(path, b.bytes);
  const Result r = run_pimoe(scratch, {"run", std::string(PIMOE_HF_FIXTURE_DIR) + "/mixtral", "--layer", "1",
                                       "--input", path, "--output", scratch.path("y.npy")});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(b.message), std::string::npos) << r.err;
  EXPECT_FALSE(std::ifstream(scratch.path("y.npy")).good()) << "no output is written for a refused input";
}

const std::vector<float> kRow = tokens(2, 64);
INSTANTIATE_TEST_SUITE_P(
    Files, RunRefusesBadNpy,
    ::testing::Values(BadNpy{"not_npy", "hello, world", "not a .npy file"},
                      BadNpy{"float64", npy_bytes("2, 32", kRow, "<f8"), "dtype '<f8'"},
                      BadNpy{"big_endian", npy_bytes("2, 64", kRow, ">f4"), "dtype '>f4'"},
                      BadNpy{"fortran", npy_bytes("2, 64", kRow, "<f4", "True"), "Fortran order"},
                      BadNpy{"truncated", npy_bytes("2, 64", kRow).substr(0, 300), "the shape needs 512 bytes"},
                      BadNpy{"header_past_end", npy_bytes("2, 64", kRow).substr(0, 40), "runs past the end"},
                      BadNpy{"wrong_hidden", npy_bytes("4, 32", kRow), "has shape (4, 32)"},
                      BadNpy{"unknown_key", std::string("\x93NUMPY\x01\x00\x10\x00{'x': 1}       \n", 26),
                             "unknown key 'x'"}),
    [](const auto &p) { return std::string(p.param.name); });

TEST(Bench, JsonOnATinyShapeHasTheCasesAndTheReferences) {
  Scratch scratch;
  const Result r = run_pimoe(scratch, {"bench", "--shape", "32,16,4,2,gelu", "--tokens", "1,8", "--threads", "1",
                                       "--reps", "3", "--min-time", "0.01", "-o", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["library"], pimoe_version_string());
  ASSERT_EQ(j["cases"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const json &c = j["cases"][i];
    EXPECT_EQ(c["tokens"], i == 0 ? 1 : 8);
    EXPECT_EQ(c["threads"], 1);
    EXPECT_EQ(c["backend"], "cpu");
    ASSERT_EQ(c["ms"].size(), 3u);
    const double lo = c["min_ms"], med = c["median_ms"], hi = c["max_ms"];
    EXPECT_GT(lo, 0.0);
    EXPECT_LE(lo, med);
    EXPECT_LE(med, hi);
    EXPECT_NEAR(c["tokens_per_s"].get<double>(), c["tokens"].get<double>() / med * 1e3, 1e-6 * 1e3 / med * 8);
    EXPECT_GT(c["gflops"].get<double>(), 0.0);
    EXPECT_GT(c["read_gbs"].get<double>(), 0.0);
  }
  const json &ref = j["machine"]["by_threads"]["1"];
  EXPECT_GT(ref["read_gbs"].get<double>(), 0.0);
  if (!j["machine"]["sgemm_core"].get<std::string>().empty()) {  // a build with OpenBLAS
    const double before = ref["sgemm_gflops_before"], after = ref["sgemm_gflops_after"];
    EXPECT_GT(before, 0.0);
    EXPECT_GT(after, 0.0);
    for (const json &c : j["cases"]) {
      EXPECT_DOUBLE_EQ(c["sgemm_gflops"].get<double>(), 0.5 * (before + after));
      EXPECT_DOUBLE_EQ(c["gemm_fraction"].get<double>(), c["gflops"].get<double>() / (0.5 * (before + after)));
    }
  }
  // Not a terminal: progress is plain lines on stderr, one per case.
  EXPECT_NE(r.err.find("case 1/2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("case 2/2"), std::string::npos) << r.err;
}

TEST(Bench, CsvHasAHeaderAndARowPerCase) {
  Scratch scratch;
  const Result r = run_pimoe(scratch, {"bench", "--shape", "32,16,4,2,swiglu", "--tokens", "4", "--threads", "1",
                                       "--dtype", "fp32,int8", "--reps", "2", "--min-time", "0.01",
                                       "--no-reference", "-o", "csv"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("backend,threads,tokens,dtype,median ms,", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\ncpu,1,4,fp32,"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\ncpu,1,4,int8,"), std::string::npos) << r.out;
}

TEST(Cli, HelpOnEverySubcommandAndVersion) {
  Scratch scratch;
  for (const char *sub : {"info", "run", "bench"}) {
    const Result r = run_pimoe(scratch, {sub, "--help"});
    EXPECT_EQ(r.status, 0) << sub;
    EXPECT_NE(r.out.find(std::string("Usage: ") + PIMOE_CLI_NAME + " " + sub), std::string::npos) << r.out;
  }
  const Result v = run_pimoe(scratch, {"--version"});
  EXPECT_EQ(v.status, 0);
  EXPECT_EQ(v.out, std::string("pimoe (libpimoe) ") + pimoe_version_string() + "\n");
  EXPECT_EQ(run_pimoe(scratch, {}).status, 2) << "no subcommand is a usage error";
  EXPECT_EQ(run_pimoe(scratch, {"bench", "--shape", "S", "-o", "xml"}).status, 2);
}

}  // namespace
