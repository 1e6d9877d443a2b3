// SPDX-License-Identifier: MIT
#define PIMOE_ISA generic
#include "activation_impl.h"
