/* SPDX-License-Identifier: MIT */
// The layer's weights on the device: the experts' matrices in the layer's weight type, their descriptors (one
// GroupDesc per routed expert and one for the shared expert), the router's fp32 copy, and what the host knows of
// their shapes for choosing kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda_memory.h"
#include "device_types.h"
#include "src/weights.h"

namespace pimoe::cuda {

// The device type of a layer's storage format.
WType wtype_of(const WeightFormat &f);
// Bytes of an element of a float type (the compact types have none).
size_t wtype_size(WType t);

// One weight the backend holds in place of the model's host copy. A compact matrix keeps its codes (rows padded to
// device_row_bytes), its scales and zero points as compact_matrix.h lays them out (padded to 16 bytes), and the shape
// and format that turn them back into the CompactMatrix the backend was given.
struct DeviceTensor {
  DeviceMemory memory;
  WType type = WType::F32;
  int64_t count = 0;
  DeviceMemory scales, zeros;  // compact types
  WeightFormat format;         // compact types
  int64_t rows = 0, cols = 0;  // compact types
};

// Where a held matrix lives on the device.
struct DeviceMatrix {
  const void *values = nullptr;
  const void *scales = nullptr;
  const uint8_t *zeros = nullptr;
};

// What the host knows of the uploaded experts (routed and shared).
struct ExpertShapes {
  int32_t max_inter = 1;     // largest intermediate size (the up projection's grid)
  int32_t inter_stride = 8;  // row stride of the hidden activations: max_inter in 16-byte rows for the vector loads
  int32_t inter_align = 0;   // gcd of the intermediate sizes: the GEMV streams rows of whole 16-byte chunks if 8 | it
  bool gated = false;        // some group is SwiGLU (the up GEMV streams gate rows beside up rows)
  bool tensor_dims_ok = false;  // H and every intermediate size are multiples of 8 (the tensor-core kernels)
  bool has_norm = false;        // some expert LayerNorms its input (the GEMV path then gathers rows first)
};

class DeviceWeights {
 public:
  // Uploads the weights. The experts' tensors move to the device (their host vectors are freed: the model reads
  // them back through read()); the router's stay on the host too, where host routing needs them.
  // tensor_maps_allowed: encode the Hopper GEMM's weight descriptors when the device and weights allow it.
  DeviceWeights(const LayerConfig &config, LayerWeights &weights, WType wtype, bool tensor_maps_allowed);

  bool holds(const NamedTensor &t) const { return held_.count(t.data) > 0; }
  void read(const NamedTensor &t, float *out) const;  // nn.Linear layout, fp32
  // A held compact matrix as the interchange form it was given as; false for a float tensor.
  bool read_compact(const NamedTensor &t, CompactMatrix &out) const;
  size_t bytes() const { return bytes_; }

  const ExpertShapes &shapes() const { return shapes_; }
  const GroupDesc *groups() const { return groups_.as<GroupDesc>(); }
  const float *router() const { return router_.as<float>(); }
  const float *selection_bias() const { return selection_bias_.as<float>(); }
  const float *shared_score() const { return shared_score_; }
  // The wgmma kernel's weight descriptors (grouped_gemm_sm90.cuh), or null when the tensor-core path runs mma.sync.
  const void *tensor_maps() const { return tensor_maps_.bytes() ? tensor_maps_.get() : nullptr; }

 private:
  const void *hold(std::vector<float> &host, WType type, const std::string &name);
  // An expert matrix: its compact form when it has one (the host's is freed), else hold(host).
  DeviceMatrix hold_matrix(std::vector<float> &host, CompactMatrix &compact, WType type, const std::string &name);
  void upload(DeviceMemory &dst, const uint8_t *src, size_t bytes, size_t padded, const std::string &name);
  void set_matrices(GroupDesc &g, ExpertWeights &x, WType wtype, int64_t e, int64_t experts);
  void copy_up(DeviceMemory &dst, const std::vector<float> &host, const char *name);
  void upload_tensor_maps(const std::vector<GroupDesc> &groups, int32_t hidden, WType wtype);

  std::vector<std::unique_ptr<DeviceTensor>> tensors_;
  std::unordered_map<const std::vector<float> *, const DeviceTensor *> held_;
  size_t bytes_ = 0;
  DeviceMemory router_, selection_bias_, groups_, tensor_maps_;
  const float *shared_score_ = nullptr;
  ExpertShapes shapes_;
};

}  // namespace pimoe::cuda
