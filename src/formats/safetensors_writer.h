/* SPDX-License-Identifier: MIT */
// Writes tensors of any safetensors dtype and string metadata as a safetensors file.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace pimoe {

struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  // Fills the tensor's bytes: element count x dtype_size(dtype), row-major, little-endian, at an address aligned to
  // 8 bytes (so an F32 tensor may be written as floats). Called once, in list order, while the file is written.
  std::function<void(void *)> fill;
};

// Writes a safetensors file: tensors stored in list order, back to back (the format has no padding between them),
// the JSON header padded with spaces so that the data section starts at a multiple of 8 bytes. The file appears at
// `path` only when complete (written to a temporary file in the same folder, then renamed). Throws PIMOE_ERR_IO
// naming the file.
void write_safetensors(const std::string &path, const std::map<std::string, std::string> &metadata,
                       const std::vector<TensorToWrite> &tensors);

}  // namespace pimoe
