// SPDX-License-Identifier: MIT
// The compact kernels again with the dot-product instructions (cpu.cmake's flags): the integer path's sdot.
#define PIMOE_ISA neon_dot
#include "compact_gemm_impl.h"
#include "compact_int_gemm_impl.h"
