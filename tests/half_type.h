/* SPDX-License-Identifier: MIT */
// The compiler's IEEE binary16 type, for tests that convert with the compiler's own round-to-nearest-even: _Float16,
// or __fp16 with GCC before 13 on aarch64, whose C++ front end has no _Float16 there (__fp16 is the same IEEE format
// on aarch64, and its conversions from float round to nearest even too).
#pragma once

namespace pimoe_test {
#if defined(__aarch64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
using Half = __fp16;
#else
using Half = _Float16;
#endif
}  // namespace pimoe_test
