#include "gemm.h"

#include <algorithm>

#include "cpu_isa.h"

#ifdef PIMOE_HAVE_CBLAS
#include <cblas.h>
#endif

namespace pimoe::cpu {

#define PIMOE_DECLARE_GEMM_KERNEL(isa)                                                                                \
  namespace isa {                                                                                                     \
  void gemm_block(const float *A, const float *B, float *C, int64_t M, int64_t j0, int64_t j1, int64_t N, int64_t K); \
  }
PIMOE_DECLARE_GEMM_KERNEL(generic)
#if defined(PIMOE_HAVE_X86_ISAS)
PIMOE_DECLARE_GEMM_KERNEL(avx2)
PIMOE_DECLARE_GEMM_KERNEL(avx512)
#endif

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
         std::to_string(openblas_get_num_threads()) + " threads), kernels " + isa_name(isa());
}

#endif

using Kernel = void (*)(const float *, const float *, float *, int64_t, int64_t, int64_t, int64_t, int64_t);

Kernel builtin_kernel() {
  switch (isa()) {
#if defined(PIMOE_HAVE_X86_ISAS)
    case Isa::Avx512:
      return avx512::gemm_block;
    case Isa::Avx2:
      return avx2::gemm_block;
#endif
    default:
      return generic::gemm_block;
  }
}

void gemm_abt_builtin(const float *A, const float *B, float *C, int64_t M, int64_t N, int64_t K, ThreadPool &pool) {
  const Kernel kernel = builtin_kernel();
  // Column blocks keep a slab of B hot in cache while every row of A streams past it. The block split depends only
  // on N, so each output element is computed the same way whatever the thread count.
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (N + kBlock - 1) / kBlock;
  pool.parallel_for(blocks, [&](int64_t b) {
    const int64_t j0 = b * kBlock, j1 = std::min(N, j0 + kBlock);
    constexpr int64_t kRows = 32;
    for (int64_t i0 = 0; i0 < M; i0 += kRows) {
      const int64_t rows = std::min(kRows, M - i0);
      kernel(A + i0 * K, B, C + i0 * N, rows, j0, j1, N, K);
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
  return std::string("built-in GEMM (") + isa_name(isa()) + ")";
}

}  // namespace pimoe::cpu
