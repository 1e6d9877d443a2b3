// SPDX-License-Identifier: MIT
#include "formats/hf_import.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <map>

#include "compact_matrix.h"
#include "error.h"
#include "formats/hf_checkpoint.h"
#include "formats/mapped_file.h"
#include "layer_config.h"

namespace pimoe {
namespace {

using Storage = HfTensorMapping::Storage;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

uint64_t element_count(const std::vector<int64_t> &shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

std::string shape_text(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// The config.json values a tensor's shape derives from, for "contradicts config.json" messages.
std::string shape_reason(const HfLayerConfig &layer, const HfTensorMapping &m) {
  const std::string &native_name = m.native_name;
  std::string why = "hidden_size = " + std::to_string(layer.hidden);
  if (native_name.rfind("router.", 0) == 0 || m.expert >= 0) {
    why += ", " + layer.experts_key + " = " + std::to_string(layer.num_experts);
  }
  if (native_name.rfind("experts.", 0) == 0) {
    why += ", " + layer.width_key + " = " + std::to_string(layer.expert_width);
  } else if (native_name.rfind("shared.", 0) == 0) {
    why += ", " + layer.shared_width_key + " = " + std::to_string(layer.shared_width);
  }
  return why;
}

bool is_float(DType d) {
  return d == DType::F32 || d == DType::BF16 || d == DType::F16;
}

// A checkpoint tensor of one mapping, found and validated, with its scales when its storage has them.
struct Source {
  const HfTensorMapping *mapping = nullptr;
  HfCheckpoint::Found values;
  HfCheckpoint::Found scales;  // F8_E4M3 matrices and MXFP4 blocks only

  std::string where() const { return "file '" + values.file->path() + "': tensor '" + mapping->hf_name + "'"; }
  // `where` with the slice and the scales, for messages about a compact matrix's bytes.
  std::string what() const {
    std::string w = where();
    if (mapping->expert >= 0) {
      w += " (expert " + std::to_string(mapping->expert);
      if (mapping->row_parity >= 0) w += mapping->row_parity ? ", odd rows: up" : ", even rows: gate";
      w += ")";
    }
    if (scales.file) w += " with scales '" + mapping->scale_name + "'";
    return w;
  }
};

// Finds the tensor of `m` and its scales, and checks their shapes and dtypes against config.json.
Source find_source(HfCheckpoint &checkpoint, const std::string &dir, const HfLayerConfig &layer,
                   const HfTensorMapping &m) {
  Source src;
  src.mapping = &m;
  src.values = checkpoint.find(m.hf_name);
  if (!src.values.file) {
    const std::string file = checkpoint.file_for(m.hf_name);
    fail(PIMOE_ERR_FORMAT, "checkpoint '", dir, "': tensor '", m.hf_name, "' is missing from '",
         file.empty() ? checkpoint.source() : file, "' (", hf_model_type(layer.family), " layer ", layer.layer,
         " needs it, shape ", shape_text(m.shape), ")");
  }
  const TensorInfo &t = *src.values.tensor;
  if (t.shape != m.shape) {
    fail(PIMOE_ERR_FORMAT, src.where(), " has shape ", shape_text(t.shape), " but '", layer.config_path, "' (",
         shape_reason(layer, m), ") needs ", shape_text(m.shape));
  }
  const bool fp8 = m.storage == Storage::Fp8OrFloat && t.dtype == DType::F8_E4M3;
  if (m.storage == Storage::Mxfp4) {
    if (t.dtype != DType::U8) {
      fail(PIMOE_ERR_UNSUPPORTED, src.where(), " has dtype ", dtype_name(t.dtype), " (MXFP4 blocks are U8)");
    }
  } else if (!fp8 && !is_float(t.dtype)) {
    const char *hint = t.dtype == DType::F8_E4M3 && m.storage == Storage::Float && layer.quant != HfQuant::Fp8Block
                           ? "; an F8_E4M3 expert matrix needs config.json's quantization_config 'fp8'"
                           : "";
    fail(PIMOE_ERR_UNSUPPORTED, src.where(), " has dtype ", dtype_name(t.dtype),
         m.storage == Storage::Fp8OrFloat ? " (F8_E4M3 with its weight_scale_inv, F32, BF16 and F16 are supported)"
                                          : " (F32, BF16 and F16 are supported)",
         hint);
  }
  if (!fp8 && m.storage != Storage::Mxfp4) return src;

  src.scales = checkpoint.find(m.scale_name);
  if (!src.scales.file) {
    const std::string file = checkpoint.file_for(m.scale_name);
    fail(PIMOE_ERR_FORMAT, src.where(), " is ", fp8 ? "F8_E4M3" : "MXFP4", " but its scales '", m.scale_name,
         "' are missing from '", file.empty() ? checkpoint.source() : file, "' (shape ", shape_text(m.scale_shape),
         ")");
  }
  const TensorInfo &st = *src.scales.tensor;
  if (st.shape != m.scale_shape) {
    fail(PIMOE_ERR_FORMAT, "file '", src.scales.file->path(), "': tensor '", m.scale_name, "' has shape ",
         shape_text(st.shape), " but '", m.hf_name, "' ", shape_text(m.shape),
         fp8 ? " in 128 x 128 blocks needs " : " in groups of 32 needs ", shape_text(m.scale_shape));
  }
  if (fp8 ? !is_float(st.dtype) : st.dtype != DType::U8) {
    fail(PIMOE_ERR_UNSUPPORTED, "file '", src.scales.file->path(), "': tensor '", m.scale_name, "' has dtype ",
         dtype_name(st.dtype), fp8 ? " (weight_scale_inv is F32, BF16 or F16)" : " (E8M0 scales are U8)");
  }
  return src;
}

void check_finite(const float *values, size_t count, const Source &src) {
  for (size_t i = 0; i < count; ++i) {
    if (!std::isfinite(values[i])) {
      fail(PIMOE_ERR_FORMAT, src.where(), " element ", i, " is ", std::isnan(values[i]) ? "NaN" : "Inf");
    }
  }
}

// A whole F32, BF16 or F16 tensor into out.
void read_floats(const Source &src, std::vector<float> &out) {
  const SafetensorsView &view = src.values.file->view();
  decode_to_f32(view, *src.values.tensor, out.data(), out.size());
  release_mapped_pages(view.bytes(*src.values.tensor), src.values.tensor->byte_size());
  check_finite(out.data(), out.size(), src);
}

// The expert's slice of a fused float tensor (HfTensorMapping: its rows, even or odd rows, or columns transposed)
// into out [rows, cols] (a vector: cols 1), read from the mapped file: no fp32 copy of the whole tensor.
void read_fused_floats(const Source &src, std::vector<float> &out, int64_t cols) {
  const HfTensorMapping &m = *src.mapping;
  const TensorInfo &t = *src.values.tensor;
  const int64_t block = m.block_rows * m.block_cols;
  const int64_t rows = static_cast<int64_t>(out.size()) / cols;
  const bool fits = m.transpose ? m.col_offset + rows <= m.block_cols && cols == m.block_rows
                                : cols == m.block_cols && (m.row_parity < 0 ? m.row_offset + rows <= m.block_rows
                                                                            : 2 * rows <= m.block_rows);
  if (!fits || (m.expert + 1) * block > static_cast<int64_t>(t.element_count)) {
    fail(PIMOE_ERR_INTERNAL, src.what(), ": the slice does not fit the tensor");
  }
  const SafetensorsView &view = src.values.file->view();
  const auto base = static_cast<size_t>(m.expert * block);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t k = 0; k < cols; ++k) {
      const int64_t row = m.row_parity < 0 ? m.row_offset + i : 2 * i + m.row_parity;
      const int64_t at = m.transpose ? k * m.block_cols + m.col_offset + i : row * m.block_cols + k;
      out[static_cast<size_t>(i * cols + k)] = decode_f32_element(view, t, base + static_cast<size_t>(at));
    }
  }
  check_finite(out.data(), out.size(), src);
}

// A compact matrix's values must be finite in fp32: check_codes rejects NaN codes and scales, and this the scales
// that overflow fp32 with a large code (no quantiser writes them).
void check_compact_finite(const CompactMatrix &c, const Source &src) {
  if (c.format.dtype == WeightDtype::Fp8E4M3) {
    const size_t n = c.scales.size() / 4;
    for (size_t i = 0; i < n; ++i) {
      float s;
      std::memcpy(&s, c.scales.data() + 4 * i, 4);
      if (!(std::fabs(s) <= FLT_MAX / 448.0f)) {
        fail(PIMOE_ERR_FORMAT, src.what(), ": scale [", i, "] = ", s, " overflows fp32 times e4m3's largest value 448");
      }
    }
    return;
  }
  const int64_t groups = ceil_div(c.cols, 32);
  std::vector<float> row(static_cast<size_t>(c.cols));
  for (int64_t r = 0; r < c.rows; ++r) {
    bool large = false;  // 6 * 2^(252 - 127) is finite: rows whose scales stay below need no look
    for (int64_t g = 0; g < groups; ++g) large = large || c.scales.data()[r * groups + g] > 252;
    if (!large) continue;
    c.dequantize_rows(r, r + 1, row.data());
    for (int64_t k = 0; k < c.cols; ++k) {
      if (!std::isfinite(row[static_cast<size_t>(k)])) {
        fail(PIMOE_ERR_FORMAT, src.what(), ": element [", r, ", ", k, "] overflows fp32 (E8M0 scale ",
             int(c.scales.data()[r * groups + k / 32]), ")");
      }
    }
  }
}

// An F8_E4M3 matrix [rows, cols] and its weight_scale_inv, as the fp8_e4m3 format holds them (the same layout).
CompactMatrix read_fp8(const Source &src, int64_t rows, int64_t cols) {
  CompactMatrix c;
  c.format.dtype = WeightDtype::Fp8E4M3;
  c.rows = rows;
  c.cols = cols;
  const SafetensorsView &view = src.values.file->view();
  const TensorInfo &vt = *src.values.tensor;
  c.values = ByteBuffer(CompactMatrix::values_bytes(c.format, rows, cols));
  std::memcpy(c.values.mutable_data(), view.bytes(vt), c.values.size());
  release_mapped_pages(view.bytes(vt), vt.byte_size());
  const SafetensorsView &sview = src.scales.file->view();
  const TensorInfo &st = *src.scales.tensor;
  std::vector<float> scales(static_cast<size_t>(st.element_count));
  decode_to_f32(sview, st, scales.data(), scales.size());
  c.scales = ByteBuffer(CompactMatrix::scales_bytes(c.format, rows, cols));
  if (c.scales.size() != 4 * scales.size()) fail(PIMOE_ERR_INTERNAL, src.what(), ": scale count disagrees");
  std::memcpy(c.scales.mutable_data(), scales.data(), c.scales.size());
  c.check_codes(src.what());
  check_compact_finite(c, src);
  return c;
}

// Rows of one expert of fused MXFP4 blocks [E, R, G, 16] and scales [E, R, G] (all rows, or the even or odd ones),
// as the mxfp4 format holds them (the same row layout); the nibbles past `cols` in a row's last block become zero.
CompactMatrix read_mxfp4_rows(const Source &src, int64_t rows, int64_t cols) {
  const HfTensorMapping &m = *src.mapping;
  const int64_t R = m.shape[1], G = m.shape[2], row_bytes = G * 16;
  CompactMatrix c;
  c.format.dtype = WeightDtype::Mxfp4;
  c.rows = rows;
  c.cols = cols;
  c.values = ByteBuffer(CompactMatrix::values_bytes(c.format, rows, cols));
  c.scales = ByteBuffer(CompactMatrix::scales_bytes(c.format, rows, cols));
  if (static_cast<int64_t>(c.values.size()) != rows * row_bytes || static_cast<int64_t>(c.scales.size()) != rows * G) {
    fail(PIMOE_ERR_INTERNAL, src.what(), ": MXFP4 row layout disagrees");
  }
  const SafetensorsView &view = src.values.file->view();
  const SafetensorsView &sview = src.scales.file->view();
  const uint8_t *blocks = view.bytes(*src.values.tensor) + m.expert * R * row_bytes;
  const uint8_t *scales = sview.bytes(*src.scales.tensor) + m.expert * R * G;
  uint8_t *values = c.values.mutable_data(), *scale_out = c.scales.mutable_data();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t from = m.row_parity < 0 ? r : 2 * r + m.row_parity;
    std::memcpy(values + r * row_bytes, blocks + from * row_bytes, static_cast<size_t>(row_bytes));
    std::memcpy(scale_out + r * G, scales + from * G, static_cast<size_t>(G));
    for (int64_t k = cols; k < G * 32; ++k) {  // padding: the code of zero
      uint8_t &b = values[r * row_bytes + (k / 32) * 16 + (k % 32) / 2];
      b = static_cast<uint8_t>((k & 1) ? (b & 0x0f) : (b & 0xf0));
    }
  }
  release_mapped_pages(blocks, static_cast<size_t>(R * row_bytes));
  release_mapped_pages(scales, static_cast<size_t>(R * G));
  c.check_codes(src.what());
  check_compact_finite(c, src);
  return c;
}

// Hands a matrix read in a compact format to its tensor: as it is when the tensor is stored in that format (no fp32
// copy), else through fp32 into the tensor's format.
void deliver(const NamedTensor &t, CompactMatrix &&c) {
  mark_quantised_source(t);  // the checkpoint ships the codes, not the weights they were made from
  if (t.compact && t.format == c.format) {
    *t.compact = std::move(c);
    return;
  }
  {
    const CompactMatrix local = std::move(c);
    local.dequantize_rows(0, local.rows, fill_buffer(t).data());
  }
  finish_filling(t);
}

}  // namespace

std::vector<HfTensorMapping> hf_tensor_mapping(const HfLayerConfig &layer) {
  const int64_t H = layer.hidden;
  const int64_t E = layer.num_experts;
  const int64_t I = layer.expert_width;
  const std::string &p = layer.prefix;
  std::vector<HfTensorMapping> out;
  auto add = [&](std::string native, std::string hf, std::vector<int64_t> shape) -> HfTensorMapping & {
    HfTensorMapping m;
    m.native_name = std::move(native);
    m.hf_name = std::move(hf);
    m.shape = std::move(shape);
    out.push_back(std::move(m));
    return out.back();
  };
  // An nn.Linear weight [rows, cols] of an expert or the shared expert: FP8 checkpoints ship it as F8_E4M3 with its
  // weight_scale_inv, in 128 x 128 blocks.
  auto add_matrix = [&](std::string native, const std::string &hf, int64_t rows, int64_t cols) {
    HfTensorMapping &m = add(std::move(native), hf, {rows, cols});
    if (layer.quant == HfQuant::Fp8Block) {
      m.storage = HfTensorMapping::Storage::Fp8OrFloat;
      m.scale_name = hf + "_scale_inv";
      m.scale_shape = {ceil_div(rows, 128), ceil_div(cols, 128)};
    }
  };

  if (layer.family == HfFamily::GptOss) {
    // GptOssMLP: router.{weight,bias}; every expert's matrices in one MXFP4 tensor per projection, rows the outputs,
    // gate_up's rows interleaved (row 2j: gate j, row 2j+1: up j), its bias the same way.
    const int64_t gh = ceil_div(H, 32), gi = ceil_div(I, 32);
    const std::string x = p + "experts.";
    add("router.weight", p + "router.weight", {E, H});
    add("router.bias", p + "router.bias", {E});
    for (int64_t e = 0; e < E; ++e) {
      const std::string native = "experts." + std::to_string(e) + ".";
      for (int parity : {0, 1}) {
        HfTensorMapping &w =
            add(native + (parity ? "up.weight" : "gate.weight"), x + "gate_up_proj_blocks", {E, 2 * I, gh, 16});
        w.storage = HfTensorMapping::Storage::Mxfp4;
        w.scale_name = x + "gate_up_proj_scales";
        w.scale_shape = {E, 2 * I, gh};
        w.expert = e;
        w.row_parity = parity;
        HfTensorMapping &b = add(native + (parity ? "up.bias" : "gate.bias"), x + "gate_up_proj_bias", {E, 2 * I});
        b.expert = e;
        b.row_parity = parity;
        b.block_rows = 2 * I;
        b.block_cols = 1;
      }
      HfTensorMapping &w = add(native + "down.weight", x + "down_proj_blocks", {E, H, gi, 16});
      w.storage = HfTensorMapping::Storage::Mxfp4;
      w.scale_name = x + "down_proj_scales";
      w.scale_shape = {E, H, gi};
      w.expert = e;
      HfTensorMapping &b = add(native + "down.bias", x + "down_proj_bias", {E, H});
      b.expert = e;
      b.block_rows = H;
      b.block_cols = 1;
    }
    return out;
  }

  // Every expert's matrices fused in one float tensor per projection (Granite, DBRX): expert e's slice.
  auto add_fused = [&](std::string native, const std::string &hf, std::vector<int64_t> shape, int64_t e,
                       int64_t block_rows, int64_t block_cols) -> HfTensorMapping & {
    HfTensorMapping &m = add(std::move(native), hf, std::move(shape));
    m.expert = e;
    m.block_rows = block_rows;
    m.block_cols = block_cols;
    return m;
  };
  if (layer.family == HfFamily::GraniteMoe) {
    // GraniteMoeMoE (the hub's names): router.layer [E, H]; input_linear [E, 2I, H], of which rows [0, I) are the
    // gate and [I, 2I) the up projection (transformers' chunk(2)); output_linear [E, H, I].
    add("router.weight", p + "router.layer.weight", {E, H});
    for (int64_t e = 0; e < E; ++e) {
      const std::string native = "experts." + std::to_string(e) + ".";
      add_fused(native + "gate.weight", p + "input_linear.weight", {E, 2 * I, H}, e, 2 * I, H);
      add_fused(native + "up.weight", p + "input_linear.weight", {E, 2 * I, H}, e, 2 * I, H).row_offset = I;
      add_fused(native + "down.weight", p + "output_linear.weight", {E, H, I}, e, H, I);
    }
    return out;
  }
  if (layer.family == HfFamily::Dbrx) {
    // DbrxFFN: router.layer [E, H]; experts.mlp.w1 (gate) and v1 (up) [E * I, H], expert e's rows [e I, (e + 1) I);
    // w2 [E * I, H] likewise, used as h @ w2_e: down = w2_e transposed.
    add("router.weight", p + "router.layer.weight", {E, H});
    const std::string x = p + "experts.mlp.";
    for (int64_t e = 0; e < E; ++e) {
      const std::string native = "experts." + std::to_string(e) + ".";
      add_fused(native + "gate.weight", x + "w1", {E * I, H}, e, I, H);
      add_fused(native + "up.weight", x + "v1", {E * I, H}, e, I, H);
      add_fused(native + "down.weight", x + "w2", {E * I, H}, e, I, H).transpose = true;
    }
    return out;
  }

  if (layer.family == HfFamily::Llama4Text || layer.family == HfFamily::Llama4) {
    // Llama4TextMoe: router [E, H]; experts.gate_up_proj [E, H, 2I] used as x @ W_e (gate = columns [0, I), up =
    // [I, 2I), each transposed) and experts.down_proj [E, I, H] (down = its transpose); shared_expert.*_proj.
    add("router.weight", p + "router.weight", {E, H});
    for (int64_t e = 0; e < E; ++e) {
      const std::string native = "experts." + std::to_string(e) + ".";
      add_fused(native + "gate.weight", p + "experts.gate_up_proj", {E, H, 2 * I}, e, H, 2 * I).transpose = true;
      HfTensorMapping &up_m = add_fused(native + "up.weight", p + "experts.gate_up_proj", {E, H, 2 * I}, e, H, 2 * I);
      up_m.transpose = true;
      up_m.col_offset = I;
      add_fused(native + "down.weight", p + "experts.down_proj", {E, I, H}, e, I, H).transpose = true;
    }
    const int64_t S = layer.shared_width;
    add_matrix("shared.gate.weight", p + "shared_expert.gate_proj.weight", S, H);
    add_matrix("shared.up.weight", p + "shared_expert.up_proj.weight", S, H);
    add_matrix("shared.down.weight", p + "shared_expert.down_proj.weight", H, S);
    return out;
  }

  const bool w123 = layer.family == HfFamily::Mixtral || layer.family == HfFamily::MiniMax ||
                    layer.family == HfFamily::MiniMaxM2 ||
                    layer.family == HfFamily::Phimoe;  // Mixtral's names: w1 gate, w3 up, w2 down
  const char *gate = w123 ? "w1" : "gate_proj";
  const char *up = w123 ? "w3" : "up_proj";
  const char *down = w123 ? "w2" : "down_proj";
  switch (layer.family) {
    case HfFamily::HunyuanV1Moe:
      add("router.weight", p + "gate.wg.weight", {E, H});
      break;
    case HfFamily::Jamba:
      add("router.weight", p + "router.weight", {E, H});
      break;
    default:
      add("router.weight", p + "gate.weight", {E, H});
  }
  if (layer.selection_bias) {
    switch (layer.family) {
      case HfFamily::Ernie45Moe:  // Ernie4_5_MoeStatics: [1, E] (one expert group)
        add("router.selection_bias", p + "moe_statics.e_score_correction_bias", {1, E});
        break;
      case HfFamily::MiniMaxM2:  // on the block, not the router
        add("router.selection_bias", p + "e_score_correction_bias", {E});
        break;
      case HfFamily::BailingHybrid:  // the hub's name (transformers renames it e_score_correction_bias)
        add("router.selection_bias", p + "gate.expert_bias", {E});
        break;
      default:
        add("router.selection_bias", p + "gate.e_score_correction_bias", {E});
    }
  }
  for (int64_t e = 0; e < E; ++e) {
    const std::string native = "experts." + std::to_string(e) + ".";
    const std::string hf = p + "experts." + std::to_string(e) + ".";
    add_matrix(native + "gate.weight", hf + gate + ".weight", I, H);
    add_matrix(native + "up.weight", hf + up + ".weight", I, H);
    add_matrix(native + "down.weight", hf + down + ".weight", H, I);
  }
  if (layer.shared_width > 0) {
    const int64_t S = layer.shared_width;
    const char *shared = "shared_experts.";
    if (layer.family == HfFamily::Qwen2Moe || layer.family == HfFamily::Qwen3Next) shared = "shared_expert.";
    if (layer.family == HfFamily::HunyuanV1Moe) shared = "shared_mlp.";
    const std::string hf = p + shared;
    add_matrix("shared.gate.weight", hf + "gate_proj.weight", S, H);
    add_matrix("shared.up.weight", hf + "up_proj.weight", S, H);
    add_matrix("shared.down.weight", hf + "down_proj.weight", H, S);
    if (layer.shared_gate) add("shared.score.weight", p + "shared_expert_gate.weight", {1, H});
  }
  return out;
}

std::unique_ptr<pimoe_model> import_hf(const std::string &dir, int32_t layer_index, const Options &runtime) {
  const HfLayerConfig layer = read_hf_config(dir, layer_index, runtime);
  LayerConfig config;
  try {
    config = resolve_layer_config(layer.options);
  } catch (const Error &e) {
    if (e.status() != PIMOE_ERR_INVALID_OPTION) throw;
    fail(PIMOE_ERR_FORMAT, "file '", layer.config_path, "' describes a layer libpimoe cannot build: ", e.what());
  }

  // Every tensor is found and checked before the model allocates anything.
  HfCheckpoint checkpoint(dir);
  const std::vector<HfTensorMapping> mapping = hf_tensor_mapping(layer);
  std::map<std::string, Source> by_native;
  for (const HfTensorMapping &m : mapping) by_native[m.native_name] = find_source(checkpoint, dir, layer, m);

  const WeightFiller fill = [&](const std::vector<NamedTensor> &tensors) {
    if (tensors.size() != mapping.size()) {
      fail(PIMOE_ERR_INTERNAL, "the layer has ", tensors.size(), " tensors but the importer maps ", mapping.size());
    }
    for (const NamedTensor &t : tensors) {
      const auto it = by_native.find(t.name);
      if (it == by_native.end() ||
          (it->second.mapping->expert < 0 && it->second.values.tensor->element_count != element_count(t.shape))) {
        fail(PIMOE_ERR_INTERNAL, "the importer has no mapping for tensor '", t.name, "' ", shape_text(t.shape));
      }
      const Source &src = it->second;
      const HfTensorMapping &m = *src.mapping;
      if (m.storage == HfTensorMapping::Storage::Mxfp4) {
        deliver(t, read_mxfp4_rows(src, t.shape[0], t.shape[1]));
      } else if (src.scales.file) {  // F8_E4M3 with its weight_scale_inv
        deliver(t, read_fp8(src, t.shape[0], t.shape[1]));
      } else if (m.expert >= 0) {
        read_fused_floats(src, fill_buffer(t), t.shape.size() > 1 ? t.shape[1] : 1);
        finish_filling(t);
      } else {
        read_floats(src, fill_buffer(t));
        finish_filling(t);
      }
    }
  };
  return std::make_unique<pimoe_model>(config, fill);
}

}  // namespace pimoe
