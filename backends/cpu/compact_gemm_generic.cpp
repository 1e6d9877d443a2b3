#define PIMOE_ISA generic
#include "compact_gemm_impl.h"
