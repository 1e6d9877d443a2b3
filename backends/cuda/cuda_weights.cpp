// SPDX-License-Identifier: MIT
#include "cuda_weights.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <numeric>

#include "cuda_check.h"
#include "cuda_device.h"
#include "src/dtype.h"
#if PIMOE_HAVE_SM90A
#include "grouped_gemm_sm90.cuh"
#endif

namespace pimoe::cuda {
namespace {

std::string expert_name(int64_t e, int64_t experts, const char *what) {
  return e == experts ? std::string("shared.") + what : "experts." + std::to_string(e) + "." + what;
}

}  // namespace

WType wtype_of(WeightDtype d) {
  switch (d) {
    case WeightDtype::BF16:
      return WType::BF16;
    case WeightDtype::F16:
      return WType::F16;
    case WeightDtype::F32:
      break;
    default:  // the compact formats: expand_for_float_backend refused them before the backend was made
      fail(PIMOE_ERR_INTERNAL, "cuda: weight_dtype '", enum_name(d), "' reached the device weights");
  }
  return WType::F32;
}

size_t wtype_size(WType t) {
  return t == WType::F32 ? 4 : 2;
}

DeviceWeights::DeviceWeights(const LayerConfig &config, LayerWeights &w, WType wtype, bool tensor_maps_allowed) {
  const auto H = static_cast<int32_t>(config.hidden);
  const int64_t E = config.router.num_experts;
  copy_up(router_, w.router_weight, "router.weight");
  copy_up(selection_bias_, w.selection_bias, "router.selection_bias");
  std::vector<GroupDesc> groups(static_cast<size_t>(E) + 1);
  int64_t imax = 1;
  ExpertShapes &s = shapes_;
  s.tensor_dims_ok = H % 8 == 0;
  for (int64_t e = 0; e < E; ++e) {
    const ExpertSpec &spec = config.experts[static_cast<size_t>(e)];
    GroupDesc &g = groups[static_cast<size_t>(e)];
    g.inter = static_cast<int32_t>(spec.intermediate);
    g.activation = spec.activation;
    if (spec.callback) continue;  // computed on the host by the model; never has rows here
    ExpertWeights &x = w.experts[static_cast<size_t>(e)];
    g.gate = hold(x.gate_weight, wtype, expert_name(e, E, "gate.weight"));
    g.up = hold(x.up_weight, wtype, expert_name(e, E, "up.weight"));
    g.down = hold(x.down_weight, wtype, expert_name(e, E, "down.weight"));
    g.up_bias = static_cast<const float *>(hold(x.up_bias, WType::F32, expert_name(e, E, "up.bias")));
    g.down_bias = static_cast<const float *>(hold(x.down_bias, WType::F32, expert_name(e, E, "down.bias")));
    g.norm_weight = static_cast<const float *>(hold(x.norm_weight, WType::F32, expert_name(e, E, "norm.weight")));
    g.norm_bias = static_cast<const float *>(hold(x.norm_bias, WType::F32, expert_name(e, E, "norm.bias")));
    s.has_norm = s.has_norm || g.norm_weight != nullptr;
    imax = std::max(imax, spec.intermediate);
    s.tensor_dims_ok = s.tensor_dims_ok && spec.intermediate % 8 == 0;
    s.inter_align = static_cast<int32_t>(std::gcd<int64_t>(s.inter_align, spec.intermediate));
    s.gated = s.gated || spec.activation == PIMOE_ACT_SWIGLU;
  }
  if (config.shared.width > 0) {
    GroupDesc &g = groups[static_cast<size_t>(E)];
    g.inter = static_cast<int32_t>(config.shared.width);
    g.activation = PIMOE_ACT_SWIGLU;
    g.gate = hold(w.shared.gate_weight, wtype, expert_name(E, E, "gate.weight"));
    g.up = hold(w.shared.up_weight, wtype, expert_name(E, E, "up.weight"));
    g.down = hold(w.shared.down_weight, wtype, expert_name(E, E, "down.weight"));
    shared_score_ = static_cast<const float *>(hold(w.shared_score_weight, WType::F32, "shared.score.weight"));
    imax = std::max(imax, config.shared.width);
    s.tensor_dims_ok = s.tensor_dims_ok && config.shared.width % 8 == 0;
    s.inter_align = static_cast<int32_t>(std::gcd<int64_t>(s.inter_align, config.shared.width));
    s.gated = true;
  }
  s.max_inter = static_cast<int32_t>(imax);
  s.inter_stride = static_cast<int32_t>((imax + 7) / 8 * 8);
  groups_.reserve(sizeof(GroupDesc) * groups.size(), "expert descriptors");
  check(cudaMemcpy(groups_.get(), groups.data(), sizeof(GroupDesc) * groups.size(), cudaMemcpyHostToDevice),
        "uploading expert descriptors");
  if (tensor_maps_allowed && wtype != WType::F32 && s.tensor_dims_ok) upload_tensor_maps(groups, H, wtype);
}

void DeviceWeights::read(const NamedTensor &t, float *out) const {
  const DeviceTensor &d = *held_.at(t.data);
  select_device();
  if (d.type == WType::F32) {
    check(cudaMemcpy(out, d.memory.get(), sizeof(float) * d.count, cudaMemcpyDeviceToHost), "reading a weight back");
    return;
  }
  std::vector<uint16_t> bits(static_cast<size_t>(d.count));
  check(cudaMemcpy(bits.data(), d.memory.get(), 2 * bits.size(), cudaMemcpyDeviceToHost), "reading a weight back");
  for (size_t i = 0; i < bits.size(); ++i) {
    out[i] = d.type == WType::BF16 ? bf16_bits_to_float(bits[i]) : fp16_bits_to_float(bits[i]);
  }
}

// Copies a host tensor to the device as `type` and frees the host copy, so a layer never holds its weights twice in
// host memory.
const void *DeviceWeights::hold(std::vector<float> &host, WType type, const std::string &name) {
  if (host.empty()) return nullptr;
  auto t = std::make_unique<DeviceTensor>();
  t->type = type;
  t->count = static_cast<int64_t>(host.size());
  const size_t bytes = wtype_size(type) * host.size();
  t->memory.reserve(bytes, name);
  cudaError_t e;
  if (type == WType::F32) {
    e = cudaMemcpy(t->memory.get(), host.data(), bytes, cudaMemcpyHostToDevice);
  } else {
    std::vector<uint16_t> bits(host.size());
    for (size_t i = 0; i < host.size(); ++i) {
      bits[i] = type == WType::BF16 ? float_to_bf16_bits(host[i]) : float_to_fp16_bits(host[i]);
    }
    e = cudaMemcpy(t->memory.get(), bits.data(), bytes, cudaMemcpyHostToDevice);
  }
  check(e, ("uploading " + name).c_str());
  bytes_ += t->memory.bytes();
  held_[&host] = t.get();
  const void *ptr = t->memory.get();
  tensors_.push_back(std::move(t));
  std::vector<float>().swap(host);
  return ptr;
}

// A device copy of a tensor the host keeps.
void DeviceWeights::copy_up(DeviceMemory &dst, const std::vector<float> &host, const char *name) {
  if (host.empty()) return;
  dst.reserve(sizeof(float) * host.size(), name);
  check(cudaMemcpy(dst.get(), host.data(), sizeof(float) * host.size(), cudaMemcpyHostToDevice),
        (std::string("uploading ") + name).c_str());
}

// The Hopper grouped GEMM (grouped_gemm_sm90.cu) on compute capability 9.0 with bf16/fp16 weights of 16-byte rows:
// one TMA descriptor per weight matrix, encoded once here. Without them the tensor-core path runs mma.sync.
void DeviceWeights::upload_tensor_maps(const std::vector<GroupDesc> &groups, int32_t hidden, WType wtype) {
#if PIMOE_HAVE_SM90A
  if (!sm90_gemm_supported()) return;
  std::vector<unsigned char> maps(kSm90MapBytes * 3 * groups.size());
  if (!sm90_weight_maps(groups.data(), static_cast<int32_t>(groups.size()), hidden, wtype, maps.data())) return;
  tensor_maps_.reserve(maps.size(), "tensor maps of the weights");
  check(cudaMemcpy(tensor_maps_.get(), maps.data(), maps.size(), cudaMemcpyHostToDevice), "uploading tensor maps");
#else
  (void)groups;
  (void)hidden;
  (void)wtype;
#endif
}

}  // namespace pimoe::cuda
