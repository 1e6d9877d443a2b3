// SPDX-License-Identifier: MIT
#include "cpu_isa.h"

#include <cstdlib>
#include <string>

#if defined(PIMOE_HAVE_X86_ISAS)
#include <cpuid.h>
#endif
#if defined(PIMOE_HAVE_ARM_ISAS) && defined(__linux__)
#include <sys/auxv.h>
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

#if defined(PIMOE_HAVE_ARM_ISAS)
// FEAT_DotProd as the kernel reports it (HWCAP_ASIMDDP, bit 20 of AT_HWCAP: spelled out for C libraries whose
// headers predate it). Elsewhere (Android before API 18 has getauxval too; other systems) NEON alone.
bool has_dotprod() {
#if defined(__linux__)
  constexpr unsigned long kHwcapAsimdDp = 1ul << 20;
  return (getauxval(AT_HWCAP) & kHwcapAsimdDp) != 0;
#else
  return false;
#endif
}
#endif

Isa detect() {
#if defined(PIMOE_HAVE_X86_ISAS)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && has_f16c()) return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c()) return Isa::Avx2;
#endif
#if defined(PIMOE_HAVE_ARM_ISAS)
  return has_dotprod() ? Isa::NeonDot : Isa::Neon;  // Advanced SIMD is part of every aarch64 CPU
#endif
  return Isa::Generic;
}

// One row per name PIMOE_CPU_ISA accepts, and the architecture whose kernels it names.
struct Named {
  const char *name;
  Isa isa;
  bool arm;
};
constexpr Named kNames[] = {{"generic", Isa::Generic, false}, {"avx2", Isa::Avx2, false},
                            {"avx512", Isa::Avx512, false},   {"neon", Isa::Neon, true},
                            {"neon_dot", Isa::NeonDot, true}};

bool is_arm(Isa value) { return value == Isa::Neon || value == Isa::NeonDot; }

// PIMOE_CPU_ISA=generic|avx2|avx512|neon|neon_dot (read once) lowers the detected instruction set, never raises
// it: the tests run every kernel family the machine can run, and a user can rule out a kernel when chasing a numeric
// difference. A name of the other architecture (or none known) leaves the detected one.
Isa lowered(Isa detected) {
  const char *want = std::getenv("PIMOE_CPU_ISA");
  if (!want) return detected;
  const std::string w(want);
  for (const Named &n : kNames) {
    if (w != n.name) continue;
    if (n.isa == Isa::Generic) return Isa::Generic;
    if (n.arm != is_arm(detected)) return detected;
    return static_cast<int>(n.isa) < static_cast<int>(detected) ? n.isa : detected;
  }
  return detected;
}

}  // namespace

Isa isa() {
  static const Isa detected = lowered(detect());  // computed once, then immutable
  return detected;
}

const char *isa_name(Isa value) {
  for (const Named &n : kNames) {
    if (n.isa == value) return n.name;
  }
  return "generic";
}

}  // namespace pimoe::cpu
