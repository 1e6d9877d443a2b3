// SPDX-License-Identifier: MIT
// C shims for saving and loading models in the native format (docs/format.md).
#include "api_guard.h"
#include "formats/hf_import.h"
#include "formats/native_io.h"
#include "pimoe/pimoe.h"

using namespace pimoe;

namespace {

// Prefixes the function's name to any failure, as the other entry points' messages are.
template <typename Body>
void named(const char *function, Body &&body) {
  try {
    body();
  } catch (const Error &e) {
    throw Error(e.status(), std::string(function) + ": " + e.what());
  }
}

}  // namespace

extern "C" {

pimoe_status pimoe_save(const pimoe_model *model, const char *path) {
  return guarded(model, [&] {
    require(model, "pimoe_save", "model");
    require(path, "pimoe_save", "path");
    named("pimoe_save", [&] { save_native(model->model, path); });
  });
}

pimoe_status pimoe_load(const char *path, const pimoe_options *options, pimoe_model **out) {
  return guarded(nullptr, [&] {
    require(path, "pimoe_load", "path");
    require(out, "pimoe_load", "out");
    const Options defaults;
    named("pimoe_load", [&] { *out = load_native(path, options ? options->options : defaults).release(); });
  });
}

pimoe_status pimoe_import_hf(const char *checkpoint_dir, int32_t layer, const pimoe_options *runtime_options,
                             pimoe_model **out) {
  return guarded(nullptr, [&] {
    require(checkpoint_dir, "pimoe_import_hf", "checkpoint_dir");
    require(out, "pimoe_import_hf", "out");
    const Options defaults;
    named("pimoe_import_hf", [&] {
      *out = import_hf(checkpoint_dir, layer, runtime_options ? runtime_options->options : defaults).release();
    });
  });
}

}  // extern "C"
