// SPDX-License-Identifier: MIT
#define PIMOE_ISA neon
#include "activation_impl.h"
