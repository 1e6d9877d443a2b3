#define PIMOE_ISA avx512
#include "gemm_impl.h"
