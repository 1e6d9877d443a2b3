// SPDX-License-Identifier: MIT
// `pimoe info` without --json: the description of layer_info.cpp as aligned text, one topic a line. It prints the
// JSON's fields and computes nothing, so the text and the JSON cannot disagree.
#include <cstdio>
#include <string>

#include "tools/layer_info.h"

namespace pimoe_tools {
namespace {

using nlohmann::json;

// A JSON value as text: strings bare, null as "-", numbers and booleans as JSON writes them.
std::string text(const json &value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

// The quantisation error of a load verdict: pimoe_stats' weight_quant_* of the loaded layer.
std::string quant_text(const json &quant) {
  if (quant.is_null()) return "unknown (the expert matrices came quantised: their fp32 weights are not in the source)";
  char text[160];
  std::snprintf(text, sizeof text, "rel RMS %.4g, max abs %.4g (expert matrices against the source's fp32 values)",
                quant.at("rel_rms").get<double>(), quant.at("max_abs").get<double>());
  return text;
}

void line(std::string &out, const char *topic, const std::string &body) {
  char head[16];
  std::snprintf(head, sizeof head, "%-13s", topic);
  out += head + body + "\n";
}

void checkpoint_text(std::string &out, const json &info) {
  const json &c = info.at("config");
  line(out, "family:", text(info["source"]["family"]) + " (Hugging Face checkpoint)");
  line(out, "layer dims:", "hidden " + text(c["hidden"]) + ", " + text(c["num_experts"]) + " routed experts, top_k " +
                               text(c["top_k"]) + ", expert width " + text(c["expert_width"]));
  line(out, "router:", "scoring " + text(c["scoring_func"]) + ", norm_topk_prob " + text(c["norm_topk_prob"]) +
                           ", n_group " + text(c["n_group"]) + ", topk_group " + text(c["topk_group"]) +
                           ", routed_scaling_factor " + text(c["routed_scaling_factor"]));
  line(out, "shared:", "n_shared_experts " + text(c["n_shared_experts"]) + ", shared_expert_intermediate_size " +
                           text(c["shared_expert_intermediate_size"]));
  line(out, "dtype:", text(c["dtype"]));
  line(out, "size:", text(info["safetensors_bytes"]) + " bytes of safetensors");
  int moe = 0, tried = 0, loaded = 0;
  for (const json &l : info.at("layers")) {
    char head[16];
    std::snprintf(head, sizeof head, "layer %-5s  ", text(l["layer"]).c_str());
    if (!l.at("moe").get<bool>()) {
      out += head + ("no MoE block: " + text(l["why"]) + " (" + text(l["status"]) + ")") + "\n";
      continue;
    }
    ++moe;
    std::string body = "MoE: hidden " + text(l["hidden"]) + ", " + text(l["num_experts"]) + " experts, top_k " +
                       text(l["top_k"]) + ", width " + text(l["expert_width"]) + ", shared width " +
                       text(l["shared_width"]) + ", storage " + text(l["quantization"]);
    if (l.contains("load")) {  // pimoe info --load, pimoe-info: each MoE layer imported
      const json &load = l["load"];
      ++tried;
      if (load.at("ok").get<bool>()) {
        ++loaded;
        body += "; imports: " + text(load["weight_tensors"]) + " weight tensors, quant error " +
                quant_text(load["quant_error"]);
      } else {
        body += "; does not import: " + text(load["error"]) + " (" + text(load["status"]) + ")";
      }
    }
    out += head + body + "\n";
  }
  line(out, "moe layers:", std::to_string(moe) + " of " + text(c["num_hidden_layers"]));
  if (tried || moe == 0) {
    line(out, "loads:", std::string(loaded ? "yes" : "no") + " (" + std::to_string(loaded) + " of " +
                            std::to_string(moe) + " MoE layers import)");
  }
}

void layer_body_text(std::string &out, const json &info) {
  const json &r = info.at("router");
  line(out, "layer:", "hidden " + text(info["hidden"]) + ", " + text(info["num_experts"]) + " experts, top_k " +
                          text(info["top_k"]));
  line(out, "router:", text(r["scoring"]) + ", temperature " + text(r["temperature"]) + ", renormalize " +
                           text(r["renormalize"]) + ", capacity_factor " + text(r["capacity_factor"]) +
                           (r["dropless"].get<bool>() ? " (dropless)" : "") + ", aux_loss_coef " +
                           text(r["aux_loss_coef"]));
  line(out, "selection:", "routing_mode " + text(r["routing_mode"]) + ", selection_bias " + text(r["selection_bias"]) +
                              ", logit_bias " + text(r["logit_bias"]) + ", routed_scaling_factor " +
                              text(r["routed_scaling_factor"]));
  line(out, "groups:", "num_groups " + text(r["num_groups"]) + ", topk_groups " + text(r["topk_groups"]) +
                           ", group_score " + text(r["group_score"]) + ", group_levels " + r["group_levels"].dump());
  line(out, "attention:", "router heads " + text(r["attention_heads"]) + " (head_dim " + text(r["attention_head_dim"]) +
                              ", causal " + text(r["attention_causal"]) + "), combine_attention_dim " +
                              text(r["combine_attention_dim"]));
  line(out, "adaptive:", "adaptive_bias_rate " + text(r["adaptive_bias_rate"]) + ", dynamic_capacity " +
                             text(r["dynamic_capacity"]) + " (momentum " + text(r["capacity_momentum"]) + ")");
  std::string features;
  for (const json &f : info.at("routing_features")) features += (features.empty() ? "" : ", ") + text(f);
  line(out, "features:", features.empty() ? "none (softmax top-k)" : features);
  const json &shared = info.at("shared_expert");
  line(out, "shared:", shared.is_null() ? "none"
                                        : "width " + text(shared["width"]) + ", gated " + text(shared["gated"]) +
                                              ", format " + text(shared["format"]));
  line(out, "layer_norm:", "eps " + text(info["layer_norm_eps"]) + "; swiglu_oai alpha " + text(info["swiglu_alpha"]) +
                               ", limit " + text(info["swiglu_limit"]));
  out += "experts:     #    activation  intermediate  pre_norm  bias  format\n";
  for (const json &e : info.at("experts")) {
    char row[160];
    if (e.value("callback", false)) {
      std::snprintf(row, sizeof row, "             %-4s callback (a host function)\n", text(e["index"]).c_str());
    } else {
      std::snprintf(row, sizeof row, "             %-4s %-11s %-13s %-9s %-5s %s\n", text(e["index"]).c_str(),
                    text(e["activation"]).c_str(), text(e["intermediate"]).c_str(),
                    e["pre_norm"].get<bool>() ? "1" : "0", e["bias"].get<bool>() ? "1" : "0",
                    text(e["format"]).c_str());
    }
    out += row;
  }
  std::string formats;
  for (const auto &[name, entry] : info.at("bytes_by_format").items()) {
    formats += name + ": " + text(entry["matrices"]) + " matrices, " + text(entry["bytes"]) + " bytes; ";
  }
  line(out, "weights:", formats + "other tensors " + text(info["other_bytes"]) + " bytes; total " +
                            text(info["total_bytes"]) + " bytes");
  line(out, "layout:", std::to_string(info.at("tensors").size()) +
                          " tensors (pimoe info --json lists each: name, shape, format, bytes)");
}

}  // namespace

std::string layer_text(const json &info) {
  std::string out;
  const json &source = info.at("source");
  line(out, "file:", text(source["path"]));
  const std::string kind = source.at("kind");
  if (kind == "hf_checkpoint") {
    checkpoint_text(out, info);
  } else {
    if (kind == "native") {
      line(out, "format:", "pimoe.moe version " + text(source["format_version"]) + " (written by libpimoe " +
                               text(source["library_version"]) + "), " + text(source["file_bytes"]) + " bytes");
    } else {
      line(out, "family:", text(source["family"]) + " (Hugging Face checkpoint), layer " + text(source["layer"]) +
                               ", tensors under " + text(source["tensor_prefix"]) + ", storage " +
                               text(source["quantization"]));
    }
    layer_body_text(out, info);
  }
  if (info.contains("load") && kind != "hf_checkpoint") out += load_text(info["load"]);
  return out;
}

std::string load_text(const json &load) {
  std::string out;
  if (load.at("ok").get<bool>()) {
    line(out, "loads:", "yes (backend " + text(load["backend"]) + ", " + text(load["weight_tensors"]) +
                            " weight tensors)");
    line(out, "quant error:", quant_text(load["quant_error"]));
  } else {
    line(out, "loads:", "no: " + text(load["error"]) + " (" + text(load["status"]) + ")");
  }
  return out;
}

}  // namespace pimoe_tools
