// libFuzzer target: the safetensors header parser, the native format's metadata and tensor validation, and the
// fp32 conversion of every tensor, on arbitrary bytes. Any crash, sanitizer report or out-of-bounds read is a bug;
// a thrown pimoe::Error is the expected outcome for malformed input. Built and run by tests/fuzz/run_fuzz.sh.
#include <cstddef>
#include <cstdint>
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
    for (const pimoe::ExpectedTensor &want : pimoe::native_tensor_layout(config, pimoe::native_format_version(view))) {
      const pimoe::TensorInfo *t = view.find(want.name);
      if (!t) __builtin_trap();  // native_config() promised every tensor is there
      values.resize(t->element_count);
      pimoe::read_native_tensor(view, *t, values.data(), values.size());
    }
  } catch (const pimoe::Error &) {
  }
  return 0;
}
