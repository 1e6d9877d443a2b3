// SPDX-License-Identifier: MIT
// The expert matrices' storage step between filling a layer and handing it to a backend.
#include <string>

#include "error.h"
#include "weights.h"

namespace pimoe {

std::vector<float> &fill_buffer(const NamedTensor &t) {
  if (t.data->empty()) t.data->assign(static_cast<size_t>(t.element_count()), 0.0f);
  return *t.data;
}

void finish_filling(const NamedTensor &t) {
  if (!t.compact || !t.compact->empty()) return;  // fp32, or filled in its format already (a loaded file)
  try {
    *t.compact = quantize_matrix(fill_buffer(t).data(), t.shape[0], t.shape[1], t.format);
  } catch (const Error &e) {
    fail(e.status(), "tensor '", t.name, "': ", e.what());
  }
  if (t.quant_error) t.quant_error->add(t.data->data(), *t.compact);
  std::vector<float>().swap(*t.data);
}

void mark_quantised_source(const NamedTensor &t) {
  if (t.quant_error) t.quant_error->mark_unknown();
}

void compact_matrices(const std::vector<NamedTensor> &tensors) {
  for (const NamedTensor &t : tensors) finish_filling(t);
}

void require_one_format_per_layer(const LayerConfig &config, const char *backend) {
  const WeightFormat &f = config.weight_format;
  for (size_t e = 0; e < config.experts.size(); ++e) {
    const ExpertSpec &spec = config.experts[e];
    if (!spec.callback && spec.format != f) {
      fail(PIMOE_ERR_UNSUPPORTED, "backend '", backend, "' holds one weight_dtype per layer; expert ", e, " has '",
           spec.format.name(), "' in a layer of '", f.name(), "' (per-expert formats run on the cpu backend)");
    }
  }
}

void expand_for_float_backend(const LayerConfig &config, LayerWeights &weights, const char *backend) {
  const WeightFormat &f = config.weight_format;
  if (f.dtype != WeightDtype::F32 && f.dtype != WeightDtype::BF16 && f.dtype != WeightDtype::F16) {
    fail(PIMOE_ERR_UNSUPPORTED, "backend '", backend, "' holds expert weights in fp32, bf16 or fp16; weight_dtype '",
         f.name(), "' runs on the cpu backend");
  }
  require_one_format_per_layer(config, backend);
  auto expand = [](std::vector<float> &v, CompactMatrix &m) {
    if (m.empty()) return;
    v.resize(static_cast<size_t>(m.rows * m.cols));
    m.dequantize_rows(0, m.rows, v.data());  // exact: bf16 and fp16 values are fp32 values
    m = CompactMatrix();
  };
  auto expand_expert = [&](ExpertWeights &w) {
    expand(w.gate_weight, w.gate_compact);
    expand(w.up_weight, w.up_compact);
    expand(w.down_weight, w.down_compact);
  };
  for (ExpertWeights &w : weights.experts) expand_expert(w);
  expand_expert(weights.shared);
}

}  // namespace pimoe
