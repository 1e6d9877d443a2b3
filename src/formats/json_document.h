/* SPDX-License-Identifier: MIT */
// A parsed JSON document (config.json, a shard index, a safetensors header) that can be destroyed while memory is
// exhausted.
//
// Why: nlohmann::json's destructor takes a non-empty container apart through a heap-allocated stack (so that deeply
// nested documents do not overflow the call stack), and it is noexcept: when that allocation fails, the process
// terminates. The allocation-failure sweep (tests/test_alloc_failure.cpp) hit it in pimoe_load and pimoe_import_hf.
// A JsonDocument therefore
//   - parses into a json it owns (nlohmann's parse functions hold the partial document in a local of their own and
//     destroy it there when parsing fails), refusing documents nested deeper than kMaxDepth;
//   - takes its json apart bottom-up before destroying it: a container whose elements are scalars or empty containers
//     is cleared element by element, which allocates nothing, and the json's own destructor then finds an empty
//     container (for which it allocates nothing either). The depth bound keeps that recursion short.
// Parse failures are values (valid() false), not exceptions: a hostile file is an expected input. Running out of
// memory while parsing throws std::bad_alloc, as everywhere else.
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

namespace pimoe {

class JsonDocument {
 public:
  // Deeper than any file libpimoe reads (a safetensors header nests 3 levels, a config.json a handful).
  static constexpr int kMaxDepth = 64;

  // Parses text[0, size) as one JSON value (nothing but whitespace after it).
  JsonDocument(const char *text, size_t size);
  ~JsonDocument();
  JsonDocument(JsonDocument &&other) noexcept;
  JsonDocument(const JsonDocument &) = delete;
  JsonDocument &operator=(const JsonDocument &) = delete;
  JsonDocument &operator=(JsonDocument &&) = delete;

  // Whether the text was valid JSON no deeper than kMaxDepth.
  bool valid() const { return valid_; }
  // Whether parsing stopped because the text nests deeper than kMaxDepth (valid() is false then).
  bool too_deep() const { return too_deep_; }
  const nlohmann::json &root() const { return root_; }
  // The first key that an object of the text names twice ("" when none): root() holds its last value, as nlohmann
  // keeps; a reader for which the repetition is ambiguous (a safetensors header) refuses the file.
  const std::string &duplicate_key() const { return duplicate_key_; }

 private:
  nlohmann::json root_;
  bool valid_ = false;
  bool too_deep_ = false;
  std::string duplicate_key_;
};


}  // namespace pimoe
