// Host-side fp32 weights of a layer, in PyTorch nn.Linear layout ([out, in], row-major), and their public names.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "layer_config.h"

namespace pimoe {

struct ExpertWeights {
  std::vector<float> norm_weight;  // [H]    pre-LayerNorm only
  std::vector<float> norm_bias;    // [H]    pre-LayerNorm only
  std::vector<float> gate_weight;  // [I, H] SwiGLU only
  std::vector<float> up_weight;    // [I, H]
  std::vector<float> up_bias;      // [I]    with expert bias only
  std::vector<float> down_weight;  // [H, I]
  std::vector<float> down_bias;    // [H]    with expert bias only
};

struct LayerWeights {
  std::vector<float> router_weight;   // [E, H]
  std::vector<float> selection_bias;  // [E]  with router_bias only
  std::vector<ExpertWeights> experts;
  ExpertWeights shared;                    // gate/up [Is, H], down [H, Is]; with shared_width > 0 only
  std::vector<float> shared_score_weight;  // [1, H]  with shared_gate only
  std::vector<float> load_ema;             // [E] dynamic capacity's state
  std::vector<float> attention_q, attention_k, attention_v;  // [nh*dh, H] attention router
  std::vector<float> attention_o;                            // [H, nh*dh]
  std::vector<float> combine_q, combine_k;                   // [d_c, H] attention combine
};

// A named view of one weight tensor, as listed by pimoe_tensor_name().
struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> *data;
  int64_t fan_in;  // of the nn.Linear the tensor belongs to; 0 for LayerNorm parameters; -1: state, 1/count each

  int64_t element_count() const {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    return count;
  }
};

// Allocates every tensor the config needs (zero-filled) and lists them in the documented order.
std::vector<NamedTensor> allocate_weights(const LayerConfig &config, LayerWeights &weights);

// Fills every tensor from the seed as documented in pimoe.h (SplitMix64 per tensor, keyed by its name).
void initialize_weights(uint64_t seed, const std::vector<NamedTensor> &tensors);

}  // namespace pimoe
