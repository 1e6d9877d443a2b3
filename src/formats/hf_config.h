/* SPDX-License-Identifier: MIT */
// Hugging Face config.json -> the MoE layer of one decoder layer: which family, the tensor-name prefix, and the
// libpimoe Options that reproduce that family's routing semantics (pimoe_import_hf, README "Loading a Hugging Face
// MoE layer").
#pragma once

#include <cstdint>
#include <string>

#include "formats/hf_keys.h"
#include "options.h"

namespace pimoe {

// How a checkpoint stores its expert matrices, from config.json's quantization_config.
enum class HfQuant {
  None,      // F32, BF16 or F16
  Fp8Block,  // "fp8", e4m3, 128x128 blocks: F8_E4M3 weights with an F32 weight_scale_inv (DeepSeek-V3, Qwen3-FP8)
  Mxfp4,     // "mxfp4": gpt-oss's *_blocks (U8, E2M1 pairs) and *_scales (U8, E8M0) per 32 inputs
};

// config.json's "model_type" of a family ("mixtral", "qwen2_moe", ...).
const char *hf_model_type(HfFamily family);

struct HfLayerConfig {
  HfFamily family = HfFamily::Mixtral;
  std::string config_path;  // <dir>/config.json, for messages
  int32_t layer = 0;
  std::string prefix;  // e.g. "model.layers.1.mlp." (Mixtral: "model.layers.1.block_sparse_moe.")
  int64_t hidden = 0;
  int64_t num_experts = 0;
  int64_t expert_width = 0;      // intermediate size of one routed expert
  int64_t shared_width = 0;      // 0: no shared expert
  bool shared_gate = false;      // Qwen2-MoE's sigmoid(shared_expert_gate . x)
  bool selection_bias = false;   // DeepSeek-V3's e_score_correction_bias
  bool router_logit_bias = false;  // gpt-oss's router.bias
  HfQuant quant = HfQuant::None;
  std::string width_key;         // the config.json key expert_width came from (for messages)
  std::string experts_key;       // the key num_experts came from
  std::string shared_width_key;  // the key(s) shared_width came from
  // Layer-defining fields from config.json; runtime fields (backend, threads, deterministic, cpu_gemm, seed) from
  // the caller's options. Not yet resolved (resolve_layer_config checks the cross-field constraints).
  Options options;
};

// Reads <dir>/config.json and describes the MoE block of decoder layer `layer`. Throws PIMOE_ERR_IO (no directory,
// unreadable config.json), PIMOE_ERR_FORMAT (invalid JSON, a missing or mistyped key, a value out of range),
// PIMOE_ERR_UNSUPPORTED (an unknown model_type, an activation other than SiLU, a routing method libpimoe lacks, a
// quantization_config other than fp8 e4m3 with 128x128 blocks or gpt-oss's mxfp4),
// PIMOE_ERR_INVALID_ARGUMENT (layer out of range, or a dense layer), each naming config.json and the key.
HfLayerConfig read_hf_config(const std::string &dir, int32_t layer, const Options &runtime);

}  // namespace pimoe
