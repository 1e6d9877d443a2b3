// SPDX-License-Identifier: MIT
#include "formats/hf_checkpoint.h"

#include <sys/stat.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "error.h"
#include "formats/json_document.h"
#include "formats/mapped_file.h"

namespace pimoe {
namespace {

const char *const kSingle = "model.safetensors";
const char *const kIndex = "model.safetensors.index.json";

// Whether the name is there: a path stat() fails on for any reason but ENOENT (a symbolic link loop, no permission)
// exists, so that opening it reports that reason instead of the file reading as absent.
bool exists(const std::string &path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 || errno != ENOENT;
}

}  // namespace

HfCheckpoint::HfCheckpoint(const std::string &dir) : dir_(dir) {
  const std::string index_path = dir + "/" + kIndex;
  if (!exists(index_path)) {
    source_ = dir + "/" + kSingle;
    if (!exists(source_)) {
      fail(PIMOE_ERR_IO, "checkpoint '", dir, "': neither '", kSingle, "' nor '", kIndex, "' exists");
    }
    return;
  }
  sharded_ = true;
  source_ = index_path;
  const std::string text = read_text_file(index_path, kMaxJsonFileBytes);
  const JsonDocument document(text.data(), text.size());
  if (document.too_deep()) {
    fail(PIMOE_ERR_FORMAT, "file '", index_path, "': JSON nested deeper than ", JsonDocument::kMaxDepth, " levels");
  }
  const nlohmann::json &root = document.root();
  if (!document.valid() || !root.is_object()) fail(PIMOE_ERR_FORMAT, "file '", index_path, "': not a JSON object");
  const auto map = root.find("weight_map");
  if (map == root.end() || !map->is_object()) {
    fail(PIMOE_ERR_FORMAT, "file '", index_path, "': 'weight_map' is missing or not an object");
  }
  for (const auto &item : map->items()) {
    if (!item.value().is_string()) {
      fail(PIMOE_ERR_FORMAT, "file '", index_path, "': weight_map entry '", item.key(), "' is not a file name");
    }
    const std::string shard = item.value().get<std::string>();
    // A shard is a plain file name in the checkpoint folder: never a path that could leave it.
    if (shard.empty() || shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos ||
        shard == "." || shard == "..") {
      fail(PIMOE_ERR_FORMAT, "file '", index_path, "': weight_map entry '", item.key(), "' names '", shard,
           "', not a file in the checkpoint folder");
    }
    weight_map_[item.key()] = shard;
  }
}

std::string HfCheckpoint::file_for(const std::string &name) const {
  if (!sharded_) return source_;
  const auto it = weight_map_.find(name);
  return it == weight_map_.end() ? std::string() : dir_ + "/" + it->second;
}

const SafetensorsFile &HfCheckpoint::open(const std::string &file_name) {
  auto &slot = files_[file_name];
  if (!slot) slot = std::make_unique<SafetensorsFile>(file_name);
  return *slot;
}

HfCheckpoint::Found HfCheckpoint::find(const std::string &name) {
  const std::string file_name = file_for(name);
  if (file_name.empty()) return {};
  const SafetensorsFile &file = open(file_name);
  const TensorInfo *tensor = file.view().find(name);
  if (!tensor) {
    if (sharded_) {
      fail(PIMOE_ERR_FORMAT, "file '", file_name, "': tensor '", name, "' is missing (the index '", source_,
           "' says this shard holds it)");
    }
    return {};
  }
  return {&file, tensor};
}

}  // namespace pimoe
