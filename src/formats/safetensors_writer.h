// Writes fp32 tensors and string metadata as a safetensors file.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace pimoe {

struct TensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  // Fills the tensor's element_count floats (row-major). Called once, in list order, while the file is written.
  std::function<void(float *)> fill;
};

// Writes an F32 safetensors file: tensors stored in list order, the JSON header padded with spaces so that the data
// section starts at a multiple of 8 bytes. The file appears at `path` only when complete (written to a temporary
// file in the same folder, then renamed). Throws PIMOE_ERR_IO naming the file.
void write_safetensors_f32(const std::string &path, const std::map<std::string, std::string> &metadata,
                           const std::vector<TensorToWrite> &tensors);

}  // namespace pimoe
