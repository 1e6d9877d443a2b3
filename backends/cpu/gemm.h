/* SPDX-License-Identifier: MIT */
// OpenBLAS's sgemm in the one shape the CPU backend needs: C[M, N] = A[M, K] * B[N, K]^T, B in nn.Linear layout.
#pragma once

#include <cstdint>
#include <string>

namespace pimoe::cpu {

// Whether this build links OpenBLAS (cblas).
bool blas_available();

// cblas_sgemm, which threads internally. Only call when blas_available().
void blas_gemm_abt(const float *A, const float *B, float *C, int64_t M, int64_t N, int64_t K);

// "OpenBLAS 0.3.21 (Zen, 2 threads)", or "none".
std::string blas_description();

}  // namespace pimoe::cpu
