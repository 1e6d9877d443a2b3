// SPDX-License-Identifier: MIT
// The native file format's hostile inputs (docs/format.md, "Validation"): every kind of hostile file crafted byte by
// byte, paths that are not regular files, and the fuzz corpus replayed as regression tests. Part of test_format.
// Public C API only.
#include <dirent.h>
#include <pimoe/pimoe.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fifo_util.h"
#include "format_test_util.h"

using namespace pimoe_test;
using nlohmann::json;

namespace {

struct Hostile {
  std::string name;
  Bytes bytes;
  pimoe_status status;
  std::vector<std::string> needles;  // substrings of the message (besides the file's path, always checked)
};

// Every hostile file of the suite, built from a valid small file. Also written to the fuzz corpus (see below).
std::vector<Hostile> hostile_files(const Bytes &valid) {
  std::vector<Hostile> out;
  auto edit = [&](const std::string &name, pimoe_status status, std::vector<std::string> needles, auto &&change) {
    Crafted c = Crafted::parse(valid);
    change(c);
    out.push_back({name, c.bytes(), status, std::move(needles)});
  };
  const Crafted base = Crafted::parse(valid);
  const std::string header = base.header.dump();

  out.push_back({"empty", {}, PIMOE_ERR_FORMAT, {"too short (0 bytes)"}});
  out.push_back({"four_bytes", {1, 0, 0, 0}, PIMOE_ERR_FORMAT, {"too short (4 bytes)"}});
  out.push_back({"header_over_limit",
                 raw_file(200000000, header, base.data),
                 PIMOE_ERR_FORMAT,
                 {"200000000", "exceeds the limit"}});
  out.push_back({"header_huge_u64", raw_file(UINT64_MAX, header, base.data), PIMOE_ERR_FORMAT, {"exceeds the limit"}});
  out.push_back({"header_past_eof",
                 raw_file(header.size() + base.data.size() + 1, header, base.data),
                 PIMOE_ERR_FORMAT,
                 {"larger than the rest of the file"}});
  out.push_back({"zero_header", raw_file(0, "", {}), PIMOE_ERR_FORMAT, {"does not start with '{'"}});
  out.push_back({"invalid_json", raw_text("{\"a\": [1, 2,"), PIMOE_ERR_FORMAT, {"not valid JSON"}});
  out.push_back({"json_trailing_garbage", raw_text("{} xx"), PIMOE_ERR_FORMAT, {"not valid JSON"}});
  out.push_back({"json_nested_too_deep", raw_text("{\"a\": " + std::string(100, '[') + std::string(100, ']') + "}"),
                 PIMOE_ERR_FORMAT, {"nests deeper than 64 levels"}});
  out.push_back({"array_json", raw_text("[1, 2]"), PIMOE_ERR_FORMAT, {"does not start with '{'"}});
  out.push_back({"empty_object", raw_text("{}"), PIMOE_ERR_FORMAT, {"not a libpimoe native file"}});
  const std::string bad_utf8 = "{\"\xff\": 1}";
  out.push_back({"bad_utf8", raw_text(bad_utf8), PIMOE_ERR_FORMAT, {"not valid JSON"}});
  Bytes truncated = valid;
  truncated.resize(valid.size() - 10);
  out.push_back({"truncated", truncated, PIMOE_ERR_FORMAT, {"run past the end", "truncated"}});
  Bytes trailing = valid;
  trailing.push_back(0);
  out.push_back({"trailing_bytes", trailing, PIMOE_ERR_FORMAT, {"belong to no tensor"}});

  // A name given twice (nlohmann's parse keeps the last): the file is ambiguous, even when both entries agree.
  const std::string router_entry = base.header["router.weight"].dump();
  const std::string twice = header.substr(0, header.size() - 1) + ",\"router.weight\":" + router_entry + "}";
  out.push_back({"duplicate_tensor_name",
                 raw_file(twice.size(), twice, base.data),
                 PIMOE_ERR_FORMAT,
                 {"header names 'router.weight' twice"}});
  const std::string meta_prefix = "{\"__metadata__\":{";  // dump() sorts keys: __metadata__ comes first
  const std::string meta_twice = meta_prefix + "\"pimoe.hidden\":\"9\"," + header.substr(meta_prefix.size());
  out.push_back({"duplicate_metadata_key",
                 raw_file(meta_twice.size(), meta_twice, base.data),
                 PIMOE_ERR_FORMAT,
                 {"header names 'pimoe.hidden' twice"}});
  edit("metadata_not_object", PIMOE_ERR_FORMAT, {"__metadata__ is not a JSON object"},
       [](Crafted &c) { c.header["__metadata__"] = json::array({1}); });
  edit("metadata_value_not_string", PIMOE_ERR_FORMAT, {"'pimoe.hidden' is not a string"},
       [](Crafted &c) { c.meta("hidden") = 8; });
  edit("entry_not_object", PIMOE_ERR_FORMAT, {"tensor 'router.weight'", "not a JSON object"},
       [](Crafted &c) { c.header["router.weight"] = "x"; });
  edit("unknown_field", PIMOE_ERR_FORMAT, {"tensor 'router.weight'", "unknown field 'strides'"},
       [](Crafted &c) { c.header["router.weight"]["strides"] = json::array(); });
  edit("offsets_out_of_range", PIMOE_ERR_FORMAT, {"tensor 'router.weight'", "run past the end"}, [](Crafted &c) {
    c.header["router.weight"]["data_offsets"][1] = c.data.size() + 64;
    c.header["router.weight"]["shape"] = {(c.data.size() + 64) / 4};
  });
  edit("offsets_begin_after_end", PIMOE_ERR_FORMAT, {"tensor 'router.weight'", "begin after they end"}, [](Crafted &c) {
    c.header["router.weight"]["data_offsets"] = {64, 0};
  });
  edit("offsets_negative", PIMOE_ERR_FORMAT, {"tensor 'router.weight'", "not non-negative integers"},
       [](Crafted &c) { c.header["router.weight"]["data_offsets"][0] = -8; });
  edit("offsets_float", PIMOE_ERR_FORMAT, {"tensor 'router.weight'", "not non-negative integers"},
       [](Crafted &c) { c.header["router.weight"]["data_offsets"][0] = 0.5; });
  edit("offsets_one_value", PIMOE_ERR_FORMAT, {"tensor 'router.weight'", "'data_offsets' is missing"},
       [](Crafted &c) { c.header["router.weight"]["data_offsets"] = {0}; });
  edit("offsets_overlap", PIMOE_ERR_FORMAT, {"overlap"}, [](Crafted &c) {
    // experts.0.down.bias [8] takes the bytes of experts.0.down.weight's first row.
    c.header["experts.0.down.bias"]["data_offsets"] = c.header["experts.0.down.weight"]["data_offsets"];
    c.header["experts.0.down.bias"]["data_offsets"][1] =
        c.header["experts.0.down.weight"]["data_offsets"][0].get<uint64_t>() + 32;
  });
  edit("offsets_gap", PIMOE_ERR_FORMAT, {"belong to no tensor"}, [](Crafted &c) {
    c.header["__metadata__"]["x"] = "y";
    c.data.insert(c.data.begin(), 4, 0);
    for (auto &item : c.header.items()) {
      if (item.key() == "__metadata__") continue;
      item.value()["data_offsets"][0] = item.value()["data_offsets"][0].get<uint64_t>() + 4;
      item.value()["data_offsets"][1] = item.value()["data_offsets"][1].get<uint64_t>() + 4;
    }
  });
  edit("shape_data_mismatch", PIMOE_ERR_FORMAT, {"tensor 'router.weight'", "hold 64 bytes but F32 [2, 9] needs 72"},
       [](Crafted &c) {
         c.header["router.weight"]["shape"] = {2, 9};
       });
  edit("shape_overflow", PIMOE_ERR_FORMAT, {"tensor 'router.weight'", "overflows"}, [](Crafted &c) {
    c.header["router.weight"]["shape"] = {4294967296ull, 4294967296ull, 16};
  });
  edit("bytes_overflow", PIMOE_ERR_FORMAT, {"tensor 'router.weight'", "byte size", "overflows"}, [](Crafted &c) {
    c.header["router.weight"]["shape"] = {4611686018427387904ull, 2};
  });
  edit("shape_negative", PIMOE_ERR_FORMAT, {"tensor 'router.weight'", "shape entry -2"}, [](Crafted &c) {
    c.header["router.weight"]["shape"] = {-2, -8};
  });
  edit("shape_rank_too_high", PIMOE_ERR_FORMAT, {"tensor 'router.weight'", "rank 9"},
       [](Crafted &c) { c.header["router.weight"]["shape"] = {1, 1, 1, 1, 1, 1, 1, 2, 8}; });
  edit("unknown_dtype", PIMOE_ERR_FORMAT, {"tensor 'router.weight'", "unknown dtype 'Q4_K'"},
       [](Crafted &c) { c.header["router.weight"]["dtype"] = "Q4_K"; });
  edit("dtype_not_string", PIMOE_ERR_FORMAT, {"tensor 'router.weight'", "'dtype' is missing"},
       [](Crafted &c) { c.header["router.weight"]["dtype"] = 4; });
  edit("unsupported_dtype", PIMOE_ERR_UNSUPPORTED, {"tensor 'router.weight'", "dtype I32"},
       [](Crafted &c) { c.header["router.weight"]["dtype"] = "I32"; });
  edit("missing_tensor", PIMOE_ERR_FORMAT, {"tensor 'experts.1.down.weight' is missing"}, [](Crafted &c) {
    auto t = c.tensor_bytes();
    t.erase("experts.1.down.weight");
    c.header.erase("experts.1.down.weight");
    c.relayout(t);
  });
  edit("extra_tensor", PIMOE_ERR_FORMAT, {"unexpected tensor 'experts.2.up.weight'"}, [](Crafted &c) {
    auto t = c.tensor_bytes();
    t["experts.2.up.weight"] = Bytes(4 * 4 * 8);
    c.header["experts.2.up.weight"] = {{"dtype", "F32"}, {"shape", {4, 8}}, {"data_offsets", {0, 0}}};
    c.relayout(t);
  });
  edit("empty_tensor_name", PIMOE_ERR_FORMAT, {"empty name"}, [](Crafted &c) {
    auto t = c.tensor_bytes();
    t[""] = Bytes();
    c.header[""] = {{"dtype", "F32"}, {"shape", {0}}, {"data_offsets", {0, 0}}};
    c.relayout(t);
  });
  edit("metadata_contradicts_shape", PIMOE_ERR_FORMAT,
       {"tensor 'router.weight' has shape [2, 8] but the metadata (hidden = 512", "needs [2, 512]"},
       [](Crafted &c) { c.meta("hidden") = "512"; });
  edit("expert_width_contradicts", PIMOE_ERR_FORMAT,
       {"tensor 'experts.1.up.weight' has shape [4, 8]", "expert 1 intermediate = 5"},
       [](Crafted &c) { c.meta("experts.1.intermediate") = "5"; });
  edit("norm_flag_contradicts", PIMOE_ERR_FORMAT, {"unexpected tensor 'experts.1.norm."},
       [](Crafted &c) { c.meta("experts.1.pre_norm") = "0"; });
  edit("top_k_exceeds_experts", PIMOE_ERR_FORMAT, {"invalid layer", "top_k (9) exceeds num_experts (2)"},
       [](Crafted &c) { c.meta("top_k") = "9"; });
  edit("hidden_negative", PIMOE_ERR_FORMAT, {"metadata 'pimoe.hidden'", "out of range"},
       [](Crafted &c) { c.meta("hidden") = "-5"; });
  edit("num_experts_absurd", PIMOE_ERR_FORMAT, {"metadata 'pimoe.num_experts'", "out of range"},
       [](Crafted &c) { c.meta("num_experts") = "9223372036854775807"; });
  edit("hidden_not_integer", PIMOE_ERR_FORMAT, {"metadata 'pimoe.hidden' = '8.5' is not an integer"},
       [](Crafted &c) { c.meta("hidden") = "8.5"; });
  edit("hidden_overflows_int64", PIMOE_ERR_FORMAT, {"is not an integer"},
       [](Crafted &c) { c.meta("hidden") = "99999999999999999999999"; });
  edit("temperature_nan", PIMOE_ERR_FORMAT, {"metadata 'pimoe.temperature'", "out of range"},
       [](Crafted &c) { c.meta("temperature") = "nan"; });
  edit("temperature_text", PIMOE_ERR_FORMAT, {"metadata 'pimoe.temperature' = 'warm' is not a number"},
       [](Crafted &c) { c.meta("temperature") = "warm"; });
  edit("renormalize_not_flag", PIMOE_ERR_FORMAT, {"metadata 'pimoe.renormalize' = 2 is not 0 or 1"},
       [](Crafted &c) { c.meta("renormalize") = "2"; });
  edit("missing_key", PIMOE_ERR_FORMAT, {"metadata key 'pimoe.top_k' is missing"},
       [](Crafted &c) { c.header["__metadata__"].erase("pimoe.top_k"); });
  edit("missing_expert_key", PIMOE_ERR_FORMAT, {"metadata key 'pimoe.experts.1.bias' is missing"},
       [](Crafted &c) { c.header["__metadata__"].erase("pimoe.experts.1.bias"); });
  edit("unknown_key", PIMOE_ERR_FORMAT, {"unknown metadata key 'pimoe.experts.2.activation'"},
       [](Crafted &c) { c.meta("experts.2.activation") = "gelu"; });
  edit("unknown_activation", PIMOE_ERR_FORMAT, {"metadata 'pimoe.experts.0.activation'", "unknown activation 'quux'"},
       [](Crafted &c) { c.meta("experts.0.activation") = "quux"; });
  edit("unknown_router_scoring", PIMOE_ERR_FORMAT,
       {"metadata 'pimoe.router_scoring'", "'tanh' is not 'softmax' or 'sigmoid'"},
       [](Crafted &c) { c.meta("router_scoring") = "tanh"; });
  edit("groups_do_not_divide_experts", PIMOE_ERR_FORMAT,
       {"invalid layer", "num_experts (2) is not a multiple of num_groups (3)"},
       [](Crafted &c) { c.meta("num_groups") = "3"; });
  edit("shared_expert_tensors_missing", PIMOE_ERR_FORMAT, {"tensor 'shared.gate.weight' is missing"},
       [](Crafted &c) { c.meta("shared_width") = "4"; });
  edit("selection_bias_missing", PIMOE_ERR_FORMAT, {"tensor 'router.selection_bias' is missing"},
       [](Crafted &c) { c.meta("router_bias") = "1"; });
  edit("no_metadata", PIMOE_ERR_FORMAT, {"not a libpimoe native file"},
       [](Crafted &c) { c.header.erase("__metadata__"); });
  edit("wrong_format", PIMOE_ERR_FORMAT, {"metadata 'pimoe.format' = 'gguf'"},
       [](Crafted &c) { c.meta("format") = "gguf"; });
  edit("newer_version", PIMOE_ERR_UNSUPPORTED, {"format version 99 is newer"},
       [](Crafted &c) { c.meta("format_version") = "99"; });
  edit("nan_weight", PIMOE_ERR_FORMAT, {"tensor 'experts.0.up.weight' element 2 is NaN"}, [](Crafted &c) {
    const uint64_t begin = c.header["experts.0.up.weight"]["data_offsets"][0];
    const uint32_t nan = 0x7fc00000u;
    std::memcpy(c.data.data() + begin + 8, &nan, 4);
  });
  return out;
}

}  // namespace

TEST(HostileFiles, EachGetsItsStatusAndAMessageNamingTheFile) {
  const std::string dir = test_dir();
  const Bytes valid = read_file(save_small(dir));
  ASSERT_GT(valid.size(), 100u);
  const std::vector<Hostile> files = hostile_files(valid);
  const char *write_corpus = std::getenv("PIMOE_WRITE_CORPUS");  // regenerates tests/fuzz/corpus (docs/format.md)
  for (const Hostile &h : files) {
    SCOPED_TRACE(h.name);
    const std::string path = dir + "/" + h.name + ".safetensors";
    write_file(path, h.bytes);
    if (write_corpus) write_file(std::string(write_corpus) + "/" + h.name + ".safetensors", h.bytes);
    int sentinel_storage = 0;
    pimoe_model *const sentinel = reinterpret_cast<pimoe_model *>(&sentinel_storage);
    pimoe_model *m = sentinel;  // a failed call must leave it untouched
    const pimoe_status s = pimoe_load(path.c_str(), nullptr, &m);
    EXPECT_EQ(s, h.status) << describe(s);
    EXPECT_EQ(m, sentinel);
    const std::string message = last_error();
    EXPECT_TRUE(contains(message, "pimoe_load: ")) << message;
    EXPECT_TRUE(contains(message, path)) << message;
    for (const std::string &needle : h.needles) EXPECT_TRUE(contains(message, needle)) << message;
  }
  if (write_corpus) write_file(std::string(write_corpus) + "/valid_small.safetensors", valid);
}

TEST(HostileFiles, PathsThatAreNotFiles) {
  const std::string dir = test_dir();
  pimoe_model *m = nullptr;
  EXPECT_EQ(pimoe_load(dir.c_str(), nullptr, &m), PIMOE_ERR_IO);
  EXPECT_TRUE(contains(last_error(), dir) && contains(last_error(), "is a directory")) << last_error();
  const std::string missing = dir + "/missing.safetensors";
  EXPECT_EQ(pimoe_load(missing.c_str(), nullptr, &m), PIMOE_ERR_IO);
  EXPECT_TRUE(contains(last_error(), missing + "': it does not exist")) << last_error();
  const std::string loop = dir + "/loop.safetensors";  // ELOOP is a link loop, not a missing file
  ASSERT_EQ(::symlink("loop.safetensors", loop.c_str()), 0) << loop;
  EXPECT_EQ(pimoe_load(loop.c_str(), nullptr, &m), PIMOE_ERR_IO);
  EXPECT_TRUE(contains(last_error(), loop + "': symbolic link loop")) << last_error();
  EXPECT_EQ(pimoe_load("/dev/null", nullptr, &m), PIMOE_ERR_IO);
  EXPECT_TRUE(contains(last_error(), "not a regular file")) << last_error();
  const std::string fifo = dir + "/fifo.safetensors";  // open() of a FIFO without a writer would block
  ASSERT_TRUE(pimoe_fifo_test::make_fifo(fifo));
  const pimoe_status s = pimoe_fifo_test::returns_without_blocking(fifo, [&] {
    const pimoe_status status = pimoe_load(fifo.c_str(), nullptr, &m);
    EXPECT_TRUE(contains(last_error(), fifo) && contains(last_error(), "not a regular file")) << last_error();
    return status;
  });
  EXPECT_EQ(s, PIMOE_ERR_IO) << describe(s);
  EXPECT_EQ(pimoe_load(nullptr, nullptr, &m), PIMOE_ERR_NULL_POINTER);
  EXPECT_EQ(pimoe_load(missing.c_str(), nullptr, nullptr), PIMOE_ERR_NULL_POINTER);
  EXPECT_EQ(m, nullptr);
}

// Every file of the fuzz corpus (hostile files, the fuzzer's past findings, a valid file) loads or fails cleanly.
TEST(HostileFiles, FuzzCorpusRegression) {
  DIR *d = ::opendir(PIMOE_FUZZ_CORPUS_DIR);
  ASSERT_NE(d, nullptr) << PIMOE_FUZZ_CORPUS_DIR;
  size_t files = 0, loaded = 0;
  while (const dirent *entry = ::readdir(d)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = std::string(PIMOE_FUZZ_CORPUS_DIR) + "/" + name;
    pimoe_model *m = nullptr;
    const pimoe_status s = pimoe_load(path.c_str(), nullptr, &m);
    ++files;
    if (s == PIMOE_OK) {
      ++loaded;
      pimoe_destroy(m);
    } else {
      EXPECT_TRUE(contains(last_error(), path)) << name << ": " << last_error();
    }
  }
  ::closedir(d);
  EXPECT_GE(files, 40u);
  EXPECT_GE(loaded, 1u) << "the corpus keeps one valid file";
}
