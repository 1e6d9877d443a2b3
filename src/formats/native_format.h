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
// Version 2: a gated expert with bias has gate, up and down biases. A version-1 file's gated expert with bias has its
// down bias only (its gate and up biases are zero); a writer writes version 1 unless the layer needs 2.
constexpr int64_t kNativeFormatVersion = 2;

// The metadata a file of this layer carries (layer-defining fields, format and library version).
std::map<std::string, std::string> native_metadata(const LayerConfig &config);

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
  int64_t expert;  // -1 for the router
};

// Names and shapes of the tensors a file of `version` holds for a layer, in the documented order (that of
// pimoe_tensor_name(); a version-1 file lacks the gate and up biases of gated experts, which are zero).
std::vector<ExpectedTensor> native_tensor_layout(const LayerConfig &config, int64_t version = kNativeFormatVersion);

// The version a file declares (checked as native_config checks it).
int64_t native_format_version(const SafetensorsView &view);

// The layer a native file describes. Layer-defining fields come from the metadata; runtime fields (backend,
// threads, deterministic, cpu_gemm, seed) from `runtime`. Validates every key and value, the hyper-parameters'
// ranges and constraints, and that the tensors are exactly the ones the layer needs, with its shapes and a loadable
// dtype. Throws PIMOE_ERR_FORMAT (or PIMOE_ERR_UNSUPPORTED for a newer format or an unconvertible dtype) naming the
// file and the key or tensor. Allocates nothing proportional to the sizes the metadata claims.
LayerConfig native_config(const SafetensorsView &view, const Options &runtime);

// Converts one tensor of a validated file to fp32; rejects NaN and Inf (PIMOE_ERR_FORMAT naming the element).
void read_native_tensor(const SafetensorsView &view, const TensorInfo &tensor, float *out, size_t count);

}  // namespace pimoe
