/* SPDX-License-Identifier: MIT */
// The routing features that run on the host around the backend (pimoe.h documents each formula): the attention
// router's context, the attention combine, and the updates of the adaptive routing state.
#pragma once

#include <cstdint>
#include <vector>

#include "layer_config.h"
#include "weights.h"

namespace pimoe {

// Scratch of the attention router, reused across calls.
struct AttentionScratch {
  std::vector<float> q, k, v, context;  // [seq, nh*dh] each
  std::vector<double> score;            // [seq]
};

// u = x + W_o concat_h(softmax(q_h k_h^T / sqrt(dh)) v_h), attention within each of the `batch` sequences of `seq`
// tokens; writes u [batch*seq, H].
void attention_router_input(const LayerConfig &config, const LayerWeights &weights, const float *x, int64_t batch,
                            int64_t seq, float *u, AttentionScratch &scratch);

// Combine weights of one token from attention between it and its experts' outputs: given the slots' routing weights
// w[0..n) (only w > 0 take part) and outputs o[j] (H floats each), writes w'[0..n). q and logit are scratch of d_c
// and n values.
void attention_combine_weights(const LayerConfig &config, const LayerWeights &weights, const float *x,
                               const float *const *outputs, const float *w, int64_t n, float *w_out,
                               std::vector<double> &q, std::vector<double> &logit);

// b_i += u * sign(mean(c) - c_i), c the call's kept assignments per expert.
void adaptive_bias_step(double rate, const std::vector<int64_t> &kept, std::vector<float> &bias);

// m_i = beta * m_i + (1 - beta) * choices_i / assignments.
void load_ema_step(double beta, const std::vector<double> &choices, double assignments, std::vector<float> &ema);

}  // namespace pimoe
