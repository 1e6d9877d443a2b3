/* SPDX-License-Identifier: MIT */
// Reader for the safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON header, then the tensors' bytes. Shared by the native format and the importers.
//
// SafetensorsView::parse validates the whole structure before anything is used (docs/format.md lists the rules): a
// successful parse guarantees that every tensor's [begin, end) lies inside the buffer, matches its dtype and shape,
// and that the tensors exactly tile the data section. It never reads outside [data, data + size).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "formats/mapped_file.h"

namespace pimoe {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2 };

const char *dtype_name(DType dtype);
size_t dtype_size(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t element_count = 0;
  uint64_t begin = 0;  // byte offsets relative to the start of the data section
  uint64_t end = 0;

  uint64_t byte_size() const { return end - begin; }
};

class SafetensorsView {
 public:
  static constexpr uint64_t kMaxHeaderBytes = 100u * 1000u * 1000u;  // as the reference implementation
  static constexpr size_t kMaxRank = 8;

  // Parses and validates a safetensors buffer. `label` names it in messages (the file's path). Throws
  // PIMOE_ERR_FORMAT naming the label (and the tensor) for anything malformed. The view borrows `data`.
  static SafetensorsView parse(const uint8_t *data, size_t size, const std::string &label);

  const std::string &label() const { return label_; }
  // Tensors in the order of their data offsets.
  const std::vector<TensorInfo> &tensors() const { return tensors_; }
  const TensorInfo *find(const std::string &name) const;
  // The "__metadata__" string map (empty when absent).
  const std::map<std::string, std::string> &metadata() const { return metadata_; }
  // First byte of a tensor's data; the range [bytes(t), bytes(t) + t.byte_size()) was validated by parse().
  const uint8_t *bytes(const TensorInfo &tensor) const { return data_ + data_offset_ + tensor.begin; }
  uint64_t header_bytes() const { return data_offset_ - 8; }
  size_t total_bytes() const { return size_; }

 private:
  std::string label_;
  const uint8_t *data_ = nullptr;
  size_t size_ = 0;
  uint64_t data_offset_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Converts a tensor's elements to fp32 into out[0 .. count-1]: F32 as is, BF16 and F16 widened exactly (F64 is
// rounded). count must equal the element count. Other dtypes: PIMOE_ERR_UNSUPPORTED naming the tensor.
void decode_to_f32(const SafetensorsView &view, const TensorInfo &tensor, float *out, size_t count);

// Element `index` (< element_count) of an F32, BF16 or F16 tensor as fp32 (the importers' strided reads of fused
// tensors); the caller has checked the dtype.
float decode_f32_element(const SafetensorsView &view, const TensorInfo &tensor, size_t index);

// A memory-mapped, validated safetensors file. Tensor bytes stay valid while this object lives.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string &path);
  const SafetensorsView &view() const { return view_; }
  const std::string &path() const { return map_.path(); }

 private:
  MappedFile map_;
  SafetensorsView view_;
};

}  // namespace pimoe
