/* SPDX-License-Identifier: MIT */
// The weights of a Hugging Face checkpoint folder: one model.safetensors, or model.safetensors.index.json whose
// "weight_map" sends each tensor name to a shard file in the same folder. Shards are opened (memory-mapped and
// validated) only when one of their tensors is asked for, so importing one layer touches the shards that hold it.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "formats/safetensors.h"

namespace pimoe {

class HfCheckpoint {
 public:
  // Opens the index (when present) or model.safetensors. Throws PIMOE_ERR_IO when neither exists, and
  // PIMOE_ERR_FORMAT for a malformed index (invalid JSON, no weight_map, a shard name that leaves the folder).
  explicit HfCheckpoint(const std::string &dir);

  struct Found {
    const SafetensorsFile *file = nullptr;  // null when the tensor is absent
    const TensorInfo *tensor = nullptr;
  };
  // Finds a tensor by its checkpoint name. Throws PIMOE_ERR_FORMAT when the index names a shard that does not hold
  // it, and the errors of SafetensorsFile for a shard that cannot be opened or is malformed.
  Found find(const std::string &name);

  // Where tensors are looked up, for messages: the index file or model.safetensors.
  const std::string &source() const { return source_; }
  // The file that should hold `name` (the shard the index names, or model.safetensors); "" when the index lacks it.
  std::string file_for(const std::string &name) const;

 private:
  const SafetensorsFile &open(const std::string &file_name);

  std::string dir_;
  std::string source_;
  bool sharded_ = false;
  std::map<std::string, std::string> weight_map_;  // tensor name -> shard file name (sharded only)
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files_;
};

}  // namespace pimoe
