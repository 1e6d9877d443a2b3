#include "formats/native_io.h"

#include "error.h"
#include "formats/mapped_file.h"
#include "formats/native_format.h"
#include "formats/safetensors.h"
#include "formats/safetensors_writer.h"

namespace pimoe {

void save_native(const Model &model, const std::string &path) {
  std::vector<TensorToWrite> tensors;
  for (const NamedTensor &t : model.tensors()) {
    tensors.push_back(
        {t.name, DType::F32, t.shape, [&model, &t](void *out) { model.read_tensor(t, static_cast<float *>(out)); }});
  }
  write_safetensors(path, native_metadata(model.config()), tensors);
}

std::unique_ptr<pimoe_model> load_native(const std::string &path, const Options &runtime) {
  const SafetensorsFile file(path);  // unmapped when this function returns: the model holds its own copy
  const SafetensorsView &view = file.view();
  const LayerConfig config = native_config(view, runtime);
  const std::vector<ExpectedTensor> layout = native_tensor_layout(config);
  const WeightFiller fill = [&](const std::vector<NamedTensor> &tensors) {
    // native_tensor_layout mirrors allocate_weights; a drift between them is a bug, caught here, not a bad read.
    if (tensors.size() != layout.size()) fail(PIMOE_ERR_INTERNAL, "tensor layout of '", path, "' disagrees");
    for (size_t i = 0; i < tensors.size(); ++i) {
      const NamedTensor &t = tensors[i];
      if (t.name != layout[i].name || t.shape != layout[i].shape) {
        fail(PIMOE_ERR_INTERNAL, "tensor layout disagrees at '", t.name, "' (expected '", layout[i].name, "')");
      }
      const TensorInfo *stored = view.find(t.name);
      if (!stored) fail(PIMOE_ERR_INTERNAL, "tensor '", t.name, "' vanished from '", path, "'");
      std::vector<float> &values = fill_buffer(t);
      read_native_tensor(view, *stored, values.data(), values.size());
      release_mapped_pages(view.bytes(*stored), stored->byte_size());
      finish_filling(t);
    }
  };
  return std::make_unique<pimoe_model>(config, fill);
}

}  // namespace pimoe
