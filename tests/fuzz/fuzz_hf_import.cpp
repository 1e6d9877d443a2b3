// SPDX-License-Identifier: MIT
// libFuzzer target: the Hugging Face importer (pimoe_import_hf) on a checkpoint folder made from the input: its
// config.json, its model.safetensors.index.json and one or two safetensors shards. A layer that imports runs one
// forward call. Every failure must be a status (fuzz_status.h); nothing may crash, leak, hang or trip a sanitizer.
//
// Input layout (tests/fuzz/make_seeds.py writes it):
//   byte 0        the layer to import: b % 4 for b < 248, else one of kOddLayers
//   byte 1        runtime WEIGHT_DTYPE: kWeightDtypes[b % 16] ("auto" most often)
//   the rest      parts separated by kSeparator: config.json, the index, shard 1, shard 2. A missing part is a
//                 missing file; an empty index part means "no index": shard 1 is then model.safetensors, else it is
//                 model-00001-of-00002.safetensors and shard 2 model-00002-of-00002.safetensors (the names an
//                 index's weight_map uses).
#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_status.h"
#include "fuzz_temp_dir.h"
#include "pimoe/pimoe.h"

namespace {

using pimoe_fuzz::ok;

const char kSeparator[] = "\n--pimoe-part--\n";
const int32_t kOddLayers[] = {-1, 4, 1000, 2147483647, -2147483647 - 1, 63, 64, 65};
const char *const kWeightDtypes[] = {"auto", "auto", "auto", "auto", "auto", "auto", "auto", "auto",
                                     "fp32", "bf16", "fp16", "int8", "int4", "fp8_e4m3", "mxfp4", "auto"};

struct OptionsHandle {
  pimoe_options *p = nullptr;
  ~OptionsHandle() { pimoe_options_destroy(p); }
};
struct ModelHandle {
  pimoe_model *p = nullptr;
  ~ModelHandle() { pimoe_destroy(p); }
};

void write_file(const std::string &path, const std::string &bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) pimoe_fuzz::finding("fuzz harness", "cannot create a checkpoint file");
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) pimoe_fuzz::finding("fuzz harness", "cannot write a checkpoint file");
    done += static_cast<size_t>(n);
  }
  ::close(fd);
}

std::vector<std::string> split_parts(const uint8_t *data, size_t size) {
  const std::string all(reinterpret_cast<const char *>(data), size);
  const size_t sep = sizeof kSeparator - 1;
  std::vector<std::string> parts;
  size_t pos = 0;
  for (;;) {
    const size_t next = all.find(kSeparator, pos);
    if (next == std::string::npos) break;
    parts.push_back(all.substr(pos, next - pos));
    pos = next + sep;
  }
  parts.push_back(all.substr(pos));
  return parts;
}

// One forward call of two tokens on an imported layer.
void forward_once(pimoe_model *model) {
  int64_t hidden = 0;
  if (!ok(pimoe_model_dims(model, &hidden, nullptr, nullptr), "pimoe_model_dims")) return;
  std::vector<float> x(static_cast<size_t>(2 * hidden)), y(x.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.3f * static_cast<float>(i));
  ok(pimoe_forward(model, x.data(), x.size(), 1, 2, y.data(), y.size(), nullptr, nullptr, 0), "pimoe_forward");
  for (float v : y) {
    if (!std::isfinite(v)) return;  // finite weights can still overflow; not the importer's to refuse
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2 || size > (1 << 20)) return 0;  // the work an import does is bounded by the shards' bytes
  const int32_t layer = data[0] < 248 ? data[0] % 4 : kOddLayers[data[0] - 248];
  const char *weight_dtype = kWeightDtypes[data[1] % 16];
  const std::vector<std::string> parts = split_parts(data + 2, size - 2);

  const pimoe_fuzz::TempDir &dir = pimoe_fuzz::temp_dir();
  const std::string &d = dir.path();
  write_file(d + "/config.json", parts[0]);
  const bool sharded = parts.size() > 1 && !parts[1].empty();
  if (sharded) write_file(d + "/model.safetensors.index.json", parts[1]);
  if (parts.size() > 2) write_file(d + (sharded ? "/model-00001-of-00002.safetensors" : "/model.safetensors"), parts[2]);
  if (parts.size() > 3) write_file(d + "/model-00002-of-00002.safetensors", parts[3]);

  OptionsHandle options;
  if (ok(pimoe_options_create(&options.p), "pimoe_options_create")) {
    ok(pimoe_options_set_by_name(options.p, "backend", "cpu"), "set backend");
    ok(pimoe_options_set_int(options.p, PIMOE_OPT_THREADS, 1), "set threads");
    ok(pimoe_options_set_by_name(options.p, "weight_dtype", weight_dtype), "set weight_dtype");
    ModelHandle model;
    if (ok(pimoe_import_hf(d.c_str(), layer, options.p, &model.p), "pimoe_import_hf")) {
      if (!model.p) pimoe_fuzz::finding("pimoe_import_hf", "PIMOE_OK without a model");
      forward_once(model.p);
    }
  }
  dir.clear();
  return 0;
}
