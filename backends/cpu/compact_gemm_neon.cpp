// SPDX-License-Identifier: MIT
#define PIMOE_ISA neon
#include "compact_gemm_impl.h"
#include "compact_int_gemm_impl.h"
