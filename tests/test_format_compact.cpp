// SPDX-License-Identifier: MIT
// Compact matrices in the native file format (docs/format.md, "Compact matrices"): every format saved as documented
// (names, dtypes, shapes, byte layouts, decoded here independently of the library) and round-tripping bit-exactly
// (tensor values, outputs, and the bytes of the file saved again); mixed per-expert formats; loading into another
// format (weight_dtype, per-expert overrides); and hostile quantised files, each a real file with one thing
// corrupted, getting their status and a message naming the file and the tensor or key. Public C API only.
#include <pimoe/pimoe.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "format_test_util.h"
#include "half_type.h"

using namespace pimoe_test;
using nlohmann::json;

namespace {

// A storage format as pimoe_options take it, and the name files record for it.
struct Format {
  const char *name;  // the weight_format metadata value
  const char *dtype;
  int64_t group;
  bool zero_point;
};

const Format kFormats[] = {
    {"bf16", "bf16", 32, false},         {"fp16", "fp16", 32, false},       {"int8", "int8", 32, false},
    {"int4-g32", "int4", 32, false},     {"int4-g64", "int4", 64, false},   {"int4-g128", "int4", 128, false},
    {"int4-g32-zp", "int4", 32, true},   {"int4-g64-zp", "int4", 64, true}, {"int4-g128-zp", "int4", 128, true},
    {"fp8_e4m3", "fp8_e4m3", 32, false}, {"mxfp4", "mxfp4", 32, false},
};

const Format &format_named(const std::string &name) {
  for (const Format &f : kFormats) {
    if (name == f.name) return f;
  }
  static const Format fp32{"fp32", "fp32", 32, false};
  return fp32;
}

struct CompactLayer {
  SmallConfig dims;
  std::string format = "fp32";                                 // the layer's (WEIGHT_DTYPE and its int4 settings)
  std::vector<std::pair<int32_t, const char *>> expert_dtype;  // pimoe_options_set_expert_weight_dtype
  std::vector<std::pair<const char *, const char *>> by_name;
  std::vector<std::pair<int32_t, pimoe_expert_preset>> presets;
};

void set_format(pimoe_options *o, const Format &f) {
  EXPECT_EQ(pimoe_options_set_string(o, PIMOE_OPT_WEIGHT_DTYPE, f.dtype), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_int(o, PIMOE_OPT_WEIGHT_GROUP_SIZE, f.group), PIMOE_OK) << last_error();
  EXPECT_EQ(pimoe_options_set_int(o, PIMOE_OPT_WEIGHT_ZERO_POINT, f.zero_point), PIMOE_OK) << last_error();
}

ModelPtr make_layer(const CompactLayer &l) {
  OptionsPtr o = small_options(l.dims);
  set_format(o.get(), format_named(l.format));
  for (const auto &kv : l.by_name) {
    EXPECT_EQ(pimoe_options_set_by_name(o.get(), kv.first, kv.second), PIMOE_OK) << last_error();
  }
  for (const auto &p : l.presets) {
    EXPECT_EQ(pimoe_options_set_expert_preset(o.get(), p.first, p.second), PIMOE_OK) << last_error();
  }
  for (const auto &d : l.expert_dtype) {
    EXPECT_EQ(pimoe_options_set_expert_weight_dtype(o.get(), d.first, d.second), PIMOE_OK) << last_error();
  }
  return create_model(o.get());
}

std::string save(const pimoe_model *m, const std::string &path) {
  EXPECT_EQ(pimoe_save(m, path.c_str()), PIMOE_OK) << last_error();
  return path;
}

std::vector<std::string> tensor_names(const pimoe_model *m) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < pimoe_tensor_count(m); ++i) names.emplace_back(pimoe_tensor_name(m, i));
  return names;
}

bool is_matrix(const std::string &name) {
  const bool projection = name.find(".gate.weight") != std::string::npos ||
                          name.find(".up.weight") != std::string::npos ||
                          name.find(".down.weight") != std::string::npos;
  return projection && (name.rfind("experts.", 0) == 0 || name.rfind("shared.", 0) == 0);
}

// The format a file records for a matrix: its expert's key, the layer's for the shared expert, fp32 without one.
std::string recorded_format(Crafted &c, const std::string &matrix) {
  const std::string key =
      matrix.rfind("shared.", 0) == 0 ? "weight_format" : matrix.substr(0, matrix.find('.', 8) + 1) + "weight_format";
  const json &meta = c.header["__metadata__"];
  return meta.contains("pimoe." + key) ? meta["pimoe." + key].get<std::string>() : "fp32";
}

// ---- The documented layouts, decoded here from docs/format.md alone.

float f16_value(uint16_t bits) {
  pimoe_test::Half h;
  std::memcpy(&h, &bits, 2);
  return static_cast<float>(h);
}
float bf16_value(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
float e4m3_value(uint8_t b) {  // e4m3fn: bias 7, no Inf, S.1111.111 is NaN
  const int e = (b >> 3) & 15, m = b & 7;
  const float mag = e == 0 ? std::ldexp(static_cast<float>(m), -9) : std::ldexp(1.0f + m / 8.0f, e - 7);
  return (b & 0x80) ? -mag : mag;
}
float e2m1_value(uint8_t u) {
  const float mags[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  return (u & 8) ? -mags[u & 7] : mags[u & 7];
}
template <typename T>
T load_le(const uint8_t *p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

struct Stored {
  std::string dtype;
  std::vector<int64_t> shape;
  const uint8_t *bytes = nullptr;
};

Stored stored(Crafted &c, const std::string &name) {
  Stored s;
  if (!c.header.contains(name)) return s;
  s.dtype = c.header[name]["dtype"];
  s.shape = c.header[name]["shape"].get<std::vector<int64_t>>();
  s.bytes = c.at(name);
  return s;
}

// Checks the stored tensors of one compact matrix [rows, cols] against the documented names, dtypes and shapes, and
// decodes its values by the documented layout.
std::vector<float> decode_matrix(Crafted &c, const std::string &name, const std::string &format, int64_t rows,
                                 int64_t cols) {
  const Format &f = format_named(format);
  const std::string d = f.dtype;
  const int64_t blocks32 = (cols + 31) / 32;
  const Stored v = stored(c, name), s = stored(c, name + ".scales"), z = stored(c, name + ".zeros");
  std::vector<float> out(static_cast<size_t>(rows * cols));
  const bool nibbles = d == "int4" || d == "mxfp4";
  const std::map<std::string, std::string> values_dtype = {{"bf16", "BF16"}, {"fp16", "F16"},         {"int8", "I8"},
                                                           {"int4", "U8"},   {"fp8_e4m3", "F8_E4M3"}, {"mxfp4", "U8"}};
  EXPECT_EQ(v.dtype, values_dtype.at(d)) << name;
  EXPECT_EQ(v.shape, (nibbles ? std::vector<int64_t>{rows, 16 * blocks32} : std::vector<int64_t>{rows, cols})) << name;
  EXPECT_EQ(c.header.contains(name + ".zeros"), d == "int4" && f.zero_point) << name;
  if (d == "bf16" || d == "fp16") {
    EXPECT_FALSE(c.header.contains(name + ".scales")) << name;
  }
  const int64_t groups = d == "int4" ? (cols + f.group - 1) / f.group : blocks32;
  if (d == "int8") {
    EXPECT_EQ(s.shape, (std::vector<int64_t>{rows})) << name;
  }
  if (d == "int4" || d == "mxfp4") {
    EXPECT_EQ(s.shape, (std::vector<int64_t>{rows, groups})) << name;
  }
  if (d == "int4" && f.zero_point) {
    EXPECT_EQ(z.shape, (std::vector<int64_t>{rows, groups})) << name;
  }
  if (d == "fp8_e4m3") {
    EXPECT_EQ(s.shape, (std::vector<int64_t>{(rows + 127) / 128, (cols + 127) / 128})) << name;
  }
  const std::map<std::string, std::string> scales_dtype = {
      {"int8", "F32"}, {"int4", "F16"}, {"fp8_e4m3", "F32"}, {"mxfp4", "U8"}};
  if (scales_dtype.count(d)) {
    EXPECT_EQ(s.dtype, scales_dtype.at(d)) << name;
  }
  if (z.bytes) {
    EXPECT_EQ(z.dtype, "U8") << name;
  }
  if (::testing::Test::HasFailure()) return out;

  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < cols; ++k) {
      float x = 0;
      // Element k of a 4-bit row: byte 16 * (k / 32) + (k % 32) / 2 of the row, low nibble for even k.
      const uint8_t byte = nibbles ? v.bytes[r * 16 * blocks32 + 16 * (k / 32) + (k % 32) / 2] : 0;
      const uint8_t u = (k & 1) ? byte >> 4 : byte & 15;
      if (d == "bf16") x = bf16_value(load_le<uint16_t>(v.bytes + 2 * (r * cols + k)));
      if (d == "fp16") x = f16_value(load_le<uint16_t>(v.bytes + 2 * (r * cols + k)));
      if (d == "int8") x = static_cast<int8_t>(v.bytes[r * cols + k]) * load_le<float>(s.bytes + 4 * r);
      if (d == "int4") {
        const int64_t g = r * groups + k / f.group;
        const int zero = z.bytes ? z.bytes[g] : 8;
        x = static_cast<float>(static_cast<int>(u) - zero) * f16_value(load_le<uint16_t>(s.bytes + 2 * g));
      }
      if (d == "fp8_e4m3") {
        const int64_t g = (r / 128) * ((cols + 127) / 128) + k / 128;
        x = e4m3_value(v.bytes[r * cols + k]) * load_le<float>(s.bytes + 4 * g);
      }
      if (d == "mxfp4") x = e2m1_value(u) * std::ldexp(1.0f, static_cast<int>(s.bytes[r * groups + k / 32]) - 127);
      out[static_cast<size_t>(r * cols + k)] = x;
    }
    // Past cols, the row's last block holds the code of zero.
    for (int64_t k = cols; nibbles && k < 32 * blocks32; ++k) {
      const uint8_t byte = v.bytes[r * 16 * blocks32 + 16 * (k / 32) + (k % 32) / 2];
      const int u = (k & 1) ? byte >> 4 : byte & 15;
      const int zero = d == "mxfp4" ? 0 : z.bytes ? z.bytes[r * groups + groups - 1] : 8;
      EXPECT_EQ(u, zero) << name << " row " << r << " padding " << k;
    }
  }
  return out;
}

// Every matrix of the model as its file stores it: names, dtypes, shapes and order as documented, and the values
// decoded from the bytes equal pimoe_tensor_read's. Returns how many compact matrices were checked.
int check_file_layout(const pimoe_model *m, const std::string &path) {
  Crafted c = Crafted::parse(read_file(path));
  int compact = 0;
  uint64_t offset = 0;
  for (const std::string &name : tensor_names(m)) {
    const std::string format = is_matrix(name) ? recorded_format(c, name) : "fp32";
    // The tensor, then its scales and zero points, back to back in the data section.
    for (const std::string &part : {name, name + ".scales", name + ".zeros"}) {
      if (!c.header.contains(part)) continue;
      EXPECT_EQ(c.header[part]["data_offsets"][0].get<uint64_t>(), offset) << part;
      offset = c.header[part]["data_offsets"][1];
    }
    if (format == "fp32") {
      EXPECT_EQ(c.header[name]["dtype"], "F32") << name;
      continue;
    }
    ++compact;
    int32_t ndim = 0;
    int64_t dims[4] = {0, 0, 0, 0};
    EXPECT_EQ(pimoe_tensor_shape(m, name.c_str(), &ndim, dims), PIMOE_OK);
    const std::vector<float> decoded = decode_matrix(c, name, format, dims[0], dims[1]);
    EXPECT_TRUE(bitwise_equal(decoded, read_tensor(m, name.c_str()))) << name << " (" << format << ")";
  }
  EXPECT_EQ(offset, c.data.size());
  return compact;
}

// Same tensors bit for bit, same weight bytes (the loaded layer is as compact as the saved one), same outputs.
void expect_same_model(pimoe_model *a, pimoe_model *b) {
  ASSERT_EQ(tensor_names(a), tensor_names(b));
  for (const std::string &name : tensor_names(a)) {
    EXPECT_TRUE(bitwise_equal(read_tensor(a, name.c_str()), read_tensor(b, name.c_str()))) << name;
  }
  EXPECT_EQ(get_stats(a).weight_bytes, get_stats(b).weight_bytes);
  int64_t hidden = 0;
  int32_t top_k = 0;
  PIMOE_ASSERT_OK(pimoe_model_dims(a, &hidden, nullptr, &top_k));
  for (int64_t tokens : {1, 7, 64}) {
    const std::vector<float> x = random_input(static_cast<size_t>(tokens * hidden), static_cast<uint64_t>(tokens));
    const ForwardResult ra = forward(a, x, 1, tokens, hidden, top_k, true);
    const ForwardResult rb = forward(b, x, 1, tokens, hidden, top_k, true);
    ASSERT_EQ(rb.status, PIMOE_OK);
    EXPECT_TRUE(bitwise_equal(ra.output, rb.output)) << tokens << " tokens";
    EXPECT_EQ(ra.ids, rb.ids);
  }
}

// Save, check the file, load with weight_dtype "auto", compare, save again: the same bytes.
void round_trip(const CompactLayer &layer, int expected_compact) {
  const std::string dir = test_dir();
  ModelPtr original = make_layer(layer);
  ASSERT_TRUE(original);
  const std::string path = save(original.get(), dir + "/model.safetensors");
  EXPECT_EQ(check_file_layout(original.get(), path), expected_compact);
  ModelPtr loaded = load(path);
  ASSERT_TRUE(loaded) << last_error();
  expect_same_model(original.get(), loaded.get());
  const std::string again = save(loaded.get(), dir + "/again.safetensors");
  EXPECT_TRUE(read_file(path) == read_file(again)) << "saving the loaded layer gives other bytes";
}

// Shapes with ragged blocks: H = 136 and I = 200 are not multiples of 32 (padded 4-bit rows) nor of 128 (partial fp8
// blocks, two of them along each dimension); SwiGLU, GELU with LayerNorm, biases, a shared expert.
CompactLayer ragged_layer(const std::string &format) {
  CompactLayer l;
  l.dims.hidden = 136;
  l.dims.experts = 4;
  l.dims.top_k = 2;
  l.dims.intermediate = 200;
  l.format = format;
  l.by_name = {{"expert_bias", "1"}, {"shared_width", "40"}};
  l.presets = {{1, PIMOE_PRESET_LANGUAGE}, {2, PIMOE_PRESET_REASONING}};
  return l;
}

}  // namespace

// ------------------------------------------------------------------------------------------------ round trips

class CompactRoundTrip : public ::testing::TestWithParam<Format> {};

TEST_P(CompactRoundTrip, DocumentedLayoutAndBitExact) {
  const Format f = GetParam();
  // 4 experts (one SwiGLU: 3 matrices) and the shared expert: 13 compact matrices.
  round_trip(ragged_layer(f.name), 4 * 2 + 1 + 3);
  const std::string dir = test_dir();
  ModelPtr m = make_layer(ragged_layer(f.name));
  Crafted c = Crafted::parse(read_file(save(m.get(), dir + "/m.safetensors")));
  // Version 2: the ragged layer's SwiGLU expert has biases (gate and up biases are version 2's); the compact formats
  // themselves need no new version (an older reader rejects their metadata keys).
  EXPECT_EQ(c.meta("format_version"), "2");
  EXPECT_EQ(c.meta("weight_format"), f.name);
  for (int e = 0; e < 4; ++e) EXPECT_EQ(c.meta("experts." + std::to_string(e) + ".weight_format"), f.name);
}

std::string format_test_name(const ::testing::TestParamInfo<Format> &info) {
  std::string name = info.param.name;
  for (char &ch : name) ch = ch == '-' ? '_' : ch;
  return name;
}

INSTANTIATE_TEST_SUITE_P(Formats, CompactRoundTrip, ::testing::ValuesIn(kFormats), format_test_name);

TEST(CompactRoundTripMixed, PerExpertFormatsKeepTheirOwn) {
  CompactLayer l = ragged_layer("int4-g64-zp");
  l.dims.experts = 8;
  l.expert_dtype = {{0, "bf16"}, {1, "int8"}, {2, "fp32"}, {3, "fp8_e4m3"}, {4, "mxfp4"}, {5, "fp16"}};
  // Experts 0, 3..7 have 2 matrices, expert 1 (SwiGLU) 3, expert 2 is fp32; the shared expert 3.
  round_trip(l, 2 * 6 + 3 + 3);
  const std::string dir = test_dir();
  ModelPtr m = make_layer(l);
  Crafted c = Crafted::parse(read_file(save(m.get(), dir + "/m.safetensors")));
  EXPECT_EQ(c.meta("weight_format"), "int4-g64-zp");
  const char *want[] = {"bf16", "int8", nullptr, "fp8_e4m3", "mxfp4", "fp16", "int4-g64-zp", "int4-g64-zp"};
  for (int e = 0; e < 8; ++e) {
    const std::string key = "pimoe.experts." + std::to_string(e) + ".weight_format";
    if (!want[e]) {
      EXPECT_FALSE(c.header["__metadata__"].contains(key)) << "an fp32 expert has no format key";
    } else {
      EXPECT_EQ(c.header["__metadata__"][key], want[e]) << key;
    }
  }
  EXPECT_EQ(c.header["experts.2.up.weight"]["dtype"], "F32");
  EXPECT_EQ(c.header["shared.down.weight.zeros"]["dtype"], "U8");
}

TEST(CompactRoundTripMixed, Fp32FilesAreAsBefore) {
  const std::string dir = test_dir();
  CompactLayer l = ragged_layer("fp32");
  l.expert_dtype = {{-1, "fp32"}};
  ModelPtr m = make_layer(l);
  Crafted c = Crafted::parse(read_file(save(m.get(), dir + "/m.safetensors")));
  EXPECT_EQ(c.meta("format_version"), "2");  // the SwiGLU expert's biases, not the formats (see above)
  for (const auto &item : c.header["__metadata__"].items()) {
    EXPECT_EQ(item.key().find("weight_format"), std::string::npos) << item.key();
  }
  for (const auto &item : c.header.items()) {
    if (item.key() != "__metadata__") {
      EXPECT_EQ(item.value()["dtype"], "F32") << item.key();
    }
  }
  EXPECT_EQ(c.header.size(), tensor_names(m.get()).size() + 1) << "no scales or zero points";
}

// ------------------------------------------------------------------------------------------------ other formats

namespace {

OptionsPtr cpu_options() {
  OptionsPtr o = make_options();
  pimoe_options_set_int(o.get(), PIMOE_OPT_THREADS, 1);
  pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, "cpu");
  return o;
}

// The formats a saved layer records, by metadata key (the layer's "weight_format" and each expert's).
std::map<std::string, std::string> recorded_formats(const pimoe_model *m, const std::string &path) {
  save(m, path);
  Crafted c = Crafted::parse(read_file(path));
  std::map<std::string, std::string> out;
  for (const auto &item : c.header["__metadata__"].items()) {
    if (item.key().find("weight_format") != std::string::npos) out[item.key()] = item.value();
  }
  return out;
}

}  // namespace

// weight_dtype other than the file's: the file's values dequantised, then quantised by the requested format's rule,
// which is what loading the dequantised values from an fp32 file into that format gives.
TEST(CompactLoad, AnotherFormatRequantisesTheFileValues) {
  const std::string dir = test_dir();
  ModelPtr original = make_layer(ragged_layer("int8"));
  const std::string int8_path = save(original.get(), dir + "/int8.safetensors");

  OptionsPtr o = cpu_options();
  set_format(o.get(), format_named("int4-g64"));
  ModelPtr direct = load(int8_path, PIMOE_OK, o.get());
  ASSERT_TRUE(direct);

  OptionsPtr fp32 = cpu_options();
  set_format(fp32.get(), format_named("fp32"));
  ModelPtr dequantised = load(int8_path, PIMOE_OK, fp32.get());
  ASSERT_TRUE(dequantised);
  EXPECT_TRUE(bitwise_equal(read_tensor(dequantised.get(), "experts.0.up.weight"),
                            read_tensor(original.get(), "experts.0.up.weight")));
  const std::string fp32_path = save(dequantised.get(), dir + "/fp32.safetensors");
  EXPECT_TRUE(recorded_formats(dequantised.get(), fp32_path).empty());
  ModelPtr via_fp32 = load(fp32_path, PIMOE_OK, o.get());
  ASSERT_TRUE(via_fp32);
  expect_same_model(direct.get(), via_fp32.get());
  EXPECT_FALSE(bitwise_equal(read_tensor(direct.get(), "experts.0.up.weight"),
                             read_tensor(original.get(), "experts.0.up.weight")));
  const auto formats = recorded_formats(direct.get(), dir + "/int4.safetensors");
  EXPECT_EQ(formats.at("pimoe.weight_format"), "int4-g64");
  EXPECT_EQ(formats.at("pimoe.experts.3.weight_format"), "int4-g64");
}

TEST(CompactLoad, SameFormatNamedExplicitlyKeepsTheBytes) {
  const std::string dir = test_dir();
  ModelPtr original = make_layer(ragged_layer("int4-g32-zp"));
  const std::string path = save(original.get(), dir + "/a.safetensors");
  OptionsPtr o = cpu_options();
  set_format(o.get(), format_named("int4-g32-zp"));
  ModelPtr loaded = load(path, PIMOE_OK, o.get());
  ASSERT_TRUE(loaded);
  EXPECT_TRUE(read_file(path) == read_file(save(loaded.get(), dir + "/b.safetensors")));
  // Another group size is another format.
  set_format(o.get(), format_named("int4-g128-zp"));
  ModelPtr regrouped = load(path, PIMOE_OK, o.get());
  ASSERT_TRUE(regrouped);
  EXPECT_EQ(recorded_formats(regrouped.get(), dir + "/c.safetensors").at("pimoe.experts.0.weight_format"),
            "int4-g128-zp");
}

TEST(CompactLoad, ExpertOverridesOnLoad) {
  const std::string dir = test_dir();
  ModelPtr original = make_layer(ragged_layer("int8"));
  const std::string path = save(original.get(), dir + "/int8.safetensors");
  // One expert kept at higher precision; the others and the shared expert keep the file's int8.
  OptionsPtr o = cpu_options();
  PIMOE_ASSERT_OK(pimoe_options_set_expert_weight_dtype(o.get(), 1, "bf16"));
  ModelPtr one = load(path, PIMOE_OK, o.get());
  ASSERT_TRUE(one);
  auto formats = recorded_formats(one.get(), dir + "/one.safetensors");
  EXPECT_EQ(formats.at("pimoe.weight_format"), "int8");
  EXPECT_EQ(formats.at("pimoe.experts.0.weight_format"), "int8");
  EXPECT_EQ(formats.at("pimoe.experts.1.weight_format"), "bf16");
  for (const std::string &name : tensor_names(original.get())) {
    if (name.rfind("experts.1.", 0) == 0 && is_matrix(name)) continue;
    EXPECT_TRUE(bitwise_equal(read_tensor(one.get(), name.c_str()), read_tensor(original.get(), name.c_str()))) << name;
  }
  // int8 values are q * s in fp32; bf16 keeps the nearest bf16 of each.
  const std::vector<float> a = read_tensor(original.get(), "experts.1.gate.weight");
  const std::vector<float> b = read_tensor(one.get(), "experts.1.gate.weight");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_LE(std::fabs(a[i] - b[i]), std::fabs(a[i]) / 256) << i;

  // Every expert (-1): the shared expert keeps the file's layer format.
  OptionsPtr every = cpu_options();
  PIMOE_ASSERT_OK(pimoe_options_set_expert_weight_dtype(every.get(), -1, "fp16"));
  ModelPtr all = load(path, PIMOE_OK, every.get());
  ASSERT_TRUE(all);
  formats = recorded_formats(all.get(), dir + "/all.safetensors");
  EXPECT_EQ(formats.at("pimoe.weight_format"), "int8");
  for (int e = 0; e < 4; ++e) EXPECT_EQ(formats.at("pimoe.experts." + std::to_string(e) + ".weight_format"), "fp16");

  // fp32 for one expert: no key for it in the file saved again.
  OptionsPtr fp32 = cpu_options();
  PIMOE_ASSERT_OK(pimoe_options_set_expert_weight_dtype(fp32.get(), 2, "fp32"));
  ModelPtr wide = load(path, PIMOE_OK, fp32.get());
  ASSERT_TRUE(wide);
  EXPECT_EQ(recorded_formats(wide.get(), dir + "/wide.safetensors").count("pimoe.experts.2.weight_format"), 0u);
}

TEST(CompactLoad, RuntimeGroupSizeIsCheckedAsPimoeCreateChecksIt) {
  const std::string dir = test_dir();
  ModelPtr original = make_layer(ragged_layer("int8"));
  const std::string path = save(original.get(), dir + "/int8.safetensors");
  OptionsPtr o = cpu_options();
  PIMOE_ASSERT_OK(pimoe_options_set_int(o.get(), PIMOE_OPT_WEIGHT_GROUP_SIZE, 48));
  load(path, PIMOE_ERR_INVALID_OPTION, o.get());
  EXPECT_TRUE(contains(last_error(), "weight_group_size (48)")) << last_error();
}

// ------------------------------------------------------------------------------------------------ hostile files

namespace {

// The base layers of the hostile files: small (the fuzz corpus keeps them), H = 40 and I = 48 (4-bit rows padded),
// 2 GELU experts, a shared expert of width 16.
Bytes valid_compact_file(const std::string &dir, const std::string &format) {
  CompactLayer l;
  l.dims.hidden = 40;
  l.dims.experts = 2;
  l.dims.top_k = 1;
  l.dims.intermediate = 48;
  l.format = format;
  l.by_name = {{"shared_width", "16"}};
  ModelPtr m = make_layer(l);
  return read_file(save(m.get(), dir + "/valid_" + format + ".safetensors"));
}

// Replaces a tensor's header entry and bytes, keeping the file otherwise valid.
void retype(Crafted &c, const std::string &name, const std::string &dtype, const std::vector<int64_t> &shape,
            const Bytes &bytes) {
  auto t = c.tensor_bytes();
  t[name] = bytes;
  c.header[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {0, 0}}};
  c.relayout(t);
}

void drop(Crafted &c, const std::string &name) {
  auto t = c.tensor_bytes();
  t.erase(name);
  c.header.erase(name);
  c.relayout(t);
}

template <typename T>
void poke(Crafted &c, const std::string &tensor, size_t index, T value) {
  std::memcpy(c.at(tensor) + index * sizeof(T), &value, sizeof(T));
}

struct HostileCase {
  const char *name;
  const char *base;  // the format of the valid file it starts from
  pimoe_status status;
  std::vector<std::string> needles;  // substrings of the message (besides "pimoe_load: " and the file's path)
  std::function<void(Crafted &)> corrupt;
};

const std::vector<HostileCase> &hostile_cases() {
  static const std::vector<HostileCase> cases = {
      // Shapes and packed lengths.
      {"scales_wrong_shape",
       "int8",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.up.weight.scales' has shape [49]", "weight_format int8: scales of [48, 40]", "needs [48]"},
       [](Crafted &c) { retype(c, "experts.0.up.weight.scales", "F32", {49}, Bytes(4 * 49)); }},
      {"fp8_scale_blocks",
       "fp8_e4m3",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.1.down.weight.scales' has shape [40, 1]", "needs [1, 1]"},
       [](Crafted &c) {
         retype(c, "experts.1.down.weight.scales", "F32", {40, 1}, Bytes(4 * 40));
       }},
      {"group_declared_64_stored_32",
       "int4-g32",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.up.weight.scales' has shape [48, 2]", "weight_format int4-g64", "needs [48, 1]"},
       [](Crafted &c) { c.meta("experts.0.weight_format") = "int4-g64"; }},
      {"group_not_a_format",
       "int4-g32",
       PIMOE_ERR_FORMAT,
       {"metadata 'pimoe.experts.0.weight_format' = 'int4-g48' is not a weight format"},
       [](Crafted &c) { c.meta("experts.0.weight_format") = "int4-g48"; }},
      {"int4_without_group",
       "int4-g32",
       PIMOE_ERR_FORMAT,
       {"metadata 'pimoe.experts.1.weight_format' = 'int4' is not a weight format"},
       [](Crafted &c) { c.meta("experts.1.weight_format") = "int4"; }},
      {"packed_length_unpadded",
       "int4-g32",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.up.weight' has shape [48, 20]", "packed two a byte in 16-byte blocks of 32",
        "needs [48, 32]"},
       [](Crafted &c) {
         retype(c, "experts.0.up.weight", "U8", {48, 20}, Bytes(48 * 20, 0x88));
       }},
      {"packed_length_flat",
       "mxfp4",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.down.weight' has shape [1280]", "needs [40, 32]"},
       [](Crafted &c) { retype(c, "experts.0.down.weight", "U8", {1280}, Bytes(1280)); }},
      // Missing and extra scales / zero points.
      {"scales_missing",
       "int4-g32",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.1.down.weight.scales' is missing", "the scales of int4-g32 matrix 'experts.1.down.weight'",
        "F16 [40, 2]"},
       [](Crafted &c) { drop(c, "experts.1.down.weight.scales"); }},
      {"shared_scales_missing",
       "int8",
       PIMOE_ERR_FORMAT,
       {"tensor 'shared.down.weight.scales' is missing"},
       [](Crafted &c) { drop(c, "shared.down.weight.scales"); }},
      {"zeros_missing",
       "int4-g32-zp",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.up.weight.zeros' is missing", "zero points of int4-g32-zp matrix", "U8 [48, 2]"},
       [](Crafted &c) { drop(c, "experts.0.up.weight.zeros"); }},
      {"zeros_extra",
       "int4-g32",
       PIMOE_ERR_FORMAT,
       {"unexpected tensor 'experts.0.up.weight.zeros'", "stored as int4-g32, which has no zeros"},
       [](Crafted &c) {
         retype(c, "experts.0.up.weight.zeros", "U8", {48, 2}, Bytes(96, 8));
       }},
      {"zp_declared_symmetric",
       "int4-g32-zp",
       PIMOE_ERR_FORMAT,
       {"unexpected tensor 'shared.gate.weight.zeros'", "stored as int4-g32, which has no zeros"},
       [](Crafted &c) { c.meta("weight_format") = "int4-g32"; }},
      {"scales_extra",
       "bf16",
       PIMOE_ERR_FORMAT,
       {"unexpected tensor 'experts.0.up.weight.scales'", "stored as bf16, which has no scales"},
       [](Crafted &c) { retype(c, "experts.0.up.weight.scales", "F32", {48}, Bytes(4 * 48)); }},
      {"scales_on_fp32_tensor",
       "int8",
       PIMOE_ERR_FORMAT,
       {"unexpected tensor 'router.weight.scales'", "stored as fp32, which has no scales"},
       [](Crafted &c) { retype(c, "router.weight.scales", "F32", {2}, Bytes(8)); }},
      // Dtypes, and formats that share one (int4 and mxfp4 values are both U8).
      {"values_wrong_dtype",
       "int8",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.up.weight' has dtype U8 but int8 stores its values as I8"},
       [](Crafted &c) { c.header["experts.0.up.weight"]["dtype"] = "U8"; }},
      {"scales_wrong_dtype",
       "int4-g32",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.up.weight.scales' has dtype F32 but int4-g32 stores its scales as F16"},
       [](Crafted &c) {
         retype(c, "experts.0.up.weight.scales", "F32", {48, 2}, Bytes(4 * 96));
       }},
      {"int4_declared_mxfp4",
       "int4-g32",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.up.weight.scales' has dtype F16 but mxfp4 stores its scales as U8"},
       [](Crafted &c) { c.meta("experts.0.weight_format") = "mxfp4"; }},
      {"fp32_declared_int8",
       "fp32",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.up.weight' has dtype F32 but int8 stores its values as I8"},
       [](Crafted &c) { c.meta("experts.0.weight_format") = "int8"; }},
      {"compact_without_format",
       "int8",
       PIMOE_ERR_UNSUPPORTED,
       {"tensor 'experts.1.up.weight' has dtype I8", "a compact matrix needs its format in the metadata"},
       [](Crafted &c) { c.header["__metadata__"].erase("pimoe.experts.1.weight_format"); }},
      {"layer_format_unknown",
       "int8",
       PIMOE_ERR_FORMAT,
       {"metadata 'pimoe.weight_format' = 'q4_0' is not a weight format"},
       [](Crafted &c) { c.meta("weight_format") = "q4_0"; }},
      {"format_of_no_expert",
       "int8",
       PIMOE_ERR_FORMAT,
       {"unknown metadata key 'pimoe.experts.2.weight_format'"},
       [](Crafted &c) { c.meta("experts.2.weight_format") = "int8"; }},
      // Codes no quantiser writes.
      {"nan_scale",
       "int8",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.up.weight' (int8)", "scale [0] is NaN"},
       [](Crafted &c) { poke<uint32_t>(c, "experts.0.up.weight.scales", 0, 0x7fc00000u); }},
      {"inf_scale",
       "fp8_e4m3",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.1.up.weight' (fp8_e4m3)", "scale [0] is Inf"},
       [](Crafted &c) { poke<uint32_t>(c, "experts.1.up.weight.scales", 0, 0xff800000u); }},
      {"nan_f16_scale",
       "int4-g64",
       PIMOE_ERR_FORMAT,
       {"tensor 'shared.up.weight' (int4-g64)", "scale [3] is NaN"},
       [](Crafted &c) { poke<uint16_t>(c, "shared.up.weight.scales", 3, 0x7e00); }},
      {"fp8_nan_code",
       "fp8_e4m3",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.down.weight' (fp8_e4m3)", "fp8 value [5] is NaN"},
       [](Crafted &c) { poke<uint8_t>(c, "experts.0.down.weight", 5, 0xff); }},
      {"int8_minus_128",
       "int8",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.1.down.weight' (int8)", "value [7] is -128"},
       [](Crafted &c) { poke<uint8_t>(c, "experts.1.down.weight", 7, 0x80); }},
      {"zero_point_16",
       "int4-g32-zp",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.up.weight' (int4-g32-zp)", "zero point [1] is 16 (> 15)"},
       [](Crafted &c) { poke<uint8_t>(c, "experts.0.up.weight.zeros", 1, 16); }},
      {"e8m0_nan",
       "mxfp4",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.up.weight' (mxfp4)", "e8m0 scale [2] is NaN (0xff)"},
       [](Crafted &c) { poke<uint8_t>(c, "experts.0.up.weight.scales", 2, 0xff); }},
      {"bf16_nan",
       "bf16",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.up.weight' (bf16)", "value [3] is NaN"},
       [](Crafted &c) { poke<uint16_t>(c, "experts.0.up.weight", 3, 0x7fc0); }},
      {"fp16_inf",
       "fp16",
       PIMOE_ERR_FORMAT,
       {"tensor 'shared.gate.weight' (fp16)", "value [0] is Inf"},
       [](Crafted &c) { poke<uint16_t>(c, "shared.gate.weight", 0, 0xfc00); }},
      // Row 0 of experts.0.up.weight: 40 columns, so elements 40..63 of its second block are padding (byte 16 + 4
      // holds elements 40 and 41).
      {"int4_padding",
       "int4-g32",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.up.weight' (int4-g32)", "row 0 padding element 40", "is code 1, not the code of zero (8)"},
       [](Crafted &c) { poke<uint8_t>(c, "experts.0.up.weight", 20, 0x81); }},
      {"mxfp4_padding",
       "mxfp4",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.1.up.weight' (mxfp4)", "row 2 padding element 41", "is code 3, not the code of zero (0)"},
       [](Crafted &c) { poke<uint8_t>(c, "experts.1.up.weight", 2 * 32 + 20, 0x30); }},
      // Finite codes whose values overflow fp32.
      {"int8_overflow",
       "int8",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.up.weight' (int8)", "is not finite in fp32"},
       [](Crafted &c) { poke<float>(c, "experts.0.up.weight.scales", 0, 3e38f); }},
      {"mxfp4_overflow",
       "mxfp4",
       PIMOE_ERR_FORMAT,
       {"tensor 'experts.0.down.weight' (mxfp4)", "element [0, ", "is not finite in fp32"},
       [](Crafted &c) { poke<uint8_t>(c, "experts.0.down.weight.scales", 0, 254); }},
  };
  return cases;
}

}  // namespace

class CompactHostile : public ::testing::TestWithParam<size_t> {};

TEST_P(CompactHostile, StatusAndMessageNamingTheFileAndTensor) {
  const HostileCase &h = hostile_cases()[GetParam()];
  const std::string dir = test_dir();
  Crafted c = Crafted::parse(valid_compact_file(dir, h.base));
  ASSERT_TRUE(load(dir + "/valid_" + std::string(h.base) + ".safetensors")) << "the base file loads";
  h.corrupt(c);
  const std::string path = dir + "/" + h.name + ".safetensors";
  write_file(path, c.bytes());
  // The hostile files are also the native-format fuzz target's seeds (docs/format.md, "Tools and tests").
  if (const char *corpus = std::getenv("PIMOE_WRITE_CORPUS")) {
    write_file(std::string(corpus) + "/compact_" + h.name + ".safetensors", c.bytes());
  }
  int sentinel_storage = 0;
  pimoe_model *const sentinel = reinterpret_cast<pimoe_model *>(&sentinel_storage);
  pimoe_model *m = sentinel;  // a failed call leaves it untouched
  const pimoe_status s = pimoe_load(path.c_str(), nullptr, &m);
  EXPECT_EQ(s, h.status) << describe(s);
  EXPECT_EQ(m, sentinel);
  const std::string message = last_error();
  EXPECT_TRUE(contains(message, "pimoe_load: ")) << message;
  EXPECT_TRUE(contains(message, path)) << message;
  for (const std::string &needle : h.needles) EXPECT_TRUE(contains(message, needle)) << needle << "\n" << message;
}

std::string hostile_test_name(const ::testing::TestParamInfo<size_t> &param) {
  return hostile_cases()[param.param].name;
}

INSTANTIATE_TEST_SUITE_P(Files, CompactHostile, ::testing::Range<size_t>(0, hostile_cases().size()), hostile_test_name);

// Valid compact files of every kind for the fuzz corpus (written with PIMOE_WRITE_CORPUS), each loading.
TEST(CompactHostileSeeds, ValidFilesLoad) {
  const std::string dir = test_dir();
  const char *corpus = std::getenv("PIMOE_WRITE_CORPUS");
  for (const char *format : {"bf16", "int8", "int4-g32-zp", "fp8_e4m3", "mxfp4"}) {
    const Bytes bytes = valid_compact_file(dir, format);
    EXPECT_TRUE(load(dir + "/valid_" + std::string(format) + ".safetensors")) << format;
    if (corpus) write_file(std::string(corpus) + "/valid_compact_" + format + ".safetensors", bytes);
  }
  // Mixed formats (pimoe-info's check reads this one).
  CompactLayer l;
  l.dims.hidden = 40;
  l.dims.experts = 4;
  l.dims.top_k = 1;
  l.dims.intermediate = 48;
  l.format = "int4-g32-zp";
  l.by_name = {{"shared_width", "16"}};
  l.expert_dtype = {{0, "bf16"}, {1, "int8"}, {2, "fp32"}};
  ModelPtr m = make_layer(l);
  const std::string path = save(m.get(), dir + "/mixed.safetensors");
  EXPECT_TRUE(load(path));
  if (corpus) write_file(std::string(corpus) + "/valid_compact_mixed.safetensors", read_file(path));
}
