/* SPDX-License-Identifier: MIT */
// The per-call state of the Vulkan backend (BackendScratch): a command buffer, its fence and descriptor set, and the
// call's buffers by slot, grown on demand so that a steady stream of calls allocates nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include "shaders/layout.h"
#include "src/backend.h"
#include "vk_device.h"

namespace pimoe {

// Buffers of one call, by role. The bound ones match their binding in layout.h.
enum Slot {
  kX,           // the call's input [T, H], copied from kUpload once per call
  kY,           // the call's output
  kRoute,       // B_ROUTE's sections
  kRows,        // the gathered rows
  kHidden,      // the experts' hidden activations
  kOut,         // the experts' outputs before weighting
  kLogits,      // the router logits
  kProbs,       // the router scores of device routing (doubles)
  kXRows,       // run_rows: the input row of each row, bound at B_X in kX's place for that pass only
  kUpload,      // host-visible: the call's input as set_input wrote it
  kUploadStep,  // host-visible: what one step uploads besides the input (host routing, the attention router's input)
  kDownload,    // host-visible: what a step reads back
  kSlots
};

// The layer's buffers that every descriptor set binds next to the call's own.
struct LayerBindings {
  const vk::Buffer *meta = nullptr, *small = nullptr, *router = nullptr;
  const vk::Buffer *arena[MAX_ARENAS] = {};  // every entry valid (unused ones repeat a buffer)
};

class VkScratch final : public BackendScratch {
 public:
  static constexpr uint32_t kMaxMarks = 32;
  // profile: PIMOE_VULKAN_PROFILE (timestamps after each step, where the queue has them).
  VkScratch(vk::Device &device, const LayerBindings &layer, bool profile);
  ~VkScratch() override;
  VkScratch(const VkScratch &) = delete;
  VkScratch &operator=(const VkScratch &) = delete;

  size_t bytes() const override;

  // Makes buffer `slot` hold at least `bytes` (contents are not kept when it grows). Call before begin(): a
  // reallocation rewrites the descriptor set, which must not change under a recorded command buffer.
  vk::Buffer &ensure(Slot slot, VkDeviceSize bytes);
  vk::Buffer &buffer(Slot slot) { return buffers_[slot]; }
  // Binds `slot` (kX or kXRows) at B_X; before begin(), like ensure().
  void bind_input(Slot slot);

  // The call's input: set_input wrote it into kUpload for `tokens` tokens. The first command buffer of the call
  // records the copy into kX (take_input_upload() says whether this one must); a step that overwrites kX
  // (input_overwritten()) makes the next one copy it again.
  void input_staged(int64_t tokens) {
    tokens_ = tokens;
    input_pending_ = true;
  }
  int64_t tokens() const { return tokens_; }
  bool take_input_upload() { return std::exchange(input_pending_, false); }
  void input_overwritten() { input_pending_ = true; }
  // When set_input began: PIMOE_VULKAN_PROFILE's whole-call time of a device-routed call starts there.
  std::chrono::steady_clock::time_point started;
  // run_rows' copies of the rows' inputs out of kX, kept so that a steady stream of calls allocates nothing.
  std::vector<VkBufferCopy> row_copies;

  VkCommandBuffer begin();
  void submit();  // ends the recording (if any), submits and waits

  // Re-use of the last recorded command buffer: a device-routed call of the same tokens records the very same
  // commands (its push constants and grids depend on the layer and the token count only) as long as no buffer was
  // reallocated or rebound, so a decode loop records once and then only submits. reusable() says whether the
  // recording made for `tokens` is still valid; recorded() marks the one just made. begin() forgets it.
  bool reusable(int64_t tokens) const { return recorded_tokens_ == tokens && recorded_generation_ == generation_; }
  void recorded(int64_t tokens) {
    recorded_tokens_ = tokens;
    recorded_generation_ = generation_;
  }

  // PIMOE_VULKAN_PROFILE: a GPU timestamp after each step of the command buffer, named by `label` (a literal or a
  // pipeline name that outlives the call); after submit(), marks() lists (label, nanoseconds since the last mark).
  void mark(VkCommandBuffer cmd, const char *label);
  std::vector<std::pair<const char *, double>> marks();

 private:
  void write_binding(uint32_t binding, Slot slot);
  void release();

  vk::Device &device_;
  VkCommandPool pool_ = VK_NULL_HANDLE;
  VkCommandBuffer cmd_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  VkDescriptorPool descriptor_pool_ = VK_NULL_HANDLE;
  VkDescriptorSet set_ = VK_NULL_HANDLE;
  vk::Buffer buffers_[kSlots];
  Slot input_binding_ = kX;  // the slot bound at B_X
  uint64_t generation_ = 0;  // counts descriptor set writes after creation (reallocations, rebinding of B_X)
  int64_t recorded_tokens_ = -1;
  uint64_t recorded_generation_ = 0;
  bool recording_ = false;
  int64_t tokens_ = 0;
  bool input_pending_ = false;
  VkQueryPool queries_ = VK_NULL_HANDLE;
  std::vector<const char *> labels_;
};

}  // namespace pimoe
