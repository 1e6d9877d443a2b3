/* SPDX-License-Identifier: MIT */
// Shared by the Hugging Face importer tests (test_hf_import: test_hf_import.cpp, test_hf_import_quantized.cpp): the
// fixtures' folder, small file helpers, a private copy of a fixture folder to break, and the failure of an import.
#pragma once

#include <gtest/gtest.h>
#include <pimoe/pimoe.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pimoe_hf_test {

namespace fs = std::filesystem;
using nlohmann::json;

inline const std::string kFixtures = PIMOE_HF_FIXTURE_DIR;

inline std::string read_text(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline void write_text(const std::string &path, const std::string &text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// The F32 tensors of a small safetensors file (the fixtures' expected.safetensors).
struct F32Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};
inline std::map<std::string, F32Tensor> read_f32_safetensors(const std::string &path) {
  const std::string bytes = read_text(path);
  std::map<std::string, F32Tensor> out;
  if (bytes.size() < 8) return out;
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[static_cast<size_t>(i)])) << (8 * i);
  const json header = json::parse(bytes.substr(8, n));
  const char *data = bytes.data() + 8 + n;
  for (const auto &item : header.items()) {
    if (item.key() == "__metadata__") continue;
    EXPECT_EQ(item.value()["dtype"], "F32") << item.key();
    F32Tensor t;
    t.shape = item.value()["shape"].get<std::vector<int64_t>>();
    const auto offsets = item.value()["data_offsets"].get<std::vector<uint64_t>>();
    t.data.resize((offsets[1] - offsets[0]) / 4);
    std::memcpy(t.data.data(), data + offsets[0], offsets[1] - offsets[0]);
    out[item.key()] = std::move(t);
  }
  return out;
}

// A private copy of a fixture folder that a test may break.
class Scratch {
 public:
  explicit Scratch(const std::string &family) {
    const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = ::testing::TempDir() + "pimoe_hf_" + std::to_string(::getpid()) + "_" + info->name() + "_" + family;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const auto &entry : fs::directory_iterator(kFixtures + "/" + family)) {
      fs::copy_file(entry.path(), dir_ + "/" + entry.path().filename().string());
    }
  }
  ~Scratch() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  const std::string &dir() const { return dir_; }
  json config() const { return json::parse(read_text(dir_ + "/config.json")); }
  void set_config(const json &config) const { write_text(dir_ + "/config.json", config.dump(2)); }

 private:
  std::string dir_;
};

struct Failure {
  pimoe_status status;
  std::string message;
};

inline Failure import_failure(const std::string &dir, int32_t layer) {
  pimoe_model *model = nullptr;
  const pimoe_status status = pimoe_import_hf(dir.c_str(), layer, nullptr, &model);
  EXPECT_EQ(model, nullptr);
  pimoe_destroy(model);
  return {status, pimoe_last_error()};
}

}  // namespace pimoe_hf_test
