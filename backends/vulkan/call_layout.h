/* SPDX-License-Identifier: MIT */
// The host side of shaders/layout.h for one call: the push-constant block every kernel reads, and where the sections
// of the per-call routing buffer B_ROUTE start for a call's tokens, slots and experts.
#pragma once

#include <cstdint>

#include "shaders/layout.h"

namespace pimoe {

inline int64_t round_up(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}
inline uint32_t ceil_div(int64_t v, int64_t d) {
  return static_cast<uint32_t>((v + d - 1) / d);
}

// The push-constant block of every kernel (layout.h lists the fields once for both sides).
struct Push {
#define U_FIELD(n) uint32_t n = 0;
#define F_FIELD(n) float n = 0.0f;
#define I_FIELD(n) int32_t n = 0;
  PUSH_FIELDS(U_FIELD, F_FIELD, I_FIELD)
#undef U_FIELD
#undef F_FIELD
#undef I_FIELD
};
static_assert(sizeof(Push) == 4 * PUSH_WORDS, "Push must match layout.h's PUSH_WORDS");

// Sections of the per-call routing buffer B_ROUTE, in ints, for assignments a = t * K + j. A host-routed pass uploads
// [ids, ecount); a device-routed call reads [ids, tok) back. rowtok (the token of each row, written by route_small)
// follows tok, where the shaders' route_rowtok() finds it.
struct RouteLayout {
  uint32_t ids, w, arow, seg, disp, active, ecount, stats, tok, rowtok, total;
  RouteLayout(int64_t T, int64_t K, int64_t E) {
    const auto A = static_cast<uint32_t>(T * K);
    ids = 0;
    w = A;
    arow = 2 * A;
    seg = 3 * A;
    disp = seg + static_cast<uint32_t>(E + 1) * SEG_STRIDE;
    active = disp + DISP_SIZE;
    ecount = active + static_cast<uint32_t>(E + 1);
    stats = ecount + static_cast<uint32_t>(E) * ECOUNT_STRIDE;
    tok = stats + STATS_SIZE;
    rowtok = tok + static_cast<uint32_t>(T) * TOK_STRIDE;
    total = rowtok + static_cast<uint32_t>(T * (K + 1));
  }
};

}  // namespace pimoe
