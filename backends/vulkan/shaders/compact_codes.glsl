// SPDX-License-Identifier: MIT
// The compact weight formats' codes and scales, for the kernels that read expert weights (matvec.comp, matmul.comp):
// included after BUFFER_WEIGHTS has declared the arenas, in the variants whose WTYPE_* is compact (common.glsl sets
// COMPACT and VW = 16).
#if defined(COMPACT)
// The compact formats, as src/compact_matrix.h defines them; every value is the code's value times its scale, the
// product rounded once in fp32, as the CPU backend and the oracle compute it. The scales (and int4's zero points)
// lie in the expert's arena in the file's form, from word `sbase` (`zbase`), indexed as the file indexes them:
//   int8      f32 [rows]                           q * s
//   int4      f16 [rows, ceil(cols / group)]       (u - 8) * s, or (u - z) * s with u8 zero points of that shape
//   fp8_e4m3  f32 [ceil(rows/128), ceil(cols/128)] e4m3(b) * s
//   mxfp4     e8m0 u8 [rows, ceil(cols / 32)]      e2m1(u) * 2^(e - 127)
struct UnitScale {
  float scale;
  float zero;  // int4: the code that means 0 (8, or the group's zero point)
};

uint arena_word(uint ar, uint byte_offset) { return arena[ar].w[byte_offset >> 4][(byte_offset >> 2) & 3u]; }
uint arena_byte(uint ar, uint byte_offset) { return bitfieldExtract(arena_word(ar, byte_offset), int(8u * (byte_offset & 3u)), 8); }

// The scale of depth unit u (elements 16u .. 16u + 15) of row n in a matrix of `cols` columns. `group`: int4's.
UnitScale unit_scale(uint ar, uint sbase, uint zbase, uint n, uint u, uint cols, uint group) {
  UnitScale r;
  r.zero = 0.0;
#if defined(WTYPE_I8)
  r.scale = uintBitsToFloat(arena_word(ar, sbase * 16u + 4u * n));
#elif defined(WTYPE_I4)
  const uint idx = n * ((cols + group - 1u) / group) + (16u * u) / group;
  r.scale = unpackHalf2x16(bitfieldExtract(arena_word(ar, sbase * 16u + 2u * idx), int(16u * (idx & 1u)), 16)).x;
  r.zero = zbase == META_NONE ? 8.0 : float(arena_byte(ar, zbase * 16u + idx));
#elif defined(WTYPE_FP8)
  const uint idx = (n / 128u) * ((cols + 127u) / 128u) + u / 8u;
  r.scale = uintBitsToFloat(arena_word(ar, sbase * 16u + 4u * idx));
#else  // WTYPE_MXFP4
  const uint e = arena_byte(ar, sbase * 16u + n * ((cols + 31u) / 32u) + u / 2u);
  r.scale = e == 0u ? uintBitsToFloat(0x00200000u) : uintBitsToFloat(e << 23);  // 2^-127 is subnormal
#endif
  return r;
}

// The raw codes of unit u of row n (a matrix at word `base`, `stride` words a row): 16 bytes, or 8 in .xy.
uvec4 unit_codes(uint ar, uint base, uint stride, uint n, uint u) {
#if defined(NIBBLES)
  const uvec4 w = arena[ar].w[base + n * stride + (u >> 1u)];
  return (u & 1u) == 0u ? uvec4(w.xy, 0u, 0u) : uvec4(w.zw, 0u, 0u);
#else
  return arena[ar].w[base + n * stride + u];
#endif
}

float e4m3_value(uint b) {
  const uint e = (b >> 3u) & 15u, m = b & 7u;
  const float mag = e == 0u ? float(m) * (1.0 / 512.0) : uintBitsToFloat(((e + 120u) << 23u) | (m << 20u));
  return (b & 0x80u) != 0u ? -mag : mag;
}

float e2m1_value(uint u) {
  const float mag[8] = float[8](0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0);
  return (u & 8u) != 0u ? -mag[u & 7u] : mag[u & 7u];
}

void decode_codes(uvec4 q, UnitScale s, out float v[VW]) {
  for (uint i = 0u; i < 16u; ++i) {
#if defined(WTYPE_I8)
    v[i] = float(bitfieldExtract(int(q[i >> 2u]), int(8u * (i & 3u)), 8)) * s.scale;
#elif defined(WTYPE_FP8)
    v[i] = e4m3_value(bitfieldExtract(q[i >> 2u], int(8u * (i & 3u)), 8)) * s.scale;
#elif defined(WTYPE_I4)
    v[i] = (float(bitfieldExtract(q[i >> 3u], int(4u * (i & 7u)), 4)) - s.zero) * s.scale;
#else
    v[i] = e2m1_value(bitfieldExtract(q[i >> 3u], int(4u * (i & 7u)), 4)) * s.scale;
#endif
  }
}

// The values of unit u of row n of one matrix: `base`, `stride` its codes, `sbase`, `zbase` its scales and zero
// points, `cols` its columns (the matrix's, not the padded depth).
void weight_unit(uint ar, uint base, uint stride, uint sbase, uint zbase, uint n, uint u, uint cols, uint group,
                 out float v[VW]) {
  decode_codes(unit_codes(ar, base, stride, n, u), unit_scale(ar, sbase, zbase, n, u, cols, group), v);
}
#endif
