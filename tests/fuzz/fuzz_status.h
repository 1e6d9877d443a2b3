// SPDX-License-Identifier: MIT
// What every C API call of a fuzz target must satisfy, whatever the input: its status is one of pimoe_status's codes,
// never PIMOE_ERR_INTERNAL (the library's own bug report: an exception its checks let through), and a failure leaves
// a message in pimoe_last_error(). A violation aborts, so libFuzzer (and the corpus replay) report it as a finding.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "pimoe/pimoe.h"

namespace pimoe_fuzz {

[[noreturn]] inline void finding(const char *call, const char *why) {
  std::fprintf(stderr, "FUZZ FINDING: %s: %s (last error: '%s')\n", call, why, pimoe_last_error());
  std::abort();
}

// Returns true on PIMOE_OK.
inline bool ok(pimoe_status status, const char *call) {
  if (status == PIMOE_OK) return true;
  if (status < PIMOE_ERR_NULL_POINTER || status > PIMOE_ERR_CALLBACK) finding(call, "status outside pimoe_status");
  if (status == PIMOE_ERR_INTERNAL) finding(call, "PIMOE_ERR_INTERNAL");
  if (pimoe_last_error()[0] == '\0') finding(call, "failed without a message");
  return false;
}

}  // namespace pimoe_fuzz
