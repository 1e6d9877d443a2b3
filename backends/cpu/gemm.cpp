// SPDX-License-Identifier: MIT
#include "gemm.h"

#ifdef PIMOE_HAVE_CBLAS
#include <cblas.h>
#endif

namespace pimoe::cpu {

#ifdef PIMOE_HAVE_CBLAS

bool blas_available() {
  return true;
}

void blas_gemm_abt(const float *A, const float *B, float *C, int64_t M, int64_t N, int64_t K) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(M), static_cast<blasint>(N),
              static_cast<blasint>(K), 1.0f, A, static_cast<blasint>(K), B, static_cast<blasint>(K), 0.0f, C,
              static_cast<blasint>(N));
}

std::string blas_description() {
  const std::string config = openblas_get_config();
  return config.substr(0, config.find(' ', config.find(' ') + 1)) + " (" + openblas_get_corename() + ", " +
         std::to_string(openblas_get_num_threads()) + " threads)";
}

#else

bool blas_available() {
  return false;
}
void blas_gemm_abt(const float *, const float *, float *, int64_t, int64_t, int64_t) {}
std::string blas_description() {
  return "none";
}

#endif

}  // namespace pimoe::cpu
