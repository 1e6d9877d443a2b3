// SPDX-License-Identifier: MIT
#include "cpu_isa.h"

#include <cstdlib>
#include <string>

namespace pimoe::cpu {
namespace {

Isa detect() {
#if defined(PIMOE_HAVE_X86_ISAS)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("f16c"))
    return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c"))
    return Isa::Avx2;
#endif
  return Isa::Generic;
}

// PIMOE_CPU_ISA=generic|avx2 (read once) lowers the detected instruction set, never raises it: the tests run every
// kernel family the machine can run, and a user can rule out a kernel when chasing a numeric difference.
Isa lowered(Isa detected) {
  const char *want = std::getenv("PIMOE_CPU_ISA");
  if (!want) return detected;
  const std::string w(want);
  const Isa asked = w == "generic" ? Isa::Generic : w == "avx2" ? Isa::Avx2 : w == "avx512" ? Isa::Avx512 : detected;
  return static_cast<int>(asked) < static_cast<int>(detected) ? asked : detected;
}

}  // namespace

Isa isa() {
  static const Isa detected = lowered(detect());  // computed once, then immutable
  return detected;
}

const char *isa_name(Isa value) {
  switch (value) {
    case Isa::Avx512:
      return "avx512";
    case Isa::Avx2:
      return "avx2";
    case Isa::Generic:
      break;
  }
  return "generic";
}

}  // namespace pimoe::cpu
