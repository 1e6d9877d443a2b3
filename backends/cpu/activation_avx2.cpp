// SPDX-License-Identifier: MIT
#define PIMOE_ISA avx2
#include "activation_impl.h"
