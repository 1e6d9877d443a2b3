// SPDX-License-Identifier: MIT
// The environment variables behind the experimental options (option_table.h): when one is set, its value overrides
// the option, so that scripts and tests written against the variables keep working (pimoe.h documents this).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "error.h"
#include "options.h"

namespace pimoe {
namespace {

// Each turns a variable's value into the option's spelling, the way the backend read that variable before it was an
// option; "" means the value is ignored (the backend ignored it too, falling back to its default).

// PIMOE_CUDA_NO_WGMMA, PIMOE_VULKAN_PROFILE: any value but "0" turns the knob on.
std::string env_flag(const char *value) {
  return std::strcmp(value, "0") == 0 ? "0" : "1";
}

// The non-negative number at the start of the value, as the CUDA backend read its variables with strtod.
bool env_number(const char *value, double &out) {
  char *end = nullptr;
  out = std::strtod(value, &end);
  return end != value && out >= 0.0;
}

// PIMOE_CUDA_STREAM_TOKENS: a count, the number truncated (the backend cast it to int64_t).
std::string env_count(const char *value) {
  double d = 0.0;
  if (!env_number(value, d) || d >= 9.2e18) return "";
  return std::to_string(static_cast<int64_t>(d));
}

// PIMOE_CUDA_DECODE_GEMM_ROWS: a real number.
std::string env_real(const char *value) {
  double d = 0.0;
  if (!env_number(value, d)) return "";
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", d);  // 17 digits read back as d exactly
  return text;
}

// PIMOE_VULKAN_COOPMAT_N, PIMOE_VULKAN_TILES: the option's own spellings; any other value is ignored.
std::string env_as_is(const char *value) {
  return value;
}

// PIMOE_VULKAN_VALIDATION: "0" off, "sync" with synchronisation validation, any other value on.
std::string env_validation(const char *value) {
  if (std::strcmp(value, "0") == 0) return "off";
  return std::strcmp(value, "sync") == 0 ? "sync" : "on";
}

// PIMOE_VULKAN_ROUTING: "host" keeps routing on the host; any other value was the default.
std::string env_routing(const char *value) {
  return std::strcmp(value, "host") == 0 ? "host" : "auto";
}

}  // namespace

BackendTuning apply_tuning_environment(const BackendTuning &set) {
  Options scratch;  // parses and bounds-checks each value through the option's own setter
  scratch.tuning = set;
#define PIMOE_APPLY_ENV(key, name, type, field, def, min, max, env, env_text) \
  if (const char *value = std::getenv(env); value && *value) {                  \
    const std::string text = env_text(value);                                   \
    try {                                                                       \
      if (!text.empty()) scratch.set_by_name(name, text.c_str());               \
    } catch (const Error &) {                                                   \
      /* a value the option rejects is ignored, as the backend ignored it */    \
    }                                                                           \
  }
  PIMOE_EXPERIMENTAL_OPTIONS(PIMOE_APPLY_ENV)
#undef PIMOE_APPLY_ENV
  return scratch.tuning;
}

}  // namespace pimoe
