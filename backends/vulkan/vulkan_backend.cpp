#include "vulkan_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "src/dtype.h"
#include "src/error.h"
#include "src/host_parallel.h"
#include "coop_tiles.h"
#include "vk_device.h"

#include "shaders/layout.h"

namespace pimoe {
namespace {

using vk::Buffer;
using vk::Device;
using vk::Memory;

int64_t round_up(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}
uint32_t ceil_div(int64_t v, int64_t d) {
  return static_cast<uint32_t>((v + d - 1) / d);
}

// The push-constant block of every kernel (layout.h lists the fields once for both sides).
struct Push {
#define U_FIELD(n) uint32_t n = 0;
#define F_FIELD(n) float n = 0.0f;
#define I_FIELD(n) int32_t n = 0;
  PUSH_FIELDS(U_FIELD, F_FIELD, I_FIELD)
#undef U_FIELD
#undef F_FIELD
#undef I_FIELD
};
static_assert(sizeof(Push) == 4 * PUSH_WORDS, "Push must match layout.h's PUSH_WORDS");

// Sections of the per-call routing buffer B_ROUTE, in ints. The host-routed path uploads [ids, ecount); the fused
// path reads [ids, tok) back. rowtok (the token of each row, written by route_small) follows tok, where the shaders'
// route_rowtok() finds it.
struct RouteLayout {
  uint32_t ids, w, arow, seg, disp, active, ecount, stats, tok, rowtok, total;
  RouteLayout(int64_t T, int64_t K, int64_t E) {
    const auto A = static_cast<uint32_t>(T * K);
    ids = 0;
    w = A;
    arow = 2 * A;
    seg = 3 * A;
    disp = seg + static_cast<uint32_t>(E + 1) * SEG_STRIDE;
    active = disp + DISP_SIZE;
    ecount = active + static_cast<uint32_t>(E + 1);
    stats = ecount + static_cast<uint32_t>(E) * ECOUNT_STRIDE;
    tok = stats + STATS_SIZE;
    rowtok = tok + static_cast<uint32_t>(T) * TOK_STRIDE;
    total = rowtok + static_cast<uint32_t>(T * (K + 1));
  }
};

// Where one weight matrix (nn.Linear layout [rows, cols]) lives: rows padded to PAD elements, in 16-byte words.
struct Placement {
  uint32_t arena = 0;     // index into the arenas, or kRouterArena for the router buffer
  uint64_t offset = 0;    // first word
  int64_t rows = 0, cols = 0;
  int64_t stride = 0;     // words per row
  bool fp32 = true;       // the router is always fp32; expert matrices follow weight_dtype
};
constexpr uint32_t kRouterArena = 0xffffffffu;

// Buffers of one call, by role. The bound ones match their binding in layout.h.
enum Slot { kX, kY, kRoute, kRows, kHidden, kOut, kLogits, kProbs, kUpload, kDownload, kSlots };
struct SlotInfo {
  int binding;  // -1: not bound to the kernels (host staging)
  Memory memory;
  VkBufferUsageFlags usage;
  const char *what;
};
constexpr VkBufferUsageFlags kStorage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
constexpr VkBufferUsageFlags kSrc = VK_BUFFER_USAGE_TRANSFER_SRC_BIT, kDst = VK_BUFFER_USAGE_TRANSFER_DST_BIT;
const SlotInfo kSlotInfo[kSlots] = {
    {B_X, Memory::Device, kStorage | kDst, "the call's input"},
    {B_Y, Memory::Device, kStorage | kSrc, "the call's output"},
    {B_ROUTE, Memory::Device, kStorage | kSrc | kDst | VK_BUFFER_USAGE_INDIRECT_BUFFER_BIT, "the call's routing"},
    {B_ROWS, Memory::Device, kStorage, "the gathered rows"},
    {B_HIDDEN, Memory::Device, kStorage, "the experts' hidden activations"},
    {B_OUT, Memory::Device, kStorage, "the experts' outputs"},
    {B_LOGITS, Memory::Device, kStorage | kSrc, "the router logits"},
    {B_PROBS, Memory::Device, kStorage, "the router scores"},
    {-1, Memory::Upload, kSrc, "the upload staging buffer"},
    {-1, Memory::Readback, kDst, "the read-back staging buffer"},
};

class VulkanBackend;

// Per-call state: a command buffer, its fence and descriptor set, and the call's buffers (grown on demand, so a
// steady stream of calls allocates nothing). One per concurrent call (the model's workspace pool).
class VkScratch final : public BackendScratch {
 public:
  static constexpr uint32_t kMaxMarks = 32;
  VkScratch(Device &device, const VulkanBackend &backend, bool profile);
  ~VkScratch() override;
  VkScratch(const VkScratch &) = delete;
  VkScratch &operator=(const VkScratch &) = delete;

  size_t bytes() const override {
    size_t total = 0;
    for (const Buffer &b : buffers_) total += static_cast<size_t>(b.size());
    return total;
  }

  // Makes buffer `slot` hold at least `bytes` (contents are not kept when it grows).
  Buffer &ensure(Slot slot, VkDeviceSize bytes);
  Buffer &buffer(Slot slot) { return buffers_[slot]; }

  VkCommandBuffer begin();
  void submit();  // ends the recording (if any), submits and waits
  // Re-use of the last recorded command buffer: a fused call of the same tokens records the very same commands (its
  // push constants and grids depend on the layer and the token count only) as long as no buffer was reallocated, so
  // a decode loop records once and then only submits. reusable() says whether the recording made for `tokens` is
  // still valid; recorded() marks the one just made. begin() forgets it.
  bool reusable(int64_t tokens) const { return recorded_tokens_ == tokens && recorded_generation_ == generation_; }
  void recorded(int64_t tokens) {
    recorded_tokens_ = tokens;
    recorded_generation_ = generation_;
  }
  VkDescriptorSet set() const { return set_; }

  // PIMOE_VULKAN_PROFILE: a GPU timestamp after each step of the command buffer, named by `label` (a literal or a
  // pipeline name that outlives the call); after submit(), marks() lists (label, nanoseconds since the last mark).
  void mark(VkCommandBuffer cmd, const char *label);
  std::vector<std::pair<const char *, double>> marks();

 private:
  void bind(Slot slot);
  void release();

  Device &device_;
  VkCommandPool pool_ = VK_NULL_HANDLE;
  VkCommandBuffer cmd_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  VkDescriptorPool descriptor_pool_ = VK_NULL_HANDLE;
  VkDescriptorSet set_ = VK_NULL_HANDLE;
  Buffer buffers_[kSlots];
  uint64_t generation_ = 0;  // counts buffer reallocations (each rewrites the descriptor set)
  int64_t recorded_tokens_ = -1;
  uint64_t recorded_generation_ = 0;
  bool recording_ = false;
  VkQueryPool queries_ = VK_NULL_HANDLE;
  std::vector<const char *> labels_;
};

// Batches host-to-device copies through one staging buffer: each flush is one submission.
class Uploader {
 public:
  Uploader(Device &device, VkDeviceSize total) : device_(device) {
    staging_ = device.make_buffer(std::min<VkDeviceSize>(std::max<VkDeviceSize>(total, 16), kStagingBytes),
                                  kSrc, Memory::Upload, "weight upload staging");
  }
  // Space for `bytes` (at most the staging size) bound for dst at dst_offset; the caller fills it.
  void *reserve(const Buffer &dst, VkDeviceSize dst_offset, VkDeviceSize bytes) {
    if (used_ + bytes > staging_.size()) flush();
    void *p = static_cast<char *>(staging_.mapped()) + used_;
    if (!copies_.empty() && copies_.back().dst == &dst &&
        copies_.back().region.dstOffset + copies_.back().region.size == dst_offset &&
        copies_.back().region.srcOffset + copies_.back().region.size == used_) {
      copies_.back().region.size += bytes;  // contiguous with the previous piece: one region
    } else {
      copies_.push_back({&staging_, &dst, VkBufferCopy{used_, dst_offset, bytes}});
    }
    used_ += round_up(static_cast<int64_t>(bytes), 16);
    return p;
  }
  VkDeviceSize capacity() const { return staging_.size(); }
  void flush() {
    device_.copy(copies_);
    copies_.clear();
    used_ = 0;
  }

 private:
  static constexpr VkDeviceSize kStagingBytes = 64ull << 20;
  Device &device_;
  Buffer staging_;
  std::vector<Device::Copy> copies_;
  VkDeviceSize used_ = 0;
};

class VulkanBackend final : public Backend {
 public:
  VulkanBackend(const LayerConfig &config, LayerWeights &weights, int device_index)
      : config_(config),
        weights_(weights),
        device_(Device::get(device_index)),
        dtype_(config.weight_dtype),
        vw_(config.weight_dtype == WeightDtype::F32 ? 4 : 8),
        variant_(config.weight_dtype == WeightDtype::F32    ? "f32"
                 : config.weight_dtype == WeightDtype::BF16 ? "bf16"
                                                            : "f16") {
    const char *routing = std::getenv("PIMOE_VULKAN_ROUTING");
    host_routing_only_ = routing && std::strcmp(routing, "host") == 0;
    const char *tiles = std::getenv("PIMOE_VULKAN_TILES");
    const CoopTiles *coop = nullptr;
    if (tiles && std::strcmp(tiles, "small") == 0) tiles_ = Tiles::Small;
    if (tiles && std::strcmp(tiles, "large") == 0) tiles_ = Tiles::Large;
    if (tiles && std::strcmp(tiles, "fma") == 0) tiles_ = Tiles::Fma;
    for (const CoopTiles &c : kCoopTiles) {
      if (tiles && std::strcmp(tiles, c.choice) == 0) {
        tiles_ = Tiles::Coopmat;
        coop = &c;
      }
    }
    if (tiles_ == Tiles::Auto) coop = &kCoopTiles[0];
    // The tensor-core kernels: fp16 weights (VK_NV_cooperative_matrix multiplies fp16 only; fp32 and bf16 weights
    // keep the FMA tiles), never in deterministic mode (the FMA tiles' fixed order per output is what makes a
    // token's bits independent of the call), never with PIMOE_VULKAN_TILES=small|large|fma, and only tiles that fit
    // the device's shared memory.
    const uint32_t n = device_->coopmat_n();
    if (n != 0 && dtype_ == WeightDtype::F16 && !config.deterministic && coop != nullptr &&
        coop->shared_bytes(n) <= device_->shared_memory()) {
      coop_ = coop;
      coop_up_ = std::string(coop->kernel) + "up_n" + std::to_string(n);
      coop_down_ = std::string(coop->kernel) + "down_n" + std::to_string(n);
    }
    const char *profile = std::getenv("PIMOE_VULKAN_PROFILE");
    profile_ = profile && *profile && std::strcmp(profile, "0") != 0;
    for (const ExpertSpec &e : config.experts) any_pre_norm_ = any_pre_norm_ || e.pre_norm;
    upload_weights(weights);
  }

  ~VulkanBackend() override {
    if (profile_) print_profile();
  }

  const char *name() const override { return "vulkan"; }
  std::string device_description() const override {
    const std::string coop = device_->describe_coopmat();
    return device_->describe() + ", weights " + weight_dtype_name(dtype_) + ", " +
           (dtype_ == WeightDtype::F16 || device_->coopmat_n() == 0 ? coop : coop + " for fp16 weights only") +
           (coop_ == nullptr ? ""
                             : std::string(", in use (") + coop_->choice + ": " + coop_->activations + ")") +
           (host_routing_only_ ? ", routing on the host (PIMOE_VULKAN_ROUTING=host)" : "");
  }

  std::unique_ptr<BackendScratch> make_scratch() const override {
    return std::make_unique<VkScratch>(*device_, *this, profile_);
  }

  bool holds_weight(const NamedTensor &t) const override { return held_.count(t.data) > 0; }
  void read_weight(const NamedTensor &t, float *out) const override;
  size_t weight_bytes() const override { return static_cast<size_t>(device_bytes_); }

  void router_logits(const float *x, int64_t tokens, float *logits, BackendScratch &scratch) const override;
  void run_experts(const RoutePlan &plan, const float *x, float *y, BackendScratch &scratch) const override;
  bool forward_fused(const float *x, int64_t tokens, float *y, RoutePlan &plan, BackendScratch &scratch,
                     const DeviceCall *device) const override;

  // The model-level buffers every descriptor set binds.
  const Buffer &meta() const { return meta_; }
  const Buffer &small() const { return small_; }
  const Buffer &router() const { return router_; }
  const Buffer &arena(uint32_t i) const { return arenas_.empty() ? small_ : arenas_[std::min<size_t>(i, arenas_.size() - 1)]; }

 private:
  const ExpertSpec &spec(int64_t e) const { return config_.experts[static_cast<size_t>(e)]; }
  int64_t segments() const { return config_.router.num_experts + 1; }  // the shared expert's slot always exists
  int64_t padded_width(int64_t s) const {  // Ip of segment s
    return s == config_.router.num_experts ? round_up(config_.shared.width, PAD)
                                           : round_up(spec(s).intermediate, PAD);
  }

  void upload_weights(LayerWeights &weights);
  // Packs the matrices into arenas (placements only); returns the bytes of each arena.
  std::vector<VkDeviceSize> place_matrices(LayerWeights &weights);
  void write_matrix(Uploader &up, const Placement &p, const std::vector<float> &w) const;

  Push base_push(int64_t tokens, int64_t slots) const;
  void dispatch(VkCommandBuffer cmd, VkScratch &s, const char *pipeline, Push &push, uint32_t x, uint32_t y,
                uint32_t z) const;
  void dispatch_flat(VkCommandBuffer cmd, VkScratch &s, const char *pipeline, Push &push, int64_t groups) const;
  void dispatch_indirect(VkCommandBuffer cmd, VkScratch &s, const char *pipeline, Push &push,
                         VkDeviceSize offset) const;
  void record_copy(VkCommandBuffer cmd, const Buffer &src, VkDeviceSize src_offset, const Buffer &dst,
                   VkDeviceSize dst_offset, VkDeviceSize bytes) const;
  // gather -> up -> down -> combine, with the grid sizes in B_ROUTE's disp section.
  // The kernels of the two projections for a call, and their grids' x extent and row tile. up_direct: the
  // small-row up projection that reads its rows from x itself (no gather; route_small's row tokens needed), or null
  // where the layer needs gather (pre-norm experts, H not a multiple of 4) or the kernels are not the small-row ones.
  struct Projection {
    const char *up, *down;
    bool matvec;
    uint32_t up_x, down_x, row_tile;
    const char *up_direct;
    const char *label;  // for the profile: "small-row kernels", "small tiles", "large tiles", "tensor cores"
    const char *gather;  // "gather", or "gather_h" where the up projection reads fp16 rows
  };
  // max_rows: the largest segment's rows when the call has at most MV_MAX_ROWS tokens, else -1.
  Projection projection(int64_t max_rows, int64_t max_ip) const;
  // direct: route_small wrote the rows' tokens and p.up_direct exists: no gather pass.
  void record_experts(VkCommandBuffer cmd, VkScratch &s, Push &push, int64_t assignments, const Projection &p,
                      bool direct) const;
  // Whether route_small serves a fused call of `tokens` tokens (layout.h's RS_* limits).
  bool small_routing(int64_t tokens) const;
  // logits = x * router^T: the small-row kernel for calls of few tokens (as the projections), else the tiled GEMM.
  void record_router(VkCommandBuffer cmd, VkScratch &s, Push &push, int64_t tokens) const;
  void check_call_size(int64_t tokens, int64_t slots) const;
  // Submits the call's command buffer; with PIMOE_VULKAN_PROFILE, adds its GPU step times to the model's profile.
  // The profile's name of a call: its path and, for the small-row kernels, its tokens (their times differ by far).
  std::string profile_key(const char *path, int64_t tokens) const {
    return tokens <= MV_MAX_ROWS ? std::string(path) + ", " + std::to_string(tokens) + " token" + (tokens > 1 ? "s" : "")
                                 : std::string(path);
  }
  void submit(VkScratch &s, const char *path, int64_t tokens) const;
  // PIMOE_VULKAN_PROFILE: the wall time of the whole backend call, from `start` (host work included).
  void profile_host(const char *path, int64_t tokens, std::chrono::steady_clock::time_point start) const;
  void print_profile() const;
  // memcpy between the caller's memory and a staging buffer, split over host_pool_ when it is large: one thread
  // moves about 5-10 GB/s, so a 4096-token call's input and output (32-64 MiB each way) cost milliseconds on one.
  void host_copy(void *dst, const void *src, size_t bytes) const;
  // PIMOE_VULKAN_PROFILE: host time of one step of a call (wall clock, nanoseconds), printed with the GPU steps.
  void host_time(const char *path, const char *step, std::chrono::steady_clock::time_point since) const;

  const LayerConfig &config_;
  const LayerWeights &weights_;
  std::shared_ptr<Device> device_;
  const WeightDtype dtype_;
  const int64_t vw_;  // weights per 16-byte word
  const char *variant_;
  // Shader variant names of the projections for this model's weight type (vulkan.cmake lists them).
  const std::string up_mv_ = std::string("matvec_up_") + variant_, down_mv_ = std::string("matvec_down_") + variant_;
  const std::string upx_mv_ = std::string("matvec_upx_") + variant_;
  const std::string up_mm_ = std::string("matmul_up_") + variant_, down_mm_ = std::string("matmul_down_") + variant_;
  const std::string up_large_ = up_mm_ + "_large", down_large_ = down_mm_ + "_large";
  bool host_routing_only_ = false;
  bool any_pre_norm_ = false;  // some expert normalises its input: gather does it, so decode steps keep gather
  // PIMOE_VULKAN_TILES=small|large: always the FMA tiles of that size (tests run every case through each); fma: the
  // default choice without tensor cores; one of kCoopTiles' choices: those tensor-core kernels for every call where
  // they can run, else the small FMA tiles. By default the small-row kernels serve calls of at most MV_MAX_ROWS
  // tokens, the tensor-core kernels of kCoopTiles[0] (where they can run) or the small FMA tiles the rest.
  enum class Tiles { Auto, Small, Large, Fma, Coopmat } tiles_ = Tiles::Auto;
  const CoopTiles *coop_ = nullptr;  // the tensor-core tiles this model uses, null for none
  std::string coop_up_, coop_down_;  // their shader variants
  bool profile_ = false;
  struct ProfileEntry {
    double ns = 0.0;
    uint64_t count = 0;
  };
  mutable std::mutex profile_mutex_;
  // In first-seen order: "path / step" GPU times, and per path the wall time of submit-and-wait.
  mutable std::vector<std::pair<std::string, ProfileEntry>> profile_entries_, profile_calls_, profile_host_;
  static ProfileEntry &entry(std::vector<std::pair<std::string, ProfileEntry>> &list, const std::string &key) {
    for (auto &e : list) {
      if (e.first == key) return e.second;
    }
    list.emplace_back(key, ProfileEntry{});
    return list.back().second;
  }

  std::vector<Placement> expert_places_;  // per segment: gate, up, down (3 each)
  Placement router_place_;
  std::unordered_map<const std::vector<float> *, Placement> held_;
  std::vector<uint32_t> meta_host_;
  uint32_t bias_off_ = META_NONE, score_off_ = META_NONE;
  int64_t max_ip_ = PAD;
  VkDeviceSize device_bytes_ = 0;

  std::vector<Buffer> arenas_;
  Buffer router_, meta_, small_;
  // Threads for the large host copies (the calling thread is one of them); started on the first large one.
  HostParallel host_parallel_{8};
};

// ------------------------------------------------------------------------------------------------ scratch

VkScratch::VkScratch(Device &device, const VulkanBackend &backend, bool profile) : device_(device) {
  const VolkDeviceTable &fn = device.fn();
  const VkDevice d = device.handle();
  try {
    VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
    pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    pool_info.queueFamilyIndex = device.queue_family();
    vk::check(fn.vkCreateCommandPool(d, &pool_info, nullptr, &pool_), "vkCreateCommandPool");
    VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    alloc.commandPool = pool_;
    alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    alloc.commandBufferCount = 1;
    vk::check(fn.vkAllocateCommandBuffers(d, &alloc, &cmd_), "vkAllocateCommandBuffers");
    VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    vk::check(fn.vkCreateFence(d, &fence_info, nullptr, &fence_), "vkCreateFence");

    const VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, NUM_BINDINGS - 1 + MAX_ARENAS};
    VkDescriptorPoolCreateInfo dp{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
    dp.maxSets = 1;
    dp.poolSizeCount = 1;
    dp.pPoolSizes = &size;
    vk::check(fn.vkCreateDescriptorPool(d, &dp, nullptr, &descriptor_pool_), "vkCreateDescriptorPool");
    VkDescriptorSetAllocateInfo set_alloc{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    set_alloc.descriptorPool = descriptor_pool_;
    set_alloc.descriptorSetCount = 1;
    const VkDescriptorSetLayout layout = device.set_layout();
    set_alloc.pSetLayouts = &layout;
    vk::check(fn.vkAllocateDescriptorSets(d, &set_alloc, &set_), "vkAllocateDescriptorSets");

    // The model's buffers, then a minimal buffer in every per-call slot so that every binding is valid.
    VkDescriptorBufferInfo model_infos[3 + MAX_ARENAS];
    VkWriteDescriptorSet writes[4];
    const Buffer *model_buffers[3] = {&backend.meta(), &backend.small(), &backend.router()};
    const uint32_t model_bindings[3] = {B_META, B_SMALL, B_ROUTER};
    for (int i = 0; i < 3; ++i) {
      model_infos[i] = {model_buffers[i]->handle(), 0, VK_WHOLE_SIZE};
      writes[i] = VkWriteDescriptorSet{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
      writes[i].dstSet = set_;
      writes[i].dstBinding = model_bindings[i];
      writes[i].descriptorCount = 1;
      writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      writes[i].pBufferInfo = &model_infos[i];
    }
    for (uint32_t a = 0; a < MAX_ARENAS; ++a) model_infos[3 + a] = {backend.arena(a).handle(), 0, VK_WHOLE_SIZE};
    writes[3] = VkWriteDescriptorSet{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    writes[3].dstSet = set_;
    writes[3].dstBinding = B_WEIGHTS;
    writes[3].descriptorCount = MAX_ARENAS;
    writes[3].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[3].pBufferInfo = &model_infos[3];
    fn.vkUpdateDescriptorSets(d, 4, writes, 0, nullptr);
    for (int slot = 0; slot < kSlots; ++slot) ensure(static_cast<Slot>(slot), 256);
    if (profile && device.timestamp_bits() > 0) {
      VkQueryPoolCreateInfo q{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
      q.queryType = VK_QUERY_TYPE_TIMESTAMP;
      q.queryCount = kMaxMarks + 1;
      vk::check(fn.vkCreateQueryPool(d, &q, nullptr, &queries_), "vkCreateQueryPool");
      labels_.reserve(kMaxMarks);
    }
  } catch (...) {
    release();
    throw;
  }
}

VkScratch::~VkScratch() {
  release();
}

void VkScratch::release() {
  const VolkDeviceTable &fn = device_.fn();
  const VkDevice d = device_.handle();
  for (Buffer &b : buffers_) b.reset();
  if (queries_) fn.vkDestroyQueryPool(d, queries_, nullptr);
  queries_ = VK_NULL_HANDLE;
  if (descriptor_pool_) fn.vkDestroyDescriptorPool(d, descriptor_pool_, nullptr);  // frees the set
  if (fence_) fn.vkDestroyFence(d, fence_, nullptr);
  if (pool_) fn.vkDestroyCommandPool(d, pool_, nullptr);  // frees the command buffer
  descriptor_pool_ = VK_NULL_HANDLE;
  fence_ = VK_NULL_HANDLE;
  pool_ = VK_NULL_HANDLE;
}

Buffer &VkScratch::ensure(Slot slot, VkDeviceSize bytes) {
  Buffer &b = buffers_[slot];
  if (b && b.size() >= bytes) return b;
  const SlotInfo &info = kSlotInfo[slot];
  // Grow by half again, so that calls of slowly growing size do not reallocate every time.
  const VkDeviceSize grown = std::max<VkDeviceSize>(bytes, b.size() + b.size() / 2);
  const VkDeviceSize size = std::min<VkDeviceSize>(std::max(grown, bytes), std::max(bytes, device_.max_binding()));
  b.reset();
  ++generation_;
  b = device_.make_buffer(static_cast<VkDeviceSize>(round_up(static_cast<int64_t>(size), 256)), info.usage,
                          info.memory, info.what);
  bind(slot);
  return b;
}

void VkScratch::bind(Slot slot) {
  const SlotInfo &info = kSlotInfo[slot];
  if (info.binding < 0) return;
  const VkDescriptorBufferInfo buffer{buffers_[slot].handle(), 0, VK_WHOLE_SIZE};
  VkWriteDescriptorSet write{VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
  write.dstSet = set_;
  write.dstBinding = static_cast<uint32_t>(info.binding);
  write.descriptorCount = 1;
  write.descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
  write.pBufferInfo = &buffer;
  device_.fn().vkUpdateDescriptorSets(device_.handle(), 1, &write, 0, nullptr);
}

VkCommandBuffer VkScratch::begin() {
  device_.check_alive();
  recorded_tokens_ = -1;
  vk::check(device_.fn().vkResetCommandBuffer(cmd_, 0), "vkResetCommandBuffer");
  VkCommandBufferBeginInfo info{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};  // no ONE_TIME_SUBMIT: it may be re-used
  vk::check(device_.fn().vkBeginCommandBuffer(cmd_, &info), "vkBeginCommandBuffer");
  recording_ = true;
  device_.fn().vkCmdBindDescriptorSets(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, device_.pipeline_layout(), 0, 1, &set_,
                                       0, nullptr);
  if (queries_) {
    labels_.clear();
    device_.fn().vkCmdResetQueryPool(cmd_, queries_, 0, kMaxMarks + 1);
    device_.fn().vkCmdWriteTimestamp(cmd_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_, 0);
  }
  return cmd_;
}

void VkScratch::mark(VkCommandBuffer cmd, const char *label) {
  if (!queries_ || labels_.size() >= kMaxMarks) return;
  labels_.push_back(label);
  device_.fn().vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_,
                                   static_cast<uint32_t>(labels_.size()));
}

std::vector<std::pair<const char *, double>> VkScratch::marks() {
  std::vector<std::pair<const char *, double>> out;
  if (!queries_ || labels_.empty()) return out;
  uint64_t stamps[kMaxMarks + 1];
  const auto n = static_cast<uint32_t>(labels_.size() + 1);
  vk::check(device_.fn().vkGetQueryPoolResults(device_.handle(), queries_, 0, n, sizeof stamps, stamps,
                                               sizeof(uint64_t), VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
            "vkGetQueryPoolResults");
  for (uint32_t i = 1; i < n; ++i) {
    out.emplace_back(labels_[i - 1], static_cast<double>(stamps[i] - stamps[i - 1]) * device_.timestamp_period());
  }
  return out;
}

void VkScratch::submit() {
  if (recording_) {
    recording_ = false;
    vk::check(device_.fn().vkEndCommandBuffer(cmd_), "vkEndCommandBuffer");
  }
  device_.submit_and_wait(cmd_, fence_);
}

// ------------------------------------------------------------------------------------------------ weights

std::vector<VkDeviceSize> VulkanBackend::place_matrices(LayerWeights &weights) {
  const int64_t E = config_.router.num_experts, H = config_.hidden;
  // Arenas as large as the device binds (and at most 2 GiB, so that word offsets stay 32-bit in the shaders). An
  // expert's matrices share one arena (the shaders index the arena per expert).
  const VkDeviceSize arena_bytes = std::min<VkDeviceSize>(device_->max_binding(), 2ull << 30) / 16 * 16;
  std::vector<VkDeviceSize> sizes;
  struct Matrix {
    std::vector<float> *w;
    int64_t rows, cols, slot;
  };
  auto place_expert = [&](const std::vector<Matrix> &matrices) {
    VkDeviceSize group = 0;
    for (const Matrix &m : matrices) group += static_cast<VkDeviceSize>(m.rows * (round_up(m.cols, PAD) / vw_)) * 16;
    if (group > arena_bytes) {
      fail(PIMOE_ERR_UNSUPPORTED, "vulkan: an expert's weights (", static_cast<double>(group) / (1 << 20),
           " MiB) exceed what ", device_->physical().properties.deviceName, " binds in one buffer (",
           static_cast<double>(arena_bytes) / (1 << 20), " MiB)");
    }
    if (sizes.empty() || sizes.back() + group > arena_bytes) {
      if (sizes.size() == MAX_ARENAS) {
        fail(PIMOE_ERR_UNSUPPORTED, "vulkan: the layer's weights need more than ", MAX_ARENAS, " buffers of ",
             static_cast<double>(arena_bytes) / (1 << 20), " MiB on ", device_->physical().properties.deviceName);
      }
      sizes.push_back(0);
    }
    for (const Matrix &m : matrices) {
      Placement p;
      p.rows = m.rows;
      p.cols = m.cols;
      p.fp32 = dtype_ == WeightDtype::F32;
      p.stride = round_up(m.cols, PAD) / vw_;
      p.arena = static_cast<uint32_t>(sizes.size() - 1);
      p.offset = sizes.back() / 16;
      sizes.back() += static_cast<VkDeviceSize>(m.rows * p.stride) * 16;
      held_[m.w] = p;
      expert_places_[static_cast<size_t>(m.slot)] = p;
    }
  };
  expert_places_.assign(static_cast<size_t>(3 * segments()), Placement{});
  for (int64_t e = 0; e < E; ++e) {
    if (spec(e).callback) continue;  // a host callback computes it: no weights
    ExpertWeights &w = weights.experts[static_cast<size_t>(e)];
    const int64_t I = spec(e).intermediate;
    std::vector<Matrix> m;
    if (spec(e).gated()) m.push_back({&w.gate_weight, I, H, 3 * e});
    m.push_back({&w.up_weight, I, H, 3 * e + 1});
    m.push_back({&w.down_weight, H, I, 3 * e + 2});
    place_expert(m);
  }
  if (config_.shared.width > 0) {
    const int64_t Is = config_.shared.width;
    place_expert({{&weights.shared.gate_weight, Is, H, 3 * E},
                  {&weights.shared.up_weight, Is, H, 3 * E + 1},
                  {&weights.shared.down_weight, H, Is, 3 * E + 2}});
  }
  return sizes;
}

// Writes one matrix in its device form (rows padded with zeros to PAD elements; fp32, bf16 or fp16 words).
void VulkanBackend::write_matrix(Uploader &up, const Placement &p, const std::vector<float> &w) const {
  const Buffer &dst = p.arena == kRouterArena ? router_ : arenas_[p.arena];
  const VkDeviceSize row_bytes = static_cast<VkDeviceSize>(p.stride) * 16;
  const int64_t rows_per_piece = std::max<int64_t>(1, static_cast<int64_t>(up.capacity() / row_bytes));
  for (int64_t r0 = 0; r0 < p.rows; r0 += rows_per_piece) {
    const int64_t rows = std::min(rows_per_piece, p.rows - r0);
    void *out = up.reserve(dst, (p.offset + static_cast<uint64_t>(r0 * p.stride)) * 16,
                           static_cast<VkDeviceSize>(rows) * row_bytes);
    const int64_t padded = p.stride * (p.fp32 ? 4 : 8);
    for (int64_t r = 0; r < rows; ++r) {
      const float *src = w.data() + (r0 + r) * p.cols;
      if (p.fp32) {
        float *d = static_cast<float *>(out) + r * padded;
        std::copy(src, src + p.cols, d);
        std::fill(d + p.cols, d + padded, 0.0f);
      } else {
        uint16_t *d = static_cast<uint16_t *>(out) + r * padded;
        // The model already rounded these values to the type, so the conversion is exact.
        for (int64_t c = 0; c < p.cols; ++c) {
          d[c] = dtype_ == WeightDtype::BF16 ? float_to_bf16_bits(src[c]) : float_to_fp16_bits(src[c]);
        }
        std::fill(d + p.cols, d + padded, static_cast<uint16_t>(0));
      }
    }
  }
}

void VulkanBackend::upload_weights(LayerWeights &weights) {
  const int64_t E = config_.router.num_experts, H = config_.hidden, S = segments();
  const std::vector<VkDeviceSize> arena_sizes = place_matrices(weights);
  for (VkDeviceSize bytes : arena_sizes) {
    arenas_.push_back(device_->make_buffer(bytes, kStorage | kSrc | kDst, Memory::Device, "expert weights"));
    device_bytes_ += bytes;
  }
  router_place_.arena = kRouterArena;
  router_place_.rows = E;
  router_place_.cols = H;
  router_place_.stride = round_up(H, PAD) / 4;
  router_ = device_->make_buffer(static_cast<VkDeviceSize>(E * router_place_.stride) * 16, kStorage | kSrc | kDst,
                                 Memory::Device, "router weights");
  device_bytes_ += router_.size();
  held_[&weights.router_weight] = router_place_;

  // Small per-layer vectors: copied (the host keeps them: the router reads the selection bias), not held.
  std::vector<float> small;
  auto add = [&small](const std::vector<float> &v) -> uint32_t {
    if (v.empty()) return META_NONE;
    const auto offset = static_cast<uint32_t>(small.size());
    small.insert(small.end(), v.begin(), v.end());
    return offset;
  };
  meta_host_.assign(static_cast<size_t>(S * META_STRIDE), 0);
  for (int64_t s = 0; s < S; ++s) {
    uint32_t *m = meta_host_.data() + s * META_STRIDE;
    const bool shared = s == E;
    const ExpertWeights &w = shared ? weights.shared : weights.experts[static_cast<size_t>(s)];
    const int64_t I = shared ? config_.shared.width : spec(s).intermediate;
    const bool gated = shared || spec(s).gated();
    m[META_I] = static_cast<uint32_t>(I);
    m[META_IP] = static_cast<uint32_t>(padded_width(s));
    m[META_ACT] = shared ? static_cast<uint32_t>(PIMOE_ACT_SWIGLU) : static_cast<uint32_t>(spec(s).activation);
    m[META_FLAGS] = (gated ? EXPERT_GATED : 0u) | (!shared && spec(s).pre_norm ? EXPERT_PRE_NORM : 0u);
    const Placement &up = expert_places_[3 * s + 1];
    m[META_ARENA] = up.arena;
    m[META_UP] = static_cast<uint32_t>(up.offset);
    m[META_GATE] = static_cast<uint32_t>(gated ? expert_places_[3 * s].offset : 0);
    m[META_DOWN] = static_cast<uint32_t>(expert_places_[3 * s + 2].offset);
    m[META_UP_STRIDE] = static_cast<uint32_t>(up.stride);
    m[META_DOWN_STRIDE] = static_cast<uint32_t>(expert_places_[3 * s + 2].stride);
    m[META_NORM_W] = add(w.norm_weight);
    m[META_NORM_B] = add(w.norm_bias);
    m[META_UP_B] = add(w.up_bias);
    m[META_DOWN_B] = add(w.down_bias);
    if (I > 0) max_ip_ = std::max(max_ip_, padded_width(s));
  }
  if (config_.router.selection_bias) bias_off_ = add(weights.selection_bias);
  if (config_.shared.gated) score_off_ = add(weights.shared_score_weight);
  small.push_back(0.0f);  // never empty
  meta_ = device_->make_buffer(meta_host_.size() * 4, kStorage | kDst, Memory::Device, "expert metadata");
  small_ = device_->make_buffer(small.size() * 4, kStorage | kDst, Memory::Device, "expert vectors");

  VkDeviceSize total = static_cast<VkDeviceSize>(meta_host_.size() + small.size()) * 4 + router_.size();
  for (VkDeviceSize bytes : arena_sizes) total += bytes;
  Uploader up(*device_, total);
  std::memcpy(up.reserve(meta_, 0, meta_host_.size() * 4), meta_host_.data(), meta_host_.size() * 4);
  std::memcpy(up.reserve(small_, 0, small.size() * 4), small.data(), small.size() * 4);
  // Each matrix goes to the device and its host copy is freed right away, so that loading never holds two full
  // copies of the weights (Model reads them back through read_weight()).
  write_matrix(up, router_place_, weights.router_weight);
  std::vector<float>().swap(weights.router_weight);
  for (int64_t s = 0; s < S; ++s) {
    ExpertWeights &w = s == E ? weights.shared : weights.experts[static_cast<size_t>(s)];
    std::vector<float> *m[3] = {&w.gate_weight, &w.up_weight, &w.down_weight};
    for (int i = 0; i < 3; ++i) {
      if (!held_.count(m[i])) continue;
      write_matrix(up, held_.at(m[i]), *m[i]);
      std::vector<float>().swap(*m[i]);
    }
  }
  up.flush();
}

void VulkanBackend::read_weight(const NamedTensor &t, float *out) const {
  const Placement &p = held_.at(t.data);
  const Buffer &src = p.arena == kRouterArena ? router_ : arenas_[p.arena];
  const VkDeviceSize bytes = static_cast<VkDeviceSize>(p.rows * p.stride) * 16;
  Buffer staging = device_->make_buffer(bytes, kDst, Memory::Readback, "weight read-back");
  device_->copy({{&src, &staging, VkBufferCopy{p.offset * 16, 0, bytes}}});
  const int64_t padded = p.stride * (p.fp32 ? 4 : 8);
  for (int64_t r = 0; r < p.rows; ++r) {
    float *dst = out + r * p.cols;
    if (p.fp32) {
      const float *row = static_cast<const float *>(staging.mapped()) + r * padded;
      std::copy(row, row + p.cols, dst);
    } else {
      const uint16_t *row = static_cast<const uint16_t *>(staging.mapped()) + r * padded;
      for (int64_t c = 0; c < p.cols; ++c) {
        dst[c] = dtype_ == WeightDtype::BF16 ? bf16_bits_to_float(row[c]) : fp16_bits_to_float(row[c]);
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------ recording

Push VulkanBackend::base_push(int64_t tokens, int64_t slots) const {
  const RouterConfig &r = config_.router;
  const RouteLayout layout(tokens, slots, r.num_experts);
  Push p;
  p.tokens = static_cast<uint32_t>(tokens);
  p.slots = static_cast<uint32_t>(slots);
  p.experts = static_cast<uint32_t>(r.num_experts);
  p.hidden = static_cast<uint32_t>(config_.hidden);
  p.hidden_pad = static_cast<uint32_t>(round_up(config_.hidden, PAD));
  p.route_ids = layout.ids;
  p.route_w = layout.w;
  p.route_arow = layout.arow;
  p.route_seg = layout.seg;
  p.route_disp = layout.disp;
  p.route_active = layout.active;
  p.route_ecount = layout.ecount;
  p.route_stats = layout.stats;
  p.route_tok = layout.tok;
  // Doubles as two 32-bit halves: the device computes routing with the host router's very numbers.
  const double inv_tau = 1.0 / r.temperature, scaling = r.routed_scaling_factor;
  uint32_t halves[2];
  std::memcpy(halves, &inv_tau, 8);
  p.inv_tau_lo = halves[0];
  p.inv_tau_hi = halves[1];
  std::memcpy(halves, &scaling, 8);
  p.scaling_lo = halves[0];
  p.scaling_hi = halves[1];
  p.capacity = -1;
  p.groups = static_cast<uint32_t>(r.num_groups);
  p.topk_groups = static_cast<uint32_t>(r.topk_groups);
  p.eps = static_cast<float>(config_.layer_norm_eps);
  p.aux_coef = static_cast<float>(r.aux_loss_coef);
  p.score_off = score_off_;
  p.bias_off = bias_off_;
  p.flags = (r.scoring == RouterScoring::Sigmoid ? CALL_SIGMOID : 0u) | (r.renormalize ? CALL_RENORM : 0u) |
            (r.selection_bias ? CALL_SELECTION_BIAS : 0u) | (r.group_score == GroupScore::Max ? CALL_GROUP_MAX : 0u) |
            (config_.shared.gated ? CALL_SHARED_GATE : 0u);
  return p;
}

void VulkanBackend::dispatch(VkCommandBuffer cmd, VkScratch &s, const char *pipeline, Push &push, uint32_t x,
                             uint32_t y, uint32_t z) const {
  const VolkDeviceTable &fn = device_->fn();
  fn.vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, device_->pipeline(pipeline));
  fn.vkCmdPushConstants(cmd, device_->pipeline_layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(Push), &push);
  fn.vkCmdDispatch(cmd, x, y, z);
  vk::full_barrier(*device_, cmd);
  s.mark(cmd, pipeline);
}

void VulkanBackend::dispatch_flat(VkCommandBuffer cmd, VkScratch &s, const char *pipeline, Push &push,
                                  int64_t groups) const {
  if (groups <= 0) return;
  const int64_t x = std::min<int64_t>(groups, 32768);
  push.grid_x = static_cast<uint32_t>(x);
  dispatch(cmd, s, pipeline, push, static_cast<uint32_t>(x), ceil_div(groups, x), 1);
}

void VulkanBackend::dispatch_indirect(VkCommandBuffer cmd, VkScratch &s, const char *pipeline, Push &push,
                                      VkDeviceSize offset) const {
  const VolkDeviceTable &fn = device_->fn();
  fn.vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, device_->pipeline(pipeline));
  fn.vkCmdPushConstants(cmd, device_->pipeline_layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(Push), &push);
  fn.vkCmdDispatchIndirect(cmd, s.buffer(kRoute).handle(), offset);
  vk::full_barrier(*device_, cmd);
  s.mark(cmd, pipeline);
}

void VulkanBackend::record_copy(VkCommandBuffer cmd, const Buffer &src, VkDeviceSize src_offset, const Buffer &dst,
                                VkDeviceSize dst_offset, VkDeviceSize bytes) const {
  if (bytes == 0) return;
  const VkBufferCopy region{src_offset, dst_offset, bytes};
  device_->fn().vkCmdCopyBuffer(cmd, src.handle(), dst.handle(), 1, &region);
}

VulkanBackend::Projection VulkanBackend::projection(int64_t max_rows, int64_t max_ip) const {
  const int64_t H = config_.hidden;
  const bool small_rows = max_rows >= 0 && max_rows <= MV_MAX_ROWS;
  const bool automatic = tiles_ == Tiles::Auto || tiles_ == Tiles::Fma;
  if (automatic && small_rows && !config_.deterministic) {
    // Every segment's rows in one workgroup, each weight row streamed once. Its sums run in another order than the
    // tiled kernels', so deterministic mode (a token's bits independent of the call) never takes it.
    const bool direct = !any_pre_norm_ && H % 4 == 0;  // X_DIRECT reads x as vec4s
    return {up_mv_.c_str(), down_mv_.c_str(), true, ceil_div(max_ip, MV_NPW), ceil_div(H, MV_NPW),
            1, direct ? upx_mv_.c_str() : nullptr, "small-row kernels", "gather"};
  }
  if (coop_ != nullptr) {  // matmul_coop.comp: 128-row tiles of bn_up / bn_down output columns
    return {coop_up_.c_str(), coop_down_.c_str(), false, ceil_div(max_ip, coop_->bn_up), ceil_div(H, coop_->bn_down),
            MM_BM_LARGE, nullptr, "tensor cores", coop_->act16 ? "gather_h" : "gather"};
  }
  // The large tiles only on request: on an H100 (bench/vulkan/RESULTS.md) the small tiles ran the 4096-token calls of
  // shapes C and F 2.4 times faster.
  if (tiles_ == Tiles::Large) {
    return {up_large_.c_str(), down_large_.c_str(), false, ceil_div(max_ip, MM_BN),
            ceil_div(H, MM_BN_LARGE), MM_BM_LARGE, nullptr, "large tiles", "gather"};
  }
  return {up_mm_.c_str(), down_mm_.c_str(), false, ceil_div(max_ip, MM_BN), ceil_div(H, MM_BN), MM_BM, nullptr,
          "small tiles", "gather"};
}

void VulkanBackend::record_router(VkCommandBuffer cmd, VkScratch &s, Push &push, int64_t tokens) const {
  const int64_t E = config_.router.num_experts;
  if (projection(tokens <= MV_MAX_ROWS ? tokens : -1, PAD).matvec && E <= 65535) {
    dispatch(cmd, s, "matvec_router", push, static_cast<uint32_t>(E), 1, 1);  // a workgroup per expert
  } else {
    dispatch(cmd, s, "matmul_router", push, ceil_div(E, MM_BN), ceil_div(tokens, MM_BM), 1);
  }
}

void VulkanBackend::record_experts(VkCommandBuffer cmd, VkScratch &s, Push &push, int64_t assignments,
                                   const Projection &p, bool direct) const {
  const int64_t T = push.tokens;
  const bool shared = (push.flags & CALL_SHARED) != 0;
  direct = direct && p.up_direct != nullptr;
  if (!direct) dispatch_flat(cmd, s, p.gather, push, assignments + (shared ? T : 0));
  dispatch_indirect(cmd, s, direct ? p.up_direct : p.up, push, (push.route_disp + DISP_UP) * 4ull);
  dispatch_indirect(cmd, s, p.down, push, (push.route_disp + DISP_DOWN) * 4ull);
  dispatch_flat(cmd, s, "combine", push, T * ceil_div(config_.hidden, COMBINE_THREADS));
}

bool VulkanBackend::small_routing(int64_t tokens) const {
  const RouterConfig &r = config_.router;
  return tokens <= MV_MAX_ROWS && tokens * r.num_experts <= RS_MAX_SCORES && tokens * r.top_k <= RS_MAX_ASSIGN &&
         r.num_experts <= RS_MAX_EXPERTS && r.num_groups <= RS_MAX_GROUPS;
}

void VulkanBackend::check_call_size(int64_t tokens, int64_t slots) const {
  // Offsets inside the shaders are 32-bit; the buffers themselves are checked against the device when they grow.
  const int64_t biggest = std::max({tokens * (slots + 1) * round_up(config_.hidden, PAD),
                                    tokens * (slots + 1) * max_ip_, tokens * config_.router.num_experts * 2});
  if (biggest >= (int64_t{1} << 31)) {
    fail(PIMOE_ERR_UNSUPPORTED, "vulkan: a call of ", tokens, " tokens is too large for this layer on the device (",
         biggest, " elements in one buffer); split it into smaller calls");
  }
}

void VulkanBackend::submit(VkScratch &s, const char *path, int64_t tokens) const {
  if (!profile_) return s.submit();
  const auto start = std::chrono::steady_clock::now();
  s.submit();
  const double wall = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  const auto marks = s.marks();
  const std::string key = profile_key(path, tokens);
  std::lock_guard<std::mutex> lock(profile_mutex_);
  ProfileEntry &call = entry(profile_calls_, key + ": submit to fence");
  call.ns += wall;
  ++call.count;
  for (const auto &m : marks) {
    ProfileEntry &e = entry(profile_entries_, key + " / " + m.first);
    e.ns += m.second;
    ++e.count;
  }
}

void VulkanBackend::profile_host(const char *path, int64_t tokens, std::chrono::steady_clock::time_point start) const {
  if (!profile_) return;
  const double wall = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  std::lock_guard<std::mutex> lock(profile_mutex_);
  ProfileEntry &call = entry(profile_calls_, profile_key(path, tokens) + ": whole backend call");
  call.ns += wall;
  ++call.count;
}

void VulkanBackend::host_copy(void *dst, const void *src, size_t bytes) const {
  host_parallel_.copy(dst, src, bytes);
}

void VulkanBackend::host_time(const char *path, const char *step, std::chrono::steady_clock::time_point since) const {
  if (!profile_) return;
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - since).count();
  std::lock_guard<std::mutex> lock(profile_mutex_);
  ProfileEntry &e = entry(profile_host_, std::string(path) + " / " + step);
  e.ns += ns;
  ++e.count;
}

void VulkanBackend::print_profile() const {
  std::lock_guard<std::mutex> lock(profile_mutex_);
  std::fprintf(stderr, "pimoe vulkan profile (%s, H=%lld E=%lld): mean per call\n", device_->describe().c_str(),
               static_cast<long long>(config_.hidden), static_cast<long long>(config_.router.num_experts));
  for (const auto &c : profile_calls_) {
    std::fprintf(stderr, "  %-60s %8.1f us wall, %llu calls\n", c.first.c_str(),
                 c.second.ns / 1e3 / static_cast<double>(c.second.count), static_cast<unsigned long long>(c.second.count));
  }
  for (const auto &e : profile_entries_) {
    std::fprintf(stderr, "  %-60s %8.1f us GPU\n", e.first.c_str(), e.second.ns / 1e3 / static_cast<double>(e.second.count));
  }
  for (const auto &e : profile_host_) {
    std::fprintf(stderr, "  %-60s %8.1f us host\n", e.first.c_str(), e.second.ns / 1e3 / static_cast<double>(e.second.count));
  }
}

// ------------------------------------------------------------------------------------------------ the layer

void VulkanBackend::router_logits(const float *x, int64_t tokens, float *logits, BackendScratch &base) const {
  if (tokens <= 0) return;
  auto &s = static_cast<VkScratch &>(base);
  const int64_t H = config_.hidden, E = config_.router.num_experts;
  check_call_size(tokens, 1);
  const VkDeviceSize x_bytes = static_cast<VkDeviceSize>(tokens * H) * 4;
  const VkDeviceSize z_bytes = static_cast<VkDeviceSize>(tokens * E) * 4;
  Buffer &up = s.ensure(kUpload, x_bytes);
  Buffer &down = s.ensure(kDownload, z_bytes);
  Buffer &xb = s.ensure(kX, x_bytes);
  Buffer &zb = s.ensure(kLogits, z_bytes);
  host_copy(up.mapped(), x, x_bytes);

  VkCommandBuffer cmd = s.begin();
  record_copy(cmd, up, 0, xb, 0, x_bytes);
  vk::full_barrier(*device_, cmd);
  s.mark(cmd, "upload");
  Push push = base_push(tokens, 1);
  record_router(cmd, s, push, tokens);
  record_copy(cmd, zb, 0, down, 0, z_bytes);
  vk::full_barrier(*device_, cmd, true);
  s.mark(cmd, "download");
  submit(s, "router_logits", tokens);
  std::memcpy(logits, down.mapped(), z_bytes);
}

void VulkanBackend::run_experts(const RoutePlan &plan, const float *x, float *y, BackendScratch &base) const {
  const int64_t T = plan.tokens, K = plan.top_k, E = plan.num_experts, H = config_.hidden;
  if (T <= 0) return;
  auto &s = static_cast<VkScratch &>(base);
  check_call_size(T, K);
  const bool shared = config_.shared.width > 0 && plan.include_shared;
  const int64_t kept = plan.kept(), R = kept + (shared ? T : 0), A = T * K;
  const RouteLayout layout(T, K, E);

  // The plan, as the kernels read it: per assignment its expert, weight and row (-1: dropped); per segment its
  // first row, row count and hidden block; and the projections' grid sizes.
  int64_t hidden_total = 0, max_rows = 0, max_ip = PAD;
  const VkDeviceSize x_bytes = static_cast<VkDeviceSize>(T * H) * 4;
  const VkDeviceSize route_offset = static_cast<VkDeviceSize>(round_up(static_cast<int64_t>(x_bytes), 256));
  const VkDeviceSize route_bytes = static_cast<VkDeviceSize>(layout.ecount) * 4;
  Buffer &up = s.ensure(kUpload, route_offset + route_bytes);
  auto *route = reinterpret_cast<int32_t *>(static_cast<char *>(up.mapped()) + route_offset);
  for (int64_t a = 0; a < A; ++a) {
    route[layout.ids + a] = plan.expert[a];
    std::memcpy(&route[layout.w + a], &plan.weight[a], 4);
    route[layout.arow + a] = static_cast<int32_t>(plan.position[a]);
  }
  int32_t active = 0;
  for (int64_t seg = 0; seg <= E; ++seg) {
    int32_t *g = route + layout.seg + seg * SEG_STRIDE;
    const bool is_shared = seg == E;
    const int64_t rows = is_shared ? (shared ? T : 0) : plan.counts[seg];
    if (rows > 0) route[layout.active + active++] = static_cast<int32_t>(seg);
    g[SEG_ROW] = static_cast<int32_t>(is_shared ? kept : plan.offsets[seg]);
    g[SEG_COUNT] = static_cast<int32_t>(rows);
    g[SEG_HIDDEN] = static_cast<int32_t>(hidden_total);
    g[3] = 0;
    hidden_total += rows * padded_width(seg);
    max_rows = std::max(max_rows, rows);
    if (rows > 0) max_ip = std::max(max_ip, padded_width(seg));
  }
  // The kernels are chosen by the call's tokens, as on the fused path (which does not know the segments' rows), so
  // that routing on the host or on the device gives the same bits.
  const Projection proj = projection(T <= MV_MAX_ROWS ? max_rows : -1, max_ip);
  const int64_t nseg = shared ? E + 1 : E;
  uint32_t *disp = reinterpret_cast<uint32_t *>(route + layout.disp);
  disp[DISP_UP + 0] = proj.up_x;
  disp[DISP_UP + 1] = std::max<uint32_t>(1, ceil_div(max_rows, proj.row_tile));
  disp[DISP_UP + 2] = static_cast<uint32_t>(active);
  disp[DISP_DOWN + 0] = proj.down_x;
  disp[DISP_DOWN + 1] = disp[DISP_UP + 1];
  disp[DISP_DOWN + 2] = static_cast<uint32_t>(active);
  host_copy(up.mapped(), x, x_bytes);

  Buffer &xb = s.ensure(kX, x_bytes);
  Buffer &yb = s.ensure(kY, x_bytes);
  Buffer &rb = s.ensure(kRoute, static_cast<VkDeviceSize>(layout.total) * 4);
  s.ensure(kRows, static_cast<VkDeviceSize>(R * round_up(H, PAD)) * 4);
  s.ensure(kHidden, static_cast<VkDeviceSize>(hidden_total) * 4);
  s.ensure(kOut, static_cast<VkDeviceSize>(R * H) * 4);
  Buffer &down = s.ensure(kDownload, x_bytes);

  VkCommandBuffer cmd = s.begin();
  record_copy(cmd, up, 0, xb, 0, x_bytes);
  record_copy(cmd, up, route_offset, rb, 0, route_bytes);
  vk::full_barrier(*device_, cmd);
  s.mark(cmd, "upload");
  Push push = base_push(T, K);
  push.segments = static_cast<uint32_t>(nseg);
  if (shared) push.flags |= CALL_SHARED;
  record_experts(cmd, s, push, A, proj, false);
  record_copy(cmd, yb, 0, down, 0, x_bytes);
  vk::full_barrier(*device_, cmd, true);
  s.mark(cmd, "download");
  submit(s, (std::string("run_experts, ") + proj.label).c_str(), T);
  host_copy(y, down.mapped(), x_bytes);
}

bool VulkanBackend::forward_fused(const float *x, int64_t tokens, float *y, RoutePlan &plan, BackendScratch &base,
                                  const DeviceCall *device) const {
  const auto host_start = std::chrono::steady_clock::now();
  const RouterConfig &r = config_.router;
  if (device) return false;  // host memory only: there is no Vulkan device-pointer API
  if (host_routing_only_ || r.num_groups > 32) return false;  // route.comp keeps the kept groups in one 32-bit mask
  // Routing on the device repeats the host router's double arithmetic (so that both paths give the same bits): a
  // device without doubles routes on the host.
  if (!device_->float64()) return false;
  for (const ExpertSpec &e : config_.experts) {
    if (e.callback) return false;
  }
  const int64_t T = tokens, K = r.top_k, E = r.num_experts, H = config_.hidden, A = T * K;
  if (T <= 0) return false;
  auto &s = static_cast<VkScratch &>(base);
  check_call_size(T, K);
  const bool shared = config_.shared.width > 0;
  const int64_t R = A + (shared ? T : 0);  // rows if nothing is dropped: the most there can be
  int64_t hidden_max = 0;
  for (int64_t e = 0; e < E; ++e) hidden_max = std::max(hidden_max, padded_width(e));
  hidden_max = hidden_max * A + (shared ? padded_width(E) * T : 0);
  const RouteLayout layout(T, K, E);

  const VkDeviceSize x_bytes = static_cast<VkDeviceSize>(T * H) * 4;
  const VkDeviceSize route_offset = static_cast<VkDeviceSize>(round_up(static_cast<int64_t>(x_bytes), 256));
  const VkDeviceSize back_bytes = static_cast<VkDeviceSize>(layout.tok) * 4;
  Buffer &up = s.ensure(kUpload, x_bytes);
  Buffer &down = s.ensure(kDownload, route_offset + back_bytes);
  Buffer &xb = s.ensure(kX, x_bytes);
  Buffer &yb = s.ensure(kY, x_bytes);
  Buffer &rb = s.ensure(kRoute, static_cast<VkDeviceSize>(layout.total) * 4);
  s.ensure(kRows, static_cast<VkDeviceSize>(R * round_up(H, PAD)) * 4);
  s.ensure(kHidden, static_cast<VkDeviceSize>(hidden_max) * 4);
  s.ensure(kOut, static_cast<VkDeviceSize>(R * H) * 4);
  s.ensure(kLogits, static_cast<VkDeviceSize>(T * E) * 4);
  s.ensure(kProbs, static_cast<VkDeviceSize>(T * E) * 8);  // doubles

  Push push = base_push(T, K);
  const int64_t nseg = shared ? E + 1 : E;
  int64_t max_ip = PAD;
  for (int64_t seg = 0; seg < nseg; ++seg) max_ip = std::max(max_ip, padded_width(seg));
  // A segment holds at most T rows (a token picks an expert once); the counts themselves stay on the device.
  const Projection proj = projection(T <= MV_MAX_ROWS ? T : -1, max_ip);
  push.segments = static_cast<uint32_t>(nseg);
  // route_small writes every assignment's row; route + count + scan write ranks that gather turns into rows.
  const bool small = small_routing(T);
  push.flags |= (small ? 0u : CALL_FUSED) | (shared ? CALL_SHARED : 0u) | (proj.matvec ? CALL_MATVEC : 0u);
  if (r.capacity_factor > 0.0) {
    push.capacity = static_cast<int32_t>(
        std::ceil(static_cast<double>(T * K) * r.capacity_factor / static_cast<double>(E)));
  }
  push.up_grid_x = proj.up_x;
  push.down_grid_x = proj.down_x;
  push.row_tile = proj.row_tile;
  const std::string path = std::string("fused, ") + proj.label;
  using Clock = std::chrono::steady_clock;
  Clock::time_point t0 = Clock::now();
  // Straight into the upload staging buffer (write-combined memory: written once, in order, never read here).
  host_copy(up.mapped(), x, x_bytes);
  host_time(path.c_str(), "input to staging", t0);

  t0 = Clock::now();
  if (!s.reusable(T)) {  // else the commands recorded for the last call of T tokens (see VkScratch::reusable)
    VkCommandBuffer cmd = s.begin();
    record_copy(cmd, up, 0, xb, 0, x_bytes);
    vk::full_barrier(*device_, cmd);
    s.mark(cmd, "upload");
    record_router(cmd, s, push, T);
    if (small) {  // a decode step: routing, counting and offsets in one workgroup, one launch
      dispatch(cmd, s, "route_small", push, 1, 1, 1);
    } else {
      dispatch(cmd, s, "route", push, ceil_div(T, ROUTE_THREADS), 1, 1);
      dispatch(cmd, s, "count", push, static_cast<uint32_t>(E), 1, 1);
      dispatch(cmd, s, "scan", push, 1, 1, 1);
    }
    record_experts(cmd, s, push, A, proj, small);
    record_copy(cmd, yb, 0, down, 0, x_bytes);
    record_copy(cmd, rb, 0, down, route_offset, back_bytes);
    vk::full_barrier(*device_, cmd, true);
    s.mark(cmd, "download");
    s.recorded(T);
  }
  host_time(path.c_str(), "recording", t0);
  submit(s, path.c_str(), T);
  t0 = Clock::now();
  // Straight out of the read-back staging buffer (host-cached memory, Memory::Readback) into the caller's output.
  host_copy(y, down.mapped(), x_bytes);
  host_time(path.c_str(), "output from staging", t0);
  t0 = Clock::now();

  // The plan as build_route_plan() would have made it (Stats and the caller's routing buffers read it).
  const auto *route = reinterpret_cast<const int32_t *>(static_cast<const char *>(down.mapped()) + route_offset);
  plan.tokens = T;
  plan.top_k = K;
  plan.num_experts = E;
  plan.include_shared = true;
  plan.expert.resize(static_cast<size_t>(A));
  plan.weight.resize(static_cast<size_t>(A));
  plan.dropped.resize(static_cast<size_t>(A));
  plan.position.resize(static_cast<size_t>(std::max(A, E)));
  plan.counts.resize(static_cast<size_t>(E));
  plan.offsets.resize(static_cast<size_t>(E + 1));
  plan.order.resize(static_cast<size_t>(A));
  plan.callback_order.clear();  // the fused path never runs with callback experts
  plan.offsets[0] = 0;
  for (int64_t e = 0; e < E; ++e) {
    plan.counts[e] = route[layout.seg + e * SEG_STRIDE + SEG_COUNT];
    plan.offsets[e + 1] = plan.offsets[e] + plan.counts[e];
  }
  for (int64_t a = 0; a < A; ++a) {
    plan.expert[a] = route[layout.ids + a];
    std::memcpy(&plan.weight[a], &route[layout.w + a], 4);
    const int32_t row = route[layout.arow + a];
    plan.dropped[a] = static_cast<uint8_t>(row < 0 ? 1 : 0);
    plan.position[a] = row;
    if (row >= 0) plan.order[row] = a;
  }
  const int32_t *stats = route + layout.stats;
  float aux, z, top1;
  std::memcpy(&aux, &stats[STATS_AUX], 4);
  std::memcpy(&z, &stats[STATS_ZLOSS], 4);
  std::memcpy(&top1, &stats[STATS_TOP1], 4);
  plan.dropped_count = A - stats[STATS_KEPT];
  plan.aux_loss = aux;
  plan.z_loss = z;
  plan.top1_probability_sum = top1;
  host_time(path.c_str(), "plan from the device's routing", t0);
  profile_host(path.c_str(), T, host_start);
  return true;
}

}  // namespace

std::unique_ptr<Backend> make_vulkan_backend(const LayerConfig &config, LayerWeights &weights, int device) {
  return std::make_unique<VulkanBackend>(config, weights, device);
}

bool vulkan_usable(int device, std::string &why) {
  const std::shared_ptr<vk::Instance> instance = vk::Instance::get(&why);
  if (!instance) return false;
  const auto &devices = instance->devices();
  const int count = static_cast<int>(devices.size());
  if (device < 0) {
    if (instance->preferred_device(true) >= 0) return true;
    why = "vulkan: none of the " + std::to_string(count) + " Vulkan devices can run this backend (vulkan:0 " +
          devices[0].properties.deviceName + ": " + devices[0].unusable_reason + ")";
    return false;
  }
  if (device >= count) {
    why = "vulkan:" + std::to_string(device) + ": no such device (this machine has " + std::to_string(count) +
          " Vulkan device" + (count == 1 ? "" : "s") + ")";
    return false;
  }
  const vk::PhysicalDevice &d = devices[static_cast<size_t>(device)];
  if (!d.unusable_reason.empty()) {
    why = "vulkan:" + std::to_string(device) + " (" + d.properties.deviceName +
          ") cannot run this backend: " + d.unusable_reason;
    return false;
  }
  return true;
}

int vulkan_auto_device() {
  const std::shared_ptr<vk::Instance> instance = vk::Instance::get(nullptr);
  return instance ? instance->preferred_device(false) : -1;
}

std::string vulkan_device_description(int device) {
  std::string why;
  if (!vulkan_usable(device, why)) return "";
  const std::shared_ptr<vk::Instance> instance = vk::Instance::get(nullptr);
  const int index = device < 0 ? instance->preferred_device(true) : device;
  return "vulkan:" + std::to_string(index) + ": " + instance->devices()[static_cast<size_t>(index)].describe() +
         (instance->validation() ? " [validation layer on]" : "");
}

int vulkan_device_count() {
  const std::shared_ptr<vk::Instance> instance = vk::Instance::get(nullptr);
  return instance ? static_cast<int>(instance->devices().size()) : 0;
}

}  // namespace pimoe
