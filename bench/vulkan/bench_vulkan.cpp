// SPDX-License-Identifier: MIT
// bench_vulkan: libpimoe's Vulkan backend on the standard shapes (docs/design.md, "Standard shapes"), against a
// same-run reference: the device's own buffer-copy bandwidth, measured by this program with vkCmdCopyBuffer between two
// device-local buffers on the same device (GPU timestamps), right before and right after the layer's timings.
//
// For every (shape, tokens) case it reports the median wall time of pimoe_forward() (public C ABI, input [1, T, H],
// everything included: upload of the input, one submission, read-back of the output and the routing), and
//   tokens/s        T / median time
//   weight GB/s     bytes of the weights the call had to read / median time: the router (fp32) and every expert
//                   the call's tokens were routed to (gate, up, down as the backend holds them: codes, scales and
//                   zero points for the compact formats, from pimoe_stats' weight_bytes), each counted once
//   vs copy         weight GB/s / copy GB/s, the copy counting the bytes it read and wrote (what HBM moved), so
//                   1.0 would mean the layer streamed its weights as fast as the memory moves data
//   TFLOP/s         useful FLOPs (2*T*k*H*I*3 for SwiGLU, plus the router's 2*T*H*E) / median time
// With --peer BACKEND (e.g. cuda) the same model (same seed, so the same weights) is also created on that
// backend with --peer-dtype weights and timed the same way, right after the Vulkan case, through the same call:
//   peer ms         its median wall time of pimoe_forward()
//   x peer          peer ms / Vulkan ms (above 1: Vulkan is faster)
//
// Usage: bench_vulkan [--device vulkan:N] [--shape C,F,S|all] [--tokens 1,4096]
//                     [--dtype fp16|bf16|fp32|int8|int4|fp8_e4m3|mxfp4] [--peer BACKEND]
//                     [--peer-dtype fp16|bf16|fp32|...] [--min-time SECONDS] [--min-reps N]
//                     [--json FILE]
#include <pimoe/pimoe.h>

#include <volk.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? NAN : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

struct Shape {
  std::string name;
  int64_t hidden, intermediate, experts, top_k;
};

const Shape kShapes[] = {
    {"S", 512, 2048, 8, 2},
    {"F", 2048, 768, 128, 8},
    {"C", 4096, 14336, 8, 2},
};

[[noreturn]] void die(const std::string &what) {
  std::fprintf(stderr, "bench_vulkan: %s\n", what.c_str());
  std::exit(1);
}

#define VK_OK(expr)                                                                       \
  do {                                                                                    \
    const VkResult r_ = (expr);                                                           \
    if (r_ != VK_SUCCESS) die(std::string(#expr) + " failed: " + std::to_string(r_));     \
  } while (0)

// Device-to-device copy bandwidth of Vulkan device `index` (the same numbering as libpimoe's "vulkan:N"), in GB/s
// counting bytes read plus bytes written, timed with GPU timestamps around `reps` copies of `bytes`.
class CopyProbe {
 public:
  explicit CopyProbe(int index) {
    VK_OK(volkInitialize());
    VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
    app.apiVersion = VK_API_VERSION_1_1;
    VkInstanceCreateInfo ii{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
    ii.pApplicationInfo = &app;
    VK_OK(vkCreateInstance(&ii, nullptr, &instance_));
    volkLoadInstance(instance_);
    uint32_t count = 0;
    VK_OK(vkEnumeratePhysicalDevices(instance_, &count, nullptr));
    std::vector<VkPhysicalDevice> devices(count);
    VK_OK(vkEnumeratePhysicalDevices(instance_, &count, devices.data()));
    if (index < 0 || static_cast<uint32_t>(index) >= count) die("no Vulkan device " + std::to_string(index));
    physical_ = devices[static_cast<size_t>(index)];
    vkGetPhysicalDeviceProperties(physical_, &props_);
    uint32_t families = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(physical_, &families, nullptr);
    std::vector<VkQueueFamilyProperties> family(families);
    vkGetPhysicalDeviceQueueFamilyProperties(physical_, &families, family.data());
    family_ = families;
    for (uint32_t i = 0; i < families; ++i) {
      if ((family[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && family[i].timestampValidBits > 0) {
        family_ = i;
        break;
      }
    }
    if (family_ == families) die("no compute queue with timestamps");
    const float priority = 1.0f;
    VkDeviceQueueCreateInfo qi{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
    qi.queueFamilyIndex = family_;
    qi.queueCount = 1;
    qi.pQueuePriorities = &priority;
    VkDeviceCreateInfo di{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
    di.queueCreateInfoCount = 1;
    di.pQueueCreateInfos = &qi;
    VK_OK(vkCreateDevice(physical_, &di, nullptr, &device_));
    volkLoadDevice(device_);
    vkGetDeviceQueue(device_, family_, 0, &queue_);
  }
  ~CopyProbe() {
    if (device_) vkDestroyDevice(device_, nullptr);
    if (instance_) vkDestroyInstance(instance_, nullptr);
  }
  std::string name() const { return props_.deviceName; }

  double measure(VkDeviceSize bytes, int reps) {
    VkPhysicalDeviceMemoryProperties mem;
    vkGetPhysicalDeviceMemoryProperties(physical_, &mem);
    VkBuffer buffers[2];
    VkDeviceMemory memory[2];
    for (int i = 0; i < 2; ++i) {
      VkBufferCreateInfo bi{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
      bi.size = bytes;
      bi.usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
      VK_OK(vkCreateBuffer(device_, &bi, nullptr, &buffers[i]));
      VkMemoryRequirements req;
      vkGetBufferMemoryRequirements(device_, buffers[i], &req);
      uint32_t type = mem.memoryTypeCount;
      for (uint32_t t = 0; t < mem.memoryTypeCount; ++t) {
        if ((req.memoryTypeBits & (1u << t)) &&
            (mem.memoryTypes[t].propertyFlags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)) {
          type = t;
          break;
        }
      }
      if (type == mem.memoryTypeCount) die("no device-local memory");
      VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
      ai.allocationSize = req.size;
      ai.memoryTypeIndex = type;
      VK_OK(vkAllocateMemory(device_, &ai, nullptr, &memory[i]));
      VK_OK(vkBindBufferMemory(device_, buffers[i], memory[i], 0));
    }
    VkCommandPoolCreateInfo pi{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pi.queueFamilyIndex = family_;
    VkCommandPool pool;
    VK_OK(vkCreateCommandPool(device_, &pi, nullptr, &pool));
    VkCommandBufferAllocateInfo ci{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ci.commandPool = pool;
    ci.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ci.commandBufferCount = 1;
    VkCommandBuffer cmd;
    VK_OK(vkAllocateCommandBuffers(device_, &ci, &cmd));
    VkQueryPoolCreateInfo qi{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
    qi.queryType = VK_QUERY_TYPE_TIMESTAMP;
    qi.queryCount = 2;
    VkQueryPool queries;
    VK_OK(vkCreateQueryPool(device_, &qi, nullptr, &queries));
    VkFenceCreateInfo fi{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkFence fence;
    VK_OK(vkCreateFence(device_, &fi, nullptr, &fence));

    double best = 0.0;
    for (int round = 0; round < 3; ++round) {  // the first round warms up clocks and page tables
      VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
      VK_OK(vkBeginCommandBuffer(cmd, &bi));
      vkCmdResetQueryPool(cmd, queries, 0, 2);
      vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, queries, 0);
      for (int r = 0; r < reps; ++r) {
        const VkBufferCopy region{0, 0, bytes};
        vkCmdCopyBuffer(cmd, buffers[r % 2], buffers[(r + 1) % 2], 1, &region);
        VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
        mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
        mb.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
        vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0,
                             nullptr, 0, nullptr);
      }
      vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries, 1);
      VK_OK(vkEndCommandBuffer(cmd));
      VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
      si.commandBufferCount = 1;
      si.pCommandBuffers = &cmd;
      VK_OK(vkQueueSubmit(queue_, 1, &si, fence));
      VK_OK(vkWaitForFences(device_, 1, &fence, VK_TRUE, UINT64_MAX));
      VK_OK(vkResetFences(device_, 1, &fence));
      uint64_t stamps[2];
      VK_OK(vkGetQueryPoolResults(device_, queries, 0, 2, sizeof stamps, stamps, sizeof(uint64_t),
                                  VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
      const double seconds = static_cast<double>(stamps[1] - stamps[0]) * props_.limits.timestampPeriod * 1e-9;
      if (round > 0) best = std::max(best, 2.0 * static_cast<double>(bytes) * reps / seconds / 1e9);
      VK_OK(vkResetCommandBuffer(cmd, 0));
    }
    vkDestroyFence(device_, fence, nullptr);
    vkDestroyQueryPool(device_, queries, nullptr);
    vkDestroyCommandPool(device_, pool, nullptr);
    for (int i = 0; i < 2; ++i) {
      vkDestroyBuffer(device_, buffers[i], nullptr);
      vkFreeMemory(device_, memory[i], nullptr);
    }
    return best;
  }

 private:
  VkInstance instance_ = VK_NULL_HANDLE;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkPhysicalDeviceProperties props_{};
  uint32_t family_ = 0;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
};

pimoe_model *create(const Shape &s, const std::string &device, const std::string &dtype) {
  pimoe_options *o = nullptr;
  if (pimoe_options_create(&o) != PIMOE_OK) die("pimoe_options_create");
  const std::pair<const char *, std::string> settings[] = {
      {"hidden", std::to_string(s.hidden)},       {"intermediate", std::to_string(s.intermediate)},
      {"num_experts", std::to_string(s.experts)}, {"top_k", std::to_string(s.top_k)},
      {"activation", "swiglu"},                   {"weight_dtype", dtype},
      {"backend", device},                        {"seed", "1"}};
  for (const auto &kv : settings) {
    if (pimoe_options_set_by_name(o, kv.first, kv.second.c_str()) != PIMOE_OK) {
      die(std::string(kv.first) + ": " + pimoe_last_error());
    }
  }
  pimoe_model *m = nullptr;
  const pimoe_status st = pimoe_create(o, &m);
  pimoe_options_destroy(o);
  if (st != PIMOE_OK) die(std::string("pimoe_create: ") + pimoe_last_error());
  return m;
}

std::vector<float> random_input(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (float &f : v) {
    state += 0x9E3779B97F4A7C15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    f = static_cast<float>(static_cast<double>(z >> 40) / 16777216.0 * 2.0 - 1.0);
  }
  return v;
}

// Median wall time in seconds of pimoe_forward() on `m` over at least `min_reps` calls and `min_time` seconds,
// after three warm-up calls; the routing of the last call is left in `ids`.
double time_forward(pimoe_model *m, const std::vector<float> &x, int64_t T, std::vector<float> &y,
                    std::vector<int32_t> &ids, double min_time, int min_reps) {
  std::vector<float> w(ids.size());
  auto call = [&] {
    if (pimoe_forward(m, x.data(), x.size(), 1, T, y.data(), y.size(), ids.data(), w.data(), ids.size()) !=
        PIMOE_OK) {
      die(std::string("pimoe_forward: ") + pimoe_last_error());
    }
  };
  for (int warm = 0; warm < 3; ++warm) call();
  std::vector<double> times;
  const auto t0 = Clock::now();
  while (static_cast<int>(times.size()) < min_reps ||
         std::chrono::duration<double>(Clock::now() - t0).count() < min_time) {
    const auto a = Clock::now();
    call();
    times.push_back(std::chrono::duration<double>(Clock::now() - a).count());
    if (times.size() > 100000) break;
  }
  return median(times);
}

std::vector<int64_t> parse_list(const std::string &text) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoll(item));
  return out;
}

}  // namespace

int main(int argc, char **argv) {
  std::string device = "vulkan:0", shape_arg = "all", dtype = "fp16", json_path, peer, peer_dtype = "fp16";
  std::vector<int64_t> token_counts = {1, 4096};
  double min_time = 2.0;
  int min_reps = 10;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--device") device = value();
    else if (a == "--shape") shape_arg = value();
    else if (a == "--tokens") token_counts = parse_list(value());
    else if (a == "--dtype") dtype = value();
    else if (a == "--peer") peer = value();
    else if (a == "--peer-dtype") peer_dtype = value();
    else if (a == "--min-time") min_time = std::stod(value());
    else if (a == "--min-reps") min_reps = std::stoi(value());
    else if (a == "--json") json_path = value();
    else die("unknown argument " + a);
  }
  const int index = device == "vulkan" ? 0 : std::atoi(device.c_str() + std::strlen("vulkan:"));
  const char *description = pimoe_backend_device(device.c_str());
  if (!description) die(device + ": " + pimoe_last_error());
  std::printf("device   %s\n", description);
  std::printf("library  %s\n", pimoe_build_info());
  if (!peer.empty()) {
    const char *peer_description = pimoe_backend_device(peer.c_str());
    if (!peer_description) die(peer + ": " + pimoe_last_error());
    std::printf("peer     %s (%s weights)\n", peer_description, peer_dtype.c_str());
  }
  CopyProbe probe(index);
  const VkDeviceSize copy_bytes = 512ull << 20;
  const double copy_before = probe.measure(copy_bytes, 20);
  std::printf("copy     %.1f GB/s (vkCmdCopyBuffer, %llu MiB x 20, bytes read + written)\n", copy_before,
              static_cast<unsigned long long>(copy_bytes >> 20));

  struct Row {
    std::string shape;
    int64_t tokens;
    double ms, tokens_per_s, weight_gbs, tflops, peer_ms;
  };
  std::vector<Row> rows;
  std::printf("%-5s %6s %5s %10s %12s %11s %8s %9s", "shape", "tokens", "dtype", "median ms", "tokens/s",
              "weight GB/s", "vs copy", "TFLOP/s");
  if (!peer.empty()) std::printf(" %10s %7s", "peer ms", "x peer");
  std::printf("\n");
  for (const Shape &s : kShapes) {
    if (shape_arg != "all" && ("," + shape_arg + ",").find("," + s.name + ",") == std::string::npos) continue;
    const auto start = Clock::now();
    pimoe_model *m = create(s, device, dtype);
    const double load_s = std::chrono::duration<double>(Clock::now() - start).count();
    std::fprintf(stderr, "shape %s: created in %.1f s\n", s.name.c_str(), load_s);
    pimoe_model *peer_model = peer.empty() ? nullptr : create(s, peer, peer_dtype);
    // An expert's bytes as the backend holds them: the layer's weight bytes less the fp32 router, over the experts.
    pimoe_stats_snapshot stats{};
    stats.struct_size = sizeof stats;
    if (pimoe_stats(m, &stats) != PIMOE_OK) {
      std::fprintf(stderr, "pimoe_stats: %s\n", pimoe_last_error());
      return 1;
    }
    const double expert_bytes =
        (static_cast<double>(stats.weight_bytes) - 4.0 * static_cast<double>(s.experts * s.hidden)) /
        static_cast<double>(s.experts);
    for (int64_t T : token_counts) {
      const std::vector<float> x = random_input(static_cast<size_t>(T * s.hidden), 7 + static_cast<uint64_t>(T));
      std::vector<float> y(x.size());
      std::vector<int32_t> ids(static_cast<size_t>(T * s.top_k));
      const double t = time_forward(m, x, T, y, ids, min_time, min_reps);
      std::vector<int32_t> peer_ids(ids.size());
      const double peer_t = peer_model ? time_forward(peer_model, x, T, y, peer_ids, min_time, min_reps) : NAN;
      const std::set<int32_t> touched(ids.begin(), ids.end());
      const double H = static_cast<double>(s.hidden), I = static_cast<double>(s.intermediate);
      const double weight_bytes = static_cast<double>(s.experts) * H * 4 + static_cast<double>(touched.size()) * expert_bytes;
      const double tokens = static_cast<double>(T);
      const double flops = 2.0 * tokens * static_cast<double>(s.top_k) * H * I * 3 +
                           2.0 * tokens * H * static_cast<double>(s.experts);
      Row r{s.name, T, t * 1e3, tokens / t, weight_bytes / t / 1e9, flops / t / 1e12, peer_t * 1e3};
      rows.push_back(r);
      std::printf("%-5s %6lld %5s %10.3f %12.1f %11.1f %8.2f %9.2f", s.name.c_str(), static_cast<long long>(T),
                  dtype.c_str(), r.ms, r.tokens_per_s, r.weight_gbs, r.weight_gbs / copy_before, r.tflops);
      if (peer_model) std::printf(" %10.3f %7.3f", r.peer_ms, r.peer_ms / r.ms);
      std::printf("\n");
      std::fflush(stdout);
    }
    pimoe_destroy(peer_model);
    pimoe_destroy(m);
  }
  const double copy_after = probe.measure(copy_bytes, 20);
  std::printf("copy     %.1f GB/s after the layer's timings (before: %.1f)\n", copy_after, copy_before);
  if (!json_path.empty()) {
    FILE *f = std::fopen(json_path.c_str(), "w");
    if (!f) die("cannot write " + json_path);
    std::fprintf(f,
                 "{\"device\": \"%s\", \"copy_gbs_before\": %.2f, \"copy_gbs_after\": %.2f, \"peer\": \"%s\", "
                 "\"peer_dtype\": \"%s\", \"rows\": [\n",
                 probe.name().c_str(), copy_before, copy_after, peer.c_str(), peer.empty() ? "" : peer_dtype.c_str());
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row &r = rows[i];
      std::fprintf(f,
                   "  {\"shape\": \"%s\", \"tokens\": %lld, \"dtype\": \"%s\", \"median_ms\": %.4f, \"tokens_per_s\": "
                   "%.1f, \"weight_gbs\": %.1f, \"tflops\": %.3f, \"peer_ms\": %.4f}%s\n",
                   r.shape.c_str(), static_cast<long long>(r.tokens), dtype.c_str(), r.ms, r.tokens_per_s,
                   r.weight_gbs, r.tflops, std::isnan(r.peer_ms) ? -1.0 : r.peer_ms, i + 1 < rows.size() ? "," : "");
    }
    std::fprintf(f, "]}\n");
    std::fclose(f);
  }
  return 0;
}
