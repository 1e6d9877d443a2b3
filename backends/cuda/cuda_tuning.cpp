#include "cuda_tuning.h"

#include <cstdlib>
#include <cstring>

namespace pimoe::cuda {
namespace {

// A non-negative number from the environment, or fallback when the variable is unset or not a number.
double env_number(const char *name, double fallback) {
  const char *v = std::getenv(name);
  if (!v || !*v) return fallback;
  char *end = nullptr;
  const double d = std::strtod(v, &end);
  return end != v && d >= 0.0 ? d : fallback;
}

}  // namespace

Tuning tuning_from_environment() {
  Tuning t;
  t.stream_tokens = static_cast<int64_t>(env_number("PIMOE_CUDA_STREAM_TOKENS", kStreamTokens));
  t.decode_gemm_rows = env_number("PIMOE_CUDA_DECODE_GEMM_ROWS", kDecodeGemmRows);
  const char *off = std::getenv("PIMOE_CUDA_NO_WGMMA");
  t.no_wgmma = off && *off && std::strcmp(off, "0") != 0;
  return t;
}

}  // namespace pimoe::cuda
