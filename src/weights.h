/* SPDX-License-Identifier: MIT */
// Host-side fp32 weights of a layer, in PyTorch nn.Linear layout ([out, in], row-major), and their public names.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compact_matrix.h"
#include "layer_config.h"
#include "quant_error.h"

namespace pimoe {

struct ExpertWeights {
  std::vector<float> norm_weight;  // [H]    pre-LayerNorm only
  std::vector<float> norm_bias;    // [H]    pre-LayerNorm only
  std::vector<float> gate_weight;  // [I, H] gated (SwiGLU, SwiGLU-OAI) only
  std::vector<float> gate_bias;    // [I]    gated with expert bias only
  std::vector<float> up_weight;    // [I, H]
  std::vector<float> up_bias;      // [I]    with expert bias only
  std::vector<float> down_weight;  // [H, I]
  std::vector<float> down_bias;    // [H]    with expert bias only
  // The matrices in their storage format when it is not fp32 (the fp32 vector above is then empty once the model
  // has compacted it). A backend packs them into its own form.
  CompactMatrix gate_compact, up_compact, down_compact;
};

struct LayerWeights {
  std::vector<float> router_weight;   // [E, H]
  std::vector<float> router_logit_bias;  // [E]  "router.bias", with router_logit_bias only
  std::vector<float> selection_bias;  // [E]  with router_bias only
  std::vector<ExpertWeights> experts;
  ExpertWeights shared;                    // gate/up [Is, H], down [H, Is]; with shared_width > 0 only
  std::vector<float> shared_score_weight;  // [1, H]  with shared_gate only
  std::vector<float> load_ema;             // [E] dynamic capacity's state
  std::vector<float> attention_q, attention_k, attention_v;  // [nh*dh, H] attention router
  std::vector<float> attention_o;                            // [H, nh*dh]
  std::vector<float> combine_q, combine_k;                   // [d_c, H] attention combine
  // What storing the expert and shared-expert matrices in their formats cost, against the fp32 values they came as.
  QuantError quant_error;
};

// A named view of one weight tensor, as listed by pimoe_tensor_name().
struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> *data;
  int64_t fan_in;  // of the nn.Linear the tensor belongs to; 0 for LayerNorm parameters; -1: state, 1/count each
  // Expert and shared-expert matrices: their storage format, and where the compact form lives (null otherwise).
  WeightFormat format;
  CompactMatrix *compact = nullptr;
  // Expert and shared-expert matrices (any format): the layer's quantisation error, which finish_filling adds to and
  // mark_quantised_source marks unknown (null otherwise).
  QuantError *quant_error = nullptr;

  int64_t element_count() const {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    return count;
  }
};

// Allocates every tensor the config needs (zero-filled) and lists them in the documented order.
std::vector<NamedTensor> allocate_weights(const LayerConfig &config, LayerWeights &weights);

// Filling a layer (the seeded initialisation, a loader), one tensor at a time: fill_buffer gives the tensor's fp32
// values to write (allocating them for a compact matrix, which holds none until then); finish_filling then quantises
// a compact matrix into its format, adds what that lost to the layer's QuantError and frees the fp32 values, so a
// layer never holds more than one matrix in fp32 beyond its fp32 tensors. A loader that has the compact form already
// writes *t.compact instead; one whose values were quantised before (even if it hands them over in fp32) calls
// mark_quantised_source.
std::vector<float> &fill_buffer(const NamedTensor &t);
void finish_filling(const NamedTensor &t);
// finish_filling for every tensor (what the model does once the filler returns; a no-op for finished tensors).
void compact_matrices(const std::vector<NamedTensor> &tensors);
// A loader says that t's values come from quantised data (a compact file, an FP8 or MXFP4 checkpoint), whether it
// writes *t.compact or dequantises them into fill_buffer: the layer's quantisation error is then unknown.
void mark_quantised_source(const NamedTensor &t);

// For a backend that holds one storage format per layer: PIMOE_ERR_UNSUPPORTED naming the backend, the first expert
// whose format differs from the layer's, and both formats.
void require_one_format_per_layer(const LayerConfig &config, const char *backend);

// For a backend that computes with fp32 matrices and stores them as fp32, bf16 or fp16 (one type per layer): puts
// bf16/fp16 compact matrices back into their fp32 vectors (exact), after checking that the layer's formats are ones
// it holds (PIMOE_ERR_UNSUPPORTED naming `backend` and the format otherwise).
void expand_for_float_backend(const LayerConfig &config, LayerWeights &weights, const char *backend);

// Fills every tensor from the seed as documented in pimoe.h (SplitMix64 per tensor, keyed by its name).
void initialize_weights(uint64_t seed, const std::vector<NamedTensor> &tensors);

}  // namespace pimoe
