/* SPDX-License-Identifier: MIT */
// Helpers of the native format's tests (test_format.cpp, test_format_hostile.cpp, test_format_compact.cpp): a folder per test, files read and
// written as bytes, a safetensors file parsed into its JSON header and data section to be edited and written back,
// and pimoe_load on the CPU backend. Public C API only.
#pragma once

#include <pimoe/pimoe.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/api_test_util.h"

namespace pimoe_test {

using Bytes = std::vector<uint8_t>;

// A fresh folder per test under the gtest temp dir.
inline std::string test_dir() {
  const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string suffix = std::string(info->test_suite_name()) + "_" + info->name();
  for (char &c : suffix) c = c == '/' ? '_' : c;  // parameterised tests are named "Suite/Test/0"
  const std::string dir = ::testing::TempDir() + "pimoe_format_" + std::to_string(::getpid()) + "_" + suffix;
  ::mkdir(dir.c_str(), 0700);
  return dir;
}

inline void write_file(const std::string &path, const Bytes &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline Bytes read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// 8-byte little-endian length, header text, data: a safetensors file exactly as given, however broken.
inline Bytes raw_file(uint64_t declared_length, const std::string &header, const Bytes &data) {
  Bytes out;
  out.reserve(8 + header.size() + data.size());  // also keeps GCC 12's -Warray-bounds false positive away
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(declared_length >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// A small valid native file (2 experts, one with LayerNorm, biases, H=8, I=4) saved in `dir`; its path. Defined in
// test_format.cpp (both parts of test_format use it).
std::string save_small(const std::string &dir);

inline Bytes raw_text(const std::string &header) {
  return raw_file(header.size(), header, {});
}

// A parsed safetensors file that tests edit and write back.
struct Crafted {
  nlohmann::json header;
  Bytes data;

  static Crafted parse(const Bytes &file) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | file[static_cast<size_t>(i)];
    Crafted c;
    c.header = nlohmann::json::parse(file.begin() + 8, file.begin() + 8 + static_cast<std::ptrdiff_t>(n));
    c.data.assign(file.begin() + 8 + static_cast<std::ptrdiff_t>(n), file.end());
    return c;
  }
  Bytes bytes() const {
    const std::string text = header.dump();
    return raw_file(text.size(), text, data);
  }
  nlohmann::json &meta(const std::string &key) { return header["__metadata__"]["pimoe." + key]; }
  // Rebuilds the data section from per-tensor bytes in the header's (alphabetical) order: for dropping, adding
  // or re-typing tensors while keeping the file otherwise valid.
  void relayout(const std::map<std::string, Bytes> &tensors) {
    data.clear();
    for (auto &item : header.items()) {
      if (item.key() == "__metadata__") continue;
      const Bytes &b = tensors.at(item.key());
      item.value()["data_offsets"] = {data.size(), data.size() + b.size()};
      data.insert(data.end(), b.begin(), b.end());
    }
  }
  std::map<std::string, Bytes> tensor_bytes() const {
    std::map<std::string, Bytes> out;
    for (const auto &item : header.items()) {
      if (item.key() == "__metadata__") continue;
      const uint64_t b = item.value()["data_offsets"][0], e = item.value()["data_offsets"][1];
      out[item.key()] =
          Bytes(data.begin() + static_cast<std::ptrdiff_t>(b), data.begin() + static_cast<std::ptrdiff_t>(e));
    }
    return out;
  }
  // The first byte of a tensor's data, to corrupt in place.
  uint8_t *at(const std::string &tensor) {
    return data.data() + header.at(tensor).at("data_offsets")[0].get<uint64_t>();
  }
};

// pimoe_load on one thread of the CPU backend (the backend the tests' layers are made on, so that outputs compare
// bit for bit; "auto" may pick a GPU), with optional further options.
inline ModelPtr load(const std::string &path, pimoe_status expect = PIMOE_OK, const pimoe_options *options = nullptr) {
  OptionsPtr own = make_options();
  pimoe_options_set_int(own.get(), PIMOE_OPT_THREADS, 1);
  pimoe_options_set_string(own.get(), PIMOE_OPT_BACKEND, "cpu");
  pimoe_model *m = nullptr;
  const pimoe_status s = pimoe_load(path.c_str(), options ? options : own.get(), &m);
  EXPECT_EQ(s, expect) << describe(s);
  return ModelPtr(m);
}

}  // namespace pimoe_test
