// SPDX-License-Identifier: MIT
// Offline pruning (pimoe_prune): the calibration run, the choice of experts or channels, and the pruned copy, built
// through the model's ordinary constructor with a filler that copies the kept rows, columns and entries of each
// source tensor (a compact matrix's codes unchanged).
#include "prune.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <unordered_map>

#include "error.h"
#include "splitmix64.h"

namespace pimoe {
namespace {

struct CalibrationRun {
  std::vector<float> y;       // [tokens, H]
  std::vector<double> mass;   // [E]: routing weight each expert received
};

CalibrationRun run_calibration(Model &m, const PruneRequest &r) {
  const LayerConfig &c = m.config();
  const int64_t E = c.router.num_experts, slots = c.router.slots(), T = r.tokens;
  CalibrationRun run;
  run.y.resize(static_cast<size_t>(T * c.hidden));
  std::vector<int32_t> ids(static_cast<size_t>(T * slots));
  std::vector<float> weights(ids.size());
  std::vector<uint8_t> dropped(ids.size());
  RoutingOutputs out;
  out.ids = ids.data();
  out.weights = weights.data();
  out.dropped = dropped.data();
  m.forward(r.calibration, 1, T, run.y.data(), out, nullptr, "pimoe_prune");
  run.mass.assign(static_cast<size_t>(E), 0.0);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= 0 && ids[i] < E && !dropped[i]) run.mass[static_cast<size_t>(ids[i])] += weights[i];
  }
  return run;
}

// Indices 0..n-1 without the `drop` that come first in `order` (a permutation), ascending.
std::vector<int64_t> kept_after_dropping_first(const std::vector<int64_t> &order, int64_t drop) {
  std::vector<int64_t> kept(order.begin() + drop, order.end());
  std::sort(kept.begin(), kept.end());
  return kept;
}

// The indices ordered by score, lowest first, ties the higher index first.
std::vector<int64_t> lowest_first(const std::vector<double> &score) {
  std::vector<int64_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    const double sa = score[static_cast<size_t>(a)], sb = score[static_cast<size_t>(b)];
    return sa != sb ? sa < sb : a > b;
  });
  return order;
}

// The Euclidean norm of `count` elements of m from `first`, `step` apart (a row: step 1; a column: step cols).
double norm_of(const std::vector<float> &m, int64_t first, int64_t count, int64_t step) {
  double sum = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    const double v = m[static_cast<size_t>(first + i * step)];
    sum += v * v;
  }
  return std::sqrt(sum);
}

std::vector<float> read_all(const Model &m, const NamedTensor &t) {
  std::vector<float> v(static_cast<size_t>(t.element_count()));
  m.read_tensor(t, v.data());
  return v;
}

const NamedTensor &tensor_named(const Model &m, const std::string &name) {
  const NamedTensor *t = m.find_tensor(name);
  if (!t) fail(PIMOE_ERR_INTERNAL, "pimoe_prune: the source has no tensor '", name, "'");
  return *t;
}

// What the copy keeps: the routed experts (source indices, in order) and, per kept expert, its channels (empty: all).
struct Selection {
  std::vector<int64_t> experts;
  std::vector<std::vector<int64_t>> channels;
};

Selection select_experts(const Model &m, const PruneRequest &r, const std::vector<double> &mass) {
  const LayerConfig &c = m.config();
  const int64_t E = c.router.num_experts;
  if (c.router.num_groups > 1 || !c.router.group_levels.empty()) {
    fail(PIMOE_ERR_UNSUPPORTED, "pimoe_prune: dropping experts would break the layer's expert groups (num_groups ",
         c.router.num_groups, c.router.group_levels.empty() ? "" : ", group_levels", "); drop channels instead");
  }
  if (c.router.has_callback_experts) {
    fail(PIMOE_ERR_UNSUPPORTED, "pimoe_prune: the layer has callback experts, which a pruned copy cannot renumber");
  }
  const auto drop = std::max<int64_t>(1, std::llround(r.fraction * static_cast<double>(E)));
  const int64_t least = c.router.expert_choice ? 1 : c.router.top_k;
  if (E - drop < least) {
    fail(PIMOE_ERR_INVALID_ARGUMENT, "pimoe_prune: dropping ", drop, " of ", E, " experts (fraction ", r.fraction,
         ") leaves fewer than top_k = ", least);
  }
  Selection s;
  s.experts = r.method == PIMOE_PRUNE_EXPERTS_BY_MASS ? experts_kept_by_mass(mass, drop)
                                                      : experts_kept_at_random(E, drop, r.seed);
  s.channels.assign(s.experts.size(), {});
  return s;
}

Selection select_channels(const Model &m, const PruneRequest &r) {
  const LayerConfig &c = m.config();
  const int64_t E = c.router.num_experts, H = c.hidden;
  Selection s;
  for (int64_t e = 0; e < E; ++e) {
    const ExpertSpec &spec = c.experts[static_cast<size_t>(e)];
    s.experts.push_back(e);
    s.channels.emplace_back();
    if (spec.callback) continue;
    const WeightDtype d = spec.format.dtype;
    if (d != WeightDtype::F32 && d != WeightDtype::BF16 && d != WeightDtype::F16) {
      fail(PIMOE_ERR_UNSUPPORTED, "pimoe_prune: expert ", e, " holds '", spec.format.name(),
           "', whose scales cover its channels together; channels can be dropped from fp32, bf16 and fp16 experts");
    }
    const std::string prefix = "experts." + std::to_string(e) + ".";
    const int64_t I = spec.intermediate;
    const std::vector<float> up = read_all(m, tensor_named(m, prefix + "up.weight"));
    const std::vector<float> down = read_all(m, tensor_named(m, prefix + "down.weight"));
    std::vector<float> gate;
    if (spec.gated()) gate = read_all(m, tensor_named(m, prefix + "gate.weight"));
    std::vector<double> score(static_cast<size_t>(I));
    for (int64_t j = 0; j < I; ++j) {
      double v = norm_of(up, j * H, H, 1) * norm_of(down, j, H, I);  // row j of up [I, H], column j of down [H, I]
      if (spec.gated()) v *= norm_of(gate, j * H, H, 1);
      score[static_cast<size_t>(j)] = v;
    }
    const int64_t wanted = std::max<int64_t>(1, std::llround(r.fraction * static_cast<double>(I)));
    const int64_t drop = std::min<int64_t>(I - 1, wanted);  // at least one channel stays
    s.channels.back() = channels_kept_by_score(score, drop);
  }
  return s;
}

// The copy's config: the source's, with the kept experts renumbered and their widths.
LayerConfig pruned_config(const LayerConfig &c, const Selection &s) {
  LayerConfig p = c;
  p.experts.clear();
  p.callbacks.clear();
  p.router.callback_expert.clear();
  for (size_t i = 0; i < s.experts.size(); ++i) {
    ExpertSpec spec = c.experts[static_cast<size_t>(s.experts[i])];
    if (!s.channels[i].empty()) spec.intermediate = static_cast<int64_t>(s.channels[i].size());
    p.experts.push_back(spec);
    if (!c.router.callback_expert.empty()) {
      p.router.callback_expert.push_back(c.router.callback_expert[static_cast<size_t>(s.experts[i])]);
    }
    if (!c.callbacks.empty()) p.callbacks.push_back(c.callbacks[static_cast<size_t>(s.experts[i])]);
  }
  p.router.num_experts = static_cast<int64_t>(s.experts.size());
  return p;
}

// Copies tensor `from` of the source into `to` of the copy: rows `rows` (empty: all) of a [rows, cols] matrix or of
// a vector, then columns `cols_kept` (empty: all).
void copy_tensor(const Model &source, const NamedTensor &from, const NamedTensor &to,
                 const std::vector<int64_t> &rows, const std::vector<int64_t> &cols_kept) {
  if (rows.empty() && cols_kept.empty() && to.compact && from.format == to.format) {
    mark_quantised_source(to);  // the codes as they are: the fp32 weights they came from are not at hand
    *to.compact = source.read_compact(from);
    return;
  }
  const std::vector<float> v = read_all(source, from);
  const int64_t in_cols = from.shape.size() == 2 ? from.shape[1] : 1;
  const int64_t in_rows = from.shape.empty() ? 1 : from.shape[0];
  std::vector<float> &out = fill_buffer(to);
  size_t k = 0;
  const int64_t nrows = rows.empty() ? in_rows : static_cast<int64_t>(rows.size());
  const int64_t ncols = cols_kept.empty() ? in_cols : static_cast<int64_t>(cols_kept.size());
  for (int64_t i = 0; i < nrows; ++i) {
    const int64_t r = rows.empty() ? i : rows[static_cast<size_t>(i)];
    for (int64_t j = 0; j < ncols; ++j) {
      const int64_t col = cols_kept.empty() ? j : cols_kept[static_cast<size_t>(j)];
      out[k++] = v[static_cast<size_t>(r * in_cols + col)];
    }
  }
  if (k != out.size()) fail(PIMOE_ERR_INTERNAL, "pimoe_prune: tensor '", to.name, "' copied ", k, " of ", out.size());
  if (from.format.compact()) mark_quantised_source(to);
  finish_filling(to);
}

// The source tensor of the copy's tensor `name`, and which rows and columns of it the copy keeps.
struct Source {
  std::string name;
  std::vector<int64_t> rows, cols;
};

Source source_of(const std::string &name, const Selection &s) {
  static const char *const kPerExpert[] = {"router.weight", "router.bias", "router.selection_bias",
                                           "router.load_ema"};
  for (const char *n : kPerExpert) {
    if (name == n) return {name, s.experts, {}};
  }
  const std::string prefix = "experts.";
  if (name.compare(0, prefix.size(), prefix) != 0) return {name, {}, {}};
  const size_t dot = name.find('.', prefix.size());
  const auto i = static_cast<size_t>(std::stoll(name.substr(prefix.size(), dot - prefix.size())));
  const std::string part = name.substr(dot + 1);
  Source src{prefix + std::to_string(s.experts[i]) + "." + part, {}, {}};
  const std::vector<int64_t> &channels = s.channels[i];
  if (part == "gate.weight" || part == "up.weight" || part == "gate.bias" || part == "up.bias") src.rows = channels;
  if (part == "down.weight") src.cols = channels;
  return src;
}

double relative_rms(const std::vector<float> &got, const std::vector<float> &want) {
  double diff = 0.0, ref = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    diff += d * d;
    ref += static_cast<double>(want[i]) * want[i];
  }
  if (ref == 0.0) return diff == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(diff / ref);
}

int64_t channel_sum(const LayerConfig &c) {
  int64_t sum = 0;
  for (const ExpertSpec &e : c.experts) sum += e.callback ? 0 : e.intermediate;
  return sum;
}

}  // namespace

std::vector<int64_t> experts_kept_by_mass(const std::vector<double> &mass, int64_t drop) {
  return kept_after_dropping_first(lowest_first(mass), drop);
}

std::vector<int64_t> experts_kept_at_random(int64_t experts, int64_t drop, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(experts));
  std::iota(order.begin(), order.end(), 0);
  SplitMix64 rng(seed);
  for (int64_t i = experts - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(i + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return kept_after_dropping_first(order, drop);
}

std::vector<int64_t> channels_kept_by_score(const std::vector<double> &score, int64_t drop) {
  return kept_after_dropping_first(lowest_first(score), drop);
}

std::unique_ptr<pimoe_model> prune_layer(Model &source, const PruneRequest &request, pimoe_prune_report &report) {
  const LayerConfig &c = source.config();
  const size_t bytes_before = source.weight_bytes();
  const CalibrationRun original = run_calibration(source, request);
  const Selection s = request.method == PIMOE_PRUNE_CHANNELS_BY_NORM ? select_channels(source, request)
                                                                    : select_experts(source, request, original.mass);
  const LayerConfig config = pruned_config(c, s);
  const WeightFiller fill = [&](const std::vector<NamedTensor> &tensors) {
    for (const NamedTensor &t : tensors) {
      const Source src = source_of(t.name, s);
      copy_tensor(source, tensor_named(source, src.name), t, src.rows, src.cols);
    }
  };
  auto pruned = std::make_unique<pimoe_model>(config, fill);
  const CalibrationRun after = run_calibration(pruned->model, request);
  report.experts_before = static_cast<int32_t>(c.router.num_experts);
  report.experts_after = static_cast<int32_t>(config.router.num_experts);
  report.channels_before = channel_sum(c);
  report.channels_after = channel_sum(config);
  report.weight_bytes_before = bytes_before;
  report.weight_bytes_after = pruned->model.weight_bytes();
  report.output_error = relative_rms(after.y, original.y);
  return pruned;
}

}  // namespace pimoe
