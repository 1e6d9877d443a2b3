/* SPDX-License-Identifier: MIT */
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

// One libpimoe tensor of the layer and where it comes from in the checkpoint.
struct HfTensorMapping {
  enum class Storage {
    Float,       // F32, BF16 or F16
    Fp8OrFloat,  // an FP8 checkpoint's matrix: F8_E4M3 with scale_name (F32/BF16/F16 [ceil(rows/128),
                 // ceil(cols/128)]), or F32, BF16 or F16
    Mxfp4,       // gpt-oss: U8 blocks [E, R, ceil(cols/32), 16] with U8 E8M0 scale_name [E, R, ceil(cols/32)]
  };
  std::string native_name;  // as listed by pimoe_tensor_name(), e.g. "experts.3.gate.weight"
  std::string hf_name;      // e.g. "model.layers.1.mlp.experts.3.gate_proj.weight"
  std::vector<int64_t> shape;  // of hf_name, as config.json implies it
  Storage storage = Storage::Float;
  std::string scale_name;  // Fp8OrFloat, Mxfp4: the scales' tensor
  std::vector<int64_t> scale_shape;
  // A fused tensor (every expert in one: gpt-oss [E, R, ...], Granite [E, R, C], DBRX [E * R, C]): the expert's
  // slice, and of its R rows the even (row_parity 0: gate) or odd (1: up) ones, or all (-1). expert -1: the whole
  // tensor is the native one (its elements in order; its shape may differ, e.g. ERNIE's bias [1, E] for [E]).
  int64_t expert = -1;
  int row_parity = -1;
  // Float storage only: the expert's slice is the block_rows x block_cols matrix at element expert * block_rows *
  // block_cols (a vector: block_cols 1); the native tensor is its rows from row_offset on (Granite's gate and up
  // halves) or by row_parity, or with transpose its columns from col_offset on, transposed (DBRX's w2 [I, H] for
  // down [H, I], Llama 4's gate_up_proj [H, 2I]).
  int64_t block_rows = 0;
  int64_t block_cols = 0;
  int64_t row_offset = 0;
  int64_t col_offset = 0;
  bool transpose = false;
};

// Every tensor of the layer, in libpimoe's documented order, with its checkpoint name and the shape config.json
// implies.
std::vector<HfTensorMapping> hf_tensor_mapping(const HfLayerConfig &layer);

// Reads config.json, finds and validates every tensor the layer needs (present, shape as config.json says, a dtype
// its storage allows, scales present and of the right shape), then builds the model: a matrix stored in the layer's
// format (FP8 blocks or MXFP4 with weight_dtype "auto") is copied as it is, without an fp32 copy; any other is
// converted to fp32 and then to the layer's format. Runtime settings come from `runtime`.
std::unique_ptr<pimoe_model> import_hf(const std::string &dir, int32_t layer, const Options &runtime);

}  // namespace pimoe
