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
  if (folder && layer < 0) {
    layer = first_moe_layer(describe_checkpoint(path));
    if (layer < 0) throw ToolError("checkpoint '" + path + "' has no MoE layer libpimoe imports (pimoe info lists why)");
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
  if (folder) {
    check(pimoe_import_hf(path.c_str(), layer, raw, &model), "importing layer " + std::to_string(layer) + " of '" + path + "'");
  } else {
    check(pimoe_load(path.c_str(), raw, &model), "loading '" + path + "'");
  }
  return ModelPtr(model);
}

}  // namespace pimoe_tools
