/* SPDX-License-Identifier: MIT */
// The bounds by which the backend chooses its kernels for a call, and the experimental options that move them
// (pimoe.h, EXPERIMENTAL_CUDA_*, each also set by its environment variable; for same-run comparisons).
#pragma once

#include <cstdint>

#include "routing.cuh"
#include "src/option_table.h"

namespace pimoe::cuda {

// Calls of at most this many tokens take the GEMV kernels (outside deterministic mode): below it a token-tiled GEMM
// would re-read each touched expert's weights once per tile of too few rows to pay for the tiles.
constexpr int64_t kDecodeTokens = 16;
static_assert(kDecodeTokens <= kDecodeMaxTokens, "the decode routing kernel sizes its accumulators by this");

// Calls of at most this many tokens take the streaming GEMV kernel (gemv_stream.cu: a grid the size of the GPU, weights
// through a cp.async ring), larger decode calls the kernel of a block per 16 output rows. On an H100 the streaming
// kernel won at 1 token (F: 86.6 -> 80.7 us) and lost at 16 (C: 2079 -> 2358 us; bench/cuda/RESULTS.md).
// experimental.cuda_stream_tokens (PIMOE_CUDA_STREAM_TOKENS) moves the bound; its default is this one.
constexpr int64_t kStreamTokens = 1;

// A decode-sized call whose experts expect at least this many rows each (tokens * top_k / experts, as if routing were
// uniform) takes the wgmma grouped GEMM instead of the GEMV kernels: the GEMV passes over an expert's weights once per
// few rows, the GEMM's tiles read them once for up to 128. On an H100 (bench/cuda/RESULTS.md, decode2 run 1) C at
// 16 tokens (4 rows an expert) went 2078 -> 1115 us. F and D at 16 (1 and 0.5 rows) were faster there too, but
// against the GEMV before its later rework, and 2-15-token calls were not measured: the bound stays where the gain is
// large. Like every tensor-core call it rounds the activations to the weight type (pimoe.h, WEIGHT_DTYPE).
// experimental.cuda_decode_gemm_rows (PIMOE_CUDA_DECODE_GEMM_ROWS) moves the bound (0: never); its default is this one.
constexpr double kDecodeGemmRows = 4.0;

struct Tuning {
  int64_t stream_tokens = kStreamTokens;
  double decode_gemm_rows = kDecodeGemmRows;
  // experimental.cuda_no_wgmma (PIMOE_CUDA_NO_WGMMA=1) keeps the mma.sync kernel on compute capability 9.0 (same-run
  // comparisons, and a way out should the wgmma kernel misbehave somewhere).
  bool no_wgmma = false;
};

// The bounds above, as the layer's experimental options (the environment applied) set them.
Tuning tuning_from_config(const BackendTuning &tuning);

}  // namespace pimoe::cuda
