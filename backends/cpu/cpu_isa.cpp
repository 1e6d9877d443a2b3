// SPDX-License-Identifier: MIT
#include "cpu_isa.h"

#include <cstdlib>
#include <string>

#if defined(PIMOE_HAVE_X86_ISAS)
#include <cpuid.h>
#endif

namespace pimoe::cpu {
namespace {

#if defined(PIMOE_HAVE_X86_ISAS)
// F16C from CPUID leaf 1 (ECX bit 29): clang before 15 has no "f16c" feature for __builtin_cpu_supports.
bool has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & bit_F16C) != 0;
}
#endif

Isa detect() {
#if defined(PIMOE_HAVE_X86_ISAS)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && has_f16c()) return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c()) return Isa::Avx2;
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
