#include "cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include "activation.h"
#include "gemm.h"

namespace pimoe {
namespace {

int pool_threads(int64_t requested) {
  return requested > 0 ? static_cast<int>(requested)
                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

struct CpuScratch final : BackendScratch {
  std::vector<float> rows;             // [kept, H]  gathered (and normalised) inputs, grouped by expert
  std::vector<float> hidden;           // [sum count_e * I_e]  up projection, then activation
  std::vector<float> gate;             // [sum count_e * I_e]  SwiGLU gate projection
  std::vector<float> out;              // [kept, H]  expert outputs before weighting
  std::vector<int64_t> hidden_offset;  // [E] where expert e's block starts in hidden/gate

  size_t bytes() const override {
    return (rows.capacity() + hidden.capacity() + gate.capacity() + out.capacity()) * sizeof(float) +
           hidden_offset.capacity() * sizeof(int64_t);
  }
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(const LayerConfig &config, const LayerWeights &weights)
      : config_(config),
        weights_(weights),
        gemm_(config.deterministic || !cpu::blas_available() ? cpu::GemmKind::BuiltIn : cpu::GemmKind::Blas),
        pool_(pool_threads(config.threads)) {}

  const char *name() const override { return "cpu"; }

  std::string device_description() const override {
    return "cpu: " + std::to_string(pool_.size()) + " threads, " + cpu::gemm_description(gemm_);
  }

  std::unique_ptr<BackendScratch> make_scratch() const override { return std::make_unique<CpuScratch>(); }

  void router_logits(const float *x, int64_t tokens, float *logits, BackendScratch &) const override {
    cpu::gemm_abt(gemm_, x, weights_.router_weight.data(), logits, tokens, config_.router.num_experts, config_.hidden,
                  pool_);
  }

  void run_experts(const RoutePlan &plan, const float *x, float *y, BackendScratch &base) const override {
    auto &s = static_cast<CpuScratch &>(base);
    const int64_t H = config_.hidden, E = plan.num_experts, kept = plan.kept();
    s.hidden_offset.resize(static_cast<size_t>(E));
    int64_t hidden_total = 0;
    bool any_gated = false;
    for (int64_t e = 0; e < E; ++e) {
      s.hidden_offset[e] = hidden_total;
      hidden_total += plan.counts[e] * spec(e).intermediate;
      any_gated = any_gated || (plan.counts[e] > 0 && spec(e).gated());
    }
    s.rows.resize(static_cast<size_t>(kept * H));
    s.out.resize(static_cast<size_t>(kept * H));
    s.hidden.resize(static_cast<size_t>(hidden_total));
    if (any_gated) s.gate.resize(static_cast<size_t>(hidden_total));

    gather(plan, x, s);
    for (int64_t e = 0; e < E; ++e) {
      if (plan.counts[e] > 0) run_expert(plan, e, s);
    }
    combine(plan, s, y);
  }

 private:
  const ExpertSpec &spec(int64_t e) const { return config_.experts[static_cast<size_t>(e)]; }
  const ExpertWeights &expert_weights(int64_t e) const { return weights_.experts[static_cast<size_t>(e)]; }

  // Splits [0, n) into chunks of at least `grain` for the pool; calls body(begin, end).
  template <typename Body>
  void parallel_chunks(int64_t n, int64_t grain, Body body) const {
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(n / std::max<int64_t>(grain, 1), 4 * pool_.size()));
    const int64_t per = (n + chunks - 1) / chunks;
    pool_.parallel_for(chunks, [&](int64_t c) {
      const int64_t begin = c * per, end = std::min(n, begin + per);
      if (begin < end) body(begin, end);
    });
  }

  void gather(const RoutePlan &plan, const float *x, CpuScratch &s) const {
    const int64_t H = config_.hidden, k = plan.top_k;
    const float eps = static_cast<float>(config_.layer_norm_eps);
    parallel_chunks(plan.kept(), 16, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const int64_t a = plan.order[p];
        const float *src = x + (a / k) * H;
        float *dst = s.rows.data() + p * H;
        const int64_t e = plan.expert[a];
        if (!spec(e).pre_norm) {
          std::copy(src, src + H, dst);
          continue;
        }
        // LayerNorm in two passes (mean, then variance of the centred values) for accuracy.
        double mean = 0.0;
        for (int64_t i = 0; i < H; ++i) mean += src[i];
        mean /= static_cast<double>(H);
        double var = 0.0;
        for (int64_t i = 0; i < H; ++i) var += (src[i] - mean) * (src[i] - mean);
        var /= static_cast<double>(H);
        const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
        const float m = static_cast<float>(mean);
        const ExpertWeights &w = expert_weights(e);
        for (int64_t i = 0; i < H; ++i) dst[i] = (src[i] - m) * inv * w.norm_weight[i] + w.norm_bias[i];
      }
    });
  }

  void run_expert(const RoutePlan &plan, int64_t e, CpuScratch &s) const {
    const int64_t H = config_.hidden, I = spec(e).intermediate, M = plan.counts[e];
    const ExpertWeights &w = expert_weights(e);
    const float *rows = s.rows.data() + plan.offsets[e] * H;
    float *hidden = s.hidden.data() + s.hidden_offset[e];
    float *out = s.out.data() + plan.offsets[e] * H;

    cpu::gemm_abt(gemm_, rows, w.up_weight.data(), hidden, M, I, H, pool_);
    if (spec(e).gated()) {
      float *gate = s.gate.data() + s.hidden_offset[e];
      cpu::gemm_abt(gemm_, rows, w.gate_weight.data(), gate, M, I, H, pool_);
      parallel_chunks(M, 8, [&](int64_t begin, int64_t end) {
        cpu::swiglu(gate + begin * I, hidden + begin * I, (end - begin) * I);
      });
    } else {
      const float *bias = w.up_bias.empty() ? nullptr : w.up_bias.data();
      parallel_chunks(M, 8, [&](int64_t begin, int64_t end) {
        cpu::activate(spec(e).activation, hidden + begin * I, bias, (end - begin) * I, I);
      });
    }
    cpu::gemm_abt(gemm_, hidden, w.down_weight.data(), out, M, H, I, pool_);
  }

  // y[t] = sum_j weight(t, j) * (out[position(t, j)] + down_bias), slots in order, so that a token's result does not
  // depend on the thread count or on the other tokens in the call.
  void combine(const RoutePlan &plan, const CpuScratch &s, float *y) const {
    const int64_t H = config_.hidden, k = plan.top_k;
    parallel_chunks(plan.tokens, 8, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        float *dst = y + t * H;
        std::fill(dst, dst + H, 0.0f);
        for (int64_t j = 0; j < k; ++j) {
          const int64_t a = t * k + j;
          const int64_t p = plan.position[a];
          if (p < 0) continue;
          const float wt = plan.weight[a];
          const float *src = s.out.data() + p * H;
          const std::vector<float> &bias = expert_weights(plan.expert[a]).down_bias;
          if (bias.empty()) {
            for (int64_t i = 0; i < H; ++i) dst[i] += wt * src[i];
          } else {
            for (int64_t i = 0; i < H; ++i) dst[i] += wt * (src[i] + bias[i]);
          }
        }
      }
    });
  }

  const LayerConfig &config_;
  const LayerWeights &weights_;
  const cpu::GemmKind gemm_;
  mutable ThreadPool pool_;
};

}  // namespace

std::string cpu_device_description(int64_t threads) {
  const auto kind = cpu::blas_available() ? cpu::GemmKind::Blas : cpu::GemmKind::BuiltIn;
  return "cpu: " + std::to_string(pool_threads(threads)) + " threads, " + cpu::gemm_description(kind);
}

std::unique_ptr<Backend> make_cpu_backend(const LayerConfig &config, const LayerWeights &weights) {
  return std::make_unique<CpuBackend>(config, weights);
}

}  // namespace pimoe
