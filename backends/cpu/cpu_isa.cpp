#include "cpu_isa.h"

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

}  // namespace

Isa isa() {
  static const Isa detected = detect();  // computed once, then immutable
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
