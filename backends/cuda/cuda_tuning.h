// The bounds by which the backend chooses its kernels for a call, and the environment variables that move them
// (for same-run comparisons; each is read when a backend is created).
#pragma once

#include <cstdint>

#include "routing.cuh"

namespace pimoe::cuda {

// Calls of at most this many tokens take the GEMV kernels (outside deterministic mode): below it a token-tiled GEMM
// would re-read each touched expert's weights once per tile of too few rows to pay for the tiles.
constexpr int64_t kDecodeTokens = 16;
static_assert(kDecodeTokens <= kDecodeMaxTokens, "the decode routing kernel sizes its accumulators by this");

// Calls of at most this many tokens take the streaming GEMV kernel (gemv.cu: a grid the size of the GPU, weights
// through a cp.async ring), larger decode calls the kernel of a block per 16 output rows. On an H100 the streaming
// kernel won at 1 token (F: 86.6 -> 80.7 us) and lost at 16 (C: 2079 -> 2358 us; bench/cuda/README.md).
// PIMOE_CUDA_STREAM_TOKENS=N in the environment moves the bound.
constexpr int64_t kStreamTokens = 1;

// A decode-sized call whose experts expect at least this many rows each (tokens * top_k / experts, as if routing were
// uniform) takes the wgmma grouped GEMM instead of the GEMV kernels: the GEMV passes over an expert's weights once per
// few rows, the GEMM's tiles read them once for up to 128. On an H100 (bench/cuda/README.md, decode rework run 1) C at
// 16 tokens (4 rows an expert) went 2078 -> 1115 us. F and D at 16 (1 and 0.5 rows) were faster there too, but
// against the GEMV before its later rework, and 2-15-token calls were not measured: the bound stays where the gain is
// large. Like every tensor-core call it rounds the activations to the weight type (pimoe.h, WEIGHT_DTYPE).
// PIMOE_CUDA_DECODE_GEMM_ROWS=R in the environment moves the bound (0: never).
constexpr double kDecodeGemmRows = 4.0;

struct Tuning {
  int64_t stream_tokens = kStreamTokens;
  double decode_gemm_rows = kDecodeGemmRows;
  // PIMOE_CUDA_NO_WGMMA=1 in the environment keeps the mma.sync kernel on compute capability 9.0 (same-run
  // comparisons, and a way out should the wgmma kernel misbehave somewhere).
  bool no_wgmma = false;
};

// The bounds above, as the environment sets them.
Tuning tuning_from_environment();

}  // namespace pimoe::cuda
