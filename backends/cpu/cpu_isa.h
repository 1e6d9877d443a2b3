/* SPDX-License-Identifier: MIT */
// The x86-64 instruction set the CPU kernels use, detected once at run time.
#pragma once

namespace pimoe::cpu {

enum class Isa { Generic, Avx2, Avx512 };

Isa isa();
const char *isa_name(Isa isa);

}  // namespace pimoe::cpu
