/* SPDX-License-Identifier: MIT */
// Shared by the oracle test suites that any backend can run (test_parity, test_routing_features): RAII handles, the
// backend under test, and the skip rule that keeps a GPU suite from passing where it cannot run.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "pimoe/pimoe.h"

#define PIMOE_ASSERT_OK(expr) ASSERT_EQ((expr), PIMOE_OK) << #expr << ": " << pimoe_last_error()

struct ModelDeleter {
  void operator()(pimoe_model *m) const { pimoe_destroy(m); }
};
struct OptionsDeleter {
  void operator()(pimoe_options *o) const { pimoe_options_destroy(o); }
};
using ModelPtr = std::unique_ptr<pimoe_model, ModelDeleter>;
using OptionsPtr = std::unique_ptr<pimoe_options, OptionsDeleter>;

// The backend under test: "cpu", or $PIMOE_TEST_BACKEND.
inline const char *Backend() {
  const char *b = std::getenv("PIMOE_TEST_BACKEND");
  return (b != nullptr && *b != '\0') ? b : "cpu";
}

// A backend named by PIMOE_TEST_BACKEND that cannot run here (no GPU): the binary says why and exits 77, which ctest
// reports as "Skipped" (SKIP_RETURN_CODE), so a GPU suite never passes without having run. Returns true otherwise.
inline bool ExitUnlessBackendUsable(const char *suite) {
  int32_t usable = 0;
  if (pimoe_backend_probe(Backend(), &usable) != PIMOE_OK || !usable) {
    std::printf("%s did not run: backend '%s' is not usable here: %s\n", suite, Backend(), pimoe_last_error());
    std::exit(77);
  }
  return true;
}
