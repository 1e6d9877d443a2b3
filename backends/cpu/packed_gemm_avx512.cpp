// SPDX-License-Identifier: MIT
#define PIMOE_ISA avx512
#include "packed_gemm_impl.h"
