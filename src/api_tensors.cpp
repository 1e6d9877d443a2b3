// SPDX-License-Identifier: MIT
// C shims for reading a model's weight tensors.
#include <algorithm>

#include "api_guard.h"
#include "pimoe/pimoe.h"

using namespace pimoe;

namespace {

const NamedTensor &tensor_of(const pimoe_model *model, const char *name, const char *function) {
  require(model, function, "model");
  require(name, function, "name");
  const NamedTensor *t = model->model.find_tensor(name);
  if (!t) fail(PIMOE_ERR_NOT_FOUND, function, ": no tensor named '", name, "'");
  return *t;
}

}  // namespace

extern "C" {

int64_t pimoe_tensor_count(const pimoe_model *model) {
  return model ? static_cast<int64_t>(model->model.tensors().size()) : 0;
}

const char *pimoe_tensor_name(const pimoe_model *model, int64_t index) {
  if (!model || index < 0 || index >= pimoe_tensor_count(model)) return nullptr;
  return model->model.tensors()[static_cast<size_t>(index)].name.c_str();
}

pimoe_status pimoe_tensor_shape(const pimoe_model *model, const char *name, int32_t *ndim, int64_t dims[4]) {
  return guarded(model, [&] {
    const NamedTensor &t = tensor_of(model, name, "pimoe_tensor_shape");
    require(ndim, "pimoe_tensor_shape", "ndim");
    require(dims, "pimoe_tensor_shape", "dims");
    *ndim = static_cast<int32_t>(t.shape.size());
    std::copy(t.shape.begin(), t.shape.end(), dims);
  });
}

pimoe_status pimoe_tensor_read(const pimoe_model *model, const char *name, float *out, size_t count) {
  return guarded(model, [&] {
    const NamedTensor &t = tensor_of(model, name, "pimoe_tensor_read");
    require(out, "pimoe_tensor_read", "out");
    if (count != static_cast<size_t>(t.element_count())) {
      fail(PIMOE_ERR_SIZE_MISMATCH, "pimoe_tensor_read: count (", count, ") != element count of '", name, "' (",
           t.element_count(), ")");
    }
    model->model.read_tensor(t, out);
  });
}

}  // extern "C"
