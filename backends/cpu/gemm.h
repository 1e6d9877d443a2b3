// The one GEMM shape the CPU backend needs: C[M, N] = A[M, K] * B[N, K]^T, B in nn.Linear layout.
#pragma once

#include <cstdint>
#include <string>

#include "src/thread_pool.h"

namespace pimoe::cpu {

// Blas: OpenBLAS's cblas_sgemm, which threads internally (`pool` unused); its rounding may depend on M.
// BuiltIn: the portable kernel, parallel over column blocks on `pool`; every output element is computed the same
// way whatever M and the thread count, which is what deterministic mode needs.
enum class GemmKind { Blas, BuiltIn };

bool blas_available();
void gemm_abt(GemmKind kind, const float *A, const float *B, float *C, int64_t M, int64_t N, int64_t K,
              ThreadPool &pool);

// "OpenBLAS 0.3.21 (SkylakeX, 2 threads)" or "built-in GEMM".
std::string gemm_description(GemmKind kind);

}  // namespace pimoe::cpu
