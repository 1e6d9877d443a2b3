// SPDX-License-Identifier: MIT
#include "formats/native_io.h"

#include <cstring>
#include <memory>

#include "error.h"
#include "formats/mapped_file.h"
#include "formats/native_format.h"
#include "formats/safetensors.h"
#include "formats/safetensors_writer.h"

namespace pimoe {

void save_native(const Model &model, const std::string &path) {
  const LayerConfig &config = model.config();
  const std::vector<NamedTensor> &named = model.tensors();
  const std::vector<ExpectedTensor> layout = native_tensor_layout(config);
  if (layout.size() != named.size()) fail(PIMOE_ERR_INTERNAL, "the native layout disagrees with the model's tensors");
  // A compact matrix is read back once, when its values are written, and dropped after its last stored tensor.
  auto current = std::make_shared<CompactMatrix>();
  std::vector<TensorToWrite> tensors;
  for (size_t i = 0; i < named.size(); ++i) {
    const NamedTensor &t = named[i];
    if (t.name != layout[i].name || t.format != layout[i].format) {
      fail(PIMOE_ERR_INTERNAL, "the native layout disagrees at '", t.name, "'");
    }
    const std::vector<StoredTensor> parts = stored_tensors(layout[i]);
    if (!t.format.compact()) {
      tensors.push_back(
          {t.name, DType::F32, t.shape, [&model, &t](void *out) { model.read_tensor(t, static_cast<float *>(out)); }});
      continue;
    }
    for (size_t p = 0; p < parts.size(); ++p) {
      const StoredTensor &part = parts[p];
      const bool last = p + 1 == parts.size();
      tensors.push_back({part.name, part.dtype, part.shape, [&model, &t, current, part, last](void *out) {
                           if (part.part == StoredTensor::Part::Values) *current = model.read_compact(t);
                           const ByteBuffer &bytes = part.part == StoredTensor::Part::Values   ? current->values
                                                     : part.part == StoredTensor::Part::Scales ? current->scales
                                                                                               : current->zeros;
                           if (!bytes.empty()) std::memcpy(out, bytes.data(), bytes.size());
                           if (last) *current = CompactMatrix();
                         }});
    }
  }
  write_safetensors(path, native_metadata(config), tensors);
}

std::unique_ptr<pimoe_model> load_native(const std::string &path, const Options &runtime) {
  // Shared: compact matrices kept in the file's format view its bytes (no copy) until the backend has packed them.
  const auto file = std::make_shared<const SafetensorsFile>(path);
  const SafetensorsView &view = file->view();
  const LayerConfig stored = native_config(view, runtime);
  const LayerConfig config = with_runtime_formats(stored, runtime);
  const int64_t version = native_format_version(view);
  const std::vector<ExpectedTensor> layout = native_tensor_layout(stored, version);
  // What the current version lists and this file's does not: a version-1 file's gated experts' gate and up biases,
  // which are zero (the model's tensors start zero-filled).
  const std::vector<ExpectedTensor> full = native_tensor_layout(stored);
  const WeightFiller fill = [&](const std::vector<NamedTensor> &tensors) {
    // native_tensor_layout mirrors allocate_weights; a drift between them is a bug, caught here, not a bad read.
    if (tensors.size() != full.size()) fail(PIMOE_ERR_INTERNAL, "tensor layout of '", path, "' disagrees");
    size_t next = 0;  // the file's layout is the full one with some tensors left out, in the same order
    for (size_t i = 0; i < tensors.size(); ++i) {
      const NamedTensor &t = tensors[i];
      if (t.name != full[i].name || t.shape != full[i].shape) {
        fail(PIMOE_ERR_INTERNAL, "tensor layout disagrees at '", t.name, "' (expected '", full[i].name, "')");
      }
      if (next == layout.size() || layout[next].name != t.name) {
        fill_buffer(t);  // zero: a tensor this file's version does not hold
        continue;
      }
      const ExpectedTensor &want = layout[next++];
      if (want.format.compact()) {
        mark_quantised_source(t);  // the fp32 weights the file's codes were made from are not in the file
        CompactMatrix m = read_native_compact(view, want, file);
        if (t.compact && t.format == want.format) {  // kept as stored: the file's bytes, never fp32
          *t.compact = std::move(m);
          continue;
        }
        // Another format asked for (weight_dtype, an expert's override): the file's values, then the requested
        // format's quantiser (finish_filling).
        m.dequantize_rows(0, m.rows, fill_buffer(t).data());
        for (const ByteBuffer *b : {&m.values, &m.scales, &m.zeros}) release_mapped_pages(b->data(), b->size());
      } else {
        const TensorInfo *stored_tensor = view.find(t.name);
        if (!stored_tensor) fail(PIMOE_ERR_INTERNAL, "tensor '", t.name, "' vanished from '", path, "'");
        std::vector<float> &values = fill_buffer(t);
        read_native_tensor(view, *stored_tensor, values.data(), values.size());
        release_mapped_pages(view.bytes(*stored_tensor), stored_tensor->byte_size());
      }
      finish_filling(t);
    }
    if (next != layout.size()) fail(PIMOE_ERR_INTERNAL, "tensor layout of '", path, "' disagrees");
  };
  auto model = std::make_unique<pimoe_model>(config, fill);
  // A backend that keeps the interchange form gets its own copy: the file is unmapped when pimoe_load returns.
  for (const NamedTensor &t : model->model.tensors()) {
    if (!t.compact) continue;
    t.compact->values.detach();
    t.compact->scales.detach();
    t.compact->zeros.detach();
  }
  return model;
}

}  // namespace pimoe
