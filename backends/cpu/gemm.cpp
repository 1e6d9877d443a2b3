#include "gemm.h"

#include <algorithm>

#ifdef PIMOE_HAVE_CBLAS
#include <cblas.h>
#endif

namespace pimoe::cpu {

namespace {

#ifdef PIMOE_HAVE_CBLAS

void gemm_abt_blas(const float *A, const float *B, float *C, int64_t M, int64_t N, int64_t K) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(M), static_cast<blasint>(N),
              static_cast<blasint>(K), 1.0f, A, static_cast<blasint>(K), B, static_cast<blasint>(K), 0.0f, C,
              static_cast<blasint>(N));
}

std::string blas_description() {
  std::string config = openblas_get_config();
  std::string core = openblas_get_corename();
  return config.substr(0, config.find(' ', config.find(' ') + 1)) + " (" + core + ", " +
         std::to_string(openblas_get_num_threads()) + " threads)";
}

#endif

constexpr int64_t kLanes = 16;  // independent partial sums per dot product, so the compiler can vectorise

// C[i0..i1, j0..j1) of A * B^T, four output columns at a time sharing each A row load.
__attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default"))) void gemm_block(
    const float *A, const float *B, float *C, int64_t M, int64_t j0, int64_t j1, int64_t N, int64_t K) {
  for (int64_t i = 0; i < M; ++i) {
    const float *a = A + i * K;
    int64_t j = j0;
    for (; j + 4 <= j1; j += 4) {
      float acc[4][kLanes] = {};
      const float *b0 = B + j * K, *b1 = b0 + K, *b2 = b1 + K, *b3 = b2 + K;
      int64_t p = 0;
      for (; p + kLanes <= K; p += kLanes) {
        for (int64_t l = 0; l < kLanes; ++l) {
          const float av = a[p + l];
          acc[0][l] += av * b0[p + l];
          acc[1][l] += av * b1[p + l];
          acc[2][l] += av * b2[p + l];
          acc[3][l] += av * b3[p + l];
        }
      }
      float tail[4] = {};
      for (; p < K; ++p) {
        tail[0] += a[p] * b0[p];
        tail[1] += a[p] * b1[p];
        tail[2] += a[p] * b2[p];
        tail[3] += a[p] * b3[p];
      }
      for (int c = 0; c < 4; ++c) {
        float sum = tail[c];
        for (int64_t l = 0; l < kLanes; ++l) sum += acc[c][l];
        C[i * N + j + c] = sum;
      }
    }
    for (; j < j1; ++j) {
      float acc[kLanes] = {};
      const float *b = B + j * K;
      int64_t p = 0;
      for (; p + kLanes <= K; p += kLanes) {
        for (int64_t l = 0; l < kLanes; ++l) acc[l] += a[p + l] * b[p + l];
      }
      float sum = 0.0f;
      for (; p < K; ++p) sum += a[p] * b[p];
      for (int64_t l = 0; l < kLanes; ++l) sum += acc[l];
      C[i * N + j] = sum;
    }
  }
}

void gemm_abt_builtin(const float *A, const float *B, float *C, int64_t M, int64_t N, int64_t K, ThreadPool &pool) {
  // Column blocks keep a slab of B hot in cache while every row of A streams past it. The block split depends only
  // on N, so each output element is computed the same way whatever the thread count.
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (N + kBlock - 1) / kBlock;
  pool.parallel_for(blocks, [&](int64_t b) {
    const int64_t j0 = b * kBlock, j1 = std::min(N, j0 + kBlock);
    constexpr int64_t kRows = 32;
    for (int64_t i0 = 0; i0 < M; i0 += kRows) {
      const int64_t rows = std::min(kRows, M - i0);
      gemm_block(A + i0 * K, B, C + i0 * N, rows, j0, j1, N, K);
    }
  });
}

}  // namespace

#ifdef PIMOE_HAVE_CBLAS
bool blas_available() {
  return true;
}
#else
bool blas_available() {
  return false;
}
#endif

void gemm_abt(GemmKind kind, const float *A, const float *B, float *C, int64_t M, int64_t N, int64_t K,
              ThreadPool &pool) {
#ifdef PIMOE_HAVE_CBLAS
  if (kind == GemmKind::Blas) return gemm_abt_blas(A, B, C, M, N, K);
#endif
  (void)kind;
  gemm_abt_builtin(A, B, C, M, N, K, pool);
}

std::string gemm_description(GemmKind kind) {
#ifdef PIMOE_HAVE_CBLAS
  if (kind == GemmKind::Blas) return blas_description();
#endif
  (void)kind;
  return "built-in GEMM";
}

}  // namespace pimoe::cpu
