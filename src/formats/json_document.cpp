// SPDX-License-Identifier: MIT
#include "formats/json_document.h"

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "error.h"

namespace pimoe {
namespace {

using json = nlohmann::json;

// nlohmann's DOM builder behind a depth limit: a SAX handler that forwards every event and stops the parse (returns
// false) at the first container that would nest deeper than kMaxDepth. It also notes the first key an object names
// twice (nlohmann keeps the last value of a repeated key, silently).
class DepthLimitedDom {
 public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  explicit DepthLimitedDom(json &root) : dom_(root, /*allow_exceptions=*/false) {}

  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(number_float_t v, const string_t &s) { return dom_.number_float(v, s); }
  bool string(string_t &v) { return dom_.string(v); }
  bool binary(binary_t &v) { return dom_.binary(v); }
  bool key(string_t &v) {
    if (!open_objects_.empty() && !open_objects_.back().insert(v).second && duplicate_.empty()) duplicate_ = v;
    return dom_.key(v);
  }
  bool start_object(std::size_t n) {
    if (!deeper()) return false;
    open_objects_.emplace_back();
    return dom_.start_object(n);
  }
  bool end_object() {
    --depth_;
    if (!open_objects_.empty()) open_objects_.pop_back();
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return deeper() && dom_.start_array(n); }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t position, const std::string &token, const nlohmann::detail::exception &e) {
    return dom_.parse_error(position, token, e);
  }

  bool too_deep() const { return too_deep_; }
  std::string take_duplicate_key() { return std::move(duplicate_); }  // moved: allocates nothing

 private:
  bool deeper() {
    if (++depth_ <= JsonDocument::kMaxDepth) return true;
    too_deep_ = true;
    return false;
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  int depth_ = 0;
  bool too_deep_ = false;
  std::vector<std::set<std::string>> open_objects_;  // the keys seen so far in each object being parsed
  std::string duplicate_;
};

// Empties every container of j, deepest first, without allocating (see the header); j keeps its type, now empty.
// The recursion is as deep as the document: at most kMaxDepth, which the parse enforced.
void dismantle(json &j) noexcept {
  if (j.is_array()) {
    auto &elements = *j.get_ptr<json::array_t *>();
    for (json &element : elements) dismantle(element);
    elements.clear();
  } else if (j.is_object()) {
    auto &members = *j.get_ptr<json::object_t *>();
    for (auto &member : members) dismantle(member.second);
    members.clear();
  }
}

}  // namespace

JsonDocument::JsonDocument(const char *text, size_t size) {
  DepthLimitedDom dom(root_);
  try {
    valid_ = json::sax_parse(text, text + size, &dom, json::input_format_t::json, /*strict=*/true);
  } catch (...) {
    dismantle(root_);  // the destructor does not run when the constructor throws; the members' destructors do
    throw;
  }
  too_deep_ = dom.too_deep();
  duplicate_key_ = dom.take_duplicate_key();
  if (!valid_) dismantle(root_);
}

JsonDocument::JsonDocument(JsonDocument &&other) noexcept
    : root_(std::move(other.root_)),
      valid_(other.valid_),
      too_deep_(other.too_deep_),
      duplicate_key_(std::move(other.duplicate_key_)) {}

JsonDocument::~JsonDocument() {
  dismantle(root_);
}


}  // namespace pimoe
