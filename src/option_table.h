/* SPDX-License-Identifier: MIT */
// Every layer-wide option, once: its pimoe_option key, its name (as pimoe_options_set_by_name takes it), the C++
// type of its Options field (which fixes the typed setter it takes), that field, its default and its bounds. From
// these lists come the fields and defaults of Options and BackendTuning, the key table behind every setter, the
// bounds checks, set_by_name's parsing, the environment overrides of the experimental options, and the tests that
// hold pimoe.h's enum and documentation and the bindings' option lists to them (tests/test_option_table.cpp).
//
// The pimoe_option enum itself stays hand-written in pimoe.h: it is the ABI, in C99, with explicit values.
//
// Header-only on purpose: the tests include this file to read the lists without linking libpimoe's internals.
#pragma once

#include <cstdint>
#include <string>

#include "pimoe/pimoe.h"

namespace pimoe {

// ------------------------------------------------------------------ string values, parsed to enums at the setter
template <typename E>
struct EnumName {
  E value;
  const char *name;
};
// EnumNames<E>::list: every value of E with its option-string spelling; the first is listed first in messages.
template <typename E>
struct EnumNames;

#define PIMOE_ENUM_ID(id, text) id,
#define PIMOE_ENUM_ENTRY(id, text) EnumName<T>{T::id, text},
// Declares `enum class Type` and its names from one list of (identifier, "spelling") pairs.
#define PIMOE_DEFINE_ENUM(Type, LIST)                    \
  enum class Type { LIST(PIMOE_ENUM_ID) };               \
  template <>                                            \
  struct EnumNames<Type> {                               \
    using T = Type;                                      \
    static constexpr EnumName<T> list[] = {LIST(PIMOE_ENUM_ENTRY)}; \
  };

#define PIMOE_CPU_GEMM_VALUES(V) V(Packed, "packed") V(OpenBlas, "openblas")
PIMOE_DEFINE_ENUM(CpuGemm, PIMOE_CPU_GEMM_VALUES)
#define PIMOE_ROUTER_SCORING_VALUES(V) V(Softmax, "softmax") V(Sigmoid, "sigmoid")
PIMOE_DEFINE_ENUM(RouterScoring, PIMOE_ROUTER_SCORING_VALUES)
#define PIMOE_GROUP_SCORE_VALUES(V) V(Top2Sum, "top2_sum") V(Max, "max")
PIMOE_DEFINE_ENUM(GroupScore, PIMOE_GROUP_SCORE_VALUES)
// Storage formats of expert matrices (compact_matrix.h has their layouts). "auto": fp32 for a created layer, the
// file's format for a loaded one, the checkpoint's for an import (fp32 unless it ships a compact format).
#define PIMOE_WEIGHT_DTYPE_VALUES(V)                                                                      \
  V(Auto, "auto") V(F32, "fp32") V(BF16, "bf16") V(F16, "fp16") V(Int8, "int8") V(Int4, "int4")            \
  V(Fp8E4M3, "fp8_e4m3") V(Mxfp4, "mxfp4")
PIMOE_DEFINE_ENUM(WeightDtype, PIMOE_WEIGHT_DTYPE_VALUES)
// How the CPU backend multiplies int8 and int4 weights: "auto" (int8 there), on fp32 activations ("fp32": exact
// arithmetic on the dequantised weights) or on activations quantised to int8 per row ("int8": integer dot products).
#define PIMOE_ACTIVATION_DTYPE_VALUES(V) V(Auto, "auto") V(F32, "fp32") V(Int8, "int8")
PIMOE_DEFINE_ENUM(ActivationDtype, PIMOE_ACTIVATION_DTYPE_VALUES)
#define PIMOE_ROUTING_MODE_VALUES(V) V(TokenChoice, "token_choice") V(ExpertChoice, "expert_choice")
PIMOE_DEFINE_ENUM(RoutingMode, PIMOE_ROUTING_MODE_VALUES)

// Experimental options' values. Auto: the backend's own choice (what it does without the option).
#define PIMOE_VULKAN_COOPMAT_N_VALUES(V) V(Auto, "auto") V(N8, "8") V(N16, "16")
PIMOE_DEFINE_ENUM(VulkanCoopmatN, PIMOE_VULKAN_COOPMAT_N_VALUES)
#define PIMOE_VULKAN_VALIDATION_VALUES(V) V(Off, "off") V(On, "on") V(Sync, "sync")
PIMOE_DEFINE_ENUM(VulkanValidation, PIMOE_VULKAN_VALIDATION_VALUES)
#define PIMOE_VULKAN_ROUTING_VALUES(V) V(Auto, "auto") V(Host, "host")
PIMOE_DEFINE_ENUM(VulkanRouting, PIMOE_VULKAN_ROUTING_VALUES)
// The coopmat* spellings are backends/vulkan/coop_tiles.h's kCoopTiles choices (a test keeps the two lists equal).
#define PIMOE_VULKAN_TILES_VALUES(V)                                                                           \
  V(Auto, "auto") V(Small, "small") V(Large, "large") V(Fma, "fma") V(Coopmat, "coopmat")                    \
  V(CoopmatH8, "coopmat-h8") V(CoopmatY, "coopmat-y") V(CoopmatV, "coopmat-v") V(CoopmatXh, "coopmat-xh")     \
  V(CoopmatWh, "coopmat-wh") V(CoopmatSplit, "coopmat-split") V(CoopmatX, "coopmat-x")                        \
  V(CoopmatFp16, "coopmat-fp16") V(CoopmatN, "coopmat-n") V(CoopmatW, "coopmat-w") V(CoopmatP1, "coopmat-p1")
PIMOE_DEFINE_ENUM(VulkanTiles, PIMOE_VULKAN_TILES_VALUES)

// The spelling of an enum value ("?" for a value outside the list).
template <typename E>
const char *enum_name(E value) {
  for (const EnumName<E> &item : EnumNames<E>::list) {
    if (item.value == value) return item.name;
  }
  return "?";
}

// ------------------------------------------------------------------ the options
// X(key, name, type, field, default, min, max, check)
//   type:  int64_t / uint64_t / bool / pimoe_activation: an integer option (pimoe_options_set_int; bool is 0 or 1;
//          the activation is also settable by its name); double: a float option (pimoe_options_set_float); an enum
//          of EnumNames: a string option parsed to that enum; std::string: a string option kept as text.
//   min, max: inclusive bounds of a numeric option (0, 0 for strings).
//   check: for a std::string option, a function that throws PIMOE_ERR_INVALID_OPTION on a malformed value (the
//          syntax; what depends on other options or on the machine is checked at pimoe_create); else nullptr.
// Order and keys follow pimoe.h's enum; new options are only ever appended there.
#define PIMOE_OPTIONS(X)                                                                                           \
  X(PIMOE_OPT_HIDDEN, "hidden", int64_t, hidden, 512, 1, 65536, nullptr)                                          \
  X(PIMOE_OPT_NUM_EXPERTS, "num_experts", int64_t, num_experts, 8, 1, 4096, nullptr)                              \
  X(PIMOE_OPT_TOP_K, "top_k", int64_t, top_k, 2, 1, 4096, nullptr)                                                \
  X(PIMOE_OPT_INTERMEDIATE, "intermediate", int64_t, intermediate, 2048, 1, 262144, nullptr)                      \
  X(PIMOE_OPT_ACTIVATION, "activation", pimoe_activation, activation, PIMOE_ACT_GELU, 0, 6, nullptr)              \
  X(PIMOE_OPT_PRE_NORM, "pre_norm", bool, pre_norm, false, 0, 1, nullptr)                                         \
  X(PIMOE_OPT_EXPERT_BIAS, "expert_bias", bool, expert_bias, false, 0, 1, nullptr)                                \
  X(PIMOE_OPT_TEMPERATURE, "temperature", double, temperature, 1.0, 1e-6, 1e6, nullptr)                           \
  X(PIMOE_OPT_RENORMALIZE, "renormalize", bool, renormalize, true, 0, 1, nullptr)                                 \
  X(PIMOE_OPT_CAPACITY_FACTOR, "capacity_factor", double, capacity_factor, 0.0, 0, 1e6, nullptr)                  \
  X(PIMOE_OPT_AUX_LOSS_COEF, "aux_loss_coef", double, aux_loss_coef, 1.0, -1e12, 1e12, nullptr)                   \
  X(PIMOE_OPT_LAYER_NORM_EPS, "layer_norm_eps", double, layer_norm_eps, 1e-5, 0, 1, nullptr)                      \
  X(PIMOE_OPT_SEED, "seed", uint64_t, seed, 0, 0, 9.2e18, nullptr)                                                \
  X(PIMOE_OPT_THREADS, "threads", int64_t, threads, 0, 0, 1024, nullptr)                                          \
  X(PIMOE_OPT_BACKEND, "backend", std::string, backend, "auto", 0, 0, check_backend_name)                         \
  X(PIMOE_OPT_DETERMINISTIC, "deterministic", bool, deterministic, false, 0, 1, nullptr)                          \
  X(PIMOE_OPT_CPU_GEMM, "cpu_gemm", CpuGemm, cpu_gemm, CpuGemm::Packed, 0, 0, nullptr)                            \
  X(PIMOE_OPT_ROUTER_SCORING, "router_scoring", RouterScoring, router_scoring, RouterScoring::Softmax, 0, 0,       \
    nullptr)                                                                                                       \
  X(PIMOE_OPT_ROUTER_BIAS, "router_bias", bool, router_bias, false, 0, 1, nullptr)                                \
  X(PIMOE_OPT_ROUTED_SCALING, "routed_scaling_factor", double, routed_scaling_factor, 1.0, 1e-6, 1e6, nullptr)    \
  X(PIMOE_OPT_NUM_GROUPS, "num_groups", int64_t, num_groups, 1, 1, 4096, nullptr)                                 \
  X(PIMOE_OPT_TOPK_GROUPS, "topk_groups", int64_t, topk_groups, 1, 1, 4096, nullptr)                              \
  X(PIMOE_OPT_GROUP_SCORE, "group_score", GroupScore, group_score, GroupScore::Top2Sum, 0, 0, nullptr)            \
  X(PIMOE_OPT_SHARED_WIDTH, "shared_width", int64_t, shared_width, 0, 0, 262144, nullptr)                         \
  X(PIMOE_OPT_SHARED_GATE, "shared_gate", bool, shared_gate, false, 0, 1, nullptr)                                \
  X(PIMOE_OPT_WEIGHT_DTYPE, "weight_dtype", WeightDtype, weight_dtype, WeightDtype::Auto, 0, 0, nullptr)          \
  X(PIMOE_OPT_ROUTING_MODE, "routing_mode", RoutingMode, routing_mode, RoutingMode::TokenChoice, 0, 0, nullptr)   \
  X(PIMOE_OPT_GROUP_LEVELS, "group_levels", std::string, group_levels, "", 0, 0, check_group_levels)              \
  X(PIMOE_OPT_ATTENTION_HEADS, "router_attention_heads", int64_t, attention_heads, 0, 0, 256, nullptr)            \
  X(PIMOE_OPT_ATTENTION_HEAD_DIM, "router_attention_head_dim", int64_t, attention_head_dim, 16, 1, 4096, nullptr) \
  X(PIMOE_OPT_ATTENTION_CAUSAL, "router_attention_causal", bool, attention_causal, false, 0, 1, nullptr)          \
  X(PIMOE_OPT_ADAPTIVE_BIAS_RATE, "adaptive_bias_rate", double, adaptive_bias_rate, 0.0, 0, 1e6, nullptr)         \
  X(PIMOE_OPT_DYNAMIC_CAPACITY, "dynamic_capacity", bool, dynamic_capacity, false, 0, 1, nullptr)                 \
  X(PIMOE_OPT_CAPACITY_MOMENTUM, "capacity_momentum", double, capacity_momentum, 0.9, 0, 0.999999, nullptr)       \
  X(PIMOE_OPT_COMBINE_ATTENTION_DIM, "combine_attention_dim", int64_t, combine_attention_dim, 0, 0, 4096, nullptr) \
  X(PIMOE_OPT_WEIGHT_GROUP_SIZE, "weight_group_size", int64_t, weight_group_size, 32, 32, 128, nullptr)           \
  X(PIMOE_OPT_WEIGHT_ZERO_POINT, "weight_zero_point", bool, weight_zero_point, false, 0, 1, nullptr)              \
  X(PIMOE_OPT_ROUTER_LOGIT_BIAS, "router_logit_bias", bool, router_logit_bias, false, 0, 1, nullptr)              \
  X(PIMOE_OPT_SWIGLU_ALPHA, "swiglu_alpha", double, swiglu_alpha, 1.702, 1e-6, 1e6, nullptr)                      \
  X(PIMOE_OPT_SWIGLU_LIMIT, "swiglu_limit", double, swiglu_limit, 7.0, 1e-6, 1e6, nullptr)                      \
  X(PIMOE_OPT_ACTIVATION_DTYPE, "activation_dtype", ActivationDtype, activation_dtype, ActivationDtype::Auto, 0, 0, \
    nullptr)                                                                                                       \
  X(PIMOE_OPT_EXPERT_INPUT_SCALING, "expert_input_scaling", bool, expert_input_scaling, false, 0, 1, nullptr)      \
  X(PIMOE_OPT_SPARSEMIXER_EPS, "sparsemixer_eps", double, sparsemixer_eps, 0.0, 0, 1e6, nullptr)

// Experimental options: backend tuning knobs that were environment variables only. They may change or disappear in
// any release. Their fields live in BackendTuning (Options::tuning, LayerConfig::tuning); the defaults are what the
// backends do when the variable is unset. The variable, when set, overrides the option (pimoe.h says so).
// X(key, name, type, field, default, min, max, env, env_text)
//   env: the environment variable; env_text: turns its value into the option's spelling (or "" to ignore it),
//        reproducing how the backend has read that variable (option_env.cpp).
#define PIMOE_EXPERIMENTAL_OPTIONS(X)                                                                              \
  X(PIMOE_OPT_EXPERIMENTAL_CUDA_NO_WGMMA, "experimental.cuda_no_wgmma", bool, cuda_no_wgmma, false, 0, 1,         \
    "PIMOE_CUDA_NO_WGMMA", env_flag)                                                                               \
  X(PIMOE_OPT_EXPERIMENTAL_CUDA_STREAM_TOKENS, "experimental.cuda_stream_tokens", int64_t, cuda_stream_tokens, 1, \
    0, 2147483647, "PIMOE_CUDA_STREAM_TOKENS", env_count)                                                          \
  X(PIMOE_OPT_EXPERIMENTAL_CUDA_DECODE_GEMM_ROWS, "experimental.cuda_decode_gemm_rows", double,                   \
    cuda_decode_gemm_rows, 4.0, 0, 1e9, "PIMOE_CUDA_DECODE_GEMM_ROWS", env_real)                                   \
  X(PIMOE_OPT_EXPERIMENTAL_VULKAN_COOPMAT_N, "experimental.vulkan_coopmat_n", VulkanCoopmatN, vulkan_coopmat_n,   \
    VulkanCoopmatN::Auto, 0, 0, "PIMOE_VULKAN_COOPMAT_N", env_as_is)                                               \
  X(PIMOE_OPT_EXPERIMENTAL_VULKAN_VALIDATION, "experimental.vulkan_validation", VulkanValidation,                 \
    vulkan_validation, VulkanValidation::Off, 0, 0, "PIMOE_VULKAN_VALIDATION", env_validation)                    \
  X(PIMOE_OPT_EXPERIMENTAL_VULKAN_ROUTING, "experimental.vulkan_routing", VulkanRouting, vulkan_routing,          \
    VulkanRouting::Auto, 0, 0, "PIMOE_VULKAN_ROUTING", env_routing)                                                \
  X(PIMOE_OPT_EXPERIMENTAL_VULKAN_TILES, "experimental.vulkan_tiles", VulkanTiles, vulkan_tiles,                  \
    VulkanTiles::Auto, 0, 0, "PIMOE_VULKAN_TILES", env_as_is)                                                      \
  X(PIMOE_OPT_EXPERIMENTAL_VULKAN_PROFILE, "experimental.vulkan_profile", bool, vulkan_profile, false, 0, 1,      \
    "PIMOE_VULKAN_PROFILE", env_flag)

// A field of Options or BackendTuning with its default, from a row of either list.
#define PIMOE_OPTION_FIELD(key, name, type, field, def, ...) type field = def;

// Backend tuning of one model: the experimental options after the environment's overrides (LayerConfig::tuning).
struct BackendTuning {
  PIMOE_EXPERIMENTAL_OPTIONS(PIMOE_OPTION_FIELD)
};

// `set` with the environment's overrides applied: each experimental option's variable, when set to a value the option
// accepts, wins (option_env.cpp). A backend's process-wide settings, made before any model exists, read
// apply_tuning_environment(BackendTuning{}).
BackendTuning apply_tuning_environment(const BackendTuning &set);

}  // namespace pimoe
