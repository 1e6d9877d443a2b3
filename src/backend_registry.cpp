#include "backend_registry.h"

#include <cstdlib>

#include "backend.h"
#include "backends/cpu/cpu_backend.h"
#ifdef PIMOE_HAVE_CUDA
#include "backends/cuda/cuda_backend.h"
#endif
#include "error.h"
#ifdef PIMOE_HAVE_VULKAN
#include "backends/vulkan/vulkan_backend.h"
#endif

namespace pimoe {

BackendName parse_backend_name(const std::string &name) {
  if (name == "auto" || name == "cpu" || name == "cuda" || name == "vulkan") return {name, -1};
  const std::string vulkan_prefix = "vulkan:";
  if (name.compare(0, vulkan_prefix.size(), vulkan_prefix) == 0 && name.size() > vulkan_prefix.size()) {
    const std::string digits = name.substr(vulkan_prefix.size());
    if (digits.size() <= 4 && digits.find_first_not_of("0123456789") == std::string::npos) {
      return {"vulkan", std::atoi(digits.c_str())};
    }
  }
  fail(PIMOE_ERR_INVALID_OPTION, "backend '", name,
       "' is not a backend name (expected auto, cpu, cuda, vulkan or vulkan:N)");
}

const std::vector<const char *> &compiled_backends() {
  static const std::vector<const char *> names = {
#ifdef PIMOE_HAVE_CUDA
      "cuda",
#endif
#ifdef PIMOE_HAVE_VULKAN
      "vulkan",
#endif
      "cpu"};
  return names;
}

bool backend_usable(const BackendName &name, std::string &why) {
  if (name.kind == "auto" || name.kind == "cpu") return true;
#ifdef PIMOE_HAVE_CUDA
  if (name.kind == "cuda") return cuda_backend_usable(why);
#endif
#ifdef PIMOE_HAVE_VULKAN
  if (name.kind == "vulkan") return vulkan_usable(name.device, why);
#endif
  std::string compiled;
  for (const char *c : compiled_backends()) compiled += (compiled.empty() ? "" : ", ") + std::string(c);
  why = "backend '" + name.kind + "' is not compiled into this build of libpimoe (compiled: " + compiled + ")";
  return false;
}

std::string resolve_auto_backend() {
#ifdef PIMOE_HAVE_CUDA
  std::string why;
  if (cuda_backend_usable(why)) return "cuda";
#endif
#ifdef PIMOE_HAVE_VULKAN
  // A hardware Vulkan device beats the CPU backend; a software one (lavapipe, SwiftShader) never does.
  const int vulkan = vulkan_auto_device();
  if (vulkan >= 0) return "vulkan:" + std::to_string(vulkan);
#endif
  return "cpu";
}

std::unique_ptr<Backend> create_backend(const std::string &requested, const LayerConfig &config,
                                        LayerWeights &weights) {
  BackendName name = parse_backend_name(requested);
  std::string why;
  if (!backend_usable(name, why)) fail(PIMOE_ERR_BACKEND_UNAVAILABLE, why);
  if (name.kind == "auto") name = parse_backend_name(resolve_auto_backend());
  if (name.kind == "cpu") return make_cpu_backend(config, weights);
#ifdef PIMOE_HAVE_CUDA
  if (name.kind == "cuda") return make_cuda_backend(config, weights);
#endif
#ifdef PIMOE_HAVE_VULKAN
  if (name.kind == "vulkan") return make_vulkan_backend(config, weights, name.device);
#endif
  fail(PIMOE_ERR_BACKEND_UNAVAILABLE, "backend '", requested, "' is not available");
}

}  // namespace pimoe
