/* SPDX-License-Identifier: MIT */
// What `pimoe run` and `pimoe bench` share: the MODEL argument opened through the C API (a native file with
// pimoe_load, a checkpoint folder's layer with pimoe_import_hf), and the one error type the subcommands throw.
#pragma once

#include <pimoe/pimoe.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace pimoe_tools {

// A failure the program reports as "pimoe: MESSAGE" with exit status 1.
struct ToolError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ModelDeleter {
  void operator()(pimoe_model *model) const { pimoe_destroy(model); }
};
using ModelPtr = std::unique_ptr<pimoe_model, ModelDeleter>;

struct RuntimeChoice {
  std::string backend = "auto";
  int64_t threads = 0;  // 0: the library's default
  std::string weight_dtype;  // empty: "auto"
};

// Opens MODEL: a native file (layer must be -1 or 0) or a checkpoint folder's layer `layer` (-1: the first MoE layer
// config.json names whose weights the folder holds). Throws ToolError naming the path and pimoe_last_error().
ModelPtr open_model(const std::string &path, int32_t layer, const RuntimeChoice &runtime);

// Throws ToolError "WHAT: pimoe_last_error() (status)" unless status is PIMOE_OK.
void check(pimoe_status status, const std::string &what);

}  // namespace pimoe_tools
