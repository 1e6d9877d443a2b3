// SPDX-License-Identifier: MIT
// The packed GEMM alone (backends/cpu/packed_gemm.h: C[M, N] = A[M, K] * W^T, W packed once), `reps` times, on the
// kernels cpu_isa.cpp chooses (PIMOE_CPU_ISA lowers them). Not a timing benchmark: count_gemm_insn.sh runs it under
// qemu-user and counts the instructions it executes for two values of `reps`, so that their difference is the GEMM's
// own count, free of start-up and packing. Linked from the library's own kernel objects (count_gemm_insn.sh).
//   usage: gemm_insn M N K reps
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "backends/cpu/cpu_isa.h"
#include "backends/cpu/packed_gemm.h"

int main(int argc, char **argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s M N K reps\n", argv[0]);
    return 2;
  }
  const int64_t M = std::atoll(argv[1]), N = std::atoll(argv[2]), K = std::atoll(argv[3]);
  const int reps = std::atoi(argv[4]);
  std::vector<float> A(static_cast<size_t>(M * K)), W(static_cast<size_t>(N * K)), C(static_cast<size_t>(M * N));
  uint32_t s = 12345;  // a fixed LCG: the same inputs on every run
  auto next = [&s] {
    s = s * 1664525u + 1013904223u;
    return static_cast<float>(s >> 8) / 16777216.0f - 0.5f;
  };
  for (float &v : A) v = next();
  for (float &v : W) v = next();
  const pimoe::cpu::PackedWeight packed(W.data(), N, K);
  for (int i = 0; i < reps; ++i) pimoe::cpu::packed_gemm_tile(A.data(), K, M, packed, 0, packed.panels(), C.data(), N);
  double sum = 0.0;
  for (float v : C) sum += v;
  std::printf("kernels %s  M=%lld N=%lld K=%lld reps=%d  checksum %.6f\n",
              pimoe::cpu::isa_name(pimoe::cpu::isa()), static_cast<long long>(M), static_cast<long long>(N),
              static_cast<long long>(K), reps, sum);
  return 0;
}
