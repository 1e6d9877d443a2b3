// The CUDA backend's host side: device memory for weights and per-call scratch, the device form of a plan, and the
// order of the kernels (routing.cu, elementwise.cu, gemv.cu, grouped_gemm.cu). Compiled by the C++ compiler against
// the CUDA runtime API (linked statically, so libpimoe needs only the driver, and only when this backend is used).
#include "cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>
#include <unordered_map>
#include <vector>

#include "device_types.h"
#include "elementwise.cuh"
#include "gemv.cuh"
#include "grouped_gemm.cuh"
#if PIMOE_HAVE_SM90A
#include "grouped_gemm_sm90.cuh"
#endif
#include "routing.cuh"
#include "src/dtype.h"
#include "src/error.h"
#include "src/host_parallel.h"

namespace pimoe {
namespace {

using cuda::DevicePlan;
using cuda::GroupDesc;
using cuda::ProjectionArgs;
using cuda::WType;

// The backend runs on the process's first CUDA device. Every entry point makes it current on the calling thread.
constexpr int kDevice = 0;
// Calls of at most this many tokens take the GEMV kernels (outside deterministic mode): below it a token-tiled GEMM
// would re-read each touched expert's weights once per tile of too few rows to pay for the tiles.
constexpr int64_t kDecodeTokens = 16;
static_assert(kDecodeTokens <= cuda::kDecodeMaxTokens, "the decode routing kernel sizes its accumulators by this");
// Host-buffer inputs and outputs of at least this size go through the scratch's page-locked staging memory, copied
// there by several threads; smaller ones (decode steps: 1-16 tokens are at most 448 KiB even at H = 7168) take one
// pageable cudaMemcpyAsync, which for them costs no more than a staged copy would.
constexpr size_t kStagedBytes = size_t{1} << 20;
// A staged copy runs in up to this many chunks, so that the host copy of one overlaps the DMA of the one before.
constexpr int kStageChunks = 4;
constexpr size_t kStageChunkMin = size_t{8} << 20;
// Calls of at most this many tokens take the streaming GEMV kernel (gemv.cu: a grid the size of the GPU, weights
// through a cp.async ring), larger decode calls the kernel of a block per 16 output rows. On an H100 the streaming
// kernel won at 1 token (F: 86.6 -> 80.7 us) and lost at 16 (C: 2079 -> 2358 us; bench/cuda/RESULTS.md).
// PIMOE_CUDA_STREAM_TOKENS=N in the environment moves the bound (same-run comparisons).
constexpr int64_t kStreamTokens = 1;
// A decode-sized call whose experts expect at least this many rows each (tokens * top_k / experts, as if routing were
// uniform) takes the wgmma grouped GEMM instead of the GEMV kernels: the GEMV passes over an expert's weights once per
// few rows, the GEMM's tiles read them once for up to 128. On an H100 (bench/cuda/RESULTS.md, decode2 run 1) C at
// 16 tokens (4 rows an expert) went 2078 -> 1115 us. F and D at 16 (1 and 0.5 rows) were faster there too, but
// against the GEMV before its later rework, and 2-15-token calls were not measured: the bound stays where the gain is
// large. Like every tensor-core call it rounds the activations to the weight type (pimoe.h, WEIGHT_DTYPE).
// PIMOE_CUDA_DECODE_GEMM_ROWS=R in the environment moves the bound (0: never).
constexpr double kDecodeGemmRows = 4.0;

// A non-negative number from the environment, or fallback when the variable is unset or not a number.
double env_number(const char *name, double fallback) {
  const char *v = std::getenv(name);
  if (!v || !*v) return fallback;
  char *end = nullptr;
  const double d = std::strtod(v, &end);
  return end != v && d >= 0.0 ? d : fallback;
}

std::string mib(size_t bytes) {
  return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB";
}

pimoe_status status_of(cudaError_t e) {
  switch (e) {
    case cudaErrorMemoryAllocation:
      return PIMOE_ERR_OUT_OF_MEMORY;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
      return PIMOE_ERR_BACKEND_UNAVAILABLE;
    default:
      return PIMOE_ERR_INTERNAL;
  }
}

// Throws for a failed CUDA call, naming what was being done. The thread's non-sticky error is cleared so that the
// model stays usable after, say, an allocation failure. (A kernel fault is sticky: CUDA itself then refuses every
// further call in this process, which the message says.)
void check(cudaError_t e, const char *what) {
  if (e == cudaSuccess) return;
  cudaGetLastError();
  const bool sticky = e == cudaErrorIllegalAddress || e == cudaErrorLaunchFailure || e == cudaErrorHardwareStackError ||
                      e == cudaErrorIllegalInstruction || e == cudaErrorMisalignedAddress ||
                      e == cudaErrorInvalidAddressSpace || e == cudaErrorInvalidPc || e == cudaErrorAssert;
  fail(status_of(e), "cuda: ", what, " failed: ", cudaGetErrorString(e), " (", cudaGetErrorName(e), ")",
       sticky ? "; the CUDA context of this process is lost, no further CUDA work can run in it" : "");
}

// The launch error of the kernel just queued (bad configuration, missing kernel image for this GPU).
void check_launch(const char *kernel) {
  check(cudaGetLastError(), kernel);
}

[[noreturn]] void fail_alloc(cudaError_t e, size_t bytes, const std::string &what) {
  cudaGetLastError();
  size_t free_bytes = 0, total = 0;
  cudaMemGetInfo(&free_bytes, &total);
  cudaGetLastError();
  fail(status_of(e), "cuda: cannot allocate ", mib(bytes), " of device memory for ", what, " (", cudaGetErrorName(e),
       "; ", mib(free_bytes), " free of ", mib(total), " on device ", kDevice, ")");
}

// Device memory that only grows; its contents are not kept when it does.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  DeviceMemory(const DeviceMemory &) = delete;
  DeviceMemory &operator=(const DeviceMemory &) = delete;
  ~DeviceMemory() { release(); }

  void reserve(size_t bytes, const std::string &what) {
    if (bytes <= bytes_) return;
    release();
    const size_t want = bytes + bytes / 2;  // headroom, so that a slowly growing call size does not reallocate often
    void *p = nullptr;
    cudaError_t e = cudaMalloc(&p, want);
    if (e != cudaSuccess) {  // without the headroom, then give up
      cudaGetLastError();
      e = cudaMalloc(&p, bytes);
      if (e != cudaSuccess) fail_alloc(e, bytes, what);
      bytes_ = bytes;
    } else {
      bytes_ = want;
    }
    ptr_ = p;
  }
  void release() {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void *get() const { return ptr_; }
  template <typename T>
  T *as() const {
    return static_cast<T *>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void *ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Page-locked host memory, so that copies to and from it are asynchronous and run at full PCIe speed; mapped into the
// device's address space, so that kernels can write small results into it directly (no copy to wait for).
class PinnedMemory {
 public:
  PinnedMemory() = default;
  PinnedMemory(const PinnedMemory &) = delete;
  PinnedMemory &operator=(const PinnedMemory &) = delete;
  ~PinnedMemory() { release(); }
  void reserve(size_t bytes, const char *what) {
    if (bytes <= bytes_) return;
    release();
    const size_t want = bytes + bytes / 2;
    cudaError_t e = cudaHostAlloc(&ptr_, want, cudaHostAllocMapped);
    if (e == cudaSuccess) {
      e = cudaHostGetDevicePointer(&device_, ptr_, 0);
      if (e != cudaSuccess) release();
    }
    if (e != cudaSuccess) {
      ptr_ = device_ = nullptr;
      cudaGetLastError();
      fail(PIMOE_ERR_OUT_OF_MEMORY, "cuda: cannot allocate ", mib(want), " of page-locked host memory for ", what,
           " (", cudaGetErrorName(e), ")");
    }
    bytes_ = want;
  }
  void release() {
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = device_ = nullptr;
    bytes_ = 0;
  }
  char *get() const { return static_cast<char *>(ptr_); }
  void *device() const { return device_; }  // the same memory as kernels address it
  size_t bytes() const { return bytes_; }

 private:
  void *ptr_ = nullptr;
  void *device_ = nullptr;
  size_t bytes_ = 0;
};

// Page-locked host memory for staging a call's input and output (not mapped: only DMA copies touch it). Unlike
// PinnedMemory a failure is not an error: the call then copies from the caller's pageable memory as it always could.
class StagingMemory {
 public:
  StagingMemory() = default;
  StagingMemory(const StagingMemory &) = delete;
  StagingMemory &operator=(const StagingMemory &) = delete;
  ~StagingMemory() { release(); }
  // Whether `bytes` of staging are there (allocated now if need be).
  bool try_reserve(size_t bytes) {
    if (bytes <= bytes_) return true;
    release();
    for (const size_t want : {bytes + bytes / 2, bytes}) {  // headroom first, as DeviceMemory does
      if (cudaHostAlloc(&ptr_, want, cudaHostAllocDefault) == cudaSuccess) {
        bytes_ = want;
        return true;
      }
      cudaGetLastError();
      ptr_ = nullptr;
    }
    return false;
  }
  void release() {
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  char *get() const { return static_cast<char *>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void *ptr_ = nullptr;
  size_t bytes_ = 0;
};

// How a staged copy of `bytes` is cut: chunks of at least kStageChunkMin, at most kStageChunks of them.
size_t stage_chunk(size_t bytes) {
  const size_t chunks = std::max<size_t>(1, std::min<size_t>(kStageChunks, bytes / kStageChunkMin));
  return (bytes / chunks + 4095) / 4096 * 4096;
}

size_t align16(size_t n) {
  return (n + 15) & ~size_t{15};
}

// Where each array of one call's plan and routing results lives in one buffer. The routing results the host reads
// back (losses, counts, ids, weights) come first, so that one small copy fetches them all.
struct CallLayout {
  size_t prob_sum, call_stats, flag, counts, expert, weight, result_end;
  size_t token_z, token_top1, position, row_token, row_group, offsets, active, active_count, tiles, tile_count, total;

  CallLayout(int64_t E, int64_t T, int64_t A, int64_t rows, int64_t G, int64_t tiles_bound) {
    size_t at = 0;
    auto take = [&at](size_t bytes) {
      const size_t here = at;
      at = align16(at + bytes);
      return here;
    };
    prob_sum = take(sizeof(double) * E);
    call_stats = take(sizeof(double) * 2);
    flag = take(sizeof(unsigned long long));
    counts = take(sizeof(int32_t) * E);
    expert = take(sizeof(int32_t) * A);
    weight = take(sizeof(float) * A);
    result_end = at;
    token_z = take(sizeof(double) * T);
    token_top1 = take(sizeof(double) * T);
    position = take(sizeof(int32_t) * A);
    row_token = take(sizeof(int32_t) * rows);
    row_group = take(sizeof(int32_t) * rows);
    offsets = take(sizeof(int32_t) * (G + 1));
    active = take(sizeof(int32_t) * G);
    active_count = take(sizeof(int32_t));
    tiles = take(sizeof(int32_t) * 2 * tiles_bound);
    tile_count = take(sizeof(int32_t));
    total = at;
  }

  DevicePlan plan(char *base) const {
    DevicePlan p;
    p.expert = reinterpret_cast<int32_t *>(base + expert);
    p.weight = reinterpret_cast<float *>(base + weight);
    p.position = reinterpret_cast<int32_t *>(base + position);
    p.row_token = reinterpret_cast<int32_t *>(base + row_token);
    p.row_group = reinterpret_cast<int32_t *>(base + row_group);
    p.offsets = reinterpret_cast<int32_t *>(base + offsets);
    p.active = reinterpret_cast<int32_t *>(base + active);
    p.active_count = reinterpret_cast<int32_t *>(base + active_count);
    p.tiles = reinterpret_cast<int32_t *>(base + tiles);
    p.tile_count = reinterpret_cast<int32_t *>(base + tile_count);
    return p;
  }
};

// Device words of the decode kernels that persist between calls (each launch restores them): the input-check flag
// (UINT64_MAX), the decode routing's finished-block counter and the fused combine's per-slice counters (0).
struct DecodeState {
  unsigned long long flag;
  unsigned int route_counter;
  unsigned int pad;
  unsigned int combine_counters[1];  // gemv_column_slices(H) of them
  static size_t bytes(int32_t slices) { return offsetof(DecodeState, combine_counters) + 4 * size_t(slices); }
};

struct CudaScratch final : BackendScratch {
  cudaStream_t stream = nullptr;  // this scratch's own stream: concurrent calls run concurrently on the GPU
  DeviceMemory x, y, logits, rows, hidden, out, call, decode;
  PinnedMemory host_call;
  // Large host-buffer inputs and outputs pass through these; chunk_done marks each chunk of a staged output copy.
  StagingMemory stage_in, stage_out;
  std::array<cudaEvent_t, kStageChunks> chunk_done{};

  ~CudaScratch() override {
    cudaSetDevice(kDevice);
    if (stream) cudaStreamSynchronize(stream);
    for (cudaEvent_t e : chunk_done) {
      if (e) cudaEventDestroy(e);
    }
    if (stream) cudaStreamDestroy(stream);
  }
  DecodeState *decode_state() const { return decode.as<DecodeState>(); }
  size_t bytes() const override {
    return x.bytes() + y.bytes() + logits.bytes() + rows.bytes() + hidden.bytes() + out.bytes() + call.bytes() +
           decode.bytes() + host_call.bytes() + stage_in.bytes() + stage_out.bytes();
  }
};

enum class Path { Gemv, Simt, Mma };

struct Call {
  int64_t tokens;
  int64_t rows;  // rows of the grouped buffers: kept assignments, plus the tokens again for the shared expert
  Path path;
};

WType wtype_of(WeightDtype d) {
  switch (d) {
    case WeightDtype::BF16:
      return WType::BF16;
    case WeightDtype::F16:
      return WType::F16;
    case WeightDtype::F32:
      break;
  }
  return WType::F32;
}

size_t wtype_size(WType t) {
  return t == WType::F32 ? 4 : 2;
}

struct DeviceTensor {
  DeviceMemory memory;
  WType type = WType::F32;
  int64_t count = 0;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(const LayerConfig &config, LayerWeights &weights)
      : config_(config),
        wtype_(wtype_of(config.weight_dtype)),
        H_(static_cast<int32_t>(config.hidden)),
        E_(static_cast<int32_t>(config.router.num_experts)),
        shared_(config.shared.width > 0) {
    std::string why;
    if (!cuda_backend_usable(why)) fail(PIMOE_ERR_BACKEND_UNAVAILABLE, why);
    check(cudaSetDevice(kDevice), "selecting the device");
    description_ = cuda_device_description();
    int major = 0;
    check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, kDevice), "reading the device");
    pdl_ = major >= 9;
    upload(weights);
  }

  const char *name() const override { return "cuda"; }
  std::string device_description() const override { return description_; }

  std::unique_ptr<BackendScratch> make_scratch() const override {
    check(cudaSetDevice(kDevice), "selecting the device");
    auto s = std::make_unique<CudaScratch>();
    check(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "creating a stream");
    for (cudaEvent_t &e : s->chunk_done) {
      check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "creating an event");
    }
    const size_t state = DecodeState::bytes(cuda::gemv_column_slices(H_));
    s->decode.reserve(state, "decode counters");
    check(cudaMemset(s->decode.get(), 0, s->decode.bytes()), "clearing decode counters");
    check(cudaMemset(s->decode.get(), 0xff, sizeof(unsigned long long)), "clearing the input check");
    return s;
  }

  bool holds_weight(const NamedTensor &t) const override { return held_.count(t.data) > 0; }

  void read_weight(const NamedTensor &t, float *out) const override {
    const DeviceTensor &d = *held_.at(t.data);
    check(cudaSetDevice(kDevice), "selecting the device");
    if (d.type == WType::F32) {
      check(cudaMemcpy(out, d.memory.get(), sizeof(float) * d.count, cudaMemcpyDeviceToHost), "reading a weight back");
      return;
    }
    std::vector<uint16_t> bits(static_cast<size_t>(d.count));
    check(cudaMemcpy(bits.data(), d.memory.get(), 2 * bits.size(), cudaMemcpyDeviceToHost), "reading a weight back");
    for (size_t i = 0; i < bits.size(); ++i) {
      out[i] = d.type == WType::BF16 ? bf16_bits_to_float(bits[i]) : fp16_bits_to_float(bits[i]);
    }
  }

  size_t weight_bytes() const override { return weight_bytes_; }

  void router_logits(const float *x, int64_t tokens, float *logits, BackendScratch &base) const override {
    auto &s = static_cast<CudaScratch &>(base);
    check(cudaSetDevice(kDevice), "selecting the device");
    const size_t xb = sizeof(float) * tokens * H_, lb = sizeof(float) * tokens * E_;
    s.x.reserve(xb, "the call's input");
    s.logits.reserve(lb, "router logits");
    copy_input(s, s.x.get(), x, xb, s.stream);
    launch_router(s.x.as<float>(), tokens, s.logits.as<float>(), s.stream);
    check(cudaMemcpyAsync(logits, s.logits.get(), lb, cudaMemcpyDeviceToHost, s.stream), "copying router logits back");
    check(cudaStreamSynchronize(s.stream), "router logits");
  }

  void run_experts(const RoutePlan &plan, const float *x, float *y, BackendScratch &base) const override {
    auto &s = static_cast<CudaScratch &>(base);
    const int64_t T = plan.tokens, k = plan.top_k, A = T * k, E = E_;
    if (T == 0) return;
    check(cudaSetDevice(kDevice), "selecting the device");
    const bool shared = shared_ && plan.include_shared;
    const int64_t G = E + (shared ? 1 : 0), kept = plan.kept(), rows = kept + (shared ? T : 0);
    const Path path = choose_path(T);
    const int64_t tile_rows = path == Path::Mma ? cuda::kMmaTileRows : cuda::kSimtTileRows;
    const int64_t tiles_bound = (rows + tile_rows - 1) / tile_rows + G;
    const CallLayout layout(E, T, A, rows, G, tiles_bound);

    reserve_call(s, T, rows, path, layout.total, layout.total, true);
    // The plan's device form, written into page-locked memory and sent in one copy.
    char *h = s.host_call.get();
    const DevicePlan hp = layout.plan(h);
    for (int64_t a = 0; a < A; ++a) {
      hp.expert[a] = plan.expert[a];
      hp.weight[a] = plan.weight[a];
      hp.position[a] = static_cast<int32_t>(plan.position[a]);
    }
    for (int64_t p = 0; p < kept; ++p) {
      const int64_t a = plan.order[p];
      hp.row_token[p] = static_cast<int32_t>(a / k);
      hp.row_group[p] = plan.expert[a];
    }
    int32_t active = 0, tiles = 0;
    for (int64_t g = 0; g <= G; ++g) {
      hp.offsets[g] = static_cast<int32_t>(g <= E ? plan.offsets[g] : kept + T);
    }
    for (int64_t g = 0; g < G; ++g) {
      const int32_t count = hp.offsets[g + 1] - hp.offsets[g];
      if (count > 0) hp.active[active++] = static_cast<int32_t>(g);
      for (int32_t r = 0; r < count; r += static_cast<int32_t>(tile_rows)) {
        hp.tiles[2 * tiles] = static_cast<int32_t>(g);
        hp.tiles[2 * tiles + 1] = r;
        ++tiles;
      }
    }
    *hp.active_count = active;
    *hp.tile_count = tiles;
    if (shared) {
      for (int64_t t = 0; t < T; ++t) {
        hp.row_token[kept + t] = static_cast<int32_t>(t);
        hp.row_group[kept + t] = E_;
      }
    }
    const size_t xb = sizeof(float) * T * H_;
    check(cudaMemcpyAsync(s.call.get(), h, layout.total, cudaMemcpyHostToDevice, s.stream), "copying the plan");
    copy_input(s, s.x.get(), x, xb, s.stream);
    run_layer(s, s.x.as<float>(), s.y.as<float>(), T, static_cast<int32_t>(k), shared, rows, tiles_bound, path,
              layout.plan(static_cast<char *>(s.call.get())), s.stream);
    copy_output(s, y, s.y.get(), xb, s.stream, "the expert kernels");
  }

  bool forward_fused(const float *x, int64_t T, float *y, RoutePlan &plan, BackendScratch &base,
                     const DeviceCall *device) const override {
    if (!fused_routing_ok() || T == 0) return false;
    auto &s = static_cast<CudaScratch &>(base);
    check(cudaSetDevice(kDevice), "selecting the device");
    const cudaStream_t st = device ? static_cast<cudaStream_t>(device->stream) : s.stream;
    const int64_t k = config_.router.top_k, A = T * k, E = E_, G = E + (shared_ ? 1 : 0);
    const Call call{T, A + (shared_ ? T : 0), choose_path(T)};
    const int64_t tile_rows = call.path == Path::Mma ? cuda::kMmaTileRows : cuda::kSimtTileRows;
    const int64_t tiles_bound = (call.rows + tile_rows - 1) / tile_rows + G;
    const CallLayout layout(E, T, A, call.rows, G, tiles_bound);
    reserve_call(s, T, call.rows, call.path, layout.total, layout.result_end, device == nullptr);
    char *hc = s.host_call.get();
    const size_t xb = sizeof(float) * T * H_;
    const float *xd = x;
    float *yd = y;
    if (!device) {
      copy_input(s, s.x.get(), x, xb, st);
      xd = s.x.as<float>();
      yd = s.y.as<float>();
    }
    if (call.path == Path::Gemv) {
      enqueue_decode(s, xd, yd, layout, call, st);
    } else {
      enqueue_fused(s, xd, yd, device != nullptr, layout, tiles_bound, call, st);
    }
    if (!device) copy_output(s, y, yd, xb, st, "the forward kernels");
    check(cudaStreamSynchronize(st), "the forward kernels");

    if (device) {
      unsigned long long bad;
      std::memcpy(&bad, hc + layout.flag, sizeof bad);
      if (bad != std::numeric_limits<unsigned long long>::max()) {
        float value = 0.0f;
        check(cudaMemcpy(&value, x + bad, sizeof value, cudaMemcpyDeviceToHost), "reading the bad input element");
        const auto i = static_cast<int64_t>(bad);
        fail(PIMOE_ERR_NON_FINITE_INPUT, "pimoe_forward_cuda: input[", i, "] (token ", i / H_, ", feature ", i % H_,
             ") is ", std::isnan(value) ? "NaN" : "Inf", "; the output holds no result");
      }
    }
    fill_plan(plan, hc, layout, T, k);
    return true;
  }

  bool accepts_device_pointers() const override { return true; }

  void copy_device(void *dst, const void *src, size_t bytes, bool to_host, const DeviceCall &call) const override {
    check(cudaSetDevice(kDevice), "selecting the device");
    const auto st = static_cast<cudaStream_t>(call.stream);
    check(cudaMemcpyAsync(dst, src, bytes, to_host ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice, st),
          to_host ? "copying device input to the host" : "copying the output to the device");
    check(cudaStreamSynchronize(st), "a copy between host and device");
  }

 private:
  // Queues the copy of a caller's host input to device memory. Large inputs go through the scratch's page-locked
  // staging in chunks: this thread (with the copy threads) fills chunk i + 1 while the DMA engine sends chunk i, and
  // the DMA runs at full speed, which it does not from pageable memory. Returns once the input has been read (the
  // caller may then change it); the device copy completes on the stream.
  void copy_input(CudaScratch &s, void *dst, const float *x, size_t bytes, cudaStream_t st) const {
    if (bytes < kStagedBytes || !s.stage_in.try_reserve(bytes)) {
      check(cudaMemcpyAsync(dst, x, bytes, cudaMemcpyHostToDevice, st), "copying the input to the device");
      return;
    }
    // No copy of an earlier call may still read the staging memory: a call that returned normally synchronised the
    // stream already (this wait is then immediate), one that failed part-way may have left copies queued.
    check(cudaStreamSynchronize(st), "waiting for the scratch's earlier copies");
    const size_t chunk = stage_chunk(bytes);
    const auto *src = reinterpret_cast<const char *>(x);
    for (size_t at = 0; at < bytes; at += chunk) {
      const size_t n = std::min(chunk, bytes - at);
      host_parallel_.copy(s.stage_in.get() + at, src + at, n);
      check(cudaMemcpyAsync(static_cast<char *>(dst) + at, s.stage_in.get() + at, n, cudaMemcpyHostToDevice, st),
            "copying the input to the device");
    }
  }

  // Copies device output to the caller's host memory once the stream's work is done; on return y holds it all.
  // Large outputs come back through staging in chunks, each copied out while the next one's DMA runs. A failed
  // kernel is reported by the wait for the first chunk, before anything is written to y.
  void copy_output(CudaScratch &s, float *y, const void *src, size_t bytes, cudaStream_t st, const char *what) const {
    if (bytes < kStagedBytes || !s.stage_out.try_reserve(bytes)) {
      check(cudaMemcpyAsync(y, src, bytes, cudaMemcpyDeviceToHost, st), "copying the output back");
      check(cudaStreamSynchronize(st), what);
      return;
    }
    const size_t chunk = stage_chunk(bytes);
    const auto *from = static_cast<const char *>(src);
    size_t c = 0;
    for (size_t at = 0; at < bytes; at += chunk, ++c) {
      check(cudaMemcpyAsync(s.stage_out.get() + at, from + at, std::min(chunk, bytes - at), cudaMemcpyDeviceToHost, st),
            "copying the output back");
      check(cudaEventRecord(s.chunk_done[c], st), "recording a copy's end");
    }
    c = 0;
    for (size_t at = 0; at < bytes; at += chunk, ++c) {
      check(cudaEventSynchronize(s.chunk_done[c]), what);
      host_parallel_.copy(reinterpret_cast<char *>(y) + at, s.stage_out.get() + at, std::min(chunk, bytes - at));
    }
  }

  // The on-device router implements softmax/sigmoid scoring, selection bias, single-level groups, top-k,
  // renormalisation and scaling, dropless. Everything else routes on the host (router_logits + run_experts).
  bool fused_routing_ok() const {
    const RouterConfig &r = config_.router;
    if (r.needs_host_routing() || r.capacity_factor > 0.0) return false;
    if (r.num_experts > cuda::kFusedMaxExperts || r.top_k > cuda::kFusedMaxTopK) return false;
    for (const ExpertSpec &e : config_.experts) {
      if (e.callback) return false;
    }
    return true;
  }

  Path choose_path(int64_t tokens) const {
    if (!config_.deterministic && tokens <= kDecodeTokens && !decode_gemm(tokens)) return Path::Gemv;
    if (wtype_ != WType::F32 && tensor_dims_ok_) return Path::Mma;
    return Path::Simt;
  }

  bool decode_gemm(int64_t tokens) const {
    if (!sm90_ || decode_gemm_rows_ <= 0.0) return false;
    return static_cast<double>(tokens * config_.router.top_k) >= decode_gemm_rows_ * static_cast<double>(E_);
  }

  void launch_router(const float *x, int64_t tokens, float *logits, cudaStream_t st) const {
    ProjectionArgs a;
    a.dense_weight = router_.as<float>();
    a.dense_rows = static_cast<int32_t>(tokens);
    a.dense_k = H_;
    a.dense_n = E_;
    a.in = x;
    a.in_stride = H_;
    a.out = logits;
    a.out_stride = E_;
    a.streaming = tokens <= stream_tokens_;
    // The same kernel for every call size in deterministic mode, so a token's logits do not depend on the call.
    if (!config_.deterministic && tokens <= kDecodeTokens) {
      cuda::launch_gemv(a, WType::F32, false, st);
    } else {
      cuda::launch_simt_gemm(a, WType::F32, st);
    }
    check_launch("the router logits kernel");
  }

  // Every device buffer a call needs, allocated before its first kernel is queued: a failed allocation (out of
  // device memory) then leaves nothing half-done on the stream.
  void reserve_call(CudaScratch &s, int64_t T, int64_t rows, Path path, size_t plan_bytes, size_t host_bytes,
                    bool host_io) const {
    const size_t es = wtype_size(path == Path::Mma ? wtype_ : WType::F32);
    const size_t row_count = static_cast<size_t>(std::max<int64_t>(rows, 1));
    s.call.reserve(plan_bytes, "the call's plan");
    s.host_call.reserve(host_bytes, "the call's plan");
    if (host_io) {
      s.x.reserve(sizeof(float) * T * H_, "the call's input");
      s.y.reserve(sizeof(float) * T * H_, "the call's output");
    }
    s.logits.reserve(sizeof(float) * T * E_, "router logits");
    s.rows.reserve(es * row_count * H_, "gathered rows");
    s.hidden.reserve(es * row_count * istride_, "expert hidden activations");
    s.out.reserve(sizeof(float) * row_count * H_, "expert outputs");
  }

  // gather -> up projection (+ activation) -> down projection -> combine, over the device plan dp. The GEMV path
  // reads the tokens' rows in place when no expert normalises its input (no gather), and combines inside the down
  // projection unless the shared expert is gated (the gate is a dot product over the whole input row).
  void run_layer(CudaScratch &s, const float *x, float *y, int64_t T, int32_t k, bool shared, int64_t rows,
                 int64_t tiles_bound, Path path, const DevicePlan &dp, cudaStream_t st) const {
    const int32_t G = E_ + (shared ? 1 : 0);
    const WType act = path == Path::Mma ? wtype_ : WType::F32;
    const bool gemv = path == Path::Gemv;
    const bool gather = !gemv || has_norm_;
    const bool fused_combine = gemv && !(shared && config_.shared.gated);
    if (gather) {
      cuda::launch_gather(x, dp, groups_.as<GroupDesc>(), G, rows, H_, static_cast<float>(config_.layer_norm_eps),
                          s.rows.get(), act, st);
      check_launch("the gather kernel");
    }

    ProjectionArgs up;
    up.groups = groups_.as<GroupDesc>();
    up.offsets = dp.offsets;
    if (path == Path::Gemv) {
      up.list = dp.active;
      up.list_count = dp.active_count;
      up.max_list = static_cast<int32_t>(std::min<int64_t>(G, rows));
    } else {
      up.list = dp.tiles;
      up.list_count = dp.tile_count;
      up.max_list = static_cast<int32_t>(tiles_bound);
    }
    up.up = true;
    up.streaming = T <= stream_tokens_;
    up.gated = gated_;
    up.inter_align = inter_align_;
    up.hidden = H_;
    up.max_n = imax_;
    up.in = gather ? s.rows.get() : x;
    up.in_stride = H_;
    up.in_rows = gather ? nullptr : dp.row_token;
    up.out = s.hidden.get();
    up.out_stride = istride_;
    ProjectionArgs down = up;
    down.up = false;
    down.max_n = H_;
    down.in = s.hidden.get();
    down.in_stride = istride_;
    down.out = s.out.get();
    down.out_stride = H_;
    down.in_rows = nullptr;
    if (fused_combine) {
      cuda::FusedCombine &c = down.combine;
      c.y = y;
      c.counters = s.decode_state()->combine_counters;
      c.position = dp.position;
      c.weight = dp.weight;
      c.expert = dp.expert;
      c.tokens = static_cast<int32_t>(T);
      c.top_k = k;
      c.experts = E_;
      c.shared = shared;
    }
    for (const ProjectionArgs *p : {&up, &down}) {
      switch (path) {
        case Path::Gemv:
          cuda::launch_gemv(*p, wtype_, pdl_, st);
          break;
        case Path::Simt:
          cuda::launch_simt_gemm(*p, wtype_, st);
          break;
        case Path::Mma:
#if PIMOE_HAVE_SM90A
          if (sm90_ && cuda::launch_sm90_gemm(*p, wmaps_.get(), rows, wtype_, st)) break;
#endif
          cuda::launch_mma_gemm(*p, wtype_, st);
          break;
      }
      check_launch(p->up ? "the up projection kernel" : "the down projection kernel");
    }
    if (fused_combine) return;

    cuda::CombineArgs c;
    c.out = s.out.as<float>();
    c.plan = dp;
    c.groups = groups_.as<GroupDesc>();
    c.tokens = static_cast<int32_t>(T);
    c.top_k = k;
    c.hidden = H_;
    c.experts = E_;
    c.shared = shared;
    c.shared_score = shared && config_.shared.gated ? shared_score_ : nullptr;
    c.x = x;
    c.y = y;
    cuda::launch_combine(c, st);
    check_launch("the combine kernel");
  }

  // Everything of a fused forward after the input is on the device: input check (device-pointer calls), router,
  // routing, sort, the layer, and the copy of the routing results to page-locked memory. Stream-ordered only.
  void enqueue_fused(CudaScratch &s, const float *xd, float *yd, bool check_input, const CallLayout &layout,
                     int64_t tiles_bound, const Call &call, cudaStream_t st) const {
    const int64_t T = call.tokens, k = config_.router.top_k;
    char *dc = static_cast<char *>(s.call.get());
    const DevicePlan dp = layout.plan(dc);
    auto *flag = reinterpret_cast<unsigned long long *>(dc + layout.flag);
    check(cudaMemsetAsync(flag, 0xff, sizeof *flag, st), "clearing the input check");
    if (check_input) {
      cuda::launch_find_non_finite(xd, T * H_, flag, st);
      check_launch("the input check kernel");
    }
    launch_router(xd, T, s.logits.as<float>(), st);
    const cuda::RouteArgs r = route_args(s, layout, T);
    cuda::launch_route(r, st);
    check_launch("the routing kernel");
    cuda::launch_sort(sort_args(s, layout, call, r), st);
    check_launch("the sort kernel");

    run_layer(s, xd, yd, T, static_cast<int32_t>(k), shared_, call.rows, tiles_bound, call.path, dp, st);
    check(cudaMemcpyAsync(s.host_call.get(), dc, layout.result_end, cudaMemcpyDeviceToHost, st),
          "copying the routing back");
  }

  // A decode-sized fused forward: routing in one launch (which also writes the routing results to page-locked
  // memory), then the two projections, the second with the combine fused. Three launches, each allowed to overlap
  // the previous one's tail (sm_90), and no copies: at one token the layer is bound by launch latency otherwise.
  void enqueue_decode(CudaScratch &s, const float *xd, float *yd, const CallLayout &layout, const Call &call,
                      cudaStream_t st) const {
    const int64_t T = call.tokens, k = config_.router.top_k;
    char *dc = static_cast<char *>(s.call.get());
    cuda::DecodeRouteArgs d;
    d.route = route_args(s, layout, T);
    d.sort = sort_args(s, layout, call, d.route);
    d.x = xd;
    d.router = router_.as<float>();
    d.logits = s.logits.as<float>();
    d.hidden = H_;
    DecodeState *state = s.decode_state();
    d.flag = &state->flag;
    d.flag_out = reinterpret_cast<unsigned long long *>(dc + layout.flag);
    d.counter = &state->route_counter;
    d.results = dc;
    d.host_results = s.host_call.device();
    d.result_words = static_cast<int32_t>(layout.result_end / 4);
    cuda::launch_decode_route(d, pdl_, st);
    check_launch("the decode routing kernel");
    run_layer(s, xd, yd, T, static_cast<int32_t>(k), shared_, call.rows, 0, call.path, layout.plan(dc), st);
  }

  cuda::RouteArgs route_args(CudaScratch &s, const CallLayout &layout, int64_t T) const {
    char *dc = static_cast<char *>(s.call.get());
    const DevicePlan dp = layout.plan(dc);
    cuda::RouteArgs r;
    r.logits = s.logits.as<float>();
    r.selection_bias = config_.router.selection_bias ? selection_bias_.as<float>() : nullptr;
    r.tokens = static_cast<int32_t>(T);
    r.experts = E_;
    r.top_k = static_cast<int32_t>(config_.router.top_k);
    r.sigmoid = config_.router.scoring == RouterScoring::Sigmoid;
    r.renormalize = config_.router.renormalize;
    r.group_max = config_.router.group_score == GroupScore::Max;
    r.num_groups = static_cast<int32_t>(config_.router.num_groups);
    r.topk_groups = static_cast<int32_t>(config_.router.topk_groups);
    r.inv_temperature = 1.0 / config_.router.temperature;
    r.routed_scaling = config_.router.routed_scaling_factor;
    r.expert = dp.expert;
    r.weight = dp.weight;
    r.prob_sum = reinterpret_cast<double *>(dc + layout.prob_sum);
    r.token_z = reinterpret_cast<double *>(dc + layout.token_z);
    r.token_top1 = reinterpret_cast<double *>(dc + layout.token_top1);
    return r;
  }

  cuda::SortArgs sort_args(CudaScratch &s, const CallLayout &layout, const Call &call, const cuda::RouteArgs &r) const {
    char *dc = static_cast<char *>(s.call.get());
    cuda::SortArgs so;
    so.plan = layout.plan(dc);
    so.tokens = r.tokens;
    so.experts = E_;
    so.top_k = r.top_k;
    so.shared = shared_;
    so.tile_rows = static_cast<int32_t>(call.path == Path::Mma ? cuda::kMmaTileRows : cuda::kSimtTileRows);
    so.token_z = r.token_z;
    so.token_top1 = r.token_top1;
    so.call_stats = reinterpret_cast<double *>(dc + layout.call_stats);
    so.counts = reinterpret_cast<int32_t *>(dc + layout.counts);
    return so;
  }

  void fill_plan(RoutePlan &plan, const char *hc, const CallLayout &layout, int64_t T, int64_t k) const {
    const int64_t A = T * k, E = E_;
    plan.tokens = T;
    plan.top_k = k;
    plan.num_experts = E;
    plan.include_shared = true;
    plan.expert.resize(A);
    plan.weight.resize(A);
    plan.dropped.assign(A, 0);
    plan.counts.resize(E);
    plan.offsets.resize(E + 1);
    std::memcpy(plan.expert.data(), hc + layout.expert, sizeof(int32_t) * A);
    std::memcpy(plan.weight.data(), hc + layout.weight, sizeof(float) * A);
    const auto *counts = reinterpret_cast<const int32_t *>(hc + layout.counts);
    const auto *prob_sum = reinterpret_cast<const double *>(hc + layout.prob_sum);
    const auto *call_stats = reinterpret_cast<const double *>(hc + layout.call_stats);
    // The aux loss as the host router computes it (no capacity here, so every choice is kept: f_i = counts_i / T).
    double aux = 0.0;
    const double t = static_cast<double>(T);
    plan.offsets[0] = 0;
    for (int64_t e = 0; e < E; ++e) {
      plan.counts[e] = counts[e];
      plan.offsets[e + 1] = plan.offsets[e] + counts[e];
      aux += (counts[e] / t) * (prob_sum[e] / t);
    }
    plan.dropped_count = 0;
    plan.aux_loss = config_.router.aux_loss_coef * static_cast<double>(E) * aux;
    plan.z_loss = call_stats[0] / t;
    plan.top1_probability_sum = call_stats[1];
  }

  // ------------------------------------------------------------------------------------------ weights
  std::string expert_name(int64_t e, const char *what) const {
    return e == E_ ? std::string("shared.") + what : "experts." + std::to_string(e) + "." + what;
  }

  // Copies a host tensor to the device as `type` and frees the host copy (the model reads it back through
  // read_weight), so a layer never holds its weights twice in host memory.
  const void *hold(std::vector<float> &host, WType type, const std::string &name) {
    if (host.empty()) return nullptr;
    auto t = std::make_unique<DeviceTensor>();
    t->type = type;
    t->count = static_cast<int64_t>(host.size());
    const size_t bytes = wtype_size(type) * host.size();
    t->memory.reserve(bytes, name);
    cudaError_t e;
    if (type == WType::F32) {
      e = cudaMemcpy(t->memory.get(), host.data(), bytes, cudaMemcpyHostToDevice);
    } else {
      std::vector<uint16_t> bits(host.size());
      for (size_t i = 0; i < host.size(); ++i) {
        bits[i] = type == WType::BF16 ? float_to_bf16_bits(host[i]) : float_to_fp16_bits(host[i]);
      }
      e = cudaMemcpy(t->memory.get(), bits.data(), bytes, cudaMemcpyHostToDevice);
    }
    check(e, ("uploading " + name).c_str());
    weight_bytes_ += t->memory.bytes();
    held_[&host] = t.get();
    const void *ptr = t->memory.get();
    tensors_.push_back(std::move(t));
    std::vector<float>().swap(host);
    return ptr;
  }

  // A copy on the device of a tensor the host keeps (the router's, which the host router may still need).
  void copy_up(DeviceMemory &dst, const std::vector<float> &host, const char *name) {
    if (host.empty()) return;
    dst.reserve(sizeof(float) * host.size(), name);
    check(cudaMemcpy(dst.get(), host.data(), sizeof(float) * host.size(), cudaMemcpyHostToDevice),
          (std::string("uploading ") + name).c_str());
  }

  void upload(LayerWeights &w) {
    copy_up(router_, w.router_weight, "router.weight");
    copy_up(selection_bias_, w.selection_bias, "router.selection_bias");
    std::vector<GroupDesc> groups(static_cast<size_t>(E_) + 1);
    int64_t imax = 1;
    tensor_dims_ok_ = H_ % 8 == 0;
    for (int64_t e = 0; e < E_; ++e) {
      const ExpertSpec &spec = config_.experts[static_cast<size_t>(e)];
      GroupDesc &g = groups[static_cast<size_t>(e)];
      g.inter = static_cast<int32_t>(spec.intermediate);
      g.activation = spec.activation;
      if (spec.callback) continue;  // computed on the host by the model; never has rows here
      ExpertWeights &x = w.experts[static_cast<size_t>(e)];
      g.gate = hold(x.gate_weight, wtype_, expert_name(e, "gate.weight"));
      g.up = hold(x.up_weight, wtype_, expert_name(e, "up.weight"));
      g.down = hold(x.down_weight, wtype_, expert_name(e, "down.weight"));
      g.up_bias = static_cast<const float *>(hold(x.up_bias, WType::F32, expert_name(e, "up.bias")));
      g.down_bias = static_cast<const float *>(hold(x.down_bias, WType::F32, expert_name(e, "down.bias")));
      g.norm_weight = static_cast<const float *>(hold(x.norm_weight, WType::F32, expert_name(e, "norm.weight")));
      g.norm_bias = static_cast<const float *>(hold(x.norm_bias, WType::F32, expert_name(e, "norm.bias")));
      has_norm_ = has_norm_ || g.norm_weight != nullptr;
      imax = std::max(imax, spec.intermediate);
      tensor_dims_ok_ = tensor_dims_ok_ && spec.intermediate % 8 == 0;
      inter_align_ = static_cast<int32_t>(std::gcd<int64_t>(inter_align_, spec.intermediate));
      gated_ = gated_ || spec.activation == PIMOE_ACT_SWIGLU;
    }
    if (shared_) {
      GroupDesc &g = groups[static_cast<size_t>(E_)];
      g.inter = static_cast<int32_t>(config_.shared.width);
      g.activation = PIMOE_ACT_SWIGLU;
      g.gate = hold(w.shared.gate_weight, wtype_, expert_name(E_, "gate.weight"));
      g.up = hold(w.shared.up_weight, wtype_, expert_name(E_, "up.weight"));
      g.down = hold(w.shared.down_weight, wtype_, expert_name(E_, "down.weight"));
      shared_score_ = static_cast<const float *>(hold(w.shared_score_weight, WType::F32, "shared.score.weight"));
      imax = std::max(imax, config_.shared.width);
      tensor_dims_ok_ = tensor_dims_ok_ && config_.shared.width % 8 == 0;
      inter_align_ = static_cast<int32_t>(std::gcd<int64_t>(inter_align_, config_.shared.width));
      gated_ = true;
    }
    imax_ = static_cast<int32_t>(imax);
    istride_ = static_cast<int32_t>((imax + 7) / 8 * 8);  // 16-byte rows for the vector loads
    groups_.reserve(sizeof(GroupDesc) * groups.size(), "expert descriptors");
    check(cudaMemcpy(groups_.get(), groups.data(), sizeof(GroupDesc) * groups.size(), cudaMemcpyHostToDevice),
          "uploading expert descriptors");
    upload_sm90_maps(groups);
  }

  // The Hopper grouped GEMM (grouped_gemm_sm90.cu) on compute capability 9.0 with bf16/fp16 weights of 16-byte rows:
  // one TMA descriptor per weight matrix, encoded once here. PIMOE_CUDA_NO_WGMMA=1 in the environment keeps the
  // mma.sync kernel (same-run comparisons, and a way out should the new kernel misbehave somewhere).
  void upload_sm90_maps(const std::vector<GroupDesc> &groups) {
#if PIMOE_HAVE_SM90A
    const char *off = std::getenv("PIMOE_CUDA_NO_WGMMA");
    if (wtype_ == WType::F32 || !tensor_dims_ok_ || (off && *off && std::strcmp(off, "0") != 0)) return;
    if (!cuda::sm90_gemm_supported()) return;
    std::vector<unsigned char> maps(cuda::kSm90MapBytes * 3 * groups.size());
    if (!cuda::sm90_weight_maps(groups.data(), static_cast<int32_t>(groups.size()), H_, wtype_, maps.data())) return;
    wmaps_.reserve(maps.size(), "tensor maps of the weights");
    check(cudaMemcpy(wmaps_.get(), maps.data(), maps.size(), cudaMemcpyHostToDevice), "uploading tensor maps");
    sm90_ = true;
#else
    (void)groups;
#endif
  }

  const LayerConfig &config_;
  const WType wtype_;
  const int32_t H_, E_;
  const bool shared_;
  int32_t imax_ = 1, istride_ = 8;
  int32_t inter_align_ = 0;  // gcd of the intermediate sizes: the GEMV streams rows of whole 16-byte chunks if 8 | it
  bool gated_ = false;       // some group is SwiGLU (the up GEMV streams gate rows beside up rows)
  bool tensor_dims_ok_ = false;
  bool has_norm_ = false;  // some expert LayerNorms its input (the GEMV path then gathers rows first)
  bool pdl_ = false;       // programmatic dependent launch (sm_90 and newer)
  bool sm90_ = false;      // the tensor-core path runs the wgmma kernel (wmaps_ holds its weight descriptors)
  const int64_t stream_tokens_ = static_cast<int64_t>(env_number("PIMOE_CUDA_STREAM_TOKENS", kStreamTokens));
  const double decode_gemm_rows_ = env_number("PIMOE_CUDA_DECODE_GEMM_ROWS", kDecodeGemmRows);
  std::string description_;
  std::vector<std::unique_ptr<DeviceTensor>> tensors_;
  std::unordered_map<const std::vector<float> *, const DeviceTensor *> held_;
  size_t weight_bytes_ = 0;
  DeviceMemory router_, selection_bias_, groups_, wmaps_;
  const float *shared_score_ = nullptr;
  // Threads for the copies between callers' buffers and staging (the calling thread is one of them).
  HostParallel host_parallel_{kHostPassThreads};
};

}  // namespace

bool cuda_backend_usable(std::string &why) {
  // Asked once per process: the answer does not change, and the first CUDA call loads the driver.
  static std::once_flag once;
  static bool usable = false;
  static std::string reason;
  std::call_once(once, [] {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      cudaGetLastError();
      reason = std::string("backend 'cuda': no usable CUDA driver or device (") + cudaGetErrorName(e) + ": " +
               cudaGetErrorString(e) + ")";
      return;
    }
    if (count == 0) {
      reason = "backend 'cuda': no CUDA device found";
      return;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, kDevice) != cudaSuccess) {
      cudaGetLastError();
      reason = "backend 'cuda': cannot read the properties of CUDA device 0";
      return;
    }
    if (prop.major < 8) {
      reason = std::string("backend 'cuda': device 0 (") + prop.name + ") has compute capability " +
               std::to_string(prop.major) + "." + std::to_string(prop.minor) +
               "; the CUDA backend needs 8.0 (Ampere) or newer";
      return;
    }
    usable = true;
  });
  if (!usable) why = reason;
  return usable;
}

std::string cuda_device_description() {
  std::string why;
  if (!cuda_backend_usable(why)) return why;
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, kDevice) != cudaSuccess) {
    cudaGetLastError();
    return "cuda: device 0";
  }
  char memory[32];
  std::snprintf(memory, sizeof memory, "%.1f GiB", static_cast<double>(prop.totalGlobalMem) / (1u << 30));
  return std::string("cuda: ") + prop.name + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
         std::to_string(prop.multiProcessorCount) + " SMs, " + memory + ")";
}

std::unique_ptr<Backend> make_cuda_backend(const LayerConfig &config, LayerWeights &weights) {
  return std::make_unique<CudaBackend>(config, weights);
}

}  // namespace pimoe
