// SPDX-License-Identifier: MIT
#include "tools/npy.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "error.h"

namespace pimoe_tools {
namespace {

using pimoe::fail;

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicBytes = 6;
constexpr uint64_t kMaxElements = uint64_t{1} << 36;  // 256 GiB of float32: a shape beyond it is refused

// The header dict numpy writes: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } in any key order, with
// optional spaces; values other than these three keys are refused.
struct Header {
  std::string descr;
  bool fortran = true;
  bool have_descr = false, have_order = false, have_shape = false;
  std::vector<int64_t> shape;
};

class HeaderParser {
 public:
  HeaderParser(const std::string &text, const std::string &path) : s_(text), path_(path) {}

  Header parse() {
    Header h;
    expect('{');
    while (true) {
      skip();
      if (peek() == '}') break;
      const std::string key = quoted();
      expect(':');
      if (key == "descr") {
        h.descr = quoted();
        h.have_descr = true;
      } else if (key == "fortran_order") {
        h.fortran = boolean();
        h.have_order = true;
      } else if (key == "shape") {
        h.shape = tuple();
        h.have_shape = true;
      } else {
        bad("unknown key '" + key + "'");
      }
      skip();
      if (peek() == ',') ++i_;
    }
    ++i_;
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n')) ++i_;
    if (i_ != s_.size()) bad("text after the header dict");
    if (!h.have_descr || !h.have_order || !h.have_shape) bad("the header lacks 'descr', 'fortran_order' or 'shape'");
    return h;
  }

 private:
  [[noreturn]] void bad(const std::string &why) {
    fail(PIMOE_ERR_FORMAT, "file '", path_, "': not a .npy header numpy writes (", why, ", at byte ", i_,
         " of the header)");
  }
  void skip() {
    while (i_ < s_.size() && s_[i_] == ' ') ++i_;
  }
  char peek() {
    skip();
    if (i_ >= s_.size()) bad("the header ends early");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string quoted() {
    const char q = peek();
    if (q != '\'' && q != '"') bad("expected a quoted string");
    const size_t end = s_.find(q, i_ + 1);
    if (end == std::string::npos) bad("an unterminated string");
    std::string out = s_.substr(i_ + 1, end - i_ - 1);
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    skip();
    if (s_.compare(i_, 4, "True") == 0) return i_ += 4, true;
    if (s_.compare(i_, 5, "False") == 0) return i_ += 5, false;
    bad("expected True or False");
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> out;
    expect('(');
    while (peek() != ')') {
      int64_t v = 0;
      size_t digits = 0;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
        if (v > (INT64_MAX - 9) / 10) bad("a dimension too large");
        v = v * 10 + (s_[i_++] - '0');
        ++digits;
      }
      if (digits == 0) bad("expected a dimension");
      out.push_back(v);
      if (peek() == ',') ++i_;
    }
    ++i_;
    return out;
  }

  const std::string &s_;
  const std::string &path_;
  size_t i_ = 0;
};

uint32_t little(const unsigned char *p, int bytes) {
  uint32_t v = 0;
  for (int b = bytes - 1; b >= 0; --b) v = (v << 8) | p[b];
  return v;
}

}  // namespace

NpyArray read_npy(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(PIMOE_ERR_IO, "cannot open '", path, "': ", std::string(std::strerror(errno)));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail(PIMOE_ERR_IO, "cannot read '", path, "'");
  const auto *u = reinterpret_cast<const unsigned char *>(bytes.data());
  if (bytes.size() < 10 || bytes.compare(0, kMagicBytes, kMagic) != 0) {
    fail(PIMOE_ERR_FORMAT, "file '", path, "' is not a .npy file (no \\x93NUMPY magic)");
  }
  const int major = u[6];
  if (major < 1 || major > 3 || u[7] != 0) {
    fail(PIMOE_ERR_FORMAT, "file '", path, "': .npy format version ", major, ".", int{u[7]},
         " (this reader knows 1.0, 2.0 and 3.0)");
  }
  const size_t len_bytes = major == 1 ? 2 : 4;
  if (bytes.size() < 8 + len_bytes) fail(PIMOE_ERR_FORMAT, "file '", path, "' ends inside its header length");
  const uint64_t header_len = little(u + 8, static_cast<int>(len_bytes));
  const uint64_t data_at = 8 + len_bytes + header_len;
  if (data_at > bytes.size()) {
    fail(PIMOE_ERR_FORMAT, "file '", path, "': its header length ", header_len, " runs past the end of the file (",
         bytes.size(), " bytes)");
  }
  const Header h = HeaderParser(bytes.substr(8 + len_bytes, header_len), path).parse();
  if (h.descr != "<f4") {
    fail(PIMOE_ERR_FORMAT, "file '", path, "': dtype '", h.descr,
         "' (pimoe reads little-endian float32, '<f4': numpy's arr.astype(np.float32))");
  }
  if (h.fortran) fail(PIMOE_ERR_FORMAT, "file '", path, "': Fortran order (pimoe reads C order: np.ascontiguousarray)");
  uint64_t count = 1;
  for (int64_t d : h.shape) {
    if (d != 0 && count > kMaxElements / static_cast<uint64_t>(d)) {
      fail(PIMOE_ERR_FORMAT, "file '", path, "': its shape holds more than 2^36 values");
    }
    count *= static_cast<uint64_t>(d);
  }
  if (bytes.size() - data_at != count * 4) {
    fail(PIMOE_ERR_FORMAT, "file '", path, "': the shape needs ", count * 4, " bytes of data, the file has ",
         bytes.size() - data_at);
  }
  NpyArray out;
  out.shape = h.shape;
  out.data.resize(count);
  if (count) std::memcpy(out.data.data(), bytes.data() + data_at, count * 4);  // the host is little-endian (x86, arm)
  return out;
}

void write_npy(const std::string &path, const std::vector<int64_t> &shape, const float *data) {
  std::ostringstream dims;
  uint64_t count = 1;
  for (int64_t d : shape) {
    dims << d << ", ";
    count *= static_cast<uint64_t>(d);
  }
  std::string text = dims.str();
  if (shape.size() > 1) text.resize(text.size() - 2);  // (n,) for one dimension, (a, b) for more
  if (shape.size() == 1) text.resize(text.size() - 1);
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + text + "), }";
  const size_t total = 10 + header.size() + 1;  // numpy pads magic + header to a multiple of 64, ending in '\n'
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(PIMOE_ERR_IO, "cannot create '", path, "': ", std::string(std::strerror(errno)));
  const unsigned char preamble[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                      static_cast<unsigned char>(header.size() & 0xff),
                                      static_cast<unsigned char>(header.size() >> 8)};
  out.write(reinterpret_cast<const char *>(preamble), sizeof preamble);
  out << header;
  out.write(reinterpret_cast<const char *>(data), static_cast<std::streamsize>(count * 4));
  out.close();
  if (!out) fail(PIMOE_ERR_IO, "cannot write '", path, "'");
}

}  // namespace pimoe_tools
