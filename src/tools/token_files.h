/* SPDX-License-Identifier: MIT */
// The token files `pimoe run` reads and writes, by extension: .npy (npy.h) or .safetensors (one tensor of the file;
// written as the tensor "output"). Anything else is refused naming the file.
#pragma once

#include <string>

#include "tools/npy.h"

namespace pimoe_tools {

// From a .safetensors file, the tensor `tensor` (empty: "input" when the file has it, else its only tensor), F32, BF16
// or F16 converted to float. Throws pimoe::Error or ToolError naming the file (and the tensor).
NpyArray read_tokens(const std::string &path, const std::string &tensor);

// To .npy, or to .safetensors as the F32 tensor "output".
void write_tokens(const std::string &path, const NpyArray &array);

}  // namespace pimoe_tools
