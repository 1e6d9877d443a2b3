/* SPDX-License-Identifier: MIT */
// The oracle of the storage formats: the values a matrix takes once stored in a weight_dtype, recomputed from
// pimoe.h's rules (WEIGHT_DTYPE) with plain loops and brute-force searches over each format's code values. Shares no
// code with src/: the library's quantiser and every backend's packed form are checked against it.
#ifndef PIMOE_TESTS_ORACLE_QUANT_H
#define PIMOE_TESTS_ORACLE_QUANT_H

#include <cstdint>
#include <string>
#include <vector>

namespace pimoe_oracle {

struct StorageFormat {
  std::string dtype = "fp32";  // a WEIGHT_DTYPE value
  int64_t group = 32;          // int4's WEIGHT_GROUP_SIZE
  bool zero_point = false;     // int4's WEIGHT_ZERO_POINT
};

// w [rows, cols] (nn.Linear layout) as stored in `format` and read back.
std::vector<float> StoredValues(const std::vector<float> &w, int64_t rows, int64_t cols, const StorageFormat &format);

}  // namespace pimoe_oracle

#endif  // PIMOE_TESTS_ORACLE_QUANT_H
