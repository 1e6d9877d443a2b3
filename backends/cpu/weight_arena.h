/* SPDX-License-Identifier: MIT */
// The bytes a CPU layer's packed weights live in: one anonymous mapping per layer, carved into 64-byte aligned slices
// (one per buffer of each projection), with its whole 2 MiB pages advised as transparent huge pages.
//
// Why: decode with cold weights streams each touched expert's bytes from DRAM once. In 4 KiB pages that stream takes a
// TLB miss (a page walk) every 4 KiB and the hardware prefetchers stop at every page boundary; in 2 MiB pages neither
// happens. Fine-grained layers (128 experts of 768: 0.8 MB per int4 matrix) are too small for a per-matrix huge page,
// so the layer's matrices share one mapping. Only the whole 2 MiB pages inside it are advised: the tail stays in
// 4 KiB pages, so the resident memory is the weights' bytes rounded to 4 KiB, as before. Where the kernel does not
// offer transparent huge pages (or offers them to no one), the mapping is plain memory and nothing else changes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace pimoe::cpu {

class WeightArena {
 public:
  // A mapping of `bytes` (rounded up to the slices' alignment), zero-filled on first touch. Throws PIMOE_ERR_OUT_OF_MEMORY.
  explicit WeightArena(size_t bytes);
  ~WeightArena();
  WeightArena(const WeightArena &) = delete;
  WeightArena &operator=(const WeightArena &) = delete;

  static constexpr size_t kAlignment = 64;  // a cache line: every slice starts on one
  static size_t slice_bytes(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

  // The next `bytes` of the mapping (zeros), or nullptr when fewer than slice_bytes(bytes) are left.
  uint8_t *take(size_t bytes);
  size_t size() const { return size_; }
  size_t used() const { return used_; }

 private:
  uint8_t *base_ = nullptr;  // owned: the mapping, unmapped by the destructor
  size_t size_ = 0, mapped_ = 0, used_ = 0;
};

// A buffer of packed weights: a slice of a WeightArena (which must outlive it), or, without an arena, its own heap
// bytes (tests and benchmarks that pack one matrix). Moves keep the bytes where they are.
class PanelBytes {
 public:
  PanelBytes() = default;
  // `bytes` zeros, from `arena` when it is given and has room, else from the heap.
  PanelBytes(size_t bytes, WeightArena *arena);
  PanelBytes(PanelBytes &&o) noexcept { *this = std::move(o); }
  PanelBytes &operator=(PanelBytes &&o) noexcept {
    heap_ = std::move(o.heap_);  // a vector's move keeps its bytes in place, so data_ stays valid
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
    return *this;
  }

  uint8_t *data() { return data_; }
  const uint8_t *data() const { return data_; }
  size_t size() const { return size_; }

 private:
  std::vector<uint8_t> heap_;
  uint8_t *data_ = nullptr;  // into heap_ or the arena
  size_t size_ = 0;
};

}  // namespace pimoe::cpu
