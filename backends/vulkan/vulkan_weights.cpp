// SPDX-License-Identifier: MIT
// The layer's weights on the device: every expert and shared-expert matrix packed into device-local arenas in the
// model's weight type (a compact format's codes, scales and zero points as its file holds them), the router in its own fp32 buffer, the small per-layer vectors and the per-segment metadata
// the kernels read; their upload (the host copies freed as they go) and the read-back of a held tensor.
#include <algorithm>
#include <cstring>

#include "src/dtype.h"
#include "src/error.h"
#include "vulkan_backend.h"

namespace pimoe {

using vk::Buffer;
using vk::Device;
using vk::Memory;

namespace {
constexpr VkBufferUsageFlags kStorage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
constexpr VkBufferUsageFlags kSrc = VK_BUFFER_USAGE_TRANSFER_SRC_BIT, kDst = VK_BUFFER_USAGE_TRANSFER_DST_BIT;

// Bytes rounded up to whole 16-byte words.
VkDeviceSize word_bytes(size_t bytes) { return (static_cast<VkDeviceSize>(bytes) + 15) / 16 * 16; }
}  // namespace

const VulkanWeightType &vulkan_weight_type(WeightDtype dtype) {
  static const VulkanWeightType kTypes[] = {
      {WeightDtype::F32, "f32", 4, false},      {WeightDtype::BF16, "bf16", 8, false},
      {WeightDtype::F16, "f16", 8, false},      {WeightDtype::Int8, "i8", 16, true},
      {WeightDtype::Int4, "i4", 32, true},      {WeightDtype::Fp8E4M3, "fp8", 16, true},
      {WeightDtype::Mxfp4, "mxfp4", 32, true},
  };
  for (const VulkanWeightType &t : kTypes) {
    if (t.dtype == dtype) return t;
  }
  fail(PIMOE_ERR_INTERNAL, "vulkan: no kernels for weight_dtype '", enum_name(dtype), "'");
}

// Batches host-to-device copies through one staging buffer: each flush is one submission.
class Uploader {
 public:
  Uploader(Device &device, VkDeviceSize total) : device_(device) {
    staging_ = device.make_buffer(std::min<VkDeviceSize>(std::max<VkDeviceSize>(total, 16), kStagingBytes),
                                  kSrc, Memory::Upload, "weight upload staging");
  }
  // Space for `bytes` (at most the staging size) bound for dst at dst_offset; the caller fills it.
  void *reserve(const Buffer &dst, VkDeviceSize dst_offset, VkDeviceSize bytes) {
    if (used_ + bytes > staging_.size()) flush();
    void *p = static_cast<char *>(staging_.mapped()) + used_;
    if (!copies_.empty() && copies_.back().dst == &dst &&
        copies_.back().region.dstOffset + copies_.back().region.size == dst_offset &&
        copies_.back().region.srcOffset + copies_.back().region.size == used_) {
      copies_.back().region.size += bytes;  // contiguous with the previous piece: one region
    } else {
      copies_.push_back({&staging_, &dst, VkBufferCopy{used_, dst_offset, bytes}});
    }
    used_ += round_up(static_cast<int64_t>(bytes), 16);
    return p;
  }
  VkDeviceSize capacity() const { return staging_.size(); }
  void flush() {
    device_.copy(copies_);
    copies_.clear();
    used_ = 0;
  }

 private:
  static constexpr VkDeviceSize kStagingBytes = 64ull << 20;
  Device &device_;
  Buffer staging_;
  std::vector<Device::Copy> copies_;
  VkDeviceSize used_ = 0;
};

std::vector<VkDeviceSize> VulkanBackend::place_matrices(LayerWeights &weights) {
  const int64_t E = config_.router.num_experts, H = config_.hidden;
  // Arenas as large as the device binds (and at most 2 GiB, so that word offsets stay 32-bit in the shaders). An
  // expert's matrices share one arena (the shaders index the arena per expert).
  const VkDeviceSize arena_bytes = std::min<VkDeviceSize>(device_->max_binding(), 2ull << 30) / 16 * 16;
  std::vector<VkDeviceSize> sizes;
  struct Matrix {
    std::vector<float> *w;
    const CompactMatrix *c;  // its codes, for a compact format
    int64_t rows, cols, slot;
  };
  auto matrix_bytes = [&](const Matrix &m) {
    VkDeviceSize bytes = static_cast<VkDeviceSize>(m.rows * row_words(m.cols)) * 16;
    if (wtype_.compact) bytes += word_bytes(m.c->scales.size()) + word_bytes(m.c->zeros.size());
    return bytes;
  };
  auto place_expert = [&](const std::vector<Matrix> &matrices) {
    VkDeviceSize group = 0;
    for (const Matrix &m : matrices) group += matrix_bytes(m);
    if (group > arena_bytes) {
      fail(PIMOE_ERR_UNSUPPORTED, "vulkan: an expert's weights (", static_cast<double>(group) / (1 << 20),
           " MiB) exceed what ", device_->physical().properties.deviceName, " binds in one buffer (",
           static_cast<double>(arena_bytes) / (1 << 20), " MiB)");
    }
    if (sizes.empty() || sizes.back() + group > arena_bytes) {
      if (sizes.size() == MAX_ARENAS) {
        fail(PIMOE_ERR_UNSUPPORTED, "vulkan: the layer's weights need more than ", MAX_ARENAS, " buffers of ",
             static_cast<double>(arena_bytes) / (1 << 20), " MiB on ", device_->physical().properties.deviceName);
      }
      sizes.push_back(0);
    }
    for (const Matrix &m : matrices) {
      Placement p;
      p.rows = m.rows;
      p.cols = m.cols;
      p.fp32 = dtype_ == WeightDtype::F32;
      p.stride = row_words(m.cols);
      p.arena = static_cast<uint32_t>(sizes.size() - 1);
      p.offset = sizes.back() / 16;
      sizes.back() += static_cast<VkDeviceSize>(m.rows * p.stride) * 16;
      if (wtype_.compact) {
        if (m.c->empty() || m.c->format != config_.weight_format || m.c->rows != m.rows || m.c->cols != m.cols) {
          fail(PIMOE_ERR_INTERNAL, "vulkan: an expert matrix is not held as the layer's '",
               config_.weight_format.name(), "' codes");
        }
        p.format = m.c->format;
        p.scale_bytes = m.c->scales.size();
        p.zero_bytes = m.c->zeros.size();
        p.scale_offset = sizes.back() / 16;
        sizes.back() += word_bytes(p.scale_bytes);
        p.zero_offset = sizes.back() / 16;
        sizes.back() += word_bytes(p.zero_bytes);
      }
      held_[m.w] = p;
      expert_places_[static_cast<size_t>(m.slot)] = p;
    }
  };
  expert_places_.assign(static_cast<size_t>(3 * segments()), Placement{});
  for (int64_t e = 0; e < E; ++e) {
    if (spec(e).callback) continue;  // a host callback computes it: no weights
    ExpertWeights &w = weights.experts[static_cast<size_t>(e)];
    const int64_t I = spec(e).intermediate;
    std::vector<Matrix> m;
    if (spec(e).gated()) m.push_back({&w.gate_weight, &w.gate_compact, I, H, 3 * e});
    m.push_back({&w.up_weight, &w.up_compact, I, H, 3 * e + 1});
    m.push_back({&w.down_weight, &w.down_compact, H, I, 3 * e + 2});
    place_expert(m);
  }
  if (config_.shared.width > 0) {
    const int64_t Is = config_.shared.width;
    place_expert({{&weights.shared.gate_weight, &weights.shared.gate_compact, Is, H, 3 * E},
                  {&weights.shared.up_weight, &weights.shared.up_compact, Is, H, 3 * E + 1},
                  {&weights.shared.down_weight, &weights.shared.down_compact, H, Is, 3 * E + 2}});
  }
  return sizes;
}

// Writes one matrix in its device form (rows padded with zeros to PAD elements; fp32, bf16 or fp16 words).
void VulkanBackend::write_matrix(Uploader &up, const Placement &p, const std::vector<float> &w) const {
  const Buffer &dst = p.arena == kRouterArena ? router_ : arenas_[p.arena];
  const VkDeviceSize row_bytes = static_cast<VkDeviceSize>(p.stride) * 16;
  const int64_t rows_per_piece = std::max<int64_t>(1, static_cast<int64_t>(up.capacity() / row_bytes));
  for (int64_t r0 = 0; r0 < p.rows; r0 += rows_per_piece) {
    const int64_t rows = std::min(rows_per_piece, p.rows - r0);
    void *out = up.reserve(dst, (p.offset + static_cast<uint64_t>(r0 * p.stride)) * 16,
                           static_cast<VkDeviceSize>(rows) * row_bytes);
    const int64_t padded = p.stride * (p.fp32 ? 4 : 8);
    for (int64_t r = 0; r < rows; ++r) {
      const float *src = w.data() + (r0 + r) * p.cols;
      if (p.fp32) {
        float *d = static_cast<float *>(out) + r * padded;
        std::copy(src, src + p.cols, d);
        std::fill(d + p.cols, d + padded, 0.0f);
      } else {
        uint16_t *d = static_cast<uint16_t *>(out) + r * padded;
        // The model already rounded these values to the type, so the conversion is exact.
        for (int64_t c = 0; c < p.cols; ++c) {
          d[c] = dtype_ == WeightDtype::BF16 ? float_to_bf16_bits(src[c]) : float_to_fp16_bits(src[c]);
        }
        std::fill(d + p.cols, d + padded, static_cast<uint16_t>(0));
      }
    }
  }
}

// Writes a compact matrix as its file holds it: each row's codes (int8 and fp8 rows padded with the code of zero to
// whole words; a 4-bit row is whole words already), then the scales and zero points, byte for byte.
void VulkanBackend::write_compact(Uploader &up, const Placement &p, const CompactMatrix &m) const {
  const Buffer &dst = arenas_[p.arena];
  const size_t src_row = m.row_bytes();
  const auto dst_row = static_cast<VkDeviceSize>(p.stride) * 16;
  const int64_t rows_per_piece = std::max<int64_t>(1, static_cast<int64_t>(up.capacity() / dst_row));
  for (int64_t r0 = 0; r0 < p.rows; r0 += rows_per_piece) {
    const int64_t rows = std::min(rows_per_piece, p.rows - r0);
    auto *out = static_cast<uint8_t *>(up.reserve(dst, (p.offset + static_cast<uint64_t>(r0 * p.stride)) * 16,
                                                  static_cast<VkDeviceSize>(rows) * dst_row));
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t *d = out + r * dst_row;
      std::copy_n(m.values.data() + static_cast<size_t>(r0 + r) * src_row, src_row, d);
      std::fill(d + src_row, d + dst_row, static_cast<uint8_t>(0));
    }
  }
  auto bytes = [&](uint64_t word, const ByteBuffer &b) {
    for (size_t done = 0; done < b.size();) {
      const size_t piece = std::min<size_t>(b.size() - done, static_cast<size_t>(up.capacity()));
      std::memcpy(up.reserve(dst, word * 16 + done, piece), b.data() + done, piece);
      done += piece;
    }
  };
  bytes(p.scale_offset, m.scales);
  bytes(p.zero_offset, m.zeros);
}

void VulkanBackend::upload_weights(LayerWeights &weights) {
  const int64_t E = config_.router.num_experts, H = config_.hidden, S = segments();
  const std::vector<VkDeviceSize> arena_sizes = place_matrices(weights);
  for (VkDeviceSize bytes : arena_sizes) {
    arenas_.push_back(device_->make_buffer(bytes, kStorage | kSrc | kDst, Memory::Device, "expert weights"));
    device_bytes_ += bytes;
  }
  router_place_.arena = kRouterArena;
  router_place_.rows = E;
  router_place_.cols = H;
  router_place_.stride = round_up(H, PAD) / 4;
  router_ = device_->make_buffer(static_cast<VkDeviceSize>(E * router_place_.stride) * 16, kStorage | kSrc | kDst,
                                 Memory::Device, "router weights");
  device_bytes_ += router_.size();
  held_[&weights.router_weight] = router_place_;

  // Small per-layer vectors: copied (the host keeps them: the router reads the selection bias), not held.
  std::vector<float> small;
  auto add = [&small](const std::vector<float> &v) -> uint32_t {
    if (v.empty()) return META_NONE;
    const auto offset = static_cast<uint32_t>(small.size());
    small.insert(small.end(), v.begin(), v.end());
    return offset;
  };
  meta_host_.assign(static_cast<size_t>(S * META_STRIDE), 0);
  for (int64_t s = 0; s < S; ++s) {
    uint32_t *m = meta_host_.data() + s * META_STRIDE;
    const bool shared = s == E;
    const ExpertWeights &w = shared ? weights.shared : weights.experts[static_cast<size_t>(s)];
    const int64_t I = shared ? config_.shared.width : spec(s).intermediate;
    const bool gated = shared || spec(s).gated();
    m[META_I] = static_cast<uint32_t>(I);
    m[META_IP] = static_cast<uint32_t>(padded_width(s));
    m[META_ACT] = shared ? static_cast<uint32_t>(PIMOE_ACT_SWIGLU) : static_cast<uint32_t>(spec(s).activation);
    m[META_FLAGS] = (gated ? EXPERT_GATED : 0u) | (!shared && spec(s).pre_norm ? EXPERT_PRE_NORM : 0u);
    const Placement &up = expert_places_[3 * s + 1];
    m[META_ARENA] = up.arena;
    m[META_UP] = static_cast<uint32_t>(up.offset);
    m[META_GATE] = static_cast<uint32_t>(gated ? expert_places_[3 * s].offset : 0);
    m[META_DOWN] = static_cast<uint32_t>(expert_places_[3 * s + 2].offset);
    m[META_UP_STRIDE] = static_cast<uint32_t>(up.stride);
    m[META_DOWN_STRIDE] = static_cast<uint32_t>(expert_places_[3 * s + 2].stride);
    m[META_NORM_W] = add(w.norm_weight);
    m[META_NORM_B] = add(w.norm_bias);
    m[META_UP_B] = add(w.up_bias);
    m[META_DOWN_B] = add(w.down_bias);
    // Compact formats: where each matrix's scales and zero points start (compact_codes.glsl).
    const uint32_t place_fields[3][2] = {{META_GATE_SCALE, META_GATE_ZERO}, {META_UP_SCALE, META_UP_ZERO},
                                         {META_DOWN_SCALE, META_DOWN_ZERO}};
    for (int i = 0; i < 3; ++i) {
      const Placement &p = expert_places_[static_cast<size_t>(3 * s + i)];
      const bool held = wtype_.compact && p.rows > 0;
      m[place_fields[i][0]] = held && p.scale_bytes > 0 ? static_cast<uint32_t>(p.scale_offset) : META_NONE;
      m[place_fields[i][1]] = held && p.zero_bytes > 0 ? static_cast<uint32_t>(p.zero_offset) : META_NONE;
    }
    m[META_GROUP] = static_cast<uint32_t>(config_.weight_format.group);
    if (I > 0) max_ip_ = std::max(max_ip_, padded_width(s));
  }
  if (config_.router.selection_bias) bias_off_ = add(weights.selection_bias);
  if (config_.shared.gated) score_off_ = add(weights.shared_score_weight);
  small.push_back(0.0f);  // never empty
  meta_ = device_->make_buffer(meta_host_.size() * 4, kStorage | kDst, Memory::Device, "expert metadata");
  small_ = device_->make_buffer(small.size() * 4, kStorage | kDst, Memory::Device, "expert vectors");

  VkDeviceSize total = static_cast<VkDeviceSize>(meta_host_.size() + small.size()) * 4 + router_.size();
  for (VkDeviceSize bytes : arena_sizes) total += bytes;
  Uploader up(*device_, total);
  std::memcpy(up.reserve(meta_, 0, meta_host_.size() * 4), meta_host_.data(), meta_host_.size() * 4);
  std::memcpy(up.reserve(small_, 0, small.size() * 4), small.data(), small.size() * 4);
  // Each matrix goes to the device and its host copy is freed right away, so that loading never holds two full
  // copies of the weights (Model reads them back through read_weight()).
  write_matrix(up, router_place_, weights.router_weight);
  std::vector<float>().swap(weights.router_weight);
  for (int64_t s = 0; s < S; ++s) {
    ExpertWeights &w = s == E ? weights.shared : weights.experts[static_cast<size_t>(s)];
    std::vector<float> *m[3] = {&w.gate_weight, &w.up_weight, &w.down_weight};
    CompactMatrix *c[3] = {&w.gate_compact, &w.up_compact, &w.down_compact};
    for (int i = 0; i < 3; ++i) {
      if (!held_.count(m[i])) continue;
      if (wtype_.compact) {
        write_compact(up, held_.at(m[i]), *c[i]);  // copied into staging: the host copy can go
        *c[i] = CompactMatrix();
      } else {
        write_matrix(up, held_.at(m[i]), *m[i]);
      }
      std::vector<float>().swap(*m[i]);
    }
  }
  up.flush();
}

void VulkanBackend::read_weight(const NamedTensor &t, float *out) const {
  const Placement &p = held_.at(t.data);
  if (p.format.compact() && wtype_.compact) {
    CompactMatrix m;
    read_compact_weight(t, m);
    m.dequantize_rows(0, m.rows, out);
    return;
  }
  const Buffer &src = p.arena == kRouterArena ? router_ : arenas_[p.arena];
  const VkDeviceSize bytes = static_cast<VkDeviceSize>(p.rows * p.stride) * 16;
  Buffer staging = device_->make_buffer(bytes, kDst, Memory::Readback, "weight read-back");
  device_->copy({{&src, &staging, VkBufferCopy{p.offset * 16, 0, bytes}}});
  const int64_t padded = p.stride * (p.fp32 ? 4 : 8);
  for (int64_t r = 0; r < p.rows; ++r) {
    float *dst = out + r * p.cols;
    if (p.fp32) {
      const float *row = static_cast<const float *>(staging.mapped()) + r * padded;
      std::copy(row, row + p.cols, dst);
    } else {
      const uint16_t *row = static_cast<const uint16_t *>(staging.mapped()) + r * padded;
      for (int64_t c = 0; c < p.cols; ++c) {
        dst[c] = dtype_ == WeightDtype::BF16 ? bf16_bits_to_float(row[c]) : fp16_bits_to_float(row[c]);
      }
    }
  }
}

bool VulkanBackend::read_compact_weight(const NamedTensor &t, CompactMatrix &out) const {
  const Placement &p = held_.at(t.data);
  if (!wtype_.compact || p.arena == kRouterArena) return false;
  const VkDeviceSize bytes = (p.zero_offset - p.offset) * 16 + p.zero_bytes;  // codes, scales, zero points
  Buffer staging = device_->make_buffer(bytes, kDst, Memory::Readback, "weight read-back");
  device_->copy({{&arenas_[p.arena], &staging, VkBufferCopy{p.offset * 16, 0, bytes}}});
  const auto *base = static_cast<const uint8_t *>(staging.mapped());
  CompactMatrix m;
  m.format = p.format;
  m.rows = p.rows;
  m.cols = p.cols;
  m.values = ByteBuffer(CompactMatrix::values_bytes(p.format, p.rows, p.cols));
  m.scales = ByteBuffer(p.scale_bytes);
  m.zeros = ByteBuffer(p.zero_bytes);
  const size_t row = m.row_bytes();
  for (int64_t r = 0; r < p.rows; ++r) {
    std::copy_n(base + static_cast<size_t>(r * p.stride) * 16, row,
                m.values.mutable_data() + static_cast<size_t>(r) * row);
  }
  std::copy_n(base + (p.scale_offset - p.offset) * 16, p.scale_bytes, m.scales.mutable_data());
  if (p.zero_bytes > 0) std::copy_n(base + (p.zero_offset - p.offset) * 16, p.zero_bytes, m.zeros.mutable_data());
  out = std::move(m);
  return true;
}

LayerBindings VulkanBackend::layer_bindings() const {
  LayerBindings b;
  b.meta = &meta_;
  b.small = &small_;
  b.router = &router_;
  // A layer without arenas (every expert a callback) binds a valid buffer in their place.
  for (uint32_t i = 0; i < MAX_ARENAS; ++i) {
    b.arena[i] = arenas_.empty() ? &small_ : &arenas_[std::min<size_t>(i, arenas_.size() - 1)];
  }
  return b;
}

}  // namespace pimoe
