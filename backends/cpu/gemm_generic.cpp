#define PIMOE_ISA generic
#include "gemm_impl.h"
