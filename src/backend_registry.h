// Which backends this build has, which of them can run here, and how names map onto them.
#pragma once

#include <string>
#include <vector>

namespace pimoe {

struct BackendName {
  std::string kind;  // "auto", "cpu", "cuda" or "vulkan"
  int device = -1;   // N of "vulkan:N"; -1 when not given
};

// Throws PIMOE_ERR_INVALID_OPTION for a malformed name (unknown kinds included).
BackendName parse_backend_name(const std::string &name);

// Compiled-in backends in order of preference.
const std::vector<const char *> &compiled_backends();

// Whether a parsed backend can run here; `why` receives the reason when it cannot.
bool backend_usable(const BackendName &name, std::string &why);

// The concrete backend "auto" resolves to here.
std::string resolve_auto_backend();

}  // namespace pimoe
