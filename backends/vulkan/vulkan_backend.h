/* SPDX-License-Identifier: MIT */
// The Vulkan compute backend: expert and router weights in device-local memory (fp32, bf16 or fp16), each step of a
// call as one command buffer (gather, grouped GEMMs with fused activation, weighted combine) and, for layers whose
// routing the device can do, routing and per-expert counting on the device too (route_and_run).
//
// Its files: vulkan_backend.cpp (the backend's choices and the steps of a call), vulkan_recording.cpp (push
// constants, kernel choice, dispatches), vulkan_weights.cpp (weights on the device), vulkan_scratch.{h,cpp} (per-call
// state), vulkan_profile.{h,cpp} (PIMOE_VULKAN_PROFILE), vulkan_family.cpp (devices, for the registry).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "call_layout.h"
#include "coop_tiles.h"
#include "src/backend.h"
#include "src/host_parallel.h"
#include "vk_device.h"
#include "vulkan_profile.h"
#include "vulkan_scratch.h"

namespace pimoe {

// How the kernels hold one weight_dtype: the shader variants' suffix (vulkan.cmake builds matmul_up_<suffix>, ...)
// and the elements a 16-byte word of a row holds.
struct VulkanWeightType {
  WeightDtype dtype;
  const char *variant;
  int64_t per_word;  // 4 fp32, 8 bf16/fp16, 16 int8/fp8 codes, 32 int4/mxfp4 codes
  bool compact;      // codes with scales (compact_codes.glsl), kept in the file's layout
};
// The row of `dtype` in the table (vulkan_weights.cpp); PIMOE_ERR_INTERNAL for Auto.
const VulkanWeightType &vulkan_weight_type(WeightDtype dtype);

// Where one weight matrix (nn.Linear layout [rows, cols]) lives: rows padded to PAD elements (a compact format's to
// whole 16-byte words of codes), in 16-byte words; a compact matrix's scales and zero points follow its codes.
struct Placement {
  uint32_t arena = 0;     // index into the arenas, or kRouterArena for the router buffer
  uint64_t offset = 0;    // first word
  int64_t rows = 0, cols = 0;
  int64_t stride = 0;     // words per row
  bool fp32 = true;       // the router is always fp32; expert matrices follow weight_dtype
  WeightFormat format;    // compact formats: the format, and where its scales (and zero points) start
  uint64_t scale_offset = 0, zero_offset = 0;  // first words
  size_t scale_bytes = 0, zero_bytes = 0;
};
constexpr uint32_t kRouterArena = 0xffffffffu;

class Uploader;

class VulkanBackend final : public Backend {
 public:
  // device_index: N of "vulkan:N", or -1 for the preferred device.
  VulkanBackend(const LayerConfig &config, LayerWeights &weights, int device_index);
  ~VulkanBackend() override;

  const char *name() const override { return "vulkan"; }
  std::string device_description() const override;
  std::unique_ptr<BackendScratch> make_scratch() const override;

  bool holds_weight(const NamedTensor &t) const override { return held_.count(t.data) > 0; }
  void read_weight(const NamedTensor &t, float *out) const override;
  bool read_compact_weight(const NamedTensor &t, CompactMatrix &out) const override;
  size_t weight_bytes() const override { return static_cast<size_t>(device_bytes_); }

  bool routes_on_device() const override { return routes_on_device_; }

  void set_input(const float *x, int64_t tokens, BackendScratch &scratch, const DeviceCall *device) const override;
  void router_logits(const float *router_input, float *logits, BackendScratch &scratch) const override;
  void run_experts(const RoutePlan &plan, float *y, BackendScratch &scratch) const override;
  void run_rows(const ExpertRows &rows, float *out, BackendScratch &scratch) const override;
  void run_shared(float *y, BackendScratch &scratch) const override;
  void route_and_run(float *y, RouteResult &route, BackendScratch &scratch) const override;

 private:
  const ExpertSpec &spec(int64_t e) const { return config_.experts[static_cast<size_t>(e)]; }
  int64_t segments() const { return config_.router.num_experts + 1; }  // the shared expert's slot always exists
  int64_t padded_width(int64_t s) const {  // Ip of segment s
    return s == config_.router.num_experts ? round_up(config_.shared.width, PAD)
                                           : round_up(spec(s).intermediate, PAD);
  }

  // ---- Weights (vulkan_weights.cpp).
  void upload_weights(LayerWeights &weights);
  // Packs the matrices into arenas (placements only); returns the bytes of each arena.
  std::vector<VkDeviceSize> place_matrices(LayerWeights &weights);
  void write_matrix(Uploader &up, const Placement &p, const std::vector<float> &w) const;
  void write_compact(Uploader &up, const Placement &p, const CompactMatrix &m) const;
  // Words of a weight row of `cols` elements in the layer's type.
  int64_t row_words(int64_t cols) const {
    return wtype_.compact ? (cols + wtype_.per_word - 1) / wtype_.per_word : round_up(cols, PAD) / wtype_.per_word;
  }
  // The layer's buffers, as every scratch's descriptor set binds them.
  LayerBindings layer_bindings() const;

  // ---- Recording (vulkan_recording.cpp).
  Push base_push(int64_t tokens, int64_t slots) const;
  void dispatch(VkCommandBuffer cmd, VkScratch &s, const char *pipeline, Push &push, uint32_t x, uint32_t y,
                uint32_t z) const;
  void dispatch_flat(VkCommandBuffer cmd, VkScratch &s, const char *pipeline, Push &push, int64_t groups) const;
  void dispatch_indirect(VkCommandBuffer cmd, VkScratch &s, const char *pipeline, Push &push,
                         VkDeviceSize offset) const;
  void record_copy(VkCommandBuffer cmd, const vk::Buffer &src, VkDeviceSize src_offset, const vk::Buffer &dst,
                   VkDeviceSize dst_offset, VkDeviceSize bytes) const;
  // The kernels of the two projections for a call, and their grids' x extent and row tile. up_direct: the
  // small-row up projection that reads its rows from x itself (no gather; route_small's row tokens needed), or null
  // where the layer needs gather (pre-norm experts, H not a multiple of 4) or the kernels are not the small-row ones.
  struct Projection {
    const char *up, *down;
    bool matvec;
    uint32_t up_x, down_x, row_tile;
    const char *up_direct;
    const char *label;   // for the profile: "small-row kernels", "small tiles", "large tiles", "tensor cores"
    const char *gather;  // "gather", or "gather_h" where the up projection reads fp16 rows
  };
  // max_rows: the largest segment's rows when the call has at most MV_MAX_ROWS tokens, else -1.
  Projection projection(int64_t max_rows, int64_t max_ip) const;
  // gather -> up -> down -> combine, with the grid sizes in B_ROUTE's disp section. direct: route_small wrote the
  // rows' tokens and p.up_direct exists: no gather pass.
  void record_experts(VkCommandBuffer cmd, VkScratch &s, Push &push, int64_t assignments, const Projection &p,
                      bool direct) const;
  // logits = x * router^T: the small-row kernel for calls of few tokens (as the projections), else the tiled GEMM.
  void record_router(VkCommandBuffer cmd, VkScratch &s, Push &push, int64_t tokens) const;
  // Records the copy of the call's input from the staging buffer into kX when this is the call's first command
  // buffer (or a step overwrote kX since).
  void record_input_upload(VkCommandBuffer cmd, VkScratch &s) const;
  // Whether route_small serves a device-routed call of `tokens` tokens (layout.h's RS_* limits).
  bool small_routing(int64_t tokens) const;
  void check_call_size(int64_t tokens, int64_t slots) const;
  // Submits the call's command buffer; with PIMOE_VULKAN_PROFILE, adds its GPU step times to the profile.
  void submit(VkScratch &s, const std::string &path, int64_t tokens) const;
  // memcpy between the caller's memory and a staging buffer, split over host_parallel_ when it is large: one thread
  // moves about 5-10 GB/s, so a 4096-token call's input and output (32-64 MiB each way) cost milliseconds on one.
  void host_copy(void *dst, const void *src, size_t bytes) const { host_parallel_.copy(dst, src, bytes); }

  // ---- Passes routed on the host (vulkan_backend.cpp): run_experts, run_rows and run_shared.
  struct HostPass {
    int64_t tokens = 0, slots = 0;    // output rows, and assignments a = t * slots + j of each
    const int64_t *offsets = nullptr;  // [E + 1]: expert e's rows are rows offsets[e] .. offsets[e+1]; null: none
    bool shared = false;              // the shared expert's rows follow, one per output row
    const int64_t *row_token = nullptr;  // run_rows: the input of row i is x[row_token[i]] (B_X bound to kXRows)
    const char *path = "";            // for the profile
  };
  // The upload staging space for the pass's routing sections; the caller writes ids, w and arow per assignment.
  int32_t *stage_route(VkScratch &s, const RouteLayout &layout) const;
  // Writes the segments and grid sizes, records and submits the pass, and copies its [tokens, H] output to `out`.
  void run_host_pass(VkScratch &s, const HostPass &pass, int32_t *route, float *out) const;

  const LayerConfig &config_;
  std::shared_ptr<vk::Device> device_;
  const WeightDtype dtype_;
  const VulkanWeightType &wtype_;
  const char *variant_;
  // Shader variant names of the projections for this model's weight type (vulkan.cmake lists them).
  const std::string up_mv_ = std::string("matvec_up_") + variant_, down_mv_ = std::string("matvec_down_") + variant_;
  const std::string upx_mv_ = std::string("matvec_upx_") + variant_;
  const std::string up_mm_ = std::string("matmul_up_") + variant_, down_mm_ = std::string("matmul_down_") + variant_;
  const std::string up_large_ = up_mm_ + "_large", down_large_ = down_mm_ + "_large";
  bool host_routing_only_ = false;  // PIMOE_VULKAN_ROUTING=host
  bool routes_on_device_ = false;   // decided once, in the constructor
  bool any_pre_norm_ = false;  // some expert normalises its input: gather does it, so decode steps keep gather
  // PIMOE_VULKAN_TILES=small|large: always the FMA tiles of that size (tests run every case through each); fma: the
  // default choice without tensor cores; one of kCoopTiles' choices: those tensor-core kernels for every call where
  // they can run, else the small FMA tiles. By default the small-row kernels serve calls of at most MV_MAX_ROWS
  // tokens, the tensor-core kernels of kCoopTiles[0] (where they can run) or the small FMA tiles the rest.
  enum class Tiles { Auto, Small, Large, Fma, Coopmat } tiles_ = Tiles::Auto;
  const CoopTiles *coop_ = nullptr;  // the tensor-core tiles this model uses, null for none
  std::string coop_up_, coop_down_;  // their shader variants
  std::unique_ptr<VulkanProfile> profile_;

  std::vector<Placement> expert_places_;  // per segment: gate, up, down (3 each)
  Placement router_place_;
  std::unordered_map<const std::vector<float> *, Placement> held_;
  std::vector<uint32_t> meta_host_;
  uint32_t bias_off_ = META_NONE, score_off_ = META_NONE;
  int64_t max_ip_ = PAD;
  VkDeviceSize device_bytes_ = 0;

  std::vector<vk::Buffer> arenas_;
  vk::Buffer router_, meta_, small_;
  // Threads for the large host copies (the calling thread is one of them); started on the first large one.
  HostParallel host_parallel_{host_pass_threads(config_.threads, 8)};  // staging copies: 8 threads at most
};

// The family the backend registry finds this backend through (vulkan_family.cpp).
const BackendFamily &vulkan_backend_family();

}  // namespace pimoe
