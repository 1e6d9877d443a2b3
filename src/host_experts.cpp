// SPDX-License-Identifier: MIT
// The parts of a host-routed call that run on the host around the backend: callback experts, the attention combine
// and expert input scaling (pimoe.h documents them).
#include <algorithm>

#include "error.h"
#include "model.h"

namespace pimoe {

// Calls each callback expert once on its gathered rows; callback_out row i holds the output for callback_order[i].
void Model::run_callbacks(const float *x, Workspace &w) {
  const RoutePlan &plan = w.plan;
  HostExtrasScratch &ex = w.extras;
  const int64_t H = config_.hidden, k = plan.top_k;
  const auto rows = static_cast<int64_t>(plan.callback_order.size());
  ex.callback_in.resize(static_cast<size_t>(rows * H));
  ex.callback_out.assign(static_cast<size_t>(rows * H), 0.0f);
  for (int64_t i = 0; i < rows; ++i) {
    const float *src = x + (plan.callback_order[i] / k) * H;
    std::copy(src, src + H, ex.callback_in.data() + i * H);
  }
  for (int64_t begin = 0; begin < rows;) {
    const int32_t e = plan.expert[plan.callback_order[begin]];
    int64_t end = begin;
    while (end < rows && plan.expert[plan.callback_order[end]] == e) ++end;
    const ExpertCallback &cb = config_.callbacks[static_cast<size_t>(e)];
    const int status =
        cb.fn(cb.user_data, e, ex.callback_in.data() + begin * H, end - begin, H, ex.callback_out.data() + begin * H);
    if (status != 0) fail(PIMOE_ERR_CALLBACK, "pimoe_forward: the callback of expert ", e, " returned ", status);
    begin = end;
  }
}

// y += weight * output of every callback assignment (after run_callbacks).
void Model::add_callback_outputs(const RoutePlan &plan, const HostExtrasScratch &ex, float *y) const {
  const int64_t H = config_.hidden, k = plan.top_k;
  for (size_t i = 0; i < plan.callback_order.size(); ++i) {
    const int64_t a = plan.callback_order[i];
    const float wt = plan.weight[a];
    const float *src = ex.callback_out.data() + static_cast<int64_t>(i) * H;
    float *dst = y + (a / k) * H;
    for (int64_t c = 0; c < H; ++c) dst[c] += wt * src[c];
  }
}

// The attention combine (pimoe.h, COMBINE_ATTENTION_DIM): every kept assignment's expert output alone (the
// backend's run_rows over the plan's rows, grouped by expert as the plan is), the shared expert alone (run_shared),
// the callback experts' outputs (run_callbacks, before), then per token the combine weights from attention and the
// weighted sum into y (host memory). Reported weights become w'.
void Model::combine_with_attention(const float *x, Workspace &w, float *y) {
  RoutePlan &plan = w.plan;
  HostExtrasScratch &ex = w.extras;
  const int64_t H = config_.hidden, T = plan.tokens, S = plan.top_k, N = plan.kept();

  ex.row_token.resize(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) ex.row_token[i] = plan.order[i] / S;
  ex.row_out.resize(static_cast<size_t>(N * H));
  if (N > 0) {
    ExpertRows rows;
    rows.count = N;
    rows.token = ex.row_token.data();
    rows.offsets = plan.offsets.data();
    backend_->run_rows(rows, ex.row_out.data(), *w.scratch);
  }
  backend_->run_shared(y, *w.scratch);

  ex.callback_row.assign(static_cast<size_t>(T * S), -1);
  for (size_t i = 0; i < plan.callback_order.size(); ++i) {
    ex.callback_row[plan.callback_order[i]] = static_cast<int64_t>(i);
  }
  ex.slot_outputs.resize(static_cast<size_t>(S));
  ex.slot_weights.resize(static_cast<size_t>(S));
  ex.combined.resize(static_cast<size_t>(S));
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j < S; ++j) {
      const int64_t a = t * S + j;
      const float *o = nullptr;
      if (plan.position[a] >= 0) {
        o = ex.row_out.data() + plan.position[a] * H;
      } else if (ex.callback_row[a] >= 0) {
        o = ex.callback_out.data() + ex.callback_row[a] * H;
      }
      ex.slot_outputs[j] = o;
      ex.slot_weights[j] = o ? plan.weight[a] : 0.0f;
    }
    attention_combine_weights(config_, weights_, x + t * H, ex.slot_outputs.data(), ex.slot_weights.data(), S,
                              ex.combined.data(), ex.combine_q, ex.combine_logit);
    float *dst = y + t * H;
    for (int64_t j = 0; j < S; ++j) {
      const int64_t a = t * S + j;
      if (ex.slot_outputs[j]) plan.weight[a] = ex.combined[j];
      if (!(ex.combined[j] > 0.0f)) continue;
      const float *o = ex.slot_outputs[j];
      for (int64_t c = 0; c < H; ++c) dst[c] += ex.combined[j] * o[c];
    }
  }
}

// Expert input scaling (pimoe.h, EXPERT_INPUT_SCALING): the shared expert of x first (run_shared, while x is the
// backend's input), then the kept assignments' scaled tokens w_a * x_t become the backend's input, one row each in the
// plan's expert order, and run_rows computes each expert on its rows; y (host memory) = shared + the outputs added
// unweighted, per token in slot order.
void Model::run_scaled_input(const float *x, Workspace &w, float *y) {
  const RoutePlan &plan = w.plan;
  HostExtrasScratch &ex = w.extras;
  const int64_t H = config_.hidden, T = plan.tokens, S = plan.top_k, N = plan.kept();
  backend_->run_shared(y, *w.scratch);
  if (N == 0) return;
  ex.callback_in.resize(static_cast<size_t>(N * H));  // the scaled rows (no callback experts with this option)
  ex.row_token.resize(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    const int64_t a = plan.order[i];
    const float wt = plan.weight[a];
    const float *src = x + (a / S) * H;
    float *dst = ex.callback_in.data() + i * H;
    for (int64_t c = 0; c < H; ++c) dst[c] = wt * src[c];
    ex.row_token[i] = i;
  }
  backend_->set_input(ex.callback_in.data(), N, *w.scratch, nullptr);
  ex.row_out.resize(static_cast<size_t>(N * H));
  ExpertRows rows;
  rows.count = N;
  rows.token = ex.row_token.data();
  rows.offsets = plan.offsets.data();
  backend_->run_rows(rows, ex.row_out.data(), *w.scratch);
  for (int64_t t = 0; t < T; ++t) {
    float *dst = y + t * H;
    for (int64_t j = 0; j < S; ++j) {
      const int64_t p = plan.position[t * S + j];
      if (p < 0) continue;
      const float *o = ex.row_out.data() + p * H;
      for (int64_t c = 0; c < H; ++c) dst[c] += o[c];
    }
  }
}

}  // namespace pimoe
