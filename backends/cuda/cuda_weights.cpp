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

WType wtype_of(const WeightFormat &f) {
  switch (f.dtype) {
    case WeightDtype::BF16:
      return WType::BF16;
    case WeightDtype::F16:
      return WType::F16;
    case WeightDtype::Int8:
      return WType::I8;
    case WeightDtype::Int4:
      return f.zero_point ? WType::I4Z : WType::I4;
    case WeightDtype::Fp8E4M3:
      return WType::FP8;
    case WeightDtype::Mxfp4:
      return WType::MXFP4;
    case WeightDtype::F32:
      break;
    default:
      fail(PIMOE_ERR_INTERNAL, "cuda: weight_dtype '", f.name(), "' has no device type");
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
    set_matrices(g, x, wtype, e, E);
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
    set_matrices(g, w.shared, wtype, E, E);
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
  const bool tensor_core_type = wtype == WType::BF16 || wtype == WType::F16;
  if (tensor_maps_allowed && tensor_core_type && s.tensor_dims_ok) upload_tensor_maps(groups, H, wtype);
}

void DeviceWeights::read(const NamedTensor &t, float *out) const {
  const DeviceTensor &d = *held_.at(t.data);
  select_device();
  if (is_compact(d.type)) {
    CompactMatrix m;
    read_compact(t, m);
    m.dequantize_rows(0, m.rows, out);
    return;
  }
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

DeviceMatrix DeviceWeights::hold_matrix(std::vector<float> &host, CompactMatrix &compact, WType type,
                                        const std::string &name) {
  DeviceMatrix m;
  if (compact.empty()) {
    m.values = hold(host, type, name);
    return m;
  }
  if (!is_compact(type) || wtype_of(compact.format) != type) {
    fail(PIMOE_ERR_INTERNAL, "cuda: matrix '", name, "' is '", compact.format.name(), "' in a layer of another type");
  }
  auto t = std::make_unique<DeviceTensor>();
  t->type = type;
  t->format = compact.format;
  t->rows = compact.rows;
  t->cols = compact.cols;
  t->count = compact.rows * compact.cols;
  // Rows padded to the kernels' 16-byte chunks with the code of zero (byte 0 for int8 and fp8, whose rows are the
  // only ones that need it: a 4-bit row is whole 16-byte blocks already).
  const size_t src_row = compact.row_bytes();
  const auto dst_row = static_cast<size_t>(device_row_bytes(type, compact.cols));
  const auto rows = static_cast<size_t>(compact.rows);
  if (src_row == dst_row) {
    upload(t->memory, compact.values.data(), compact.values.size(), compact.values.size(), name);
  } else {
    std::vector<uint8_t> padded(dst_row * rows, 0);
    for (size_t r = 0; r < rows; ++r) {
      std::copy_n(compact.values.data() + r * src_row, src_row, padded.data() + r * dst_row);
    }
    upload(t->memory, padded.data(), padded.size(), padded.size(), name);
  }
  auto pad16 = [](size_t n) { return (n + 15) / 16 * 16; };
  upload(t->scales, compact.scales.data(), compact.scales.size(), pad16(compact.scales.size()), name + " scales");
  if (!compact.zeros.empty()) {
    upload(t->zeros, compact.zeros.data(), compact.zeros.size(), pad16(compact.zeros.size()), name + " zero points");
  }
  bytes_ += t->memory.bytes() + t->scales.bytes() + t->zeros.bytes();
  m.values = t->memory.get();
  m.scales = t->scales.get();
  m.zeros = static_cast<const uint8_t *>(t->zeros.get());
  held_[&host] = t.get();
  tensors_.push_back(std::move(t));
  compact = CompactMatrix();
  std::vector<float>().swap(host);
  return m;
}

// `bytes` of src into a new device buffer of `padded` bytes (the padding zeroed).
void DeviceWeights::upload(DeviceMemory &dst, const uint8_t *src, size_t bytes, size_t padded, const std::string &name) {
  if (padded == 0) return;
  dst.reserve(padded, name);
  if (padded > bytes) check(cudaMemset(dst.get(), 0, padded), ("clearing " + name).c_str());
  check(cudaMemcpy(dst.get(), src, bytes, cudaMemcpyHostToDevice), ("uploading " + name).c_str());
}

bool DeviceWeights::read_compact(const NamedTensor &t, CompactMatrix &out) const {
  const DeviceTensor &d = *held_.at(t.data);
  if (!is_compact(d.type)) return false;
  select_device();
  CompactMatrix m;
  m.format = d.format;
  m.rows = d.rows;
  m.cols = d.cols;
  m.values = ByteBuffer(CompactMatrix::values_bytes(d.format, d.rows, d.cols));
  m.scales = ByteBuffer(CompactMatrix::scales_bytes(d.format, d.rows, d.cols));
  m.zeros = ByteBuffer(CompactMatrix::zeros_bytes(d.format, d.rows, d.cols));
  const size_t src_row = m.row_bytes();
  const auto dst_row = static_cast<size_t>(device_row_bytes(d.type, d.cols));
  check(cudaMemcpy2D(m.values.mutable_data(), src_row, d.memory.get(), dst_row, src_row, static_cast<size_t>(d.rows),
                     cudaMemcpyDeviceToHost),
        ("reading back " + t.name).c_str());
  check(cudaMemcpy(m.scales.mutable_data(), d.scales.get(), m.scales.size(), cudaMemcpyDeviceToHost),
        ("reading back the scales of " + t.name).c_str());
  if (!m.zeros.empty()) {
    check(cudaMemcpy(m.zeros.mutable_data(), d.zeros.get(), m.zeros.size(), cudaMemcpyDeviceToHost),
          ("reading back the zero points of " + t.name).c_str());
  }
  out = std::move(m);
  return true;
}

void DeviceWeights::set_matrices(GroupDesc &g, ExpertWeights &x, WType wtype, int64_t e, int64_t experts) {
  const DeviceMatrix gate = hold_matrix(x.gate_weight, x.gate_compact, wtype, expert_name(e, experts, "gate.weight"));
  const DeviceMatrix up = hold_matrix(x.up_weight, x.up_compact, wtype, expert_name(e, experts, "up.weight"));
  const DeviceMatrix down = hold_matrix(x.down_weight, x.down_compact, wtype, expert_name(e, experts, "down.weight"));
  g.gate = gate.values;
  g.up = up.values;
  g.down = down.values;
  g.gate_scales = gate.scales;
  g.up_scales = up.scales;
  g.down_scales = down.scales;
  g.gate_zeros = gate.zeros;
  g.up_zeros = up.zeros;
  g.down_zeros = down.zeros;
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
