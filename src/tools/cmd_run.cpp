// SPDX-License-Identifier: MIT
// pimoe run MODEL [--layer N] --input X.npy|X.safetensors [--input-tensor NAME] --output Y.npy|Y.safetensors
// [--routing R.json] [--backend B] [--threads N] [--dtype FMT]: one pimoe_forward (pimoe_forward_routing with
// --routing) of the layer on the input's tokens.
// Input [T, H] is one sequence of T tokens, [B, S, H] B sequences of S (what the attention router and expert-choice
// routing see as a call), [H] one token; the output has the input's shape.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/commands.h"
#include "tools/token_files.h"
#include "tools/tool_model.h"

namespace pimoe_tools {

namespace {
struct RunArgs {
  std::string model, input, input_tensor, output, routing;
  int32_t layer = -1;
  RuntimeChoice runtime;
};

// The routing of the call as JSON: per token, its slots' experts, weights and dropped flags, and the router scores.
void write_routing(const std::string &path, const pimoe_model *model, int64_t tokens, int64_t slots, int32_t experts,
                   const std::vector<int32_t> &ids, const std::vector<float> &weights,
                   const std::vector<uint8_t> &dropped, const std::vector<float> &probabilities) {
  nlohmann::json out = {{"backend", pimoe_model_backend(model)},
                        {"tokens", tokens},
                        {"slots", slots},
                        {"num_experts", experts}};
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t t = 0; t < tokens; ++t) {
    const auto b = static_cast<size_t>(t * slots), e = static_cast<size_t>((t + 1) * slots);
    rows.push_back({{"expert_ids", std::vector<int32_t>(ids.begin() + b, ids.begin() + e)},
                    {"weights", std::vector<float>(weights.begin() + b, weights.begin() + e)},
                    {"dropped", std::vector<int>(dropped.begin() + b, dropped.begin() + e)},
                    {"probabilities", std::vector<float>(probabilities.begin() + t * experts,
                                                         probabilities.begin() + (t + 1) * experts)}});
  }
  out["per_token"] = rows;
  std::ofstream file(path, std::ios::trunc);
  file << out.dump(1) << "\n";
  file.close();
  if (!file) throw ToolError("cannot write '" + path + "'");
}

int run_run(const RunArgs &a) {
  const NpyArray x = read_tokens(a.input, a.input_tensor);
  const ModelPtr model = open_model(a.model, a.layer, a.runtime);
  int64_t hidden = 0;
  int32_t experts = 0, top_k = 0;
  check(pimoe_model_dims(model.get(), &hidden, &experts, &top_k), "pimoe_model_dims");
  const std::vector<int64_t> &shape = x.shape;
  if (shape.empty() || shape.size() > 3 || shape.back() != hidden) {
    std::string text;
    for (int64_t d : shape) text += (text.empty() ? "" : ", ") + std::to_string(d);
    throw ToolError("input '" + a.input + "' has shape (" + text + "): the layer takes [H], [T, H] or [B, S, H] with "
                    "H = " + std::to_string(hidden));
  }
  const int64_t batch = shape.size() == 3 ? shape[0] : 1;
  const int64_t seq = shape.size() == 3 ? shape[1] : shape.size() == 2 ? shape[0] : 1;
  NpyArray out{x.shape, std::vector<float>(x.data.size())};
  std::vector<float> &y = out.data;
  const int64_t tokens = batch * seq, slots = pimoe_model_routing_slots(model.get());
  if (a.routing.empty()) {
    check(pimoe_forward(model.get(), x.data.data(), x.data.size(), batch, seq, y.data(), y.size(), nullptr, nullptr, 0),
          "pimoe_forward on '" + a.input + "'");
  } else {
    std::vector<int32_t> ids(static_cast<size_t>(tokens * slots));
    std::vector<float> weights(ids.size()), probabilities(static_cast<size_t>(tokens * experts));
    std::vector<uint8_t> dropped(ids.size());
    pimoe_routing routing{};
    routing.struct_size = sizeof routing;
    routing.expert_ids = ids.data();
    routing.weights = weights.data();
    routing.dropped = dropped.data();
    routing.slot_count = ids.size();
    routing.probabilities = probabilities.data();
    routing.probability_count = probabilities.size();
    check(pimoe_forward_routing(model.get(), x.data.data(), x.data.size(), batch, seq, y.data(), y.size(), &routing),
          "pimoe_forward_routing on '" + a.input + "'");
    write_routing(a.routing, model.get(), tokens, slots, experts, ids, weights, dropped, probabilities);
  }
  write_tokens(a.output, out);
  return 0;
}
}  // namespace

void add_run_command(CLI::App &app, int &status) {
  auto args = std::make_shared<RunArgs>();
  CLI::App *cmd = app.add_subcommand("run", "Run a layer on the tokens of a .npy file and write its output (and "
                                            "routing) to files");
  cmd->add_option("MODEL", args->model, "A libpimoe native file, or a Hugging Face checkpoint folder")->required();
  cmd->add_option("--layer", args->layer, "Decoder layer of a checkpoint folder (default: its first MoE layer)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--input", args->input,
                  "Input tokens of shape [H], [T, H] or [B, S, H]: a float32 .npy, or a tensor of a .safetensors "
                  "file (F32, BF16 or F16)")
      ->required();
  cmd->add_option("--input-tensor", args->input_tensor,
                  "The tensor of a .safetensors input (default: 'input', or the file's only tensor)");
  cmd->add_option("--output", args->output,
                  "Where to write the output, of the input's shape: a float32 .npy, or a .safetensors file (tensor "
                  "'output')")
      ->required();
  cmd->add_option("--routing", args->routing,
                  "Also write the routing as JSON: per token the experts, weights and dropped flags of its slots and "
                  "the router's scores of every expert");
  cmd->add_option("--backend", args->runtime.backend, "Backend: auto, cpu, cuda, vulkan, cuda:N, vulkan:N")
      ->capture_default_str();
  cmd->add_option("--threads", args->runtime.threads, "Threads of the CPU backend (0: the library's default)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--dtype", args->runtime.weight_dtype,
                  "Weight storage (weight_dtype): auto, fp32, bf16, fp16, int8, int4, fp8_e4m3, mxfp4");
  cmd->callback([args, &status] { status = run_run(*args); });
}

}  // namespace pimoe_tools
