// SPDX-License-Identifier: MIT
// The tools compile the library's readers in (options.cpp, native_format.cpp, hf_config.cpp: the library exports
// only the C API), but not the backend registry, which would bring every backend with it. options.cpp refers to the
// registry's parse_backend_name only to check a backend option being set; the readers never set one (their Options
// keep the default "auto", and every model the tools run is made through the C API, whose copy of the registry
// checks the name). This definition stands in for it in the tools alone, and fails loudly if that ever changes.
#include "backend_registry.h"
#include "error.h"

namespace pimoe {

BackendName parse_backend_name(const std::string &name) {
  fail(PIMOE_ERR_INTERNAL, "the tools' layer readers do not parse backend names ('", name,
       "'): set the backend through the C API");
}

}  // namespace pimoe
