// SPDX-License-Identifier: MIT
#define PIMOE_ISA avx512
#include "activation_impl.h"
