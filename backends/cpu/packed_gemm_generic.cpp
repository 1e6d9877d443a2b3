// SPDX-License-Identifier: MIT
#define PIMOE_ISA generic
#include "packed_gemm_impl.h"
