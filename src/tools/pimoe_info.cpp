// SPDX-License-Identifier: MIT
// pimoe-info: prints what a libpimoe native file, or a Hugging Face checkpoint folder, holds and whether it loads.
//   usage: pimoe-info [--tensors] [--weight-dtype FMT] PATH
//          pimoe-info --version
// --weight-dtype loads it with that weight_dtype (as pimoe_load / pimoe_import_hf take it), so the quantisation error
// printed is what storing the source's fp32 weights in FMT costs.
// --version prints the version of the libpimoe it runs with (pimoe_version_string(), not the headers it was built
// with), so that an installed package can be checked in one command.
// Exit status: 0 when the file (or at least one layer of the checkpoint) loads, 1 when not, 2 on a usage error.
#include <pimoe/pimoe.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <string>

#include "error.h"
#include "formats/safetensors.h"
#include "tools/checkpoint_info.h"
#include "tools/quant_error_text.h"

namespace {

using pimoe::SafetensorsFile;
using pimoe::SafetensorsView;

std::string shape_text(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// A metadata value, or "?" when the file lacks it (the file may be invalid: print what there is).
std::string meta(const SafetensorsView &view, const std::string &key) {
  const auto it = view.metadata().find("pimoe." + key);
  return it == view.metadata().end() ? "?" : it->second;
}

// A matrix's storage format from the metadata: fp32 when the key is absent (docs/format.md).
std::string format_of(const SafetensorsView &view, const std::string &key) {
  const auto it = view.metadata().find("pimoe." + key);
  return it == view.metadata().end() ? "fp32" : it->second;
}

void print_layer(const SafetensorsView &view) {
  if (view.metadata().count("pimoe.format") == 0) {
    std::printf("format:      not a libpimoe native file (no pimoe.format metadata)\n");
    return;
  }
  std::printf("format:      %s version %s (written by libpimoe %s)\n", meta(view, "format").c_str(),
              meta(view, "format_version").c_str(), meta(view, "library_version").c_str());
  std::printf("layer:       hidden %s, %s experts, top_k %s\n", meta(view, "hidden").c_str(),
              meta(view, "num_experts").c_str(), meta(view, "top_k").c_str());
  const std::string capacity = meta(view, "capacity_factor");
  std::printf("router:      softmax, temperature %s, renormalize %s, capacity_factor %s%s, aux_loss_coef %s\n",
              meta(view, "temperature").c_str(), meta(view, "renormalize").c_str(), capacity.c_str(),
              capacity == "0" ? " (dropless)" : "", meta(view, "aux_loss_coef").c_str());
  std::printf("layer_norm:  eps %s\n", meta(view, "layer_norm_eps").c_str());
  std::printf("experts:     #  activation  intermediate  pre_norm  bias  format\n");
  for (int e = 0;; ++e) {
    const std::string prefix = "experts." + std::to_string(e) + ".";
    if (view.metadata().count("pimoe." + prefix + "activation") == 0) break;
    std::printf("             %-2d %-11s %-13s %-9s %-5s %s\n", e, meta(view, prefix + "activation").c_str(),
                meta(view, prefix + "intermediate").c_str(), meta(view, prefix + "pre_norm").c_str(),
                meta(view, prefix + "bias").c_str(), format_of(view, prefix + "weight_format").c_str());
  }
  if (view.metadata().count("pimoe.shared_width")) {
    std::printf("shared:      width %s, format %s\n", meta(view, "shared_width").c_str(),
                format_of(view, "weight_format").c_str());
  }
}

// The weight bytes of the expert and shared-expert matrices per storage format (values, scales and zero points),
// and of every other tensor, as the file stores them.
void print_weights(const SafetensorsView &view) {
  std::map<std::string, std::pair<size_t, uint64_t>> by_format;  // format -> (matrices, bytes)
  uint64_t other = 0;
  for (const pimoe::TensorInfo &t : view.tensors()) {
    std::string matrix = t.name;
    for (const std::string suffix : {".scales", ".zeros"}) {
      if (matrix.size() > suffix.size() && matrix.compare(matrix.size() - suffix.size(), suffix.size(), suffix) == 0) {
        matrix.resize(matrix.size() - suffix.size());
      }
    }
    std::string key;  // the metadata key of the matrix's format
    const auto ends_with = [&](const char *tail) {
      const std::string s(tail);
      return matrix.size() > s.size() && matrix.compare(matrix.size() - s.size(), s.size(), s) == 0;
    };
    const bool projection = ends_with(".gate.weight") || ends_with(".up.weight") || ends_with(".down.weight");
    if (projection && matrix.compare(0, 8, "experts.") == 0) {
      key = matrix.substr(0, matrix.find('.', 8) + 1) + "weight_format";
    } else if (projection && matrix.compare(0, 7, "shared.") == 0) {
      key = "weight_format";
    }
    if (key.empty()) {
      other += t.byte_size();
      continue;
    }
    auto &entry = by_format[format_of(view, key)];
    entry.first += matrix == t.name;
    entry.second += t.byte_size();
  }
  std::string text;
  for (const auto &item : by_format) {
    text += item.first + ": " + std::to_string(item.second.first) + " matrices, " + std::to_string(item.second.second) +
            " bytes; ";
  }
  std::printf("weights:     %sother tensors %llu bytes\n", text.c_str(), static_cast<unsigned long long>(other));
}

void print_tensors(const SafetensorsView &view, bool list) {
  std::map<std::string, std::pair<size_t, uint64_t>> by_dtype;  // dtype -> (tensors, bytes)
  for (const pimoe::TensorInfo &t : view.tensors()) {
    auto &entry = by_dtype[pimoe::dtype_name(t.dtype)];
    ++entry.first;
    entry.second += t.byte_size();
  }
  std::string dtypes;
  for (const auto &item : by_dtype) {
    dtypes += (dtypes.empty() ? "" : ", ") + item.first + " (" + std::to_string(item.second.first) + " tensors, " +
              std::to_string(item.second.second) + " bytes)";
  }
  std::printf("tensors:     %zu; dtype %s\n", view.tensors().size(), dtypes.empty() ? "-" : dtypes.c_str());
  if (!list) return;
  for (const pimoe::TensorInfo &t : view.tensors()) {
    std::printf("  %-40s %-7s %-16s bytes [%llu, %llu)\n", t.name.c_str(), pimoe::dtype_name(t.dtype),
                shape_text(t.shape).c_str(), static_cast<unsigned long long>(t.begin),
                static_cast<unsigned long long>(t.end));
  }
}

int usage() {
  std::fprintf(stderr, "usage: pimoe-info [--tensors] [--weight-dtype FMT] PATH   (a native .safetensors file or a "
                       "checkpoint folder)\n       pimoe-info --version\n");
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  bool list = false;
  const char *path = nullptr, *weight_dtype = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--version") == 0) {
      if (argc != 2) return usage();
      std::printf("pimoe-info (libpimoe) %s\n", pimoe_version_string());
      return 0;
    } else if (std::strcmp(argv[i], "--tensors") == 0) {
      list = true;
    } else if (std::strcmp(argv[i], "--weight-dtype") == 0) {
      if (++i == argc) return usage();
      weight_dtype = argv[i];
    } else if (std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0 || path) {
      return usage();
    } else {
      path = argv[i];
    }
  }
  if (!path) return usage();

  std::printf("file:        %s\n", path);
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return describe_checkpoint(path, weight_dtype);
  try {
    const SafetensorsFile file(path);
    const SafetensorsView &view = file.view();
    std::printf("size:        %zu bytes (header %llu bytes)\n", view.total_bytes(),
                static_cast<unsigned long long>(view.header_bytes()));
    print_layer(view);
    print_tensors(view, list);
    if (view.metadata().count("pimoe.format")) print_weights(view);
  } catch (const std::exception &e) {
    std::printf("safetensors: invalid: %s\n", e.what());
  }

  // Whether it loads is pimoe_load()'s verdict: it validates more than the structure printed above.
  pimoe_options *options = nullptr;
  pimoe_model *model = nullptr;
  pimoe_status status = pimoe_options_create(&options);
  if (status == PIMOE_OK) status = pimoe_options_set_int(options, PIMOE_OPT_THREADS, 1);
  if (status == PIMOE_OK && weight_dtype) {
    status = pimoe_options_set_string(options, PIMOE_OPT_WEIGHT_DTYPE, weight_dtype);
  }
  if (status == PIMOE_OK) status = pimoe_load(path, options, &model);
  pimoe_options_destroy(options);
  if (status != PIMOE_OK) {
    std::printf("loads:       no: %s (%s)\n", pimoe_last_error(), pimoe_status_string(status));
    return 1;
  }
  std::printf("loads:       yes (backend %s, %lld weight tensors)\n", pimoe_model_backend(model),
              static_cast<long long>(pimoe_tensor_count(model)));
  std::printf("quant error: %s\n", quant_error_text(model).c_str());
  pimoe_destroy(model);
  return 0;
}
