// SPDX-License-Identifier: MIT
// One depth step of matmul_coop.comp: the fragments of shared buffer `buf` multiplied into the accumulators
// (included where the loop needs it; the prefetching loop includes it twice, unrolled by two).
const uint abase = buf * BM * SROW, bbase = buf * BNW * SROW;
[[unroll]] for (uint kk = 0u; kk < KC; kk += 2u) {  // 16-deep fragments: two chunks
  FA af[FM];
  FB bf[FN];
  [[unroll]] for (uint j = 0u; j < FN; ++j) {
    coopMatLoadNV(bf[j], b_sh, bbase + (wn + j * CM_N) * SROW + kk, SROW, true);
  }
  [[unroll]] for (uint i = 0u; i < FM; ++i) {
    coopMatLoadNV(af[i], a_hi, abase + (wm + i * 16u) * SROW + kk, SROW, false);
  }
  [[unroll]] for (uint i = 0u; i < FM; ++i) {
    [[unroll]] for (uint j = 0u; j < FN; ++j) acc[i][j] = coopMatMulAddNV(af[i], bf[j], acc[i][j]);
  }
#if defined(MODE_UP)
  if (gated) {
    [[unroll]] for (uint j = 0u; j < FN; ++j) {
      coopMatLoadNV(bf[j], b_sh, bbase + (BN + wn + j * CM_N) * SROW + kk, SROW, true);
    }
    [[unroll]] for (uint i = 0u; i < FM; ++i) {
      [[unroll]] for (uint j = 0u; j < FN; ++j) accg[i][j] = coopMatMulAddNV(af[i], bf[j], accg[i][j]);
    }
  }
#endif
#if defined(SPLIT)
  [[unroll]] for (uint i = 0u; i < FM; ++i) {
    coopMatLoadNV(af[i], a_lo, abase + (wm + i * 16u) * SROW + kk, SROW, false);
  }
#if defined(MODE_UP)
  if (gated) {
    [[unroll]] for (uint i = 0u; i < FM; ++i) {
      [[unroll]] for (uint j = 0u; j < FN; ++j) accg[i][j] = coopMatMulAddNV(af[i], bf[j], accg[i][j]);
    }
    [[unroll]] for (uint j = 0u; j < FN; ++j) {
      coopMatLoadNV(bf[j], b_sh, bbase + (wn + j * CM_N) * SROW + kk, SROW, true);
    }
  }
#endif
  [[unroll]] for (uint i = 0u; i < FM; ++i) {
    [[unroll]] for (uint j = 0u; j < FN; ++j) acc[i][j] = coopMatMulAddNV(af[i], bf[j], acc[i][j]);
  }
#endif
}
