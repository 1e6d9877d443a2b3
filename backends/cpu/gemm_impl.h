// The built-in GEMM's inner kernel. Included once per instruction set by gemm_<isa>.cpp with PIMOE_ISA naming the
// namespace, so each copy is compiled and vectorised for its own target; gemm.cpp picks one at run time.
#include <cstdint>

namespace pimoe::cpu::PIMOE_ISA {

constexpr int64_t kLanes = 16;  // independent partial sums per dot product, so the compiler can vectorise

// C[i0..i1, j0..j1) of A * B^T, four output columns at a time sharing each A row load.
void gemm_block(const float *A, const float *B, float *C, int64_t M, int64_t j0, int64_t j1, int64_t N, int64_t K) {
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

}  // namespace pimoe::cpu::PIMOE_ISA
