// SPDX-License-Identifier: MIT
#include "formats/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "error.h"
#include "formats/json_document.h"

// Tensor bytes are little-endian; the decoders below copy them as host words.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the safetensors reader assumes a little-endian host");

namespace pimoe {
namespace {

using nlohmann::json;

struct DTypeInfo {
  DType dtype;
  const char *name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8},   {DType::F32, "F32", 4},         {DType::F16, "F16", 2},         {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8},   {DType::I32, "I32", 4},         {DType::I16, "I16", 2},         {DType::I8, "I8", 1},
    {DType::U64, "U64", 8},   {DType::U32, "U32", 4},         {DType::U16, "U16", 2},         {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1}, {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
};

const DTypeInfo &info_of(DType dtype) {
  for (const DTypeInfo &info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  fail(PIMOE_ERR_INTERNAL, "dtype without a table entry");
}

// A JSON number that is a non-negative integer: nlohmann keeps those as unsigned (or signed when written "-0").
bool as_unsigned(const json &value, uint64_t &out) {
  if (value.is_number_unsigned()) {
    out = value.get<uint64_t>();
    return true;
  }
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    out = static_cast<uint64_t>(value.get<int64_t>());
    return true;
  }
  return false;
}

std::string shape_text(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

TensorInfo parse_tensor(const std::string &label, const std::string &name, const json &entry) {
  auto bad = [&](const auto &...parts) {
    fail(PIMOE_ERR_FORMAT, "file '", label, "': tensor '", name, "': ", parts...);
  };
  if (name.empty()) fail(PIMOE_ERR_FORMAT, "file '", label, "': a tensor has an empty name");
  if (!entry.is_object()) bad("its header entry is not a JSON object");
  for (const auto &field : entry.items()) {
    if (field.key() != "dtype" && field.key() != "shape" && field.key() != "data_offsets") {
      bad("unknown field '", field.key(), "' (expected dtype, shape, data_offsets)");
    }
  }
  TensorInfo t;
  t.name = name;

  const auto dtype = entry.find("dtype");
  if (dtype == entry.end() || !dtype->is_string()) bad("'dtype' is missing or not a string");
  const std::string &dtype_text = dtype->get_ref<const std::string &>();
  const DTypeInfo *found = nullptr;
  for (const DTypeInfo &info : kDTypes) {
    if (dtype_text == info.name) found = &info;
  }
  if (!found) bad("unknown dtype '", dtype_text, "'");
  t.dtype = found->dtype;

  const auto shape = entry.find("shape");
  if (shape == entry.end() || !shape->is_array()) bad("'shape' is missing or not an array");
  if (shape->size() > SafetensorsView::kMaxRank) {
    bad("rank ", shape->size(), " exceeds the limit of ", SafetensorsView::kMaxRank);
  }
  uint64_t count = 1;
  for (const json &dim : *shape) {
    uint64_t d = 0;
    if (!as_unsigned(dim, d)) bad("shape entry ", dim.dump(), " is not a non-negative integer");
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) bad("shape entry ", d, " is too large");
    t.shape.push_back(static_cast<int64_t>(d));
    if (__builtin_mul_overflow(count, d, &count)) bad("the element count of shape ", shape->dump(), " overflows");
  }
  t.element_count = count;
  uint64_t expected_bytes = 0;
  if (__builtin_mul_overflow(count, static_cast<uint64_t>(found->size), &expected_bytes)) {
    bad("the byte size of shape ", shape->dump(), " overflows");
  }

  const auto offsets = entry.find("data_offsets");
  if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2) {
    bad("'data_offsets' is missing or not an array of two integers");
  }
  if (!as_unsigned((*offsets)[0], t.begin) || !as_unsigned((*offsets)[1], t.end)) {
    bad("'data_offsets' ", offsets->dump(), " are not non-negative integers");
  }
  if (t.begin > t.end) bad("data_offsets [", t.begin, ", ", t.end, "] begin after they end");
  if (t.end - t.begin != expected_bytes) {
    bad("data_offsets [", t.begin, ", ", t.end, "] hold ", t.end - t.begin, " bytes but ", found->name, " ",
        shape_text(t.shape), " needs ", expected_bytes);
  }
  return t;
}

void parse_metadata(const std::string &label, const json &entry, std::map<std::string, std::string> &out) {
  if (!entry.is_object()) fail(PIMOE_ERR_FORMAT, "file '", label, "': __metadata__ is not a JSON object");
  for (const auto &item : entry.items()) {
    if (!item.value().is_string()) {
      fail(PIMOE_ERR_FORMAT, "file '", label, "': __metadata__ value of '", item.key(), "' is not a string");
    }
    out[item.key()] = item.value().get<std::string>();
  }
}

// The tensors must tile the data section exactly: no gap, no overlap, nothing past its end or left over.
void check_layout(const std::string &label, std::vector<TensorInfo> &tensors, uint64_t data_bytes) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo &a, const TensorInfo &b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected_begin = 0;
  const TensorInfo *previous = nullptr;
  for (const TensorInfo &t : tensors) {
    if (t.end > data_bytes) {
      fail(PIMOE_ERR_FORMAT, "file '", label, "': tensor '", t.name, "': data_offsets [", t.begin, ", ", t.end,
           "] run past the end of the data section (", data_bytes, " bytes; the file is truncated or corrupt)");
    }
    if (t.begin < expected_begin) {
      fail(PIMOE_ERR_FORMAT, "file '", label, "': tensor '", t.name, "': data_offsets [", t.begin, ", ", t.end,
           "] overlap tensor '", previous->name, "'");
    }
    if (t.begin > expected_begin) {
      fail(PIMOE_ERR_FORMAT, "file '", label, "': bytes [", expected_begin, ", ", t.begin,
           ") of the data section belong to no tensor (before tensor '", t.name, "')");
    }
    expected_begin = t.end;
    previous = &t;
  }
  if (expected_begin != data_bytes) {
    fail(PIMOE_ERR_FORMAT, "file '", label, "': bytes [", expected_begin, ", ", data_bytes,
         ") at the end of the data section belong to no tensor");
  }
}

float bf16_to_f32(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

float f16_to_f32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  uint32_t out;
  if (exponent == 0x1f) {
    out = sign | 0x7f800000u | (mantissa << 13);  // Inf / NaN
  } else if (exponent != 0) {
    out = sign | ((exponent + 112u) << 23) | (mantissa << 13);  // rebias 15 -> 127
  } else if (mantissa == 0) {
    out = sign;  // signed zero
  } else {
    // Subnormal half: normalise the mantissa; each shift lowers the exponent by one.
    uint32_t e = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --e;
    }
    out = sign | (e << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float value;
  std::memcpy(&value, &out, sizeof value);
  return value;
}

}  // namespace

const char *dtype_name(DType dtype) {
  return info_of(dtype).name;
}
size_t dtype_size(DType dtype) {
  return info_of(dtype).size;
}

SafetensorsView SafetensorsView::parse(const uint8_t *data, size_t size, const std::string &label) {
  if (size < 8) {
    fail(PIMOE_ERR_FORMAT, "file '", label, "' is too short (", size,
         " bytes) to be a safetensors file (it needs an 8-byte header length)");
  }
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | data[i];
  if (header_bytes > kMaxHeaderBytes) {
    fail(PIMOE_ERR_FORMAT, "file '", label, "': safetensors header length (", header_bytes,
         " bytes) exceeds the limit of ", kMaxHeaderBytes, " bytes");
  }
  if (header_bytes > size - 8) {
    fail(PIMOE_ERR_FORMAT, "file '", label, "': safetensors header length (", header_bytes,
         " bytes) is larger than the rest of the file (", size - 8, " bytes; the file is truncated or corrupt)");
  }
  const char *text = reinterpret_cast<const char *>(data + 8);
  if (header_bytes == 0 || text[0] != '{') {
    fail(PIMOE_ERR_FORMAT, "file '", label, "': the safetensors header does not start with '{'");
  }
  // No exceptions: a hostile header is an expected input, not an exceptional one.
  const JsonDocument document(text, header_bytes);
  if (document.too_deep()) {
    fail(PIMOE_ERR_FORMAT, "file '", label, "': the safetensors header nests deeper than ", JsonDocument::kMaxDepth,
         " levels");
  }
  if (!document.valid()) fail(PIMOE_ERR_FORMAT, "file '", label, "': the safetensors header is not valid JSON");
  if (!document.duplicate_key().empty()) {
    fail(PIMOE_ERR_FORMAT, "file '", label, "': the safetensors header names '", document.duplicate_key(),
         "' twice (which entry is meant is ambiguous)");
  }
  const json &header = document.root();
  if (!header.is_object()) fail(PIMOE_ERR_FORMAT, "file '", label, "': the safetensors header is not a JSON object");

  SafetensorsView view;
  view.label_ = label;
  view.data_ = data;
  view.size_ = size;
  view.data_offset_ = 8 + header_bytes;
  for (const auto &item : header.items()) {
    if (item.key() == "__metadata__") {
      parse_metadata(label, item.value(), view.metadata_);
    } else {
      view.tensors_.push_back(parse_tensor(label, item.key(), item.value()));
    }
  }
  check_layout(label, view.tensors_, size - view.data_offset_);
  return view;
}

const TensorInfo *SafetensorsView::find(const std::string &name) const {
  for (const TensorInfo &t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

void decode_to_f32(const SafetensorsView &view, const TensorInfo &tensor, float *out, size_t count) {
  if (count != tensor.element_count) {
    fail(PIMOE_ERR_INTERNAL, "file '", view.label(), "': tensor '", tensor.name, "': decoding ", tensor.element_count,
         " elements into ", count);
  }
  // The data section need not be aligned for the element type: copy bytes, never dereference a cast pointer.
  const uint8_t *src = view.bytes(tensor);
  switch (tensor.dtype) {
    case DType::F32:
      if (count) std::memcpy(out, src, count * sizeof(float));
      return;
    case DType::BF16:
    case DType::F16:
      for (size_t i = 0; i < count; ++i) {
        uint16_t bits;
        std::memcpy(&bits, src + 2 * i, sizeof bits);
        out[i] = tensor.dtype == DType::BF16 ? bf16_to_f32(bits) : f16_to_f32(bits);
      }
      return;
    case DType::F64:
      for (size_t i = 0; i < count; ++i) {
        double value;
        std::memcpy(&value, src + 8 * i, sizeof value);
        // A finite double beyond float's range: converting it is undefined behaviour, so saturate to Inf.
        const bool beyond = std::isfinite(value) && std::fabs(value) > std::numeric_limits<float>::max();
        out[i] = beyond ? std::copysign(std::numeric_limits<float>::infinity(), static_cast<float>(value > 0 ? 1 : -1))
                        : static_cast<float>(value);
      }
      return;
    default:
      fail(PIMOE_ERR_UNSUPPORTED, "file '", view.label(), "': tensor '", tensor.name, "' has dtype ",
           dtype_name(tensor.dtype), ", which cannot be converted to fp32 (F32, F16, BF16 and F64 can)");
  }
}

float decode_f32_element(const SafetensorsView &view, const TensorInfo &tensor, size_t index) {
  const uint8_t *src = view.bytes(tensor);
  if (tensor.dtype == DType::F32) {
    float value;
    std::memcpy(&value, src + 4 * index, sizeof value);
    return value;
  }
  uint16_t bits;
  std::memcpy(&bits, src + 2 * index, sizeof bits);
  return tensor.dtype == DType::BF16 ? bf16_to_f32(bits) : f16_to_f32(bits);
}

SafetensorsFile::SafetensorsFile(const std::string &path)
    : map_(path), view_(SafetensorsView::parse(map_.data(), map_.size(), path)) {}

}  // namespace pimoe
