// The one GEMM shape the CPU backend needs: C[M, N] = A[M, K] * B[N, K]^T, B in nn.Linear layout.
#pragma once

#include <cstdint>
#include <string>

#include "src/thread_pool.h"

namespace pimoe::cpu {

// With OpenBLAS, cblas_sgemm (which threads internally; `pool` is unused). Without it, the built-in kernel,
// parallel over column blocks on `pool`.
void gemm_abt(const float *A, const float *B, float *C, int64_t M, int64_t N, int64_t K, ThreadPool &pool);

// "OpenBLAS 0.3.21 (SkylakeX, 2 threads)" or "built-in GEMM".
std::string gemm_description();

}  // namespace pimoe::cpu
