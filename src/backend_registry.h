/* SPDX-License-Identifier: MIT */
// The backend registry: which backends libpimoe knows, which this build has, which can run here, and how the
// backend option's names ("auto", "cpu", "vulkan:1", ...) map onto them. backend_registry.cpp is the only file that
// names backends; everything else goes through the families listed there.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend.h"

namespace pimoe {

struct BackendName {
  std::string kind;                      // "auto" or a family's name
  int device = -1;                       // N of "name:N"; -1 when not given
  const BackendFamily *family = nullptr;  // null for "auto" and for a known backend this build does not have
};

// Throws PIMOE_ERR_INVALID_OPTION for a malformed name (unknown kinds included).
BackendName parse_backend_name(const std::string &name);

// Compiled-in backends, in the order pimoe_backend_name() lists them.
const std::vector<const char *> &compiled_backends();

// Whether a parsed backend can run here; `why` receives the reason when it cannot.
bool backend_usable(const BackendName &name, std::string &why);

// The concrete backend "auto" resolves to here: the usable family with the highest rank.
BackendName resolve_auto_backend();

// One line on the device a (usable, concrete or "auto") name runs on.
std::string describe_backend(const BackendName &name);

// Devices of a backend kind: 0 for a known backend this build lacks; -1 (with `why`) for an unknown kind.
int backend_device_count(const std::string &kind, std::string &why);

// "backends=cuda,vulkan,cpu" plus what each family adds, for pimoe_build_info().
std::string backend_build_info();

// Creates the backend a name asks for over the given config and weights (which outlive it). A backend that keeps
// its own form of a weight (holds_weight) frees the host vector once it has taken it, one tensor at a time, so a
// model never holds two full copies of its weights. Throws PIMOE_ERR_BACKEND_UNAVAILABLE with the reason when it
// cannot run here.
std::unique_ptr<Backend> create_backend(const std::string &name, const LayerConfig &config, LayerWeights &weights);

}  // namespace pimoe
