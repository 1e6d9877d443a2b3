// Importing the MoE block of one decoder layer of a Hugging Face checkpoint (the body of pimoe_import_hf).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/hf_config.h"
#include "model.h"
#include "options.h"

namespace pimoe {

// One libpimoe tensor of the layer and the checkpoint tensor it comes from.
struct HfTensorMapping {
  std::string native_name;  // as listed by pimoe_tensor_name(), e.g. "experts.3.gate.weight"
  std::string hf_name;      // e.g. "model.layers.1.mlp.experts.3.gate_proj.weight"
  std::vector<int64_t> shape;
};

// Every tensor of the layer, in libpimoe's documented order, with its checkpoint name and the shape config.json
// implies.
std::vector<HfTensorMapping> hf_tensor_mapping(const HfLayerConfig &layer);

// Reads config.json, finds and validates every tensor the layer needs (present, shape as config.json says, F32,
// BF16 or F16), then builds the model, converting the weights to fp32. Runtime settings come from `runtime`.
std::unique_ptr<pimoe_model> import_hf(const std::string &dir, int32_t layer, const Options &runtime);

}  // namespace pimoe
