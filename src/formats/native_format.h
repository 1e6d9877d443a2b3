// libpimoe's native file format: a safetensors file whose __metadata__ describes the layer (docs/format.md).
// This file maps metadata <-> LayerConfig and checks a file's tensors against it; it knows nothing of Model, so
// the fuzz target can drive it alone.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "layer_config.h"
#include "formats/safetensors.h"
#include "options.h"

namespace pimoe {

constexpr const char *kNativeFormatName = "pimoe.moe";
constexpr int64_t kNativeFormatVersion = 1;

// The metadata a file of this layer carries (layer-defining fields, format and library version).
std::map<std::string, std::string> native_metadata(const LayerConfig &config);

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
  int64_t expert;  // -1 for the router
};

// Names and shapes of the tensors of a layer, in the documented order (that of pimoe_tensor_name()).
std::vector<ExpectedTensor> native_tensor_layout(const LayerConfig &config);

// The layer a native file describes. Layer-defining fields come from the metadata; runtime fields (backend,
// threads, deterministic, cpu_gemm, seed) from `runtime`. Validates every key and value, the hyper-parameters'
// ranges and constraints, and that the tensors are exactly the ones the layer needs, with its shapes and a loadable
// dtype. Throws PIMOE_ERR_FORMAT (or PIMOE_ERR_UNSUPPORTED for a newer format or an unconvertible dtype) naming the
// file and the key or tensor. Allocates nothing proportional to the sizes the metadata claims.
LayerConfig native_config(const SafetensorsView &view, const Options &runtime);

// Converts one tensor of a validated file to fp32; rejects NaN and Inf (PIMOE_ERR_FORMAT naming the element).
void read_native_tensor(const SafetensorsView &view, const TensorInfo &tensor, float *out, size_t count);

}  // namespace pimoe
