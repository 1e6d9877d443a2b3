// SPDX-License-Identifier: MIT
#include "options.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <type_traits>

#include "backend_registry.h"
#include "error.h"

namespace pimoe {
namespace {

// What a key's setter takes, from the C++ type of its field in option_table.h.
enum class Kind { Int, Float, Enum, String };

template <typename T>
constexpr Kind kind_of() {
  if constexpr (std::is_same_v<T, double>) return Kind::Float;
  if constexpr (std::is_same_v<T, std::string>) return Kind::String;
  if constexpr (std::is_integral_v<T> || std::is_same_v<T, pimoe_activation>) return Kind::Int;
  return Kind::Enum;
}

struct KeyInfo {
  pimoe_option key;
  const char *name;
  Kind kind;
  double min;  // inclusive bounds for numeric keys
  double max;
  void (*check)(const char *);  // a string key's syntax check, or nullptr
  bool activation_names;        // set_by_name takes an activation's name ("swiglu") for this integer key
};

#define PIMOE_KEY_INFO(key, name, type, field, def, min, max, check) \
  {key, name, kind_of<type>(), min, max, check, std::is_same_v<type, pimoe_activation>},
#define PIMOE_EXPERIMENTAL_KEY_INFO(key, name, type, field, def, min, max, env, env_text) \
  {key, name, kind_of<type>(), min, max, nullptr, false},

// Every key, from option_table.h's two lists.
constexpr KeyInfo kKeys[] = {PIMOE_OPTIONS(PIMOE_KEY_INFO) PIMOE_EXPERIMENTAL_OPTIONS(PIMOE_EXPERIMENTAL_KEY_INFO)};

constexpr bool same_text(const char *a, const char *b) {
  while (*a && *a == *b) ++a, ++b;
  return *a == *b;
}

// Keys ascend (pimoe.h only ever appends), names are unique (or set_by_name would find the wrong key), and only
// numeric keys have bounds (a string key's bounds would be ignored, so writing some is a mistake).
constexpr bool keys_ascend_and_names_unique() {
  for (size_t i = 0; i < std::size(kKeys); ++i) {
    if (i > 0 && kKeys[i].key <= kKeys[i - 1].key) return false;
    if (kKeys[i].kind != Kind::Int && kKeys[i].kind != Kind::Float && kKeys[i].min != kKeys[i].max) return false;
    for (size_t j = 0; j < i; ++j) {
      if (same_text(kKeys[i].name, kKeys[j].name)) return false;
    }
  }
  return true;
}
static_assert(keys_ascend_and_names_unique(), "option_table.h: keys must ascend, names be unique, string keys have bounds 0, 0");

// check_int_range compares and prints an integer key's bounds as int64_t.
constexpr bool integer_bounds_are_whole() {
  for (const KeyInfo &info : kKeys) {
    if (info.kind != Kind::Int) continue;
    for (double bound : {info.min, info.max}) {
      if (!(bound >= -9.2e18 && bound <= 9.2e18) || static_cast<double>(static_cast<int64_t>(bound)) != bound)
        return false;
    }
  }
  return true;
}
static_assert(integer_bounds_are_whole(),
              "option_table.h: an integer key's bounds must be whole numbers within int64_t");

const KeyInfo &key_info(int key) {
  for (const KeyInfo &info : kKeys) {
    if (info.key == key) return info;
  }
  fail(PIMOE_ERR_UNKNOWN_OPTION, "unknown option key ", key);
}

const char *type_name(Kind kind) {
  switch (kind) {
    case Kind::Int:
      return "an integer";
    case Kind::Float:
      return "a number";
    case Kind::Enum:
    case Kind::String:
      return "a string";
  }
  return "?";
}

void expect_kind(const KeyInfo &info, Kind given) {
  const bool text = info.kind == Kind::Enum || info.kind == Kind::String;
  if (info.kind == given || (text && given == Kind::String)) return;
  fail(PIMOE_ERR_INVALID_OPTION, "option '", info.name, "' takes ", type_name(info.kind), ", not ", type_name(given));
}

void check_range(const KeyInfo &info, double value) {
  if (!std::isfinite(value) || value < info.min || value > info.max) {
    fail(PIMOE_ERR_INVALID_OPTION, "option '", info.name, "' = ", value, " is out of range [", info.min, ", ", info.max,
         "]");
  }
}

// An integer key's check, in integers: a value or bound printed through double would read 2^40 as "1.09951e+12".
// An integer key's bounds in option_table.h are whole numbers within int64_t.
void check_int_range(const KeyInfo &info, int64_t value) {
  const auto min = static_cast<int64_t>(info.min), max = static_cast<int64_t>(info.max);
  if (value < min || value > max) {
    fail(PIMOE_ERR_INVALID_OPTION, "option '", info.name, "' = ", value, " is out of range [", min, ", ", max, "]");
  }
}

// "'a', 'b' or 'c'": the values an enum-valued option takes, for its error message.
template <typename E>
std::string allowed_values() {
  std::string out;
  const size_t n = std::size(EnumNames<E>::list);
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out += i + 1 == n ? " or " : ", ";
    out += std::string("'") + EnumNames<E>::list[i].name + "'";
  }
  return out;
}

template <typename E>
E parse_enum(const KeyInfo &info, const char *text) {
  for (const EnumName<E> &item : EnumNames<E>::list) {
    if (std::strcmp(item.name, text) == 0) return item.value;
  }
  fail(PIMOE_ERR_INVALID_OPTION, "option '", info.name, "' = '", text, "' is not ", allowed_values<E>());
}

// One value given to a setter; expect_kind has checked that it is the member the key's type reads.
struct Given {
  int64_t integer = 0;
  double number = 0.0;
  const char *text = nullptr;
};

template <typename T>
T convert(const KeyInfo &info, const Given &given) {
  if constexpr (std::is_same_v<T, bool>) {
    return given.integer != 0;
  } else if constexpr (kind_of<T>() == Kind::Int) {
    return static_cast<T>(given.integer);
  } else if constexpr (kind_of<T>() == Kind::Float) {
    return given.number;
  } else if constexpr (kind_of<T>() == Kind::String) {
    if (info.check) info.check(given.text);
    return given.text;
  } else {
    return parse_enum<T>(info, given.text);
  }
}

#define PIMOE_STORE(key, name, type, field, ...) \
  case key:                                      \
    options.field = convert<type>(info, given);  \
    return;
#define PIMOE_STORE_TUNING(key, name, type, field, ...) \
  case key:                                             \
    options.tuning.field = convert<type>(info, given);  \
    return;

void store(Options &options, const KeyInfo &info, const Given &given) {
  switch (info.key) {
    PIMOE_OPTIONS(PIMOE_STORE)
    PIMOE_EXPERIMENTAL_OPTIONS(PIMOE_STORE_TUNING)
  }
  fail(PIMOE_ERR_INTERNAL, "option '", info.name, "' has no field");
}

constexpr const char *kActivationNames[] = {"gelu", "gelu_tanh", "silu", "relu", "tanh", "swiglu", "swiglu_oai"};
static_assert(std::size(kActivationNames) == PIMOE_ACT_SWIGLU_OAI + 1, "one name per pimoe_activation");

}  // namespace

bool is_valid_activation(int64_t value) {
  return value >= PIMOE_ACT_GELU && value <= PIMOE_ACT_SWIGLU_OAI;
}

const char *activation_name(pimoe_activation activation) {
  return is_valid_activation(activation) ? kActivationNames[activation] : "unknown";
}

pimoe_activation parse_activation(const std::string &name, const char *what) {
  for (int i = 0; i <= PIMOE_ACT_SWIGLU_OAI; ++i) {
    if (name == kActivationNames[i]) return static_cast<pimoe_activation>(i);
  }
  fail(PIMOE_ERR_INVALID_OPTION, what, ": unknown activation '", name,
       "' (expected gelu, gelu_tanh, silu, relu, tanh, swiglu or swiglu_oai)");
}

void check_backend_name(const char *value) {
  parse_backend_name(value);  // throws on a malformed name; availability is checked at pimoe_create
}

void check_group_levels(const char *value) {
  parse_group_levels(value);  // syntax checked here, against the expert count at pimoe_create
}

void Options::set_int(int raw_key, int64_t value) {
  const KeyInfo &info = key_info(raw_key);
  expect_kind(info, Kind::Int);
  check_int_range(info, value);
  Given given;
  given.integer = value;
  store(*this, info, given);
}

void Options::set_float(int raw_key, double value) {
  const KeyInfo &info = key_info(raw_key);
  expect_kind(info, Kind::Float);
  check_range(info, value);
  Given given;
  given.number = value;
  store(*this, info, given);
}

void Options::set_string(int raw_key, const char *value) {
  const KeyInfo &info = key_info(raw_key);
  expect_kind(info, Kind::String);
  if (!value) fail(PIMOE_ERR_NULL_POINTER, "option '", info.name, "': value is NULL");
  Given given;
  given.text = value;
  store(*this, info, given);
}

std::vector<std::pair<int64_t, int64_t>> parse_group_levels(const std::string &text) {
  std::vector<std::pair<int64_t, int64_t>> levels;
  if (text.empty()) return levels;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    const size_t colon = item.find(':');
    auto number = [&](const std::string &digits) -> int64_t {
      if (digits.empty() || digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos) {
        fail(PIMOE_ERR_INVALID_OPTION, "option 'group_levels' = '", text, "': '", item,
             "' is not G:K with positive integers");
      }
      return std::stoll(digits);
    };
    if (colon == std::string::npos) number("");  // throws
    const int64_t g = number(item.substr(0, colon)), k = number(item.substr(colon + 1));
    if (g < 1 || k < 1 || g > 4096) {
      fail(PIMOE_ERR_INVALID_OPTION, "option 'group_levels' = '", text, "': level '", item,
           "' needs 1 <= K and 1 <= G <= 4096");
    }
    levels.emplace_back(g, k);
    if (levels.size() > 16) fail(PIMOE_ERR_INVALID_OPTION, "option 'group_levels': more than 16 levels");
    pos = comma + 1;
  }
  return levels;
}

void Options::set_by_name(const char *key, const char *value) {
  if (!key) fail(PIMOE_ERR_NULL_POINTER, "option name is NULL");
  if (!value) fail(PIMOE_ERR_NULL_POINTER, "option '", key, "': value is NULL");
  const KeyInfo *found = nullptr;
  for (const KeyInfo &info : kKeys) {
    if (std::strcmp(info.name, key) == 0) found = &info;
  }
  if (!found) fail(PIMOE_ERR_UNKNOWN_OPTION, "unknown option '", key, "'");

  if (found->kind == Kind::String || found->kind == Kind::Enum) return set_string(found->key, value);
  if (found->activation_names) {
    return set_int(found->key, parse_activation(value, ("option '" + std::string(key) + "'").c_str()));
  }
  // The number is the whole value, as a name is: strtoll/strtod would skip leading whitespace (" 8") while the end
  // check refuses trailing whitespace ("8 "), so both are refused here alike.
  const bool padded = *value != '\0' && (std::isspace(static_cast<unsigned char>(value[0])) ||
                                         std::isspace(static_cast<unsigned char>(value[std::strlen(value) - 1])));
  const char *const padding_note = padded ? " (no whitespace is allowed around the number)" : "";
  char *end = nullptr;
  errno = 0;
  if (found->kind == Kind::Int) {
    long long parsed = std::strtoll(value, &end, 10);
    if (padded || end == value || *end != '\0' || errno == ERANGE) {
      fail(PIMOE_ERR_INVALID_OPTION, "option '", key, "': '", value, "' is not an integer", padding_note);
    }
    return set_int(found->key, parsed);
  }
  double parsed = std::strtod(value, &end);
  if (padded || end == value || *end != '\0') {
    fail(PIMOE_ERR_INVALID_OPTION, "option '", key, "': '", value, "' is not a number", padding_note);
  }
  set_float(found->key, parsed);
}

ExpertOverride &Options::expert_override(int32_t expert) {
  if (expert == -1) return every_expert;
  if (expert < 0) fail(PIMOE_ERR_INVALID_ARGUMENT, "expert index ", expert, " is negative (use -1 for every expert)");
  return per_expert[expert];
}

}  // namespace pimoe
