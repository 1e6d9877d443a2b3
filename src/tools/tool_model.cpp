// SPDX-License-Identifier: MIT
#include "tools/tool_model.h"

#include <filesystem>

#include "tools/layer_info.h"

namespace pimoe_tools {

void check(pimoe_status status, const std::string &what) {
  if (status != PIMOE_OK) {
    throw ToolError(what + ": " + pimoe_last_error() + " (" + pimoe_status_string(status) + ")");
  }
}

ModelPtr open_model(const std::string &path, int32_t layer, const RuntimeChoice &runtime) {
  std::error_code ec;
  const bool folder = std::filesystem::is_directory(path, ec);
  if (!folder && layer > 0) {
    throw ToolError("'" + path + "' is a native file, which holds one layer: --layer " + std::to_string(layer) +
                    " applies to checkpoint folders");
  }
  pimoe_options *raw = nullptr;
  check(pimoe_options_create(&raw), "pimoe_options_create");
  const std::unique_ptr<pimoe_options, void (*)(pimoe_options *)> options(raw, pimoe_options_destroy);
  check(pimoe_options_set_string(raw, PIMOE_OPT_BACKEND, runtime.backend.c_str()), "--backend " + runtime.backend);
  check(pimoe_options_set_int(raw, PIMOE_OPT_THREADS, runtime.threads), "--threads " + std::to_string(runtime.threads));
  if (!runtime.weight_dtype.empty()) {
    check(pimoe_options_set_string(raw, PIMOE_OPT_WEIGHT_DTYPE, runtime.weight_dtype.c_str()),
          "--dtype " + runtime.weight_dtype);
  }
  pimoe_model *model = nullptr;
  if (folder && layer < 0) {
    // The first MoE layer whose weights the folder holds: config.json names the MoE layers, but a checkpoint cut to
    // a few layers (tests/fixtures) lacks some; pimoe_import_hf checks every tensor before it allocates anything.
    std::string first_error;
    const nlohmann::json checkpoint = describe_checkpoint(path);
    for (const nlohmann::json &l : checkpoint.at("layers")) {
      if (!l.at("moe").get<bool>()) continue;
      const int32_t index = l.at("layer").get<int32_t>();
      if (pimoe_import_hf(path.c_str(), index, raw, &model) == PIMOE_OK) return ModelPtr(model);
      if (first_error.empty()) first_error = "layer " + std::to_string(index) + ": " + pimoe_last_error();
    }
    throw ToolError("checkpoint '" + path + "' has no MoE layer libpimoe imports" +
                    (first_error.empty() ? std::string(" (pimoe info lists why)") : " (" + first_error + ")"));
  }
  if (folder) {
    check(pimoe_import_hf(path.c_str(), layer, raw, &model), "importing layer " + std::to_string(layer) + " of '" + path + "'");
  } else {
    check(pimoe_load(path.c_str(), raw, &model), "loading '" + path + "'");
  }
  return ModelPtr(model);
}

}  // namespace pimoe_tools
