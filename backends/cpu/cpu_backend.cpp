// SPDX-License-Identifier: MIT
#include "cpu_backend.h"

#include <algorithm>
#include <memory>
#include <cmath>
#include <thread>
#include <unordered_map>
#include <vector>

#include "activation.h"
#include "compact_panels.h"
#include "cpu_isa.h"
#include "gemm.h"
#include "packed_gemm.h"
#include "src/error.h"
#include "src/thread_pool.h"

namespace pimoe {
namespace {

int pool_threads(int64_t requested) {
  return requested > 0 ? static_cast<int>(requested)
                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// One work item of a packed projection: rows [row0, row0+rows) of `expert`, output panels [panel0, panel1).
struct Tile {
  int64_t expert, row0, rows, panel0, panel1;
};

// Tile sizes: a row block's inputs (36 x 256 floats per depth block; 36 = six 6-row micro-tiles) stay in L2 while
// the weight panels stream through L1.
constexpr int64_t kTileRows = 36;
// Compact weights dequantise each panel block once per tile: taller tiles (144 rows of inputs, 144 KB per depth
// block, still within L2) spread that work over four times the rows.
constexpr int64_t kCompactTileRows = 4 * kTileRows;
constexpr int64_t kTilePanels = 8;

struct ExpertPacked {
  cpu::PanelMatrix gate, up, down;
};

// The rows one expert pass runs: rows grouped by expert (expert e owns rows offsets[e] .. offsets[e+1]), each the
// input token row_token[p]; plus, with `shared`, the shared expert on every token of the call.
struct Groups {
  int64_t experts = 0;
  const int64_t *offsets = nullptr;  // [experts + 1]
  const int64_t *row_token = nullptr;
  const int32_t *row_expert = nullptr;
  int64_t tokens = 0;
  bool shared = false;

  int64_t count(int64_t e) const { return offsets[e + 1] - offsets[e]; }
  int64_t rows() const { return offsets[experts]; }
};

struct CpuScratch final : BackendScratch {
  const float *x = nullptr;            // the call's input (set_input)
  int64_t tokens = 0;
  std::vector<int64_t> row_token;      // [kept] token of each row (run_experts: from the plan)
  std::vector<int32_t> row_expert;     // [kept] expert of each row
  std::vector<int64_t> no_rows;        // [E+1] zeros: run_shared's groups
  std::vector<float> rows;             // [kept, H]  gathered (and normalised) inputs, grouped by expert
  std::vector<float> hidden;           // [sum count_e * I_e]  up projection, then activation
  std::vector<float> gate;             // [sum count_e * I_e]  SwiGLU gate projection
  std::vector<float> out;              // [kept, H]  expert outputs before weighting
  std::vector<int64_t> hidden_offset;  // [E] where expert e's block starts in hidden/gate
  std::vector<Tile> tiles;             // work items of one projection phase
  std::vector<float> shared_hidden;    // [T, Is] shared expert: up projection, then silu(gate) * up
  std::vector<float> shared_gate;      // [T, Is] shared expert: gate projection
  std::vector<float> shared_out;       // [T, H]  shared expert output before its gate
  // The integer path's inputs (int8/int4 matrices, activation_dtype int8): gathered rows, then hidden rows, each
  // quantised (cpu::quantize_rows) to [kept][ld] codes, [kept][ld / 32] block scales and scaled code sums.
  std::vector<int8_t> rows_q, hidden_q;
  std::vector<float> rows_scale, hidden_scale, rows_sums, hidden_sums;
  int64_t rows_ld = 0, hidden_ld = 0;

  size_t bytes() const override {
    return sizeof(*this) + vector_bytes(row_token) + vector_bytes(row_expert) + vector_bytes(no_rows) + vector_bytes(rows) +
           vector_bytes(hidden) + vector_bytes(gate) + vector_bytes(out) + vector_bytes(hidden_offset) +
           vector_bytes(tiles) + vector_bytes(shared_hidden) + vector_bytes(shared_gate) + vector_bytes(shared_out) +
           vector_bytes(rows_q) + vector_bytes(hidden_q) + vector_bytes(rows_scale) + vector_bytes(hidden_scale) +
           vector_bytes(rows_sums) + vector_bytes(hidden_sums);
  }
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(const LayerConfig &config, LayerWeights &weights)
      : config_(config),
        weights_(weights),
        openblas_(config.cpu_gemm == CpuGemm::OpenBlas),
        pool_(pool_threads(config.threads)) {
    if (openblas_ && !cpu::blas_available()) {
      fail(PIMOE_ERR_BACKEND_UNAVAILABLE, "cpu_gemm 'openblas': this build of libpimoe has no OpenBLAS");
    }
    if (openblas_ && config.deterministic) {
      fail(PIMOE_ERR_INVALID_OPTION,
           "deterministic mode needs cpu_gemm 'packed' (OpenBLAS's rounding depends on the number of rows)");
    }
    if (openblas_ && has_compact(weights)) {
      fail(PIMOE_ERR_INVALID_OPTION, "cpu_gemm 'openblas' computes with fp32 weights only (weight_dtype '",
           config.weight_format.name(), "'); use cpu_gemm 'packed'");
    }
    if (!openblas_) pack_weights(weights);
  }

  const char *name() const override { return "cpu"; }

  std::string device_description() const override { return cpu_device_description(pool_.size(), openblas_); }

  std::unique_ptr<BackendScratch> make_scratch() const override { return std::make_unique<CpuScratch>(); }

  bool holds_weight(const NamedTensor &t) const override { return packed_of_.count(t.data) > 0; }

  void read_weight(const NamedTensor &t, float *out) const override { packed_of_.at(t.data)->unpack(out); }

  bool read_compact_weight(const NamedTensor &t, CompactMatrix &out) const override {
    const cpu::PanelMatrix &packed = *packed_of_.at(t.data);
    if (!packed.is_compact()) return false;
    out = packed.compact_panels().to_matrix();
    return true;
  }

  size_t weight_bytes() const override {
    size_t total = 0;
    for (const auto &entry : packed_of_) total += entry.second->bytes();
    return total;
  }

  void set_input(const float *x, int64_t tokens, BackendScratch &base, const DeviceCall *) const override {
    auto &s = static_cast<CpuScratch &>(base);
    s.x = x;
    s.tokens = tokens;
  }

  void router_logits(const float *router_input, float *logits, BackendScratch &base) const override {
    const auto &s = static_cast<const CpuScratch &>(base);
    const float *x = router_input ? router_input : s.x;
    const int64_t H = config_.hidden, E = config_.router.num_experts, tokens = s.tokens;
    if (openblas_) return cpu::blas_gemm_abt(x, weights_.router_weight.data(), logits, tokens, E, H);
    pool_.parallel_for((tokens + kTileRows - 1) / kTileRows, [&](int64_t b) {
      const int64_t r0 = b * kTileRows, rows = std::min(kTileRows, tokens - r0);
      router_packed_.tile(x + r0 * H, H, rows, 0, router_packed_.panels(), logits + r0 * E, E);
    });
  }

  void run_experts(const RoutePlan &plan, float *y, BackendScratch &base) const override {
    auto &s = static_cast<CpuScratch &>(base);
    const int64_t kept = plan.kept(), k = plan.top_k;
    s.row_token.resize(static_cast<size_t>(kept));
    s.row_expert.resize(static_cast<size_t>(kept));
    for (int64_t p = 0; p < kept; ++p) {
      const int64_t a = plan.order[p];
      s.row_token[p] = a / k;
      s.row_expert[p] = plan.expert[a];
    }
    const Groups groups = groups_of(plan.offsets.data(), s.row_token.data(), s, true);
    run_groups(groups, s);
    combine(plan, s, y);
  }

  void run_rows(const ExpertRows &rows, float *out, BackendScratch &base) const override {
    auto &s = static_cast<CpuScratch &>(base);
    const int64_t E = config_.router.num_experts, H = config_.hidden;
    s.row_expert.resize(static_cast<size_t>(rows.count));
    for (int64_t e = 0; e < E; ++e) {
      std::fill(s.row_expert.begin() + rows.offsets[e], s.row_expert.begin() + rows.offsets[e + 1],
                static_cast<int32_t>(e));
    }
    const Groups groups = groups_of(rows.offsets, rows.token, s, false);
    run_groups(groups, s);
    // Each row's expert output: its down projection plus the down bias, unweighted.
    parallel_chunks(rows.count, 8, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float *src = s.out.data() + p * H;
        float *dst = out + p * H;
        const std::vector<float> &bias = expert_weights(s.row_expert[p]).down_bias;
        for (int64_t i = 0; i < H; ++i) dst[i] = bias.empty() ? src[i] : src[i] + bias[i];
      }
    });
  }

  void run_shared(float *y, BackendScratch &base) const override {
    auto &s = static_cast<CpuScratch &>(base);
    const int64_t H = config_.hidden, T = s.tokens;
    if (config_.shared.width == 0) {
      std::fill(y, y + T * H, 0.0f);
      return;
    }
    s.row_token.clear();
    s.row_expert.clear();
    s.no_rows.assign(static_cast<size_t>(config_.router.num_experts + 1), 0);
    const Groups groups = groups_of(s.no_rows.data(), nullptr, s, true);  // the shared expert alone
    run_groups(groups, s);
    parallel_chunks(T, 8, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) add_shared(t, s, y + t * H, true);
    });
  }

 private:
  Groups groups_of(const int64_t *offsets, const int64_t *row_token, const CpuScratch &s, bool shared) const {
    Groups g;
    g.experts = config_.router.num_experts;
    g.offsets = offsets;
    g.row_token = row_token;
    g.row_expert = s.row_expert.data();
    g.tokens = s.tokens;
    g.shared = shared && config_.shared.width > 0;
    return g;
  }

  // Gather, up projection (+ activation) and down projection of every group's rows, and of the shared expert.
  void run_groups(const Groups &g, CpuScratch &s) const {
    const int64_t H = config_.hidden, E = g.experts, kept = g.rows();
    s.hidden_offset.resize(static_cast<size_t>(E));
    int64_t hidden_total = 0;
    bool any_gated = false;
    for (int64_t e = 0; e < E; ++e) {
      s.hidden_offset[e] = hidden_total;
      hidden_total += g.count(e) * spec(e).intermediate;
      any_gated = any_gated || (g.count(e) > 0 && spec(e).gated());
    }
    s.rows.resize(static_cast<size_t>(kept * H));
    s.out.resize(static_cast<size_t>(kept * H));
    s.hidden.resize(static_cast<size_t>(hidden_total));
    if (any_gated) s.gate.resize(static_cast<size_t>(hidden_total));
    const int64_t Is = g.shared ? config_.shared.width : 0, T = g.tokens;
    if (Is > 0) {
      s.shared_hidden.resize(static_cast<size_t>(T * Is));
      s.shared_gate.resize(static_cast<size_t>(T * Is));
      s.shared_out.resize(static_cast<size_t>(T * H));
    }

    gather(g, s.x, s);
    if (int_up_) quantize_gathered(g, s);
    if (openblas_) {
      for (int64_t e = 0; e < E; ++e) {
        if (g.count(e) > 0) run_expert_openblas(g, e, s);
      }
      if (Is > 0) run_shared_openblas(s.x, T, s);
    } else {
      up_projection(g, s.x, s);
      if (int_down_) quantize_hidden(g, s);
      down_projection(g, s);
    }
  }

  const ExpertSpec &spec(int64_t e) const { return config_.experts[static_cast<size_t>(e)]; }
  const ExpertWeights &expert_weights(int64_t e) const { return weights_.experts[static_cast<size_t>(e)]; }

  // Tiles name the shared expert (when the layer has one) as expert index E: all T tokens of the call, SwiGLU.
  int64_t tile_rows(int64_t e) const { return packed(e).up.is_compact() ? kCompactTileRows : kTileRows; }

  static bool has_compact(const LayerWeights &w) {
    for (const ExpertWeights &e : w.experts) {
      if (!e.up_compact.empty()) return true;
    }
    return !w.shared.up_compact.empty();
  }

  bool is_shared(int64_t e) const { return e == config_.router.num_experts; }
  const ExpertPacked &packed(int64_t e) const { return is_shared(e) ? shared_packed_ : packed_[e]; }

  // Packs a projection's weights into the kernels' panels and frees the layer's copy right away (the fp32 matrix,
  // or the compact one), so that packing never holds two full copies (pimoe_tensor_read unpacks via read_weight()).
  void pack(std::vector<float> &w, CompactMatrix &compact, int64_t n, int64_t k, cpu::PanelMatrix &packed) {
    if (!compact.empty()) {
      packed = cpu::PanelMatrix(cpu::CompactPanels(compact, arena_.get()),
                                config_.activation_dtype == ActivationDtype::Int8);
      compact = CompactMatrix();
    } else {
      packed = cpu::PanelMatrix(cpu::PackedWeight(w.data(), n, k, arena_.get()));
      std::vector<float>().swap(w);
    }
    packed_of_[&w] = &packed;
  }

  // Calls fn(weight, compact, rows, depth, packed) for every projection the backend packs.
  template <typename Fn>
  void for_each_projection(LayerWeights &weights, Fn fn) {
    const int64_t H = config_.hidden;
    CompactMatrix fp32_router;  // the router is always fp32
    fn(weights.router_weight, fp32_router, config_.router.num_experts, H, router_packed_);
    packed_.resize(weights.experts.size());
    for (size_t e = 0; e < packed_.size(); ++e) {
      ExpertWeights &w = weights.experts[e];
      const int64_t I = config_.experts[e].intermediate;
      if (config_.experts[e].gated()) fn(w.gate_weight, w.gate_compact, I, H, packed_[e].gate);
      if (config_.experts[e].callback) continue;
      fn(w.up_weight, w.up_compact, I, H, packed_[e].up);
      fn(w.down_weight, w.down_compact, H, I, packed_[e].down);
    }
    if (config_.shared.width > 0) {
      const int64_t Is = config_.shared.width;
      ExpertWeights &w = weights.shared;
      fn(w.gate_weight, w.gate_compact, Is, H, shared_packed_.gate);
      fn(w.up_weight, w.up_compact, Is, H, shared_packed_.up);
      fn(w.down_weight, w.down_compact, H, Is, shared_packed_.down);
    }
  }

  // One arena for the whole layer (weight_arena.h: huge pages), sized first, then filled projection by projection.
  void pack_weights(LayerWeights &weights) {
    size_t bytes = 0;
    for_each_projection(weights, [&](std::vector<float> &, CompactMatrix &compact, int64_t n, int64_t k,
                                     cpu::PanelMatrix &) {
      bytes += compact.empty() ? cpu::PackedWeight::arena_bytes(n, k)
                               : cpu::CompactPanels::arena_bytes(compact.format, n, k);
    });
    arena_ = std::make_unique<cpu::WeightArena>(bytes);
    for_each_projection(weights, [&](std::vector<float> &w, CompactMatrix &compact, int64_t n, int64_t k,
                                     cpu::PanelMatrix &packed) { pack(w, compact, n, k, packed); });
    for (const ExpertPacked &p : packed_) {
      int_up_ = int_up_ || p.up.int_path();
      int_down_ = int_down_ || p.down.int_path();
    }
  }

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

  // The integer path's inputs: every gathered row quantised (routed experts; the shared expert reads fp32 x).
  void quantize_gathered(const Groups &g, CpuScratch &s) const {
    const int64_t H = config_.hidden, kept = g.rows(), ld = cpu::quantized_ld(H);
    s.rows_ld = ld;
    s.rows_q.resize(static_cast<size_t>(kept * ld));
    s.rows_scale.resize(static_cast<size_t>(kept * ld / 32));
    s.rows_sums.resize(static_cast<size_t>(kept * ld / 32));
    parallel_chunks(kept, 16, [&](int64_t begin, int64_t end) {
      cpu::quantize_rows(s.rows.data() + begin * H, H, end - begin, H, s.rows_q.data() + begin * ld, ld,
                         s.rows_scale.data() + begin * (ld / 32), s.rows_sums.data() + begin * (ld / 32));
    });
  }

  // The hidden rows (after the activation) quantised for the down projection, at the widest width's stride.
  void quantize_hidden(const Groups &g, CpuScratch &s) const {
    const int64_t kept = g.rows();
    int64_t widest = 0;
    for (int64_t e = 0; e < g.experts; ++e) {
      if (g.count(e) > 0) widest = std::max(widest, spec(e).intermediate);
    }
    const int64_t ld = cpu::quantized_ld(widest);
    s.hidden_ld = ld;
    s.hidden_q.resize(static_cast<size_t>(kept * ld));
    s.hidden_scale.resize(static_cast<size_t>(kept * ld / 32));
    s.hidden_sums.resize(static_cast<size_t>(kept * ld / 32));
    parallel_chunks(kept, 16, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const int64_t e = g.row_expert[p], I = spec(e).intermediate;
        if (!packed_[e].down.int_path()) continue;
        cpu::quantize_rows(s.hidden.data() + s.hidden_offset[e] + (p - g.offsets[e]) * I, I, 1, I,
                           s.hidden_q.data() + p * ld, ld, s.hidden_scale.data() + p * (ld / 32),
                           s.hidden_sums.data() + p * (ld / 32));
      }
    });
  }

  static cpu::QuantizedRows quantized(const std::vector<int8_t> &q, const std::vector<float> &scale,
                                      const std::vector<float> &sums, int64_t ld, int64_t row) {
    return {q.data() + row * ld, ld, scale.data() + row * (ld / 32), sums.data() + row * (ld / 32)};
  }

  void gather(const Groups &g, const float *x, CpuScratch &s) const {
    const int64_t H = config_.hidden;
    const float eps = static_cast<float>(config_.layer_norm_eps);
    parallel_chunks(g.rows(), 16, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float *src = x + g.row_token[p] * H;
        float *dst = s.rows.data() + p * H;
        const int64_t e = g.row_expert[p];
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

  // Every expert's (row block, panel group) tiles of a projection with `panels(e)` output panels, in one list, so a
  // single parallel loop covers all experts (the "grouped GEMM" of the fast MoE engines).
  template <typename Panels>
  void make_tiles(const Groups &g, Panels panels, std::vector<Tile> &tiles) const {
    tiles.clear();
    for (int64_t e = 0; e < g.experts; ++e) {
      const int64_t P = panels(e), count = g.count(e), tr = tile_rows(e);
      for (int64_t r = 0; r < count; r += tr) {
        for (int64_t p = 0; p < P; p += kTilePanels) {
          tiles.push_back({e, r, std::min(tr, count - r), p, std::min(P, p + kTilePanels)});
        }
      }
    }
    if (g.shared) {  // the shared expert's tiles join the same list: one parallel loop for all
      const int64_t e = g.experts, P = panels(e), tr = tile_rows(e);
      for (int64_t r = 0; r < g.tokens; r += tr) {
        for (int64_t p = 0; p < P; p += kTilePanels) {
          tiles.push_back({e, r, std::min(tr, g.tokens - r), p, std::min(P, p + kTilePanels)});
        }
      }
    }
  }

  // Applies the expert's activation (gated: glu(gate + gate bias, up + up bias)) to `rows` rows of `cols` columns
  // starting at col0.
  void activate_rows(int64_t e, float *hidden, const float *gate, int64_t rows, int64_t col0, int64_t cols) const {
    const int64_t I = spec(e).intermediate;
    const std::vector<float> &bias = expert_weights(e).up_bias;
    if (spec(e).gated()) {
      const std::vector<float> &gate_bias = expert_weights(e).gate_bias;
      const float *gb = gate_bias.empty() ? nullptr : gate_bias.data() + col0;
      const float *ub = bias.empty() ? nullptr : bias.data() + col0;
      const auto alpha = static_cast<float>(config_.swiglu_alpha), limit = static_cast<float>(config_.swiglu_limit);
      for (int64_t r = 0; r < rows; ++r) {
        cpu::glu(spec(e).activation, gate + r * I + col0, hidden + r * I + col0, cols, gb, ub, alpha, limit);
      }
      return;
    }
    for (int64_t r = 0; r < rows; ++r) {
      cpu::activate(spec(e).activation, hidden + r * I + col0, bias.empty() ? nullptr : bias.data() + col0, cols, cols);
    }
  }

  // hidden = act(rows * up^T + bias), or silu(rows * gate^T) * (rows * up^T), tile by tile while it is in cache.
  void up_projection(const Groups &g, const float *x, CpuScratch &s) const {
    const int64_t H = config_.hidden;
    make_tiles(
        g, [&](int64_t e) { return packed(e).up.panels(); }, s.tiles);
    pool_.parallel_for(static_cast<int64_t>(s.tiles.size()), [&](int64_t i) {
      const Tile &t = s.tiles[static_cast<size_t>(i)];
      if (is_shared(t.expert)) return shared_up_tile(t, x, s);
      const int64_t I = spec(t.expert).intermediate;
      const float *rows = s.rows.data() + (g.offsets[t.expert] + t.row0) * H;
      float *hidden = s.hidden.data() + s.hidden_offset[t.expert] + t.row0 * I;
      float *gate = spec(t.expert).gated() ? s.gate.data() + s.hidden_offset[t.expert] + t.row0 * I : nullptr;
      const ExpertPacked &w = packed_[t.expert];
      if (w.up.int_path()) {
        const cpu::QuantizedRows q =
            quantized(s.rows_q, s.rows_scale, s.rows_sums, s.rows_ld, g.offsets[t.expert] + t.row0);
        w.up.tile_int(q, t.rows, t.panel0, t.panel1, hidden, I);
        if (gate) w.gate.tile_int(q, t.rows, t.panel0, t.panel1, gate, I);
      } else {
        w.up.tile(rows, H, t.rows, t.panel0, t.panel1, hidden, I);
        if (gate) w.gate.tile(rows, H, t.rows, t.panel0, t.panel1, gate, I);
      }
      const int64_t col0 = t.panel0 * cpu::kPanelWidth;
      activate_rows(t.expert, hidden, gate, t.rows, col0, std::min(I, t.panel1 * cpu::kPanelWidth) - col0);
    });
  }

  // The shared expert's up tile: silu(x * gate^T) * (x * up^T) on the call's tokens as they are (no norm).
  void shared_up_tile(const Tile &t, const float *x, CpuScratch &s) const {
    const int64_t H = config_.hidden, Is = config_.shared.width;
    const float *rows = x + t.row0 * H;
    float *hidden = s.shared_hidden.data() + t.row0 * Is;
    float *gate = s.shared_gate.data() + t.row0 * Is;
    shared_packed_.up.tile(rows, H, t.rows, t.panel0, t.panel1, hidden, Is);
    shared_packed_.gate.tile(rows, H, t.rows, t.panel0, t.panel1, gate, Is);
    const int64_t col0 = t.panel0 * cpu::kPanelWidth, cols = std::min(Is, t.panel1 * cpu::kPanelWidth) - col0;
    for (int64_t r = 0; r < t.rows; ++r) cpu::swiglu(gate + r * Is + col0, hidden + r * Is + col0, cols);
  }

  // out = hidden * down^T (the down bias is added in the combine).
  void down_projection(const Groups &g, CpuScratch &s) const {
    const int64_t H = config_.hidden;
    make_tiles(
        g, [&](int64_t e) { return packed(e).down.panels(); }, s.tiles);
    pool_.parallel_for(static_cast<int64_t>(s.tiles.size()), [&](int64_t i) {
      const Tile &t = s.tiles[static_cast<size_t>(i)];
      if (is_shared(t.expert)) {
        const int64_t Is = config_.shared.width;
        shared_packed_.down.tile(s.shared_hidden.data() + t.row0 * Is, Is, t.rows, t.panel0, t.panel1,
                              s.shared_out.data() + t.row0 * H, H);
        return;
      }
      const int64_t I = spec(t.expert).intermediate;
      const float *hidden = s.hidden.data() + s.hidden_offset[t.expert] + t.row0 * I;
      float *out = s.out.data() + (g.offsets[t.expert] + t.row0) * H;
      const cpu::PanelMatrix &down = packed_[t.expert].down;
      if (down.int_path()) {
        const cpu::QuantizedRows q =
            quantized(s.hidden_q, s.hidden_scale, s.hidden_sums, s.hidden_ld, g.offsets[t.expert] + t.row0);
        return down.tile_int(q, t.rows, t.panel0, t.panel1, out, H);
      }
      down.tile(hidden, I, t.rows, t.panel0, t.panel1, out, H);
    });
  }

  // One expert with OpenBLAS: one sgemm per projection (OpenBLAS threads inside it), activation on the pool.
  void run_expert_openblas(const Groups &g, int64_t e, CpuScratch &s) const {
    const int64_t H = config_.hidden, I = spec(e).intermediate, M = g.count(e);
    const ExpertWeights &w = expert_weights(e);
    const float *rows = s.rows.data() + g.offsets[e] * H;
    float *hidden = s.hidden.data() + s.hidden_offset[e];
    float *gate = spec(e).gated() ? s.gate.data() + s.hidden_offset[e] : nullptr;
    cpu::blas_gemm_abt(rows, w.up_weight.data(), hidden, M, I, H);
    if (gate) cpu::blas_gemm_abt(rows, w.gate_weight.data(), gate, M, I, H);
    parallel_chunks(M, 8, [&](int64_t begin, int64_t end) {
      activate_rows(e, hidden + begin * I, gate ? gate + begin * I : nullptr, end - begin, 0, I);
    });
    cpu::blas_gemm_abt(hidden, w.down_weight.data(), s.out.data() + g.offsets[e] * H, M, H, I);
  }

  // The shared expert with OpenBLAS on all T tokens: gate and up sgemms, SwiGLU on the pool, down sgemm.
  void run_shared_openblas(const float *x, int64_t T, CpuScratch &s) const {
    const int64_t H = config_.hidden, Is = config_.shared.width;
    const ExpertWeights &w = weights_.shared;
    cpu::blas_gemm_abt(x, w.up_weight.data(), s.shared_hidden.data(), T, Is, H);
    cpu::blas_gemm_abt(x, w.gate_weight.data(), s.shared_gate.data(), T, Is, H);
    parallel_chunks(T, 8, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        cpu::swiglu(s.shared_gate.data() + r * Is, s.shared_hidden.data() + r * Is, Is);
      }
    });
    cpu::blas_gemm_abt(s.shared_hidden.data(), w.down_weight.data(), s.shared_out.data(), T, H, Is);
  }

  // y[t] = sum_j weight(t, j) * (out[position(t, j)] + down_bias), slots in order, so that a token's result does not
  // depend on the thread count or on the other tokens in the call; then + g(x_t) * shared(x_t) when the layer has a
  // shared expert (g = 1, or sigmoid(shared.score.weight . x_t)).
  void combine(const RoutePlan &plan, const CpuScratch &s, float *y) const {
    const int64_t H = config_.hidden, k = plan.top_k;
    const bool shared = config_.shared.width > 0;
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
        if (shared) add_shared(t, s, dst, false);
      }
    });
  }

  // dst += g(x_t) * shared(x_t) (g = 1, or sigmoid(shared.score.weight . x_t)); with `clear`, dst starts at 0.
  void add_shared(int64_t t, const CpuScratch &s, float *dst, bool clear) const {
    const int64_t H = config_.hidden;
    if (clear) std::fill(dst, dst + H, 0.0f);
    float g = 1.0f;
    if (config_.shared.gated) {
      const float *score = weights_.shared_score_weight.data();
      const float *xt = s.x + t * H;
      double dot = 0.0;
      for (int64_t i = 0; i < H; ++i) dot += static_cast<double>(score[i]) * xt[i];
      g = static_cast<float>(1.0 / (1.0 + std::exp(-dot)));
    }
    const float *src = s.shared_out.data() + t * H;
    for (int64_t i = 0; i < H; ++i) dst[i] += g * src[i];
  }

  const LayerConfig &config_;
  const LayerWeights &weights_;
  const bool openblas_;
  mutable ThreadPool pool_;
  std::unique_ptr<cpu::WeightArena> arena_;  // the panels' bytes: declared before them, so it outlives them
  cpu::PanelMatrix router_packed_;
  std::vector<ExpertPacked> packed_;
  ExpertPacked shared_packed_;
  bool int_up_ = false, int_down_ = false;  // some routed expert's up (gate) / down matrix is on the integer path
  std::unordered_map<const std::vector<float> *, const cpu::PanelMatrix *> packed_of_;
};

}  // namespace

std::string cpu_device_description(int64_t threads, bool openblas) {
  std::string gemm = openblas ? cpu::blas_description() : std::string("packed GEMM");
  return "cpu: " + std::to_string(pool_threads(threads)) + " threads, " + gemm + ", kernels " +
         cpu::isa_name(cpu::isa());
}

std::unique_ptr<Backend> make_cpu_backend(const LayerConfig &config, LayerWeights &weights) {
  return std::make_unique<CpuBackend>(config, weights);
}

}  // namespace pimoe
