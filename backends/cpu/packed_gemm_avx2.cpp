// SPDX-License-Identifier: MIT
#define PIMOE_ISA avx2
#include "packed_gemm_impl.h"
