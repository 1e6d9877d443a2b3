// SPDX-License-Identifier: MIT
#define PIMOE_ISA avx2
#include "compact_gemm_impl.h"
#include "compact_int_gemm_impl.h"
