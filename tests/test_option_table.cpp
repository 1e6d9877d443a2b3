// SPDX-License-Identifier: MIT
// Holds everything that lists the options to src/option_table.h: pimoe.h's enum and its documentation, each
// binding's option list, and the Vulkan tile choices; then the setters' behaviour that the table generates.
// The lists are read as text from the source tree (PIMOE_SOURCE_DIR), so adding an option to one place only fails here.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "coop_tiles.h"  // backends/vulkan: header-only, the tile choices PIMOE_VULKAN_TILES names
#include "option_table.h"
#include "pimoe/pimoe.h"

namespace {

using namespace pimoe;  // the table names its types unqualified

struct Row {
  std::string id;  // "PIMOE_OPT_HIDDEN"
  int key;
  std::string name;
  bool experimental;
  std::vector<std::string> values;  // the spellings of a string option parsed to an enum
};

template <typename T>
std::vector<std::string> spellings() {
  std::vector<std::string> out;
  if constexpr (std::is_enum_v<T> && !std::is_same_v<T, pimoe_activation>) {
    for (const auto &item : pimoe::EnumNames<T>::list) out.push_back(item.name);
  }
  return out;
}

#define ROW(key, name, type, ...) Row{#key, key, name, false, spellings<type>()},
#define EXPERIMENTAL_ROW(key, name, type, ...) Row{#key, key, name, true, spellings<type>()},
const std::vector<Row> &rows() {
  static const std::vector<Row> all = {PIMOE_OPTIONS(ROW) PIMOE_EXPERIMENTAL_OPTIONS(EXPERIMENTAL_ROW)};
  return all;
}

std::string suffix(const std::string &id) {
  return id.substr(std::string("PIMOE_OPT_").size());
}

std::string source(const std::string &path) {
  std::ifstream in(std::string(PIMOE_SOURCE_DIR) + "/" + path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The text between `from` and `to` in pimoe_options.h (the options' part of pimoe.h).
std::string header_part(const std::string &from, const std::string &to) {
  const std::string h = source("include/pimoe/pimoe_options.h");
  const size_t begin = h.find(from), end = h.find(to, begin);
  EXPECT_NE(begin, std::string::npos) << from;
  EXPECT_NE(end, std::string::npos) << to;
  return begin == std::string::npos || end == std::string::npos ? "" : h.substr(begin, end - begin);
}

std::map<std::string, std::string> matches(const std::string &text, const std::string &pattern) {
  std::map<std::string, std::string> out;  // first group -> second group (or "")
  const std::regex re(pattern);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
    out[(*it)[1]] = it->size() > 2 ? (*it)[2].str() : "";
  }
  return out;
}

TEST(OptionTable, HeaderEnumMatchesTable) {
  const auto header = matches(header_part("typedef enum pimoe_option {", "} pimoe_option;"),
                              R"((PIMOE_OPT_[A-Z0-9_]+) = (\d+))");
  ASSERT_FALSE(header.empty());
  std::set<std::string> in_table;
  for (const Row &r : rows()) {
    in_table.insert(r.id);
    auto it = header.find(r.id);
    if (it == header.end()) {
      ADD_FAILURE() << r.id << " (\"" << r.name << "\") is in option_table.h but not in pimoe.h's enum";
      continue;
    }
    EXPECT_EQ(std::to_string(r.key), it->second) << r.id;
    EXPECT_EQ(r.experimental, r.key >= 1000) << r.id << ": experimental options are the keys from 1000 up";
    EXPECT_EQ(r.experimental, r.name.rfind("experimental.", 0) == 0) << r.id << ": experimental names start so";
  }
  for (const auto &[id, value] : header) {
    EXPECT_TRUE(in_table.count(id)) << id << " = " << value << " is in pimoe.h's enum but not in option_table.h";
  }
}

TEST(OptionTable, HeaderDocumentsEveryOptionAndValue) {
  const std::string doc = header_part("/** Layer-wide option keys.", "typedef enum pimoe_option {");
  for (const Row &r : rows()) {
    const std::string entry = suffix(r.id) + " \"" + r.name + "\"";
    EXPECT_NE(doc.find(entry), std::string::npos) << "pimoe.h's option documentation lacks " << entry;
    for (const std::string &v : r.values) {
      EXPECT_NE(doc.find("\"" + v + "\""), std::string::npos) << r.name << ": value \"" << v << "\" undocumented";
    }
  }
  // And no documented key that the table lacks: every `KEY "name"` at the start of a table line.
  std::set<std::string> names;
  for (const Row &r : rows()) names.insert(r.name);
  for (const auto &[key, name] : matches(doc, R"re(\n \*   ([A-Z][A-Z0-9_]+) "([a-z_.]+))re")) {
    EXPECT_TRUE(names.count(name)) << "pimoe.h documents " << key << " \"" << name << "\", which is no option";
  }
}

std::set<std::string> keys_of(const std::map<std::string, std::string> &m) {
  std::set<std::string> out;
  for (const auto &item : m) out.insert(item.first);
  return out;
}

// Go lists every non-experimental key as `optX = N` and names each option in its Options field's comment; the
// experimental ones go through Options.Extra (by name) only.
TEST(OptionTable, GoBindingListsEveryOption) {
  const std::string go = source("bindings/go/options.go");
  std::set<std::string> ids;
  for (const auto &[id, name] : matches(go, R"(\n\s*opt[A-Za-z0-9]+\s*=\s*(\d+)())")) ids.insert(id);
  std::set<std::string> want;
  for (const Row &r : rows()) {
    if (r.experimental) continue;
    want.insert(std::to_string(r.key));
    EXPECT_NE(go.find("\"" + r.name + "\""), std::string::npos) << "bindings/go/options.go lacks \"" << r.name << "\"";
  }
  EXPECT_EQ(ids, want) << "bindings/go/options.go's opt* constants differ from option_table.h";
}

// Java's OptionKey is generated from pimoe.h; Options.java has a typed setter for every non-experimental key.
TEST(OptionTable, JavaBindingListsEveryOption) {
  const auto used = keys_of(matches(source("bindings/java/src/main/java/org/pimoe/Options.java"),
                                    R"(OptionKey\.([A-Z][A-Z0-9_]+)())"));
  std::set<std::string> want;
  for (const Row &r : rows()) {
    if (!r.experimental) want.insert(suffix(r.id));
  }
  EXPECT_EQ(used, want) << "Options.java's OptionKey.* setters differ from option_table.h";
}

// C#'s OptionKey is generated from pimoe.h with one %rename per key (without it a key keeps its C name).
TEST(OptionTable, CSharpBindingNamesEveryOption) {
  const auto renamed = matches(source("bindings/csharp/pimoe_csharp.i"), R"(%rename\((\w+)\) PIMOE_OPT_(\w+);)");
  std::set<std::string> got, want, names;
  for (const auto &[cs, c] : renamed) {
    got.insert(c);
    names.insert(cs);
  }
  for (const Row &r : rows()) want.insert(suffix(r.id));
  EXPECT_EQ(got, want) << "pimoe_csharp.i's %rename of PIMOE_OPT_* differs from option_table.h";
  for (const std::string &key : keys_of(matches(source("bindings/csharp/src/Options.cs"), R"(OptionKey\.([A-Z]\w*)())"))) {
    EXPECT_TRUE(names.count(key)) << "Options.cs uses OptionKey." << key << ", which pimoe_csharp.i does not name";
  }
}

TEST(OptionTable, VulkanTilesAreTheCoopTilesChoices) {
  std::set<std::string> want = {"auto", "small", "large", "fma"}, got;
  for (const pimoe::CoopTiles &c : pimoe::kCoopTiles) want.insert(c.choice);
  for (const auto &item : pimoe::EnumNames<pimoe::VulkanTiles>::list) got.insert(item.name);
  EXPECT_EQ(got, want) << "option_table.h's PIMOE_VULKAN_TILES_VALUES differ from backends/vulkan/coop_tiles.h";
}

// ------------------------------------------------------------------ the setters the table generates
struct OptionsDeleter {
  void operator()(pimoe_options *o) const { pimoe_options_destroy(o); }
};
using OptionsPtr = std::unique_ptr<pimoe_options, OptionsDeleter>;

OptionsPtr make_options() {
  pimoe_options *o = nullptr;
  EXPECT_EQ(pimoe_options_create(&o), PIMOE_OK);
  return OptionsPtr(o);
}

TEST(OptionTable, EveryEnumValueIsAcceptedAndABadOneListsThem) {
  OptionsPtr o = make_options();
  for (const Row &r : rows()) {
    if (r.values.empty()) continue;
    std::string list;
    for (size_t i = 0; i < r.values.size(); ++i) {
      list += (i == 0 ? "" : i + 1 == r.values.size() ? " or " : ", ") + ("'" + r.values[i] + "'");
      EXPECT_EQ(pimoe_options_set_by_name(o.get(), r.name.c_str(), r.values[i].c_str()), PIMOE_OK)
          << r.name << " = " << r.values[i] << ": " << pimoe_last_error();
      EXPECT_EQ(pimoe_options_set_string(o.get(), static_cast<pimoe_option>(r.key), r.values[i].c_str()), PIMOE_OK);
    }
    EXPECT_EQ(pimoe_options_set_by_name(o.get(), r.name.c_str(), "bogus"), PIMOE_ERR_INVALID_OPTION);
    EXPECT_EQ(std::string(pimoe_last_error()), "option '" + r.name + "' = 'bogus' is not " + list);
    EXPECT_EQ(pimoe_options_set_int(o.get(), static_cast<pimoe_option>(r.key), 0), PIMOE_ERR_INVALID_OPTION);
    EXPECT_NE(std::string(pimoe_last_error()).find("takes a string"), std::string::npos) << pimoe_last_error();
  }
}

TEST(OptionTable, ExperimentalOptionsAreCheckedAndAModelIsMadeWithThem) {
  OptionsPtr o = make_options();
  EXPECT_EQ(pimoe_options_set_by_name(o.get(), "experimental.cuda_stream_tokens", "-1"), PIMOE_ERR_INVALID_OPTION);
  EXPECT_EQ(pimoe_options_set_float(o.get(), PIMOE_OPT_EXPERIMENTAL_CUDA_DECODE_GEMM_ROWS, -0.5),
            PIMOE_ERR_INVALID_OPTION);
  EXPECT_EQ(pimoe_options_set_int(o.get(), PIMOE_OPT_EXPERIMENTAL_VULKAN_PROFILE, 2), PIMOE_ERR_INVALID_OPTION);
  EXPECT_EQ(pimoe_options_set_by_name(o.get(), "experimental.no_such_knob", "1"), PIMOE_ERR_UNKNOWN_OPTION);
  const std::pair<const char *, const char *> settings[] = {
      {"hidden", "16"},
      {"intermediate", "32"},
      {"backend", "cpu"},
      {"experimental.cuda_no_wgmma", "1"},
      {"experimental.cuda_stream_tokens", "4"},
      {"experimental.cuda_decode_gemm_rows", "0"},
      {"experimental.vulkan_coopmat_n", "8"},
      {"experimental.vulkan_routing", "host"},
      {"experimental.vulkan_tiles", "coopmat-split"},
      {"experimental.vulkan_profile", "1"},
  };
  for (const auto &[key, value] : settings) {
    EXPECT_EQ(pimoe_options_set_by_name(o.get(), key, value), PIMOE_OK) << key << ": " << pimoe_last_error();
  }
  pimoe_model *m = nullptr;
  ASSERT_EQ(pimoe_create(o.get(), &m), PIMOE_OK) << pimoe_last_error();  // the CPU backend ignores them
  pimoe_destroy(m);
}

TEST(OptionTable, BackendNameIsCheckedAtTheSetter) {
  OptionsPtr o = make_options();
  for (const char *good : {"auto", "cpu", "cuda", "vulkan", "vulkan:0", "vulkan:3"}) {
    EXPECT_EQ(pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, good), PIMOE_OK) << good;
  }
  for (const char *bad : {"", "gpu", "vulkan:", "vulkan:x", "cpu:1"}) {
    EXPECT_EQ(pimoe_options_set_string(o.get(), PIMOE_OPT_BACKEND, bad), PIMOE_ERR_INVALID_OPTION) << bad;
  }
}

}  // namespace
