// SPDX-License-Identifier: MIT
// pimoe-info: prints what a libpimoe native file, or a Hugging Face checkpoint folder, holds and whether it loads.
//   usage: pimoe-info [--tensors] [--weight-dtype FMT] PATH
//          pimoe-info --version
// The layer's description and the load verdict are `pimoe info PATH --load`'s (src/tools/layer_info.h, one
// implementation for both programs); pimoe-info adds what only a file check needs: the file's own safetensors view
// (its size, the tensors it stores by dtype, each tensor's byte range with --tensors), and, for a file whose layer
// is invalid, its pimoe.* metadata as written, so that the reason it does not load can be read next to it.
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
#include "tools/layer_info.h"

namespace {

using pimoe::SafetensorsFile;
using pimoe::SafetensorsView;

std::string shape_text(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

void print(const std::string &text) { std::fwrite(text.data(), 1, text.size(), stdout); }

// The file as safetensors stores it: its size, its tensors by dtype, and with `list` each tensor.
void print_tensors(const SafetensorsView &view, bool list) {
  std::printf("size:        %zu bytes (header %llu bytes)\n", view.total_bytes(),
              static_cast<unsigned long long>(view.header_bytes()));
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

int describe_file(const std::string &path, bool list, const std::string &weight_dtype) {
  try {
    print(pimoe_tools::layer_text(pimoe_tools::describe_native_file(path)));
  } catch (const std::exception &e) {
    std::printf("file:        %s\n", path.c_str());
    std::printf("layer:       invalid: %s\n", e.what());
    try {  // the metadata as written, when the file is safetensors at all
      const SafetensorsFile file(path);
      for (const auto &[key, value] : file.view().metadata()) {
        if (key.compare(0, 6, "pimoe.") == 0) std::printf("metadata:    %s = %s\n", key.c_str(), value.c_str());
      }
    } catch (const std::exception &) {
    }
  }
  try {
    const SafetensorsFile file(path);
    print_tensors(file.view(), list);
  } catch (const std::exception &e) {
    std::printf("safetensors: invalid: %s\n", e.what());
  }
  // Whether it loads is pimoe_load()'s verdict: it validates more than the structure printed above.
  nlohmann::json verdict;
  const bool loads = pimoe_tools::add_load_verdict(verdict, path, -1, weight_dtype);
  print(pimoe_tools::load_text(verdict["load"]));
  return loads ? 0 : 1;
}

int describe_folder(const std::string &dir, const std::string &weight_dtype) {
  nlohmann::json info;
  try {
    info = pimoe_tools::describe_checkpoint(dir);
  } catch (const std::exception &e) {
    std::printf("file:        %s\n", dir.c_str());
    std::printf("checkpoint:  %s\n", e.what());  // names config.json and why: absent, a FIFO, too large, bad JSON
    return 1;
  }
  const int loaded = pimoe_tools::add_import_verdicts(info, weight_dtype);
  print(pimoe_tools::layer_text(info));
  return loaded ? 0 : 1;
}

int usage() {
  std::fprintf(stderr, "usage: pimoe-info [--tensors] [--weight-dtype FMT] PATH   (a native .safetensors file or a "
                       "checkpoint folder)\n       pimoe-info --version\n");
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  bool list = false;
  const char *path = nullptr;
  std::string weight_dtype;
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
  std::error_code ec;
  return std::filesystem::is_directory(path, ec) ? describe_folder(path, weight_dtype)
                                                 : describe_file(path, list, weight_dtype);
}
