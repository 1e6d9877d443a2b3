/* SPDX-License-Identifier: MIT */
// What a layer is, as JSON: the one description `pimoe info` prints (as JSON or as text) for a native file and for a
// Hugging Face checkpoint's layer alike. Both go through the library's own readers (native_config, read_hf_config +
// resolve_layer_config), so the description is the LayerConfig libpimoe builds, not a second reading of the keys.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace pimoe_tools {

// A layer's description (the fields are listed in src/tools/README.md): dims, the router's settings, the list of
// routing features in use, the shared expert, every expert (activation, width, pre-norm, bias, storage format), the
// tensors libpimoe holds (name, shape, format, bytes) and the bytes per storage format. Throws pimoe::Error naming
// the file and the key when the file or checkpoint does not describe a layer libpimoe builds.
nlohmann::json describe_native_file(const std::string &path);
nlohmann::json describe_checkpoint_layer(const std::string &dir, int32_t layer);

// A checkpoint folder without importing any layer: the family, config.json's size settings, the storage, the bytes
// of its safetensors, and for each decoder layer whether it is a MoE layer libpimoe imports (with E, k, H, I) or why
// not (dense, unsupported), from config.json alone.
nlohmann::json describe_checkpoint(const std::string &dir);

// Loads the layer through the C API (pimoe_load, or pimoe_import_hf for `layer` >= 0; with `weight_dtype` as
// pimoe_options takes it, unless empty) and adds "load": {"ok", the backend, the tensor count, the quantisation error
// (null: unknown)} or {"ok": false, "status", "error"} to `info`. Returns whether it loaded.
bool add_load_verdict(nlohmann::json &info, const std::string &path, int32_t layer, const std::string &weight_dtype);

// For a checkpoint (describe_checkpoint): imports each MoE layer in turn (one at a time: never two in memory) and adds
// its verdict to its entry of "layers". Returns how many imported.
int add_import_verdicts(nlohmann::json &checkpoint, const std::string &weight_dtype);

// `info` (any of the above) as the aligned text `pimoe info` prints without --json (pimoe-info prints it too).
std::string layer_text(const nlohmann::json &info);
// The "loads:" and "quant error:" lines of a load verdict (add_load_verdict's "load").
std::string load_text(const nlohmann::json &load);

}  // namespace pimoe_tools
