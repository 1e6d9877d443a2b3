// SPDX-License-Identifier: MIT
// pimoe_import_hf of pre-quantised checkpoints as they ship (tests/fixtures/deepseek_v3_fp8, tests/fixtures/gpt_oss):
// the matrices are held in the checkpoint's format with weight_dtype "auto" (the values are the file's, decoded
// here independently), any other weight_dtype goes through fp32, gpt-oss's block equals the oracle's, and hostile
// checkpoints (scales of the wrong shape or dtype, missing, NaN codes, quantization_config the importer does not
// take) each get a status and a message naming the file and the tensor or key. The parity with transformers itself is
// HfParity in test_hf_import.cpp.
#include <gtest/gtest.h>
#include <pimoe/pimoe.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "hf_import_util.h"
#include "oracle.h"
#include "oracle_quant.h"

using namespace pimoe_hf_test;
namespace po = pimoe_oracle;

namespace {

const char *const kFp8 = "deepseek_v3_fp8";
const char *const kGptOss = "gpt_oss";
const std::string kP = "model.layers.1.mlp.";

// A safetensors file as its header and its data section, to read tensors from or to break.
struct Safetensors {
  json header;
  std::string data;

  static Safetensors read(const std::string &path) {
    const std::string bytes = read_text(path);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i)
      n |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[static_cast<size_t>(i)])) << (8 * i);
    Safetensors s;
    s.header = json::parse(bytes.substr(8, n));
    s.data = bytes.substr(8 + n);
    return s;
  }
  void write(const std::string &path) const {
    const std::string text = header.dump();
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
    write_text(path, out + text + data);
  }
  uint8_t *bytes(const std::string &name) {
    return reinterpret_cast<uint8_t *>(&data[header.at(name)["data_offsets"][0].get<size_t>()]);
  }
  std::vector<int64_t> shape(const std::string &name) const {
    return header.at(name)["shape"].get<std::vector<int64_t>>();
  }
};

// The formats' element values, from the OCP and e4m3fn definitions (independent of the library's tables).
double E4m3(uint8_t b) {
  const int e = (b >> 3) & 15, m = b & 7;
  const double mag = e == 0 ? std::ldexp(m, -9) : std::ldexp(1.0 + m / 8.0, e - 7);
  return (b & 0x80) ? -mag : mag;
}
double E2m1(uint8_t u) {
  static const double kValues[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  return (u & 8) ? -kValues[u & 7] : kValues[u & 7];
}

pimoe_model *Import(const std::string &dir, const char *weight_dtype) {
  pimoe_options *o = nullptr;
  EXPECT_EQ(pimoe_options_create(&o), PIMOE_OK);
  EXPECT_EQ(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cpu"), PIMOE_OK);
  EXPECT_EQ(pimoe_options_set_int(o, PIMOE_OPT_THREADS, 2), PIMOE_OK);
  if (weight_dtype) {
    EXPECT_EQ(pimoe_options_set_string(o, PIMOE_OPT_WEIGHT_DTYPE, weight_dtype), PIMOE_OK);
  }
  pimoe_model *m = nullptr;
  EXPECT_EQ(pimoe_import_hf(dir.c_str(), 1, o, &m), PIMOE_OK) << pimoe_last_error();
  pimoe_options_destroy(o);
  return m;
}

std::vector<float> Tensor(const pimoe_model *m, const std::string &name) {
  int32_t nd = 0;
  int64_t dims[4] = {0, 0, 0, 0};
  EXPECT_EQ(pimoe_tensor_shape(m, name.c_str(), &nd, dims), PIMOE_OK) << name;
  size_t n = 1;
  for (int32_t d = 0; d < nd; ++d) n *= static_cast<size_t>(dims[d]);
  std::vector<float> v(n);
  EXPECT_EQ(pimoe_tensor_read(m, name.c_str(), v.data(), n), PIMOE_OK) << name;
  return v;
}

// max |y - expected| / RMS(expected) of the fixture's input through `m`.
double RelativeError(pimoe_model *m, const std::string &family, std::vector<float> *y = nullptr) {
  auto expected = read_f32_safetensors(kFixtures + "/" + family + "/expected.safetensors");
  const F32Tensor &x = expected["input"], &want = expected["output"];
  std::vector<float> out(x.data.size());
  EXPECT_EQ(pimoe_forward(m, x.data.data(), x.data.size(), 1, x.shape[0], out.data(), out.size(), nullptr, nullptr, 0),
            PIMOE_OK)
      << pimoe_last_error();
  double sum_sq = 0, max_err = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    sum_sq += double(want.data[i]) * want.data[i];
    max_err = std::max(max_err, std::fabs(double(out[i]) - want.data[i]));
  }
  if (y) *y = out;
  return max_err / std::sqrt(sum_sq / double(out.size()));
}

uint64_t WeightBytes(const pimoe_model *m) {
  pimoe_stats_snapshot s{};
  s.struct_size = sizeof s;
  EXPECT_EQ(pimoe_stats(m, &s), PIMOE_OK);
  return s.weight_bytes;
}

// ================================================================================================ as they ship

// With "auto" an FP8 matrix holds the file's bytes: what pimoe_tensor_read gives is e4m3(byte) * scale_inv of its
// block, for every element, the ragged edge blocks (H = 192, I = 64) included.
TEST(HfQuantized, Fp8MatricesHoldTheFileValues) {
  pimoe_model *m = Import(kFixtures + "/" + kFp8, nullptr);
  ASSERT_NE(m, nullptr);
  Safetensors file = Safetensors::read(kFixtures + "/" + kFp8 + "/model.safetensors");
  const std::pair<std::string, std::string> pairs[] = {
      {"experts.3.down.weight", kP + "experts.3.down_proj.weight"},
      {"experts.15.gate.weight", kP + "experts.15.gate_proj.weight"},
      {"experts.0.up.weight", kP + "experts.0.up_proj.weight"},
      {"shared.down.weight", kP + "shared_experts.down_proj.weight"},
      {"shared.gate.weight", kP + "shared_experts.gate_proj.weight"},
  };
  for (const auto &[native, hf] : pairs) {
    const std::vector<float> got = Tensor(m, native);
    const std::vector<int64_t> shape = file.shape(hf), sshape = file.shape(hf + "_scale_inv");
    ASSERT_EQ(got.size(), static_cast<size_t>(shape[0] * shape[1])) << native;
    const uint8_t *w = file.bytes(hf);
    const uint8_t *s = file.bytes(hf + "_scale_inv");
    size_t bad = 0;
    for (int64_t r = 0; r < shape[0]; ++r) {
      for (int64_t c = 0; c < shape[1]; ++c) {
        float scale;
        std::memcpy(&scale, s + 4 * ((r / 128) * sshape[1] + c / 128), 4);
        const float want = static_cast<float>(E4m3(w[r * shape[1] + c])) * scale;  // one rounding, as documented
        bad += got[static_cast<size_t>(r * shape[1] + c)] != want;
      }
    }
    EXPECT_EQ(bad, 0u) << native << " differs from " << hf << " decoded";
  }
  // The router and the selection bias are the file's F32.
  EXPECT_EQ(std::memcmp(Tensor(m, "router.weight").data(), file.bytes(kP + "gate.weight"), 16 * 192 * 4), 0);
  pimoe_destroy(m);
}

// gpt-oss: gate is the even rows of gate_up, up the odd ones, down its own; the biases likewise (BF16 -> fp32).
TEST(HfQuantized, GptOssMatricesAreTheFileRowsSplit) {
  pimoe_model *m = Import(kFixtures + "/" + kGptOss, nullptr);
  ASSERT_NE(m, nullptr);
  Safetensors file = Safetensors::read(kFixtures + "/" + kGptOss + "/model.safetensors");
  const int64_t E = 8, H = 128, I = 96;
  auto decode_row = [&](const std::string &blocks, const std::string &scales, int64_t e, int64_t row, int64_t rows,
                        int64_t cols) {
    const int64_t groups = (cols + 31) / 32;
    const uint8_t *b = file.bytes(blocks) + (e * rows + row) * groups * 16;
    const uint8_t *s = file.bytes(scales) + (e * rows + row) * groups;
    std::vector<float> out(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) {
      const uint8_t byte = b[(c / 32) * 16 + (c % 32) / 2];
      const uint8_t nib = (c & 1) ? byte >> 4 : byte & 15;
      out[static_cast<size_t>(c)] = static_cast<float>(E2m1(nib) * std::ldexp(1.0, int(s[c / 32]) - 127));
    }
    return out;
  };
  auto bf16 = [&](const std::string &name, int64_t i) {
    uint16_t h;
    std::memcpy(&h, file.bytes(name) + 2 * i, 2);
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  };
  const std::string x = kP + "experts.";
  for (int64_t e : {0, 5, 7}) {
    const std::string p = "experts." + std::to_string(e) + ".";
    const std::vector<float> gate = Tensor(m, p + "gate.weight"), up = Tensor(m, p + "up.weight");
    const std::vector<float> down = Tensor(m, p + "down.weight");
    const std::vector<float> gb = Tensor(m, p + "gate.bias"), ub = Tensor(m, p + "up.bias");
    const std::vector<float> db = Tensor(m, p + "down.bias");
    ASSERT_EQ(gate.size(), static_cast<size_t>(I * H));
    ASSERT_EQ(down.size(), static_cast<size_t>(H * I));
    size_t bad = 0;
    for (int64_t j = 0; j < I; ++j) {
      const std::vector<float> g = decode_row(x + "gate_up_proj_blocks", x + "gate_up_proj_scales", e, 2 * j, 2 * I, H);
      const std::vector<float> u =
          decode_row(x + "gate_up_proj_blocks", x + "gate_up_proj_scales", e, 2 * j + 1, 2 * I, H);
      for (int64_t h = 0; h < H; ++h) {
        bad += gate[static_cast<size_t>(j * H + h)] != g[static_cast<size_t>(h)];
        bad += up[static_cast<size_t>(j * H + h)] != u[static_cast<size_t>(h)];
      }
      bad += gb[static_cast<size_t>(j)] != bf16(x + "gate_up_proj_bias", e * 2 * I + 2 * j);
      bad += ub[static_cast<size_t>(j)] != bf16(x + "gate_up_proj_bias", e * 2 * I + 2 * j + 1);
    }
    for (int64_t h = 0; h < H; ++h) {
      const std::vector<float> d = decode_row(x + "down_proj_blocks", x + "down_proj_scales", e, h, H, I);
      for (int64_t i = 0; i < I; ++i) bad += down[static_cast<size_t>(h * I + i)] != d[static_cast<size_t>(i)];
      bad += db[static_cast<size_t>(h)] != bf16(x + "down_proj_bias", e * H + h);
    }
    EXPECT_EQ(bad, 0u) << "expert " << e;
  }
  const std::vector<float> rb = Tensor(m, "router.bias");
  ASSERT_EQ(rb.size(), static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) EXPECT_EQ(rb[static_cast<size_t>(e)], bf16(kP + "router.bias", e));
  pimoe_destroy(m);
}

// The compact forms are what the layer holds: a fraction of the fp32 import's weight bytes.
TEST(HfQuantized, AutoHoldsTheCompactFormats) {
  for (const char *family : {kFp8, kGptOss}) {
    pimoe_model *compact = Import(kFixtures + "/" + family, nullptr);
    pimoe_model *fp32 = Import(kFixtures + "/" + family, "fp32");
    ASSERT_NE(compact, nullptr);
    ASSERT_NE(fp32, nullptr);
    const double ratio = double(WeightBytes(compact)) / double(WeightBytes(fp32));
    std::printf("%s: weight_bytes auto / fp32 = %.3f\n", family, ratio);
    // fp8: 1 byte of 4 plus the fp32 router; mxfp4: 4.25 bits of 32 plus the router and biases.
    EXPECT_LT(ratio, std::string(family) == kFp8 ? 0.30 : 0.20) << family;
    pimoe_destroy(compact);
    pimoe_destroy(fp32);
  }
}

pimoe_stats_snapshot Stats(const pimoe_model *m) {
  pimoe_stats_snapshot s{};
  s.struct_size = sizeof s;
  EXPECT_EQ(pimoe_stats(m, &s), PIMOE_OK);
  return s;
}

// The stats' quantisation error (pimoe.h): unknown (NaN) for a checkpoint that ships quantised matrices, whatever
// weight_dtype imports it; for a float checkpoint imported into int8, the relative RMS and max abs error of the expert
// and shared-expert matrices against the fp32 import's, by hand; 0 for the fp32 import.
TEST(HfQuantized, QuantErrorUnknownForQuantisedCheckpointsMeasuredForFloatOnes) {
  for (const char *family : {kFp8, kGptOss}) {
    for (const char *dtype : {static_cast<const char *>(nullptr), "fp32", "int8"}) {
      SCOPED_TRACE(std::string(family) + " as " + (dtype ? dtype : "auto"));
      pimoe_model *m = Import(kFixtures + "/" + family, dtype);
      ASSERT_NE(m, nullptr);
      const pimoe_stats_snapshot s = Stats(m);
      EXPECT_TRUE(std::isnan(s.weight_quant_rel_rms_error)) << s.weight_quant_rel_rms_error;
      EXPECT_TRUE(std::isnan(s.weight_quant_max_abs_error)) << s.weight_quant_max_abs_error;
      pimoe_destroy(m);
    }
  }
  pimoe_model *fp32 = Import(kFixtures + "/deepseek_v3", "fp32");
  pimoe_model *int8 = Import(kFixtures + "/deepseek_v3", "int8");
  ASSERT_NE(fp32, nullptr);
  ASSERT_NE(int8, nullptr);
  EXPECT_EQ(Stats(fp32).weight_quant_rel_rms_error, 0.0);
  EXPECT_EQ(Stats(fp32).weight_quant_max_abs_error, 0.0);
  double err2 = 0, w2 = 0, max_abs = 0;
  int matrices = 0;
  for (int64_t i = 0; i < pimoe_tensor_count(int8); ++i) {
    const std::string name = pimoe_tensor_name(int8, i);
    const bool expert = name.rfind("experts.", 0) == 0 || name.rfind("shared.", 0) == 0;
    const size_t dot = name.rfind('.', name.size() - std::strlen(".weight") - 1);
    const std::string proj = dot == std::string::npos ? "" : name.substr(dot);
    if (!expert || (proj != ".gate.weight" && proj != ".up.weight" && proj != ".down.weight")) continue;
    const std::vector<float> w = Tensor(fp32, name), q = Tensor(int8, name);
    ASSERT_EQ(w.size(), q.size()) << name;
    for (size_t j = 0; j < w.size(); ++j) {
      const double d = double(w[j]) - double(q[j]);
      err2 += d * d;
      w2 += double(w[j]) * double(w[j]);
      max_abs = std::max(max_abs, std::fabs(d));
    }
    ++matrices;
  }
  EXPECT_GE(matrices, 3 * 16 + 3);  // 16 routed experts and the shared expert
  const pimoe_stats_snapshot s = Stats(int8);
  const double want = std::sqrt(err2 / w2);
  EXPECT_GT(want, 0.0);
  EXPECT_NEAR(s.weight_quant_rel_rms_error, want, 1e-9 * want);
  EXPECT_NEAR(s.weight_quant_max_abs_error, max_abs, 1e-9 * max_abs);
  std::printf("deepseek_v3 as int8: rel RMS error %.6g, max abs error %.6g over %d matrices\n",
              s.weight_quant_rel_rms_error, s.weight_quant_max_abs_error, matrices);
  pimoe_destroy(fp32);
  pimoe_destroy(int8);
}

// Any other weight_dtype dequantises and stores in that format: each matrix holds what that format's rule makes of
// the dequantised matrix (the oracle's StoredValues), fp32 exactly the fixture's oracle. A format the checkpoint
// ships is taken as it is: the same outputs as "auto".
TEST(HfQuantized, ExplicitWeightDtypeGoesThroughFp32) {
  for (const char *family : {kFp8, kGptOss}) {
    pimoe_model *fp32 = Import(kFixtures + "/" + family, "fp32");
    pimoe_model *automatic = Import(kFixtures + "/" + family, nullptr);
    ASSERT_NE(fp32, nullptr);
    ASSERT_NE(automatic, nullptr);
    EXPECT_LE(RelativeError(fp32, family), 1e-5) << family;
    std::vector<float> y_auto;
    RelativeError(automatic, family, &y_auto);
    for (const char *dtype : {"bf16", "int8", "int4", "fp8_e4m3", "mxfp4"}) {
      SCOPED_TRACE(std::string(family) + " as " + dtype);
      pimoe_model *m = Import(kFixtures + "/" + family, dtype);
      ASSERT_NE(m, nullptr);
      for (const char *name : {"experts.1.gate.weight", "experts.6.up.weight", "experts.7.down.weight"}) {
        int32_t nd = 0;
        int64_t dims[4] = {0, 0, 0, 0};
        ASSERT_EQ(pimoe_tensor_shape(m, name, &nd, dims), PIMOE_OK);
        po::StorageFormat f;
        f.dtype = dtype;
        EXPECT_EQ(Tensor(m, name), po::StoredValues(Tensor(fp32, name), dims[0], dims[1], f)) << name;
      }
      std::vector<float> y;
      const double err = RelativeError(m, family, &y);
      EXPECT_LT(err, 2.0);  // a sanity bound: the formats' errors are pimoe.h's, checked by test_parity
      const bool native = (std::string(family) == kFp8 && std::string(dtype) == "fp8_e4m3") ||
                          (std::string(family) == kGptOss && std::string(dtype) == "mxfp4");
      if (native) {
        EXPECT_EQ(y, y_auto);
      }
      pimoe_destroy(m);
    }
    pimoe_destroy(fp32);
    pimoe_destroy(automatic);
  }
}

// gpt-oss's block against the oracle (its own formulas, in double, on the imported values): routing on the biased
// logits, the clamped SwiGLU with the config's limit, the biases; then with another swiglu_limit and swiglu_alpha in
// config.json, which the import must take.
TEST(HfQuantized, GptOssBlockMatchesTheOracle) {
  for (const double limit : {7.0, 0.75}) {
    Scratch s(kGptOss);
    json config = s.config();
    config["swiglu_limit"] = limit;
    if (limit != 7.0) config["swiglu_alpha"] = 1.25;
    s.set_config(config);
    pimoe_model *m = Import(s.dir(), nullptr);
    ASSERT_NE(m, nullptr);
    po::Hyper hp;
    hp.top_k = 2;
    hp.expert_bias = true;
    hp.router_logit_bias = true;
    hp.swiglu_limit = limit;
    hp.swiglu_alpha = limit != 7.0 ? 1.25 : 1.702;
    po::Weights w;
    ASSERT_EQ(po::LoadWeights(m, hp, &w), "");
    for (const po::Expert &e : w.experts) ASSERT_EQ(e.spec.activation, PIMOE_ACT_SWIGLU_OAI);
    auto expected = read_f32_safetensors(kFixtures + "/" + kGptOss + "/expected.safetensors");
    const F32Tensor &x = expected["input"];
    const int64_t tokens = x.shape[0];
    const po::Result r = po::Forward(w, hp, x.data.data(), tokens);
    std::vector<float> y;
    const double vs_transformers = RelativeError(m, kGptOss, &y);
    if (limit == 7.0) {
      EXPECT_LE(vs_transformers, 1e-5);
    } else {
      EXPECT_GT(vs_transformers, 1e-2) << "swiglu_limit 0.75 should change the output";
    }
    double sum_sq = 0, max_err = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      sum_sq += r.output[i] * r.output[i];
      max_err = std::max(max_err, std::fabs(double(y[i]) - r.output[i]));
    }
    EXPECT_LE(max_err / std::sqrt(sum_sq / double(y.size())), 1e-5) << "limit " << limit;
    pimoe_destroy(m);
  }
}

// Imported quantised layers save (as fp32) and load back with the same outputs, bit for bit: the CPU computes a
// compact layer exactly as the fp32 layer of its dequantised values.
TEST(HfQuantized, SaveAndLoadGiveTheSameOutputs) {
  for (const char *family : {kFp8, kGptOss}) {
    pimoe_model *m = Import(kFixtures + "/" + family, nullptr);
    ASSERT_NE(m, nullptr);
    const std::string path = ::testing::TempDir() + "pimoe_hfq_" + std::to_string(::getpid()) + ".safetensors";
    ASSERT_EQ(pimoe_save(m, path.c_str()), PIMOE_OK) << pimoe_last_error();
    pimoe_options *o = nullptr;
    ASSERT_EQ(pimoe_options_create(&o), PIMOE_OK);
    ASSERT_EQ(pimoe_options_set_string(o, PIMOE_OPT_BACKEND, "cpu"), PIMOE_OK);
    pimoe_model *loaded = nullptr;
    ASSERT_EQ(pimoe_load(path.c_str(), o, &loaded), PIMOE_OK) << family << ": " << pimoe_last_error();
    pimoe_options_destroy(o);
    std::remove(path.c_str());
    std::vector<float> a, b;
    RelativeError(m, family, &a);
    RelativeError(loaded, family, &b);
    EXPECT_EQ(a, b) << family;
    pimoe_destroy(m);
    pimoe_destroy(loaded);
  }
}

// ================================================================================================ hostile checkpoints

struct Expect {
  pimoe_status status;
  std::vector<std::string> mentions;  // each must appear in the message
};

void ExpectFailure(const std::string &dir, const Expect &want) {
  const Failure f = import_failure(dir, 1);
  EXPECT_EQ(f.status, want.status) << f.message;
  for (const std::string &m : want.mentions)
    EXPECT_NE(f.message.find(m), std::string::npos) << m << " in: " << f.message;
}

TEST(HfQuantizedHostile, Fp8ScaleOfTheWrongShape) {
  Scratch s(kFp8);
  Safetensors file = Safetensors::read(s.dir() + "/model.safetensors");
  const std::string name = kP + "experts.2.down_proj.weight_scale_inv";
  file.header[name]["shape"] = {1, 2};  // [2, 1] for down [192, 64]: the same bytes, the wrong blocks
  file.write(s.dir() + "/model.safetensors");
  ExpectFailure(s.dir(), {PIMOE_ERR_FORMAT, {"model.safetensors", name, "[1, 2]", "[2, 1]", "128 x 128"}});
}

TEST(HfQuantizedHostile, Fp8ScaleMissing) {
  Scratch s(kFp8);
  Safetensors file = Safetensors::read(s.dir() + "/model.safetensors");
  const std::string name = kP + "shared_experts.up_proj.weight_scale_inv";
  file.header[kP + "shared_experts.up_proj.weight_scale_invx"] = file.header[name];  // renamed: the real one is gone
  file.header.erase(name);
  file.write(s.dir() + "/model.safetensors");
  ExpectFailure(s.dir(), {PIMOE_ERR_FORMAT, {"model.safetensors", kP + "shared_experts.up_proj.weight'", name}});
}

TEST(HfQuantizedHostile, Fp8ScaleOfTheWrongDtype) {
  Scratch s(kFp8);
  Safetensors file = Safetensors::read(s.dir() + "/model.safetensors");
  const std::string name = kP + "experts.4.gate_proj.weight_scale_inv";
  file.header[name]["dtype"] = "I32";
  file.write(s.dir() + "/model.safetensors");
  ExpectFailure(s.dir(), {PIMOE_ERR_UNSUPPORTED, {name, "I32"}});
}

TEST(HfQuantizedHostile, Fp8NanCodeAndNanOrHugeScale) {
  {
    Scratch s(kFp8);
    Safetensors file = Safetensors::read(s.dir() + "/model.safetensors");
    const std::string name = kP + "experts.9.up_proj.weight";
    file.bytes(name)[1000] = 0xff;  // e4m3fn's NaN (0x7f with the sign)
    file.write(s.dir() + "/model.safetensors");
    ExpectFailure(s.dir(), {PIMOE_ERR_FORMAT, {"model.safetensors", name, "NaN", "[1000]"}});
  }
  {
    Scratch s(kFp8);
    Safetensors file = Safetensors::read(s.dir() + "/model.safetensors");
    const std::string name = kP + "experts.9.down_proj.weight_scale_inv";
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(file.bytes(name) + 4, &nan, 4);
    file.write(s.dir() + "/model.safetensors");
    ExpectFailure(s.dir(), {PIMOE_ERR_FORMAT, {name, "scale [1] is NaN"}});
  }
  {
    Scratch s(kFp8);
    Safetensors file = Safetensors::read(s.dir() + "/model.safetensors");
    const std::string name = kP + "experts.9.down_proj.weight_scale_inv";
    const float huge = 1e37f;  // finite, but 448 times it is not
    std::memcpy(file.bytes(name), &huge, 4);
    file.write(s.dir() + "/model.safetensors");
    ExpectFailure(s.dir(), {PIMOE_ERR_FORMAT, {name, "not finite in fp32"}});
  }
}

TEST(HfQuantizedHostile, Fp8WithoutQuantizationConfig) {
  Scratch s(kFp8);
  json config = s.config();
  config.erase("quantization_config");
  s.set_config(config);
  ExpectFailure(s.dir(), {PIMOE_ERR_UNSUPPORTED, {"F8_E4M3", "quantization_config", "model.safetensors"}});
}

TEST(HfQuantizedHostile, QuantizationConfigsTheImporterDoesNotTake) {
  struct Case {
    const char *family, *key;
    json value;
    pimoe_status status;
    const char *mention;
  };
  const Case cases[] = {
      {kFp8, "weight_block_size", json::array({64, 64}), PIMOE_ERR_UNSUPPORTED, "[64, 64]"},
      {kFp8, "weight_block_size", json::array({128}), PIMOE_ERR_UNSUPPORTED, "[128]"},
      {kFp8, "weight_block_size", "128", PIMOE_ERR_FORMAT, "not a list"},
      {kFp8, "fmt", "e5m2", PIMOE_ERR_UNSUPPORTED, "e5m2"},
      {kFp8, "activation_scheme", "static", PIMOE_ERR_UNSUPPORTED, "static"},
      {kFp8, "quant_method", "gptq", PIMOE_ERR_UNSUPPORTED, "gptq"},
      {kFp8, "quant_method", "mxfp4", PIMOE_ERR_UNSUPPORTED, "gpt_oss"},
      {kGptOss, "quant_method", "fp8", PIMOE_ERR_UNSUPPORTED, "mxfp4"},
      {kGptOss, "quant_method", nullptr, PIMOE_ERR_FORMAT, "quantization_config.quant_method"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(std::string(c.family) + " " + c.key + " = " + c.value.dump());
    Scratch s(c.family);
    json config = s.config();
    if (c.value.is_null()) {
      config["quantization_config"].erase(c.key);
    } else {
      config["quantization_config"][c.key] = c.value;
    }
    s.set_config(config);
    ExpectFailure(s.dir(), {c.status, {"config.json", c.mention}});
  }
  Scratch s(kGptOss);  // gpt-oss without its MXFP4 experts: not the checkpoint the importer reads
  json config = s.config();
  config.erase("quantization_config");
  s.set_config(config);
  ExpectFailure(s.dir(), {PIMOE_ERR_UNSUPPORTED, {"config.json", "gpt_oss", "mxfp4"}});
}

TEST(HfQuantizedHostile, GptOssScalesBlocksAndBiases) {
  const std::string x = kP + "experts.";
  {
    Scratch s(kGptOss);
    Safetensors file = Safetensors::read(s.dir() + "/model.safetensors");
    file.header[x + "down_proj_scales"]["shape"] = {8, 3, 128};
    file.write(s.dir() + "/model.safetensors");
    ExpectFailure(s.dir(), {PIMOE_ERR_FORMAT, {x + "down_proj_scales", "[8, 3, 128]", "[8, 128, 3]"}});
  }
  {
    Scratch s(kGptOss);
    Safetensors file = Safetensors::read(s.dir() + "/model.safetensors");
    file.header[x + "gate_up_proj_scalez"] = file.header[x + "gate_up_proj_scales"];
    file.header.erase(x + "gate_up_proj_scales");
    file.write(s.dir() + "/model.safetensors");
    ExpectFailure(s.dir(), {PIMOE_ERR_FORMAT, {x + "gate_up_proj_scales", "missing"}});
  }
  {
    Scratch s(kGptOss);
    Safetensors file = Safetensors::read(s.dir() + "/model.safetensors");
    file.header[x + "gate_up_proj_blocks"]["dtype"] = "I8";
    file.write(s.dir() + "/model.safetensors");
    ExpectFailure(s.dir(), {PIMOE_ERR_UNSUPPORTED, {x + "gate_up_proj_blocks", "I8"}});
  }
  {
    Scratch s(kGptOss);  // config.json's intermediate_size against the blocks: [8, 2*64, 4, 16] needed
    json config = s.config();
    config["intermediate_size"] = 64;
    s.set_config(config);
    ExpectFailure(s.dir(),
                  {PIMOE_ERR_FORMAT, {x + "gate_up_proj_blocks", "intermediate_size = 64", "[8, 128, 4, 16]"}});
  }
  {
    Scratch s(kGptOss);
    Safetensors file = Safetensors::read(s.dir() + "/model.safetensors");
    file.bytes(x + "gate_up_proj_scales")[5 * 192 * 4 + 2 * 7 * 4 + 1] = 0xff;  // expert 5, row 14 (gate 7), group 1
    file.write(s.dir() + "/model.safetensors");
    ExpectFailure(s.dir(), {PIMOE_ERR_FORMAT, {x + "gate_up_proj_blocks", "expert 5", "gate", "NaN (0xff)"}});
  }
  {
    Scratch s(kGptOss);
    Safetensors file = Safetensors::read(s.dir() + "/model.safetensors");
    file.bytes(x + "down_proj_scales")[3 * 128 * 3] = 254;  // 2^127: a code of 4 or 6 overflows fp32
    uint8_t *row = file.bytes(x + "down_proj_blocks") + 3 * 128 * 3 * 16;
    row[0] = 0x77;  // elements 0 and 1: 6
    file.write(s.dir() + "/model.safetensors");
    ExpectFailure(s.dir(), {PIMOE_ERR_FORMAT, {x + "down_proj_blocks", "expert 3", "not finite in fp32"}});
  }
  {
    Scratch s(kGptOss);
    Safetensors file = Safetensors::read(s.dir() + "/model.safetensors");
    const uint16_t nan = 0x7fc0;  // BF16 NaN
    std::memcpy(file.bytes(kP + "router.bias") + 6, &nan, 2);
    file.write(s.dir() + "/model.safetensors");
    ExpectFailure(s.dir(), {PIMOE_ERR_FORMAT, {kP + "router.bias", "element 3", "NaN"}});
  }
  {
    Scratch s(kGptOss);
    json config = s.config();
    config["experts_per_token"] = 4;  // num_experts_per_tok says 2
    s.set_config(config);
    ExpectFailure(s.dir(), {PIMOE_ERR_FORMAT, {"config.json", "experts_per_token", "num_experts_per_tok"}});
  }
  {
    Scratch s(kGptOss);  // openai's own key alone is enough
    json config = s.config();
    config.erase("num_experts_per_tok");
    s.set_config(config);
    pimoe_model *m = Import(s.dir(), nullptr);
    ASSERT_NE(m, nullptr);
    EXPECT_LE(RelativeError(m, kGptOss), 1e-5);
    pimoe_destroy(m);
  }
}

}  // namespace
