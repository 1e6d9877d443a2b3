// SPDX-License-Identifier: MIT
#include "cuda_tuning.h"

namespace pimoe::cuda {

Tuning tuning_from_config(const BackendTuning &t) {
  Tuning tuning;
  tuning.stream_tokens = t.cuda_stream_tokens;
  tuning.decode_gemm_rows = t.cuda_decode_gemm_rows;
  tuning.no_wgmma = t.cuda_no_wgmma;
  return tuning;
}

}  // namespace pimoe::cuda
