// SPDX-License-Identifier: MIT
#include "routing_features.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace pimoe {
namespace {

// out[r][i] = sum_c in[r][c] * w[i][c] for rows r of `in` [rows, cols] and w [n, cols] (nn.Linear layout).
void linear(const float *in, int64_t rows, int64_t cols, const float *w, int64_t n, float *out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float *a = in + r * cols;
    for (int64_t i = 0; i < n; ++i) {
      const float *b = w + i * cols;
      double sum = 0.0;
      for (int64_t c = 0; c < cols; ++c) sum += static_cast<double>(a[c]) * b[c];
      out[r * n + i] = static_cast<float>(sum);
    }
  }
}

}  // namespace

void attention_router_input(const LayerConfig &config, const LayerWeights &weights, const float *x, int64_t batch,
                            int64_t seq, float *u, AttentionScratch &s) {
  const int64_t H = config.hidden, heads = config.router.attention_heads, dh = config.router.attention_head_dim;
  const int64_t D = heads * dh;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  s.q.resize(static_cast<size_t>(seq * D));
  s.k.resize(static_cast<size_t>(seq * D));
  s.v.resize(static_cast<size_t>(seq * D));
  s.context.resize(static_cast<size_t>(seq * D));
  s.score.resize(static_cast<size_t>(seq));
  for (int64_t b = 0; b < batch; ++b) {
    const float *xb = x + b * seq * H;
    float *ub = u + b * seq * H;
    linear(xb, seq, H, weights.attention_q.data(), D, s.q.data());
    linear(xb, seq, H, weights.attention_k.data(), D, s.k.data());
    linear(xb, seq, H, weights.attention_v.data(), D, s.v.data());
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < seq; ++i) {
        const int64_t last = config.router.attention_causal ? i : seq - 1;
        const float *qi = s.q.data() + i * D + h * dh;
        double best = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j <= last; ++j) {
          const float *kj = s.k.data() + j * D + h * dh;
          double dot = 0.0;
          for (int64_t c = 0; c < dh; ++c) dot += static_cast<double>(qi[c]) * kj[c];
          s.score[j] = dot * scale;
          best = std::max(best, s.score[j]);
        }
        double sum = 0.0;
        for (int64_t j = 0; j <= last; ++j) sum += (s.score[j] = std::exp(s.score[j] - best));
        float *ci = s.context.data() + i * D + h * dh;
        for (int64_t c = 0; c < dh; ++c) {
          double acc = 0.0;
          for (int64_t j = 0; j <= last; ++j) acc += s.score[j] * s.v[j * D + h * dh + c];
          ci[c] = static_cast<float>(acc / sum);
        }
      }
    }
    linear(s.context.data(), seq, D, weights.attention_o.data(), H, ub);
    for (int64_t i = 0; i < seq * H; ++i) ub[i] += xb[i];
  }
}

void attention_combine_weights(const LayerConfig &config, const LayerWeights &weights, const float *x,
                               const float *const *outputs, const float *w, int64_t n, float *w_out,
                               std::vector<double> &q, std::vector<double> &logit) {
  const int64_t H = config.hidden, D = config.router.combine_attention_dim;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  q.resize(static_cast<size_t>(D));
  logit.resize(static_cast<size_t>(n));
  for (int64_t d = 0; d < D; ++d) {
    const float *row = weights.combine_q.data() + d * H;
    double sum = 0.0;
    for (int64_t i = 0; i < H; ++i) sum += static_cast<double>(row[i]) * x[i];
    q[d] = sum;
  }
  double best = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) {
    if (!(w[j] > 0.0f)) continue;
    double dot = 0.0;
    for (int64_t d = 0; d < D; ++d) {
      const float *row = weights.combine_k.data() + d * H;
      double k = 0.0;
      for (int64_t i = 0; i < H; ++i) k += static_cast<double>(row[i]) * outputs[j][i];
      dot += q[d] * k;
    }
    logit[j] = dot * scale + std::log(static_cast<double>(w[j]));
    best = std::max(best, logit[j]);
  }
  double sum = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    if (w[j] > 0.0f) sum += (logit[j] = std::exp(logit[j] - best));
  }
  for (int64_t j = 0; j < n; ++j) w_out[j] = w[j] > 0.0f ? static_cast<float>(logit[j] / sum) : 0.0f;
}

void adaptive_bias_step(double rate, const std::vector<int64_t> &kept, std::vector<float> &bias) {
  double mean = 0.0;
  for (int64_t c : kept) mean += static_cast<double>(c);
  mean /= static_cast<double>(kept.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    const double gap = mean - static_cast<double>(kept[i]);
    const double sign = gap > 0.0 ? 1.0 : gap < 0.0 ? -1.0 : 0.0;
    bias[i] = static_cast<float>(static_cast<double>(bias[i]) + rate * sign);
  }
}

void load_ema_step(double beta, const std::vector<double> &choices, double assignments, std::vector<float> &ema) {
  for (size_t i = 0; i < ema.size(); ++i) {
    ema[i] = static_cast<float>(beta * ema[i] + (1.0 - beta) * choices[i] / assignments);
  }
}

}  // namespace pimoe
