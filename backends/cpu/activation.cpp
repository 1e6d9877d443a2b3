// SPDX-License-Identifier: MIT
// Run-time choice of the activation kernels' instruction set (one build serves every CPU of its architecture).
#include "activation.h"

#include "cpu_isa.h"

namespace pimoe::cpu {

#define PIMOE_DECLARE_ISA(isa)                                                                          \
  namespace isa {                                                                                       \
  void activate(pimoe_activation activation, float *h, const float *bias, int64_t n, int64_t width);    \
  void swiglu(const float *gate, float *h, int64_t n);                                                  \
  void glu(pimoe_activation activation, const float *gate, float *h, int64_t n, const float *gate_bias, \
           const float *up_bias, float alpha, float limit);                                             \
  }
PIMOE_DECLARE_ISA(generic)
#if defined(PIMOE_HAVE_X86_ISAS)
PIMOE_DECLARE_ISA(avx2)
PIMOE_DECLARE_ISA(avx512)
#endif
#if defined(PIMOE_HAVE_ARM_ISAS)
PIMOE_DECLARE_ISA(neon)
#endif

namespace {
#if defined(PIMOE_HAVE_ARM_ISAS)
bool neon_kernels() { return isa() == Isa::Neon || isa() == Isa::NeonDot; }  // no dot products in activations
#endif
}  // namespace

void activate(pimoe_activation activation, float *h, const float *bias, int64_t n, int64_t width) {
#if defined(PIMOE_HAVE_X86_ISAS)
  if (isa() == Isa::Avx512) return avx512::activate(activation, h, bias, n, width);
  if (isa() == Isa::Avx2) return avx2::activate(activation, h, bias, n, width);
#endif
#if defined(PIMOE_HAVE_ARM_ISAS)
  if (neon_kernels()) return neon::activate(activation, h, bias, n, width);
#endif
  generic::activate(activation, h, bias, n, width);
}

void swiglu(const float *gate, float *h, int64_t n) {
#if defined(PIMOE_HAVE_X86_ISAS)
  if (isa() == Isa::Avx512) return avx512::swiglu(gate, h, n);
  if (isa() == Isa::Avx2) return avx2::swiglu(gate, h, n);
#endif
#if defined(PIMOE_HAVE_ARM_ISAS)
  if (neon_kernels()) return neon::swiglu(gate, h, n);
#endif
  generic::swiglu(gate, h, n);
}

void glu(pimoe_activation activation, const float *gate, float *h, int64_t n, const float *gate_bias,
         const float *up_bias, float alpha, float limit) {
#if defined(PIMOE_HAVE_X86_ISAS)
  if (isa() == Isa::Avx512) return avx512::glu(activation, gate, h, n, gate_bias, up_bias, alpha, limit);
  if (isa() == Isa::Avx2) return avx2::glu(activation, gate, h, n, gate_bias, up_bias, alpha, limit);
#endif
#if defined(PIMOE_HAVE_ARM_ISAS)
  if (neon_kernels()) return neon::glu(activation, gate, h, n, gate_bias, up_bias, alpha, limit);
#endif
  generic::glu(activation, gate, h, n, gate_bias, up_bias, alpha, limit);
}

}  // namespace pimoe::cpu
