// SPDX-License-Identifier: MIT
// pimoe info PATH [--layer N] [--json] [--load [--dtype FMT]]: what a native file's layer, or a checkpoint's layer,
// is (layer_info.h); for a checkpoint folder without --layer, its MoE layers, from config.json alone. With --load,
// the C API's verdict too: whether it loads, and the quantisation error.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "tools/commands.h"
#include "tools/layer_info.h"
#include "tools/tool_model.h"

namespace pimoe_tools {

namespace {
struct InfoArgs {
  std::string path;
  int32_t layer = -1;
  bool json = false;
  bool load = false;
  std::string weight_dtype;
};

int run_info(const InfoArgs &a) {
  std::error_code ec;
  const bool folder = std::filesystem::is_directory(a.path, ec);
  nlohmann::json info;
  if (!folder) {
    if (a.layer > 0) throw ToolError("'" + a.path + "' is a native file, which holds one layer: --layer applies to "
                                     "checkpoint folders");
    info = describe_native_file(a.path);
  } else if (a.layer < 0) {
    info = describe_checkpoint(a.path);
  } else {
    info = describe_checkpoint_layer(a.path, a.layer);
  }
  bool loads = true;
  if (a.load && folder && a.layer < 0) {
    loads = add_import_verdicts(info, a.weight_dtype) > 0;
  } else if (a.load) {
    loads = add_load_verdict(info, a.path, folder ? a.layer : -1, a.weight_dtype);
  }
  const std::string out = a.json ? info.dump(2) + "\n" : layer_text(info);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return loads ? 0 : 1;
}
}  // namespace

void add_info_command(CLI::App &app, int &status) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App *cmd = app.add_subcommand("info", "Describe a layer: dims, router settings and routing features, shared "
                                             "expert, every expert, tensors and bytes by storage format");
  cmd->add_option("PATH", args->path, "A libpimoe native file, or a Hugging Face checkpoint folder")->required();
  cmd->add_option("--layer", args->layer,
                  "Decoder layer of a checkpoint folder to describe (without it: the list of its MoE layers, read "
                  "from config.json without importing any)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", args->json, "Print JSON (the fields are listed in the man page) instead of text");
  cmd->add_flag("--load", args->load,
                "Also load the layer through the C API (pimoe_load or pimoe_import_hf; for a checkpoint folder "
                "without --layer, each MoE layer in turn) and report whether it loads and its quantisation error; "
                "exit status 1 when it (or every layer) does not load");
  cmd->add_option("--dtype", args->weight_dtype,
                  "With --load: load with this weight_dtype (auto, fp32, bf16, fp16, int8, int4, fp8_e4m3, mxfp4): "
                  "the quantisation error is then what storing the weights so costs");
  cmd->callback([args, &status] { status = run_info(*args); });
}

}  // namespace pimoe_tools
