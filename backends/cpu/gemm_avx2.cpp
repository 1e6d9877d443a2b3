#define PIMOE_ISA avx2
#include "gemm_impl.h"
