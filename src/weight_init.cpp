// SPDX-License-Identifier: MIT
#include <cmath>

#include "splitmix64.h"
#include "weights.h"

namespace pimoe {
namespace {

uint64_t fnv1a64(const std::string &text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  return hash;
}

bool ends_with(const std::string &s, const char *suffix) {
  std::string tail(suffix);
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

std::vector<NamedTensor> allocate_weights(const LayerConfig &config, LayerWeights &weights) {
  const int64_t H = config.hidden;
  const int64_t E = config.router.num_experts;
  std::vector<NamedTensor> tensors;
  auto add = [&](std::string name, std::vector<int64_t> shape, std::vector<float> &data, int64_t fan_in) {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    data.assign(static_cast<size_t>(count), 0.0f);
    tensors.push_back({std::move(name), std::move(shape), &data, fan_in, WeightFormat{}, nullptr, nullptr});
  };
  // An expert or shared-expert matrix, stored in `format` (compact_matrices quantises it once it is filled).
  auto add_matrix = [&](std::string name, int64_t rows, int64_t cols, std::vector<float> &data, CompactMatrix &compact,
                        const WeightFormat &format) {
    add(std::move(name), {rows, cols}, data, cols);
    tensors.back().format = format;
    tensors.back().quant_error = &weights.quant_error;
    if (format.compact()) {  // filled one at a time through fill_buffer / finish_filling, never all in fp32
      tensors.back().compact = &compact;
      std::vector<float>().swap(data);
    }
  };

  weights.experts.resize(static_cast<size_t>(E));
  add("router.weight", {E, H}, weights.router_weight, H);
  if (config.router.logit_bias) add("router.bias", {E}, weights.router_logit_bias, H);
  if (config.router.selection_bias) add("router.selection_bias", {E}, weights.selection_bias, H);
  if (config.router.dynamic_capacity) add("router.load_ema", {E}, weights.load_ema, -1);
  if (config.router.attention_heads > 0) {
    const int64_t D = config.router.attention_heads * config.router.attention_head_dim;
    add("router.attention.q.weight", {D, H}, weights.attention_q, H);
    add("router.attention.k.weight", {D, H}, weights.attention_k, H);
    add("router.attention.v.weight", {D, H}, weights.attention_v, H);
    add("router.attention.o.weight", {H, D}, weights.attention_o, D);
  }
  for (int64_t e = 0; e < E; ++e) {
    const ExpertSpec &spec = config.experts[static_cast<size_t>(e)];
    if (spec.callback) continue;
    ExpertWeights &w = weights.experts[static_cast<size_t>(e)];
    const std::string prefix = "experts." + std::to_string(e) + ".";
    const int64_t I = spec.intermediate;
    if (spec.pre_norm) {
      add(prefix + "norm.weight", {H}, w.norm_weight, 0);
      add(prefix + "norm.bias", {H}, w.norm_bias, 0);
    }
    if (spec.gated()) add_matrix(prefix + "gate.weight", I, H, w.gate_weight, w.gate_compact, spec.format);
    if (spec.gated() && spec.bias) add(prefix + "gate.bias", {I}, w.gate_bias, H);
    add_matrix(prefix + "up.weight", I, H, w.up_weight, w.up_compact, spec.format);
    if (spec.bias) add(prefix + "up.bias", {I}, w.up_bias, H);
    add_matrix(prefix + "down.weight", H, I, w.down_weight, w.down_compact, spec.format);
    if (spec.bias) add(prefix + "down.bias", {H}, w.down_bias, I);
  }
  if (config.shared.width > 0) {
    const int64_t Is = config.shared.width;
    const WeightFormat &f = config.weight_format;
    ExpertWeights &s = weights.shared;
    add_matrix("shared.gate.weight", Is, H, s.gate_weight, s.gate_compact, f);
    add_matrix("shared.up.weight", Is, H, s.up_weight, s.up_compact, f);
    add_matrix("shared.down.weight", H, Is, s.down_weight, s.down_compact, f);
    if (config.shared.gated) add("shared.score.weight", {1, H}, weights.shared_score_weight, H);
  }
  if (config.router.combine_attention_dim > 0) {
    const int64_t D = config.router.combine_attention_dim;
    add("combine.q.weight", {D, H}, weights.combine_q, H);
    add("combine.k.weight", {D, H}, weights.combine_k, H);
  }
  return tensors;
}

void initialize_weights(uint64_t seed, const std::vector<NamedTensor> &tensors) {
  for (const NamedTensor &t : tensors) {
    SplitMix64 rng(seed ^ fnv1a64(t.name));
    std::vector<float> &data = fill_buffer(t);
    if (t.fan_in < 0) {  // routing state (router.load_ema): uniform, not random
      for (float &v : data) v = 1.0f / static_cast<float>(data.size());
      continue;
    }
    if (t.fan_in == 0) {  // LayerNorm: weight near 1, bias near 0, so the test oracle sees non-trivial values
      const float offset = ends_with(t.name, "norm.weight") ? 1.0f : 0.0f;
      for (float &v : data) v = offset + 0.1f * (2.0f * rng.uniform01() - 1.0f);
      continue;
    }
    // nn.Linear's default bound 1/sqrt(fan_in) for weight and bias alike.
    const float bound = 1.0f / std::sqrt(static_cast<float>(t.fan_in));
    for (float &v : data) v = bound * (2.0f * rng.uniform01() - 1.0f);
    finish_filling(t);
  }
}

}  // namespace pimoe
