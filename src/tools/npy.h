/* SPDX-License-Identifier: MIT */
// A small, strict reader and writer of NumPy's .npy files (format versions 1.0, 2.0 and 3.0) holding little-endian
// float32 arrays in C order: what `pimoe run` reads its input from and writes its outputs to. Anything else (another
// dtype, Fortran order, a header that is not the dict numpy writes, a size that disagrees with the shape) is refused
// with a message naming the file and what is wrong.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pimoe_tools {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;  // product(shape) values, C order
};

// Throws pimoe::Error (PIMOE_ERR_IO for an unreadable file, PIMOE_ERR_FORMAT otherwise) naming `path`.
NpyArray read_npy(const std::string &path);

// Writes `data` (product(shape) values) as a version 1.0 .npy file of dtype '<f4'; throws pimoe::Error (PIMOE_ERR_IO)
// naming `path` when it cannot be written.
void write_npy(const std::string &path, const std::vector<int64_t> &shape, const float *data);

}  // namespace pimoe_tools
