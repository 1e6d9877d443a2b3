/* SPDX-License-Identifier: MIT */
// The tensor-core GEMM's tile choices (shaders/matmul_coop.comp, variants listed in vulkan.cmake as
// matmul_<kernel>{up,down}_n{8,16}): what PIMOE_VULKAN_TILES calls them, their output tiles, the activations they
// multiply and the shared memory they need. The geometry here must match the defines vulkan.cmake gives each kernel.
#pragma once

#include <cstdint>

namespace pimoe {

struct CoopTiles {
  const char *choice;       // the PIMOE_VULKAN_TILES value
  const char *kernel;       // shader variant prefix, e.g. "matmul_coopx_"
  uint32_t bn_up, bn_down;  // output columns per workgroup tile (matmul_coop.comp's BN); rows: 128 (MM_BM_LARGE)
  uint32_t warps, bk;       // subgroups per workgroup; depth per shared-memory step
  bool split;               // activations multiplied as fp16 hi + lo (about 21 bits) rather than rounded to fp16
  bool act16;               // rows and hidden layer stored as fp16 (gather_h; the up projection writes fp16)
  bool stage_in_b;          // the epilogue's stage lives in the B tile
  const char *activations;  // for the device description

  // Bytes of shared memory per workgroup, as matmul_coop.comp lays it out for fragments 16 x cm_n (either
  // projection: the up tile stages 2 * bn_up weight rows, the down tile bn_down).
  constexpr uint32_t shared_bytes(uint32_t cm_n = 16) const {
    const uint32_t srow = bk / 8 + 1, bm = 128;
    const uint32_t a = 2 * bm * srow * 16 * (split ? 2 : 1);
    const uint32_t bnw = 2 * bn_up > bn_down ? 2 * bn_up : bn_down;
    const uint32_t b = 2 * bnw * srow * 16;
    const uint32_t stage = stage_in_b ? 0 : warps * 16 * cm_n * 4;
    return a + b + stage;
  }
};

// The first entry is the default; the others are for comparison and tests (bench/vulkan/RESULTS.md has the H100's
// times of each). The default rounds the activations and the hidden layer to fp16 (as the CUDA backend's tensor
// cores do) and stores them so: with half the bytes of fp32 activations to stage and half the multiplications of
// the split, its 128 x 64 (+ 64 gate) / 128 x 128 tiles of 2 x 2 subgroups, 32 deep, ran the 4096-token calls of
// shapes C and F 1.5 and 1.4 times faster than coopmat-split on an H100, and faster than every other choice here.
inline constexpr CoopTiles kCoopTiles[] = {
{"coopmat", "matmul_coopzh_", 64, 128, 4, 32, false, true, false, "activations rounded to fp16"},
    {"coopmat-h8", "matmul_coop16h_", 64, 128, 8, 32, false, true, false, "activations rounded to fp16"},
    {"coopmat-y", "matmul_coopyh_", 64, 128, 16, 32, false, true, true, "activations rounded to fp16"},
    {"coopmat-v", "matmul_coopvh_", 64, 128, 8, 32, false, true, false, "activations rounded to fp16"},
    {"coopmat-xh", "matmul_coopxh_", 128, 256, 16, 16, false, true, true, "activations rounded to fp16"},
    {"coopmat-wh", "matmul_coopwh_", 128, 256, 8, 16, false, true, true, "activations rounded to fp16"},
    {"coopmat-split", "matmul_coopx_", 128, 256, 16, 16, true, false, true, "fp32 activations as two fp16 parts"},
    {"coopmat-x", "matmul_coopx_", 128, 256, 16, 16, true, false, true, "fp32 activations as two fp16 parts"},
    {"coopmat-fp16", "matmul_coop16_", 64, 128, 8, 32, false, false, false, "activations rounded to fp16"},
    {"coopmat-n", "matmul_coop_", 64, 128, 8, 16, true, false, false, "fp32 activations as two fp16 parts"},
    {"coopmat-w", "matmul_coopw_", 128, 256, 8, 16, true, false, true, "fp32 activations as two fp16 parts"},
    {"coopmat-p1", "matmul_coopp1_", 64, 128, 8, 16, true, false, false, "fp32 activations as two fp16 parts"},
};

}  // namespace pimoe
