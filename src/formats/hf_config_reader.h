/* SPDX-License-Identifier: MIT */
// Typed access to a Hugging Face config.json, shared by the importer's config reader (hf_config.cpp) and its MoE-layer
// rules (hf_moe_layers.h): every value read with the file and the key named in its messages, a setting read under
// each of its spellings (hf_keys.h).
#pragma once

#include <charconv>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "error.h"
#include "formats/hf_keys.h"

namespace pimoe {
namespace hf {

using nlohmann::json;

// Shortest text that reads back to the same double (locale-independent).
inline std::string format_double(double value) {
  char text[64];
  const auto result = std::to_chars(text, text + sizeof text, value);
  return std::string(text, result.ptr);
}

// Typed access to config.json's top-level keys; every message names the file and the key.
class ConfigReader {
 public:
  // `prefix` names a nested object's keys in messages ("quantization_config.").
  ConfigReader(const json &root, std::string path, std::string prefix = "")
      : root_(root), path_(std::move(path)), prefix_(std::move(prefix)) {}

  const std::string &path() const { return path_; }

  std::string where() const { return "file '" + path_ + "': "; }

  // A key that config.json has with the value null (some keys mean "off" by null).
  bool present_but_null(const char *key) const {
    const auto it = root_.find(key);
    return it != root_.end() && it->is_null();
  }

  // Of two spellings of one setting (an attribute_map alias), the one config.json has (`first` when it has neither);
  // FORMAT when it has both with different values.
  const char *spelled(const char *first, const char *second) const {
    if (absent(second)) return first;
    if (!absent(first) && get(first) != get(second)) {
      fail(PIMOE_ERR_FORMAT, where(), "keys '", prefix_, first, "' (", get(first).dump(), ") and '", prefix_, second,
           "' (", get(second).dump(), ") disagree (both name the same setting)");
    }
    return absent(first) ? second : first;
  }

  // A key that is absent or null.
  bool absent(const char *key) const {
    const auto it = root_.find(key);
    return it == root_.end() || it->is_null();
  }

  const json &get(const char *key) const {
    const auto it = root_.find(key);
    if (it == root_.end() || it->is_null())
      fail(PIMOE_ERR_FORMAT, where(), "required key '", prefix_, key, "' is missing");
    return *it;
  }

  int64_t integer(const char *key) const {
    const json &value = get(key);
    if (value.is_number_unsigned()) {
      if (value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' = ", value.dump(), " is out of range");
      }
      return static_cast<int64_t>(value.get<uint64_t>());
    }
    if (!value.is_number_integer())
      fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' = ", value.dump(), " is not an integer");
    return value.get<int64_t>();
  }
  int64_t integer(const char *key, int64_t fallback) const { return absent(key) ? fallback : integer(key); }

  // An integer that must be >= minimum (sizes, counts).
  int64_t at_least(const char *key, int64_t minimum) const {
    const int64_t value = integer(key);
    if (value < minimum)
      fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' = ", value, " must be at least ", minimum);
    return value;
  }

  // at_least with the config class's default for a key config.json may omit.
  int64_t at_least_or(const char *key, int64_t minimum, int64_t fallback) const {
    return absent(key) ? fallback : at_least(key, minimum);
  }

  double number(const char *key, double fallback) const {
    if (absent(key)) return fallback;
    const json &value = get(key);
    if (!value.is_number())
      fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' = ", value.dump(), " is not a number");
    return value.get<double>();
  }

  bool flag(const char *key, bool fallback) const {
    if (absent(key)) return fallback;
    const json &value = get(key);
    if (!value.is_boolean())
      fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' = ", value.dump(), " is not a boolean");
    return value.get<bool>();
  }

  std::string text(const char *key, const char *fallback) const {
    if (absent(key)) return fallback;
    const json &value = get(key);
    if (!value.is_string())
      fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' = ", value.dump(), " is not a string");
    return value.get<std::string>();
  }

  // A setting spelled in several ways (formats/hf_keys.h): the value of the spellings config.json has, each at least
  // `minimum`; `used` names the first. FORMAT when none is there (naming every key looked for) or two disagree.
  // With list_index >= 0 a key may also hold a list of per-layer values, of which element list_index is read.
  int64_t at_least_of(const HfSpellings &spellings, int64_t minimum, std::string &used, int64_t list_index = -1) const {
    const char *found = nullptr;
    int64_t value = 0;
    std::string looked_for;
    for (const char *key : spellings.keys) {
      if (!key) break;
      looked_for += (looked_for.empty() ? "'" : ", '") + std::string(key) + "'";
      if (absent(key)) continue;
      const int64_t spelled =
          list_index >= 0 && get(key).is_array() ? list_element(key, list_index, minimum) : at_least(key, minimum);
      if (!found) {
        found = key;
        value = spelled;
      } else if (spelled != value) {
        fail(PIMOE_ERR_FORMAT, where(), "keys '", prefix_, found, "' (", value, ") and '", prefix_, key, "' (", spelled,
             ") disagree (both name the same setting)");
      }
    }
    if (!found) {
      fail(PIMOE_ERR_FORMAT, where(), "required key '", prefix_, spellings.keys[0], "' is missing (looked for ",
           looked_for, ")");
    }
    used = found;
    return value;
  }

  // Element `index` of a list of per-layer integers, at least `minimum`.
  int64_t list_element(const char *key, int64_t index, int64_t minimum) const {
    const json &list = get(key);
    if (index >= static_cast<int64_t>(list.size())) {
      fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' lists ", list.size(),
           " per-layer values: none for layer ", index);
    }
    const json &value = list[static_cast<size_t>(index)];
    if (!value.is_number_integer() || value.get<int64_t>() < minimum) {
      fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' [", index, "] = ", value.dump(),
           " is not an integer of at least ", minimum);
    }
    return value.get<int64_t>();
  }

  std::vector<int64_t> integer_list(const char *key) const {
    std::vector<int64_t> out;
    if (absent(key)) return out;
    const json &value = get(key);
    if (!value.is_array()) fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' is not a list");
    for (const json &item : value) {
      if (!item.is_number_integer()) fail(PIMOE_ERR_FORMAT, where(), "key '", prefix_, key, "' holds a non-integer");
      out.push_back(item.get<int64_t>());
    }
    return out;
  }

 private:
  const json &root_;
  std::string path_;
  std::string prefix_;
};

// Runs an Options setter, reporting its range errors as errors of config.json's key.
template <typename Set>
void checked(const ConfigReader &config, const std::string &key, Set &&set) {
  try {
    set();
  } catch (const Error &e) {
    fail(PIMOE_ERR_FORMAT, config.where(), "key '", key, "': ", e.what());
  }
}

}  // namespace hf
}  // namespace pimoe
