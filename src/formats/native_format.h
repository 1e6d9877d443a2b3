/* SPDX-License-Identifier: MIT */
// libpimoe's native file format: a safetensors file whose __metadata__ describes the layer (docs/format.md).
// This file maps metadata <-> LayerConfig and checks a file's tensors against it; it knows nothing of Model, so
// the fuzz target can drive it alone.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
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
  int64_t expert;       // -1 for the router, the shared expert and the combine
  WeightFormat format;  // expert and shared-expert matrices: their storage format; fp32 for every other tensor
};

// Names, shapes and formats of the tensors a file of `version` holds for a layer, in the documented order (that of
// pimoe_tensor_name(); a version-1 file lacks the gate and up biases of gated experts, which are zero).
std::vector<ExpectedTensor> native_tensor_layout(const LayerConfig &config, int64_t version = kNativeFormatVersion);

// The version a file declares (checked as native_config checks it).
int64_t native_format_version(const SafetensorsView &view);

// One tensor of a file as stored (docs/format.md, "Compact matrices"): a layout tensor in fp32, or a compact
// matrix's values (under the matrix's name), scales ("<name>.scales") or zero points ("<name>.zeros").
struct StoredTensor {
  enum class Part { Values, Scales, Zeros };
  std::string name;
  std::vector<int64_t> shape;
  DType dtype;  // what pimoe_save writes (an fp32 tensor may also be read from BF16 or F16)
  Part part;
};

// The stored tensors of one layout tensor, in file order: the values, then the scales and zero points where its
// format has them.
std::vector<StoredTensor> stored_tensors(const ExpectedTensor &tensor);

// The layer a native file describes, its matrices in the formats the file stores them in. Layer-defining fields
// come from the metadata; runtime fields (backend, threads, deterministic, cpu_gemm, seed) from `runtime` (its
// weight_dtype is applied by with_runtime_formats). Validates every key and value, the hyper-parameters' ranges and
// constraints, and that the tensors are exactly the ones the layer needs, with its shapes and a loadable dtype
// (a compact matrix's values, scales and zero points with exactly its format's). Throws PIMOE_ERR_FORMAT (or
// PIMOE_ERR_UNSUPPORTED for a newer format or an unconvertible dtype) naming the file and the key or tensor.
// Allocates nothing proportional to the sizes the metadata claims.
LayerConfig native_config(const SafetensorsView &view, const Options &runtime);

// The layer pimoe_load builds from a file's layer (`stored`): each expert keeps the file's format unless the
// runtime options name one (weight_dtype other than "auto" for the whole layer; pimoe_options_set_expert_weight_dtype
// for one expert or every expert); the shared expert keeps the file's layer format unless weight_dtype names one.
// Throws PIMOE_ERR_INVALID_OPTION for a weight_group_size other than 32, 64, 128.
LayerConfig with_runtime_formats(const LayerConfig &stored, const Options &runtime);

// Converts one fp32-format tensor of a validated file to fp32; rejects NaN and Inf (PIMOE_ERR_FORMAT naming the
// element).
void read_native_tensor(const SafetensorsView &view, const TensorInfo &tensor, float *out, size_t count);

// A compact matrix of a validated file (native_config's layout entry `tensor`) as a CompactMatrix whose buffers view
// the file's bytes, kept alive by `owner`; its codes are checked (CompactMatrix::check_codes: PIMOE_ERR_FORMAT
// naming the file and the tensor).
CompactMatrix read_native_compact(const SafetensorsView &view, const ExpectedTensor &tensor,
                                  std::shared_ptr<const void> owner);

}  // namespace pimoe
