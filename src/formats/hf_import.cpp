#include "formats/hf_import.h"

#include <cmath>
#include <map>

#include "error.h"
#include "layer_config.h"
#include "formats/hf_checkpoint.h"
#include "formats/mapped_file.h"

namespace pimoe {
namespace {

std::string shape_text(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// The config.json values a tensor's shape derives from, for "contradicts config.json" messages.
std::string shape_reason(const HfLayerConfig &layer, const std::string &native_name) {
  std::string why = "hidden_size = " + std::to_string(layer.hidden);
  if (native_name.rfind("router.", 0) == 0) {
    why += ", experts = " + std::to_string(layer.num_experts);
  } else if (native_name.rfind("experts.", 0) == 0) {
    why += ", " + layer.width_key + " = " + std::to_string(layer.expert_width);
  } else if (native_name.rfind("shared.", 0) == 0) {
    why += ", " + layer.shared_width_key + " = " + std::to_string(layer.shared_width);
  }
  return why;
}

}  // namespace

std::vector<HfTensorMapping> hf_tensor_mapping(const HfLayerConfig &layer) {
  const int64_t H = layer.hidden;
  const int64_t E = layer.num_experts;
  const int64_t I = layer.expert_width;
  const std::string &p = layer.prefix;
  const bool mixtral = layer.family == HfFamily::Mixtral;
  const char *gate = mixtral ? "w1" : "gate_proj";
  const char *up = mixtral ? "w3" : "up_proj";
  const char *down = mixtral ? "w2" : "down_proj";

  std::vector<HfTensorMapping> out;
  out.push_back({"router.weight", p + "gate.weight", {E, H}});
  if (layer.selection_bias) out.push_back({"router.selection_bias", p + "gate.e_score_correction_bias", {E}});
  for (int64_t e = 0; e < E; ++e) {
    const std::string native = "experts." + std::to_string(e) + ".";
    const std::string hf = p + "experts." + std::to_string(e) + ".";
    out.push_back({native + "gate.weight", hf + gate + ".weight", {I, H}});
    out.push_back({native + "up.weight", hf + up + ".weight", {I, H}});
    out.push_back({native + "down.weight", hf + down + ".weight", {H, I}});
  }
  if (layer.shared_width > 0) {
    const int64_t S = layer.shared_width;
    const std::string hf = p + (layer.family == HfFamily::Qwen2Moe ? "shared_expert." : "shared_experts.");
    out.push_back({"shared.gate.weight", hf + "gate_proj.weight", {S, H}});
    out.push_back({"shared.up.weight", hf + "up_proj.weight", {S, H}});
    out.push_back({"shared.down.weight", hf + "down_proj.weight", {H, S}});
    if (layer.shared_gate) out.push_back({"shared.score.weight", p + "shared_expert_gate.weight", {1, H}});
  }
  return out;
}

std::unique_ptr<pimoe_model> import_hf(const std::string &dir, int32_t layer_index, const Options &runtime) {
  const HfLayerConfig layer = read_hf_config(dir, layer_index, runtime);
  LayerConfig config;
  try {
    config = resolve_layer_config(layer.options);
  } catch (const Error &e) {
    if (e.status() != PIMOE_ERR_INVALID_OPTION) throw;
    fail(PIMOE_ERR_FORMAT, "file '", layer.config_path, "' describes a layer libpimoe cannot build: ", e.what());
  }

  // Every tensor is found and checked before the model allocates anything.
  HfCheckpoint checkpoint(dir);
  const std::vector<HfTensorMapping> mapping = hf_tensor_mapping(layer);
  std::map<std::string, std::pair<const HfTensorMapping *, HfCheckpoint::Found>> by_native;
  for (const HfTensorMapping &m : mapping) {
    const HfCheckpoint::Found found = checkpoint.find(m.hf_name);
    if (!found.file) {
      const std::string file = checkpoint.file_for(m.hf_name);
      fail(PIMOE_ERR_FORMAT, "checkpoint '", dir, "': tensor '", m.hf_name, "' is missing from '",
           file.empty() ? checkpoint.source() : file, "' (", hf_model_type(layer.family), " layer ", layer_index,
           " needs it, shape ", shape_text(m.shape), ")");
    }
    const TensorInfo &t = *found.tensor;
    if (t.shape != m.shape) {
      fail(PIMOE_ERR_FORMAT, "file '", found.file->path(), "': tensor '", m.hf_name, "' has shape ",
           shape_text(t.shape), " but '", layer.config_path, "' (", shape_reason(layer, m.native_name), ") needs ",
           shape_text(m.shape));
    }
    if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16) {
      fail(PIMOE_ERR_UNSUPPORTED, "file '", found.file->path(), "': tensor '", m.hf_name, "' has dtype ",
           dtype_name(t.dtype), " (F32, BF16 and F16 are supported)");
    }
    by_native[m.native_name] = {&m, found};
  }

  const WeightFiller fill = [&](const std::vector<NamedTensor> &tensors) {
    if (tensors.size() != mapping.size()) {
      fail(PIMOE_ERR_INTERNAL, "the layer has ", tensors.size(), " tensors but the importer maps ", mapping.size());
    }
    for (const NamedTensor &t : tensors) {
      const auto it = by_native.find(t.name);
      if (it == by_native.end() || it->second.first->shape != t.shape) {
        fail(PIMOE_ERR_INTERNAL, "the importer has no mapping for tensor '", t.name, "' ", shape_text(t.shape));
      }
      const HfTensorMapping &m = *it->second.first;
      const HfCheckpoint::Found &found = it->second.second;
      const SafetensorsView &view = found.file->view();
      std::vector<float> &values = fill_buffer(t);
      decode_to_f32(view, *found.tensor, values.data(), values.size());
      release_mapped_pages(view.bytes(*found.tensor), found.tensor->byte_size());
      for (size_t i = 0; i < values.size(); ++i) {
        if (!std::isfinite(values[i])) {
          fail(PIMOE_ERR_FORMAT, "file '", found.file->path(), "': tensor '", m.hf_name, "' element ", i, " is ",
               std::isnan(values[i]) ? "NaN" : "Inf");
        }
      }
      finish_filling(t);
    }
  };
  return std::make_unique<pimoe_model>(config, fill);
}

}  // namespace pimoe
