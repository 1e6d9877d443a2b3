#define PIMOE_ISA generic
#include "activation_impl.h"
