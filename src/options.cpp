#include "options.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <algorithm>

#include "backend_registry.h"
#include "error.h"

namespace pimoe {
namespace {

enum class KeyType { Int, Float, String };

struct KeyInfo {
  pimoe_option key;
  const char *name;
  KeyType type;
  double min;  // inclusive bounds for numeric keys
  double max;
};

// The single table of layer-wide options: name, type and range. Order follows the enum.
constexpr KeyInfo kKeys[] = {
    {PIMOE_OPT_HIDDEN, "hidden", KeyType::Int, 1, 65536},
    {PIMOE_OPT_NUM_EXPERTS, "num_experts", KeyType::Int, 1, 4096},
    {PIMOE_OPT_TOP_K, "top_k", KeyType::Int, 1, 4096},
    {PIMOE_OPT_INTERMEDIATE, "intermediate", KeyType::Int, 1, 262144},
    {PIMOE_OPT_ACTIVATION, "activation", KeyType::Int, 0, 5},
    {PIMOE_OPT_PRE_NORM, "pre_norm", KeyType::Int, 0, 1},
    {PIMOE_OPT_EXPERT_BIAS, "expert_bias", KeyType::Int, 0, 1},
    {PIMOE_OPT_TEMPERATURE, "temperature", KeyType::Float, 1e-6, 1e6},
    {PIMOE_OPT_RENORMALIZE, "renormalize", KeyType::Int, 0, 1},
    {PIMOE_OPT_CAPACITY_FACTOR, "capacity_factor", KeyType::Float, 0, 1e6},
    {PIMOE_OPT_AUX_LOSS_COEF, "aux_loss_coef", KeyType::Float, -1e12, 1e12},
    {PIMOE_OPT_LAYER_NORM_EPS, "layer_norm_eps", KeyType::Float, 0, 1},
    {PIMOE_OPT_SEED, "seed", KeyType::Int, 0, 9.2e18},
    {PIMOE_OPT_THREADS, "threads", KeyType::Int, 0, 1024},
    {PIMOE_OPT_BACKEND, "backend", KeyType::String, 0, 0},
    {PIMOE_OPT_DETERMINISTIC, "deterministic", KeyType::Int, 0, 1},
    {PIMOE_OPT_CPU_GEMM, "cpu_gemm", KeyType::String, 0, 0},
    {PIMOE_OPT_ROUTER_SCORING, "router_scoring", KeyType::String, 0, 0},
    {PIMOE_OPT_ROUTER_BIAS, "router_bias", KeyType::Int, 0, 1},
    {PIMOE_OPT_ROUTED_SCALING, "routed_scaling_factor", KeyType::Float, 1e-6, 1e6},
    {PIMOE_OPT_NUM_GROUPS, "num_groups", KeyType::Int, 1, 4096},
    {PIMOE_OPT_TOPK_GROUPS, "topk_groups", KeyType::Int, 1, 4096},
    {PIMOE_OPT_GROUP_SCORE, "group_score", KeyType::String, 0, 0},
    {PIMOE_OPT_SHARED_WIDTH, "shared_width", KeyType::Int, 0, 262144},
    {PIMOE_OPT_SHARED_GATE, "shared_gate", KeyType::Int, 0, 1},
    {PIMOE_OPT_WEIGHT_DTYPE, "weight_dtype", KeyType::String, 0, 0},
    {PIMOE_OPT_ROUTING_MODE, "routing_mode", KeyType::String, 0, 0},
    {PIMOE_OPT_GROUP_LEVELS, "group_levels", KeyType::String, 0, 0},
    {PIMOE_OPT_ATTENTION_HEADS, "router_attention_heads", KeyType::Int, 0, 256},
    {PIMOE_OPT_ATTENTION_HEAD_DIM, "router_attention_head_dim", KeyType::Int, 1, 4096},
    {PIMOE_OPT_ATTENTION_CAUSAL, "router_attention_causal", KeyType::Int, 0, 1},
    {PIMOE_OPT_ADAPTIVE_BIAS_RATE, "adaptive_bias_rate", KeyType::Float, 0, 1e6},
    {PIMOE_OPT_DYNAMIC_CAPACITY, "dynamic_capacity", KeyType::Int, 0, 1},
    {PIMOE_OPT_CAPACITY_MOMENTUM, "capacity_momentum", KeyType::Float, 0, 0.999999},
    {PIMOE_OPT_COMBINE_ATTENTION_DIM, "combine_attention_dim", KeyType::Int, 0, 4096},
};

const KeyInfo &key_info(int key) {
  for (const KeyInfo &info : kKeys) {
    if (info.key == key) return info;
  }
  fail(PIMOE_ERR_UNKNOWN_OPTION, "unknown option key ", key);
}

const char *type_name(KeyType type) {
  switch (type) {
    case KeyType::Int:
      return "an integer";
    case KeyType::Float:
      return "a number";
    case KeyType::String:
      return "a string";
  }
  return "?";
}

void expect_type(const KeyInfo &info, KeyType given) {
  if (info.type == given) return;
  fail(PIMOE_ERR_INVALID_OPTION, "option '", info.name, "' takes ", type_name(info.type), ", not ", type_name(given));
}

void check_range(const KeyInfo &info, double value) {
  if (!std::isfinite(value) || value < info.min || value > info.max) {
    fail(PIMOE_ERR_INVALID_OPTION, "option '", info.name, "' = ", value, " is out of range [", info.min, ", ", info.max,
         "]");
  }
}

constexpr const char *kActivationNames[] = {"gelu", "gelu_tanh", "silu", "relu", "tanh", "swiglu"};

}  // namespace

bool is_valid_activation(int64_t value) {
  return value >= PIMOE_ACT_GELU && value <= PIMOE_ACT_SWIGLU;
}

const char *activation_name(pimoe_activation activation) {
  return is_valid_activation(activation) ? kActivationNames[activation] : "unknown";
}

pimoe_activation parse_activation(const std::string &name, const char *what) {
  for (int i = 0; i <= PIMOE_ACT_SWIGLU; ++i) {
    if (name == kActivationNames[i]) return static_cast<pimoe_activation>(i);
  }
  fail(PIMOE_ERR_INVALID_OPTION, what, ": unknown activation '", name,
       "' (expected gelu, gelu_tanh, silu, relu, tanh or swiglu)");
}

void Options::set_int(int raw_key, int64_t value) {
  const KeyInfo &info = key_info(raw_key);
  const pimoe_option key = info.key;
  expect_type(info, KeyType::Int);
  check_range(info, static_cast<double>(value));
  switch (key) {
    case PIMOE_OPT_HIDDEN:
      hidden = value;
      break;
    case PIMOE_OPT_NUM_EXPERTS:
      num_experts = value;
      break;
    case PIMOE_OPT_TOP_K:
      top_k = value;
      break;
    case PIMOE_OPT_INTERMEDIATE:
      intermediate = value;
      break;
    case PIMOE_OPT_ACTIVATION:
      activation = static_cast<pimoe_activation>(value);
      break;
    case PIMOE_OPT_PRE_NORM:
      pre_norm = value != 0;
      break;
    case PIMOE_OPT_EXPERT_BIAS:
      expert_bias = value != 0;
      break;
    case PIMOE_OPT_RENORMALIZE:
      renormalize = value != 0;
      break;
    case PIMOE_OPT_SEED:
      seed = static_cast<uint64_t>(value);
      break;
    case PIMOE_OPT_THREADS:
      threads = value;
      break;
    case PIMOE_OPT_DETERMINISTIC:
      deterministic = value != 0;
      break;
    case PIMOE_OPT_ROUTER_BIAS:
      router_bias = value != 0;
      break;
    case PIMOE_OPT_NUM_GROUPS:
      num_groups = value;
      break;
    case PIMOE_OPT_TOPK_GROUPS:
      topk_groups = value;
      break;
    case PIMOE_OPT_SHARED_WIDTH:
      shared_width = value;
      break;
    case PIMOE_OPT_SHARED_GATE:
      shared_gate = value != 0;
      break;
    case PIMOE_OPT_ATTENTION_HEADS:
      attention_heads = value;
      break;
    case PIMOE_OPT_ATTENTION_HEAD_DIM:
      attention_head_dim = value;
      break;
    case PIMOE_OPT_ATTENTION_CAUSAL:
      attention_causal = value != 0;
      break;
    case PIMOE_OPT_DYNAMIC_CAPACITY:
      dynamic_capacity = value != 0;
      break;
    case PIMOE_OPT_COMBINE_ATTENTION_DIM:
      combine_attention_dim = value;
      break;
    default:
      fail(PIMOE_ERR_INTERNAL, "integer option '", info.name, "' has no field");
  }
}

void Options::set_float(int raw_key, double value) {
  const KeyInfo &info = key_info(raw_key);
  const pimoe_option key = info.key;
  expect_type(info, KeyType::Float);
  check_range(info, value);
  switch (key) {
    case PIMOE_OPT_TEMPERATURE:
      temperature = value;
      break;
    case PIMOE_OPT_CAPACITY_FACTOR:
      capacity_factor = value;
      break;
    case PIMOE_OPT_AUX_LOSS_COEF:
      aux_loss_coef = value;
      break;
    case PIMOE_OPT_LAYER_NORM_EPS:
      layer_norm_eps = value;
      break;
    case PIMOE_OPT_ROUTED_SCALING:
      routed_scaling_factor = value;
      break;
    case PIMOE_OPT_ADAPTIVE_BIAS_RATE:
      adaptive_bias_rate = value;
      break;
    case PIMOE_OPT_CAPACITY_MOMENTUM:
      capacity_momentum = value;
      break;
    default:
      fail(PIMOE_ERR_INTERNAL, "float option '", info.name, "' has no field");
  }
}

void Options::set_string(int raw_key, const char *value) {
  const KeyInfo &info = key_info(raw_key);
  const pimoe_option key = info.key;
  expect_type(info, KeyType::String);
  if (!value) fail(PIMOE_ERR_NULL_POINTER, "option '", info.name, "': value is NULL");
  if (key == PIMOE_OPT_BACKEND) {
    parse_backend_name(value);  // throws on a malformed name; availability is checked at pimoe_create
    backend = value;
  } else if (key == PIMOE_OPT_CPU_GEMM) {
    const std::string v = value;
    if (v != "packed" && v != "openblas") {
      fail(PIMOE_ERR_INVALID_OPTION, "option 'cpu_gemm' = '", v, "' is not 'packed' or 'openblas'");
    }
    cpu_gemm = v;
  } else if (key == PIMOE_OPT_ROUTER_SCORING) {
    const std::string v = value;
    if (v != "softmax" && v != "sigmoid") {
      fail(PIMOE_ERR_INVALID_OPTION, "option 'router_scoring' = '", v, "' is not 'softmax' or 'sigmoid'");
    }
    router_scoring = v;
  } else if (key == PIMOE_OPT_GROUP_SCORE) {
    const std::string v = value;
    if (v != "top2_sum" && v != "max") {
      fail(PIMOE_ERR_INVALID_OPTION, "option 'group_score' = '", v, "' is not 'top2_sum' or 'max'");
    }
    group_score = v;
  } else if (key == PIMOE_OPT_WEIGHT_DTYPE) {
    const std::string v = value;
    if (v != "fp32" && v != "bf16" && v != "fp16") {
      fail(PIMOE_ERR_INVALID_OPTION, "option 'weight_dtype' = '", v, "' is not 'fp32', 'bf16' or 'fp16'");
    }
    weight_dtype = v;
  } else if (key == PIMOE_OPT_ROUTING_MODE) {
    const std::string v = value;
    if (v != "token_choice" && v != "expert_choice") {
      fail(PIMOE_ERR_INVALID_OPTION, "option 'routing_mode' = '", v, "' is not 'token_choice' or 'expert_choice'");
    }
    routing_mode = v;
  } else if (key == PIMOE_OPT_GROUP_LEVELS) {
    parse_group_levels(value);  // syntax checked here, against the expert count at pimoe_create
    group_levels = value;
  }
}

std::vector<std::pair<int64_t, int64_t>> parse_group_levels(const std::string &text) {
  std::vector<std::pair<int64_t, int64_t>> levels;
  if (text.empty()) return levels;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    const size_t colon = item.find(':');
    auto number = [&](const std::string &digits) -> int64_t {
      if (digits.empty() || digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos) {
        fail(PIMOE_ERR_INVALID_OPTION, "option 'group_levels' = '", text, "': '", item,
             "' is not G:K with positive integers");
      }
      return std::stoll(digits);
    };
    if (colon == std::string::npos) number("");  // throws
    const int64_t g = number(item.substr(0, colon)), k = number(item.substr(colon + 1));
    if (g < 1 || k < 1 || g > 4096) {
      fail(PIMOE_ERR_INVALID_OPTION, "option 'group_levels' = '", text, "': level '", item,
           "' needs 1 <= K and 1 <= G <= 4096");
    }
    levels.emplace_back(g, k);
    if (levels.size() > 16) fail(PIMOE_ERR_INVALID_OPTION, "option 'group_levels': more than 16 levels");
    pos = comma + 1;
  }
  return levels;
}

void Options::set_by_name(const char *key, const char *value) {
  if (!key) fail(PIMOE_ERR_NULL_POINTER, "option name is NULL");
  if (!value) fail(PIMOE_ERR_NULL_POINTER, "option '", key, "': value is NULL");
  const KeyInfo *found = nullptr;
  for (const KeyInfo &info : kKeys) {
    if (std::strcmp(info.name, key) == 0) found = &info;
  }
  if (!found) fail(PIMOE_ERR_UNKNOWN_OPTION, "unknown option '", key, "'");

  if (found->type == KeyType::String) return set_string(found->key, value);
  if (found->key == PIMOE_OPT_ACTIVATION) {
    return set_int(found->key, parse_activation(value, "option 'activation'"));
  }
  char *end = nullptr;
  errno = 0;
  if (found->type == KeyType::Int) {
    long long parsed = std::strtoll(value, &end, 10);
    if (end == value || *end != '\0' || errno == ERANGE) {
      fail(PIMOE_ERR_INVALID_OPTION, "option '", key, "': '", value, "' is not an integer");
    }
    return set_int(found->key, parsed);
  }
  double parsed = std::strtod(value, &end);
  if (end == value || *end != '\0') {
    fail(PIMOE_ERR_INVALID_OPTION, "option '", key, "': '", value, "' is not a number");
  }
  set_float(found->key, parsed);
}

ExpertOverride &Options::expert_override(int32_t expert) {
  if (expert == -1) return every_expert;
  if (expert < 0) fail(PIMOE_ERR_INVALID_ARGUMENT, "expert index ", expert, " is negative (use -1 for every expert)");
  return per_expert[expert];
}

}  // namespace pimoe
