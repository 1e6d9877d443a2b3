/* SPDX-License-Identifier: MIT */
// Saving a Model as a native file and creating one from a native file (the bodies of pimoe_save / pimoe_load).
#pragma once

#include <memory>
#include <string>

#include "model.h"
#include "options.h"

namespace pimoe {

// Writes the model's config and weights (read back from the backend when it holds them packed) to `path`.
void save_native(const Model &model, const std::string &path);

// Maps `path`, validates it completely, builds the model (runtime settings from `runtime`), unmaps.
std::unique_ptr<pimoe_model> load_native(const std::string &path, const Options &runtime);

}  // namespace pimoe
