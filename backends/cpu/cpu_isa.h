/* SPDX-License-Identifier: MIT */
// The instruction set the CPU kernels use, detected once at run time: on x86-64 the portable kernels, AVX2 or
// AVX-512; on aarch64 the portable kernels, NEON (Advanced SIMD, on every aarch64 CPU) or NEON with the dot-product
// instructions (sdot/udot, ARMv8.2's optional FEAT_DotProd).
#pragma once

namespace pimoe::cpu {

// Ordered within each architecture: a higher one runs every kernel of a lower one (PIMOE_CPU_ISA lowers by this).
enum class Isa { Generic, Avx2, Avx512, Neon, NeonDot };

Isa isa();
const char *isa_name(Isa isa);

}  // namespace pimoe::cpu
