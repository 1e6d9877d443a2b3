// SPDX-License-Identifier: MIT
// Link stubs for the fuzz target: options.cpp validates backend names through backend_registry.cpp, which drags in
// every backend. The native format never sets the backend from a file, so the fuzzer links this instead.
#include "backend_registry.h"
#include "error.h"

namespace pimoe {

BackendName parse_backend_name(const std::string &name) {
  if (name == "auto" || name == "cpu") return {name, -1};
  fail(PIMOE_ERR_INVALID_OPTION, "fuzz build: backend '", name, "' not available");
}

}  // namespace pimoe
