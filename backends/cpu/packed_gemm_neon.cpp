// SPDX-License-Identifier: MIT
#define PIMOE_ISA neon
#include "packed_gemm_impl.h"
