// SPDX-License-Identifier: MIT
#include "backend_registry.h"

#include <algorithm>
#include <cstdlib>

#include "error.h"

namespace pimoe {

// Each backend folder defines its family (backends/<name>/<name>_family.cpp).
const BackendFamily &cpu_backend_family();
const BackendFamily &cuda_backend_family();
const BackendFamily &vulkan_backend_family();

namespace {

struct KnownBackend {
  const char *name;
  bool numbered_devices;             // whether "name:N" names device N
  const BackendFamily &(*family)();  // null when this build does not have it
};

// Every backend libpimoe knows, compiled in or not, in the order pimoe_backend_name() lists the compiled ones.
// Adding a backend: its folder with a <name>_family.cpp, its CMake file, and its line here.
const KnownBackend kKnownBackends[] = {
#ifdef PIMOE_HAVE_CUDA
    {"cuda", false, cuda_backend_family},
#else
    {"cuda", false, nullptr},
#endif
#ifdef PIMOE_HAVE_VULKAN
    {"vulkan", true, vulkan_backend_family},
#else
    {"vulkan", true, nullptr},
#endif
    {"cpu", false, cpu_backend_family},
};

const KnownBackend *find_known(const std::string &kind) {
  for (const KnownBackend &k : kKnownBackends) {
    if (kind == k.name) return &k;
  }
  return nullptr;
}

// "auto, cpu, cuda, vulkan or vulkan:N": the names parse_backend_name() accepts.
std::string accepted_names() {
  std::vector<std::string> names;
  for (const KnownBackend &k : kKnownBackends) names.emplace_back(k.name);
  std::sort(names.begin(), names.end());
  for (const KnownBackend &k : kKnownBackends) {
    if (k.numbered_devices) names.push_back(std::string(k.name) + ":N");
  }
  std::string text = "auto";
  for (size_t i = 0; i < names.size(); ++i) text += (i + 1 == names.size() ? " or " : ", ") + names[i];
  return text;
}

}  // namespace

BackendName parse_backend_name(const std::string &name) {
  if (name == "auto") return {name, -1, nullptr};
  const size_t colon = name.find(':');
  const std::string kind = name.substr(0, colon);
  const KnownBackend *known = find_known(kind);
  if (known) {
    const BackendFamily *family = known->family ? &known->family() : nullptr;
    if (colon == std::string::npos) return {kind, -1, family};
    // "name:N" for a backend with numbered devices, compiled in or not (so that "vulkan:1" in a build without
    // Vulkan fails as "not compiled" rather than as a malformed name).
    const std::string digits = name.substr(colon + 1);
    if (known->numbered_devices && !digits.empty() && digits.size() <= 4 &&
        digits.find_first_not_of("0123456789") == std::string::npos) {
      return {kind, std::atoi(digits.c_str()), family};
    }
  }
  fail(PIMOE_ERR_INVALID_OPTION, "backend '", name, "' is not a backend name (expected ", accepted_names(), ")");
}

const std::vector<const char *> &compiled_backends() {
  static const std::vector<const char *> names = [] {
    std::vector<const char *> v;
    for (const KnownBackend &k : kKnownBackends) {
      if (k.family) v.push_back(k.name);
    }
    return v;
  }();
  return names;
}

bool backend_usable(const BackendName &name, std::string &why) {
  if (name.kind == "auto") return true;
  if (name.family) return name.family->usable(name.device, why);
  std::string compiled;
  for (const char *c : compiled_backends()) compiled += (compiled.empty() ? "" : ", ") + std::string(c);
  why = "backend '" + name.kind + "' is not compiled into this build of libpimoe (compiled: " + compiled + ")";
  return false;
}

BackendName resolve_auto_backend() {
  BackendName best{"cpu", -1, &cpu_backend_family()};
  int best_rank = -1;
  for (const KnownBackend &k : kKnownBackends) {
    if (!k.family) continue;
    int device = -1;
    const int rank = k.family().auto_rank(&device);
    if (rank > best_rank) {
      best_rank = rank;
      best = {k.name, device, &k.family()};
    }
  }
  // A family that names no device (-1) runs on its preferred one.
  return best;
}

std::string describe_backend(const BackendName &name) {
  const BackendName concrete = name.kind == "auto" ? resolve_auto_backend() : name;
  return concrete.family ? concrete.family->describe(concrete.device) : std::string();
}

int backend_device_count(const std::string &kind, std::string &why) {
  const KnownBackend *known = find_known(kind);
  if (!known) {
    std::string kinds;
    for (const KnownBackend &k : kKnownBackends) kinds += (kinds.empty() ? "" : ", ") + std::string(k.name);
    why = "'" + kind + "' is not a backend kind (" + kinds + ")";
    return -1;
  }
  return known->family ? known->family().device_count() : 0;
}

std::string backend_build_info() {
  std::string backends, extra;
  for (const KnownBackend &k : kKnownBackends) {
    if (!k.family) continue;
    backends += (backends.empty() ? "" : ",") + std::string(k.name);
    if (k.family().build_info) extra += " " + k.family().build_info();
  }
  return "backends=" + backends + extra;
}

std::unique_ptr<Backend> create_backend(const std::string &requested, const LayerConfig &config,
                                        LayerWeights &weights) {
  BackendName name = parse_backend_name(requested);
  std::string why;
  if (!backend_usable(name, why)) fail(PIMOE_ERR_BACKEND_UNAVAILABLE, why);
  if (name.kind == "auto") name = resolve_auto_backend();
  return name.family->create(config, weights, name.device);
}

// Defaults of the optional steps of Backend (backend.h): a backend that does not declare the capability is never
// asked for them; reaching one is a bug in the caller.
void Backend::route_and_run(float *, RouteResult &, BackendScratch &) const {
  fail(PIMOE_ERR_INTERNAL, "backend '", name(), "' does not route on its device");
}
void Backend::copy_to_host(void *, const void *, size_t, BackendScratch &) const {
  fail(PIMOE_ERR_INTERNAL, "backend '", name(), "' takes no device pointers");
}
void Backend::copy_to_device(void *, const void *, size_t, BackendScratch &) const {
  fail(PIMOE_ERR_INTERNAL, "backend '", name(), "' takes no device pointers");
}

}  // namespace pimoe
