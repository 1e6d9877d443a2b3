// SPDX-License-Identifier: MIT
#include "tools/token_files.h"

#include <cstring>
#include <map>

#include "formats/safetensors.h"
#include "formats/safetensors_writer.h"
#include "tools/tool_model.h"

namespace pimoe_tools {
namespace {

bool ends_with(const std::string &path, const char *tail) {
  const size_t n = std::strlen(tail);
  return path.size() >= n && path.compare(path.size() - n, n, tail) == 0;
}

void check_extension(const std::string &path) {
  if (!ends_with(path, ".npy") && !ends_with(path, ".safetensors")) {
    throw ToolError("'" + path + "': a token file is a .npy or a .safetensors file (by its extension)");
  }
}

}  // namespace

NpyArray read_tokens(const std::string &path, const std::string &tensor) {
  check_extension(path);
  if (ends_with(path, ".npy")) {
    if (!tensor.empty()) throw ToolError("--input-tensor names a tensor of a .safetensors input, not of '" + path + "'");
    return read_npy(path);
  }
  const pimoe::SafetensorsFile file(path);
  const pimoe::SafetensorsView &view = file.view();
  const pimoe::TensorInfo *info = nullptr;
  if (!tensor.empty()) {
    info = view.find(tensor);
    if (!info) throw ToolError("file '" + path + "' has no tensor '" + tensor + "'");
  } else if ((info = view.find("input")) == nullptr) {
    if (view.tensors().size() != 1) {
      throw ToolError("file '" + path + "' has " + std::to_string(view.tensors().size()) +
                      " tensors and none named 'input': name one with --input-tensor");
    }
    info = &view.tensors().front();
  }
  NpyArray out;
  out.shape = info->shape;
  out.data.resize(info->element_count);
  pimoe::decode_to_f32(view, *info, out.data.data(), out.data.size());
  return out;
}

void write_tokens(const std::string &path, const NpyArray &array) {
  check_extension(path);
  if (ends_with(path, ".npy")) return write_npy(path, array.shape, array.data.data());
  pimoe::TensorToWrite output{"output", pimoe::DType::F32, array.shape, [&](void *bytes) {
                                std::memcpy(bytes, array.data.data(), array.data.size() * sizeof(float));
                              }};
  pimoe::write_safetensors(path, {{"pimoe.tool", "pimoe run"}}, {output});
}

}  // namespace pimoe_tools
