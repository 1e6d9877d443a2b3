// SPDX-License-Identifier: MIT
// libFuzzer target: the safetensors header parser, the native format's metadata and tensor validation, the fp32
// conversion of every tensor, and the code checks and dequantisation of every compact matrix, on arbitrary bytes.
// Any crash, sanitizer report or out-of-bounds read is a bug; a thrown pimoe::Error is the expected outcome for
// malformed input. Built and run by tests/fuzz/run_fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "error.h"
#include "formats/native_format.h"
#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // A copy of exactly `size` bytes, so that ASan flags any read past the end (libFuzzer's buffer may be larger).
  const std::vector<uint8_t> bytes(data, data + size);
  try {
    const pimoe::SafetensorsView view = pimoe::SafetensorsView::parse(bytes.data(), bytes.size(), "fuzz-input");
    std::vector<float> values;
    for (const pimoe::TensorInfo &t : view.tensors()) {
      try {
        values.resize(t.element_count);  // bounded: parse() checked the bytes exist in the input
        pimoe::decode_to_f32(view, t, values.data(), values.size());
      } catch (const pimoe::Error &) {
      }
    }
    const pimoe::LayerConfig config = pimoe::native_config(view, pimoe::Options());
    const auto owner = std::make_shared<int>(0);  // the input outlives the views
    for (const pimoe::ExpectedTensor &want : pimoe::native_tensor_layout(config, pimoe::native_format_version(view))) {
      for (const pimoe::StoredTensor &part : pimoe::stored_tensors(want)) {
        if (!view.find(part.name)) __builtin_trap();  // native_config() promised every tensor is there
      }
      if (want.format.compact()) {
        // Codes and sizes checked, then every element dequantised (bounded: at most 2 values a byte of input).
        const pimoe::CompactMatrix m = pimoe::read_native_compact(view, want, owner);
        values.resize(static_cast<size_t>(m.rows * m.cols));
        m.dequantize_rows(0, m.rows, values.data());
        continue;
      }
      const pimoe::TensorInfo *t = view.find(want.name);
      values.resize(t->element_count);
      pimoe::read_native_tensor(view, *t, values.data(), values.size());
    }
  } catch (const pimoe::Error &) {
  }
  return 0;
}
