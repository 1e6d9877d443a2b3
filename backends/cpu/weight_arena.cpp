// SPDX-License-Identifier: MIT
#include "weight_arena.h"

#include <sys/mman.h>

#include "src/error.h"

namespace pimoe::cpu {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}

WeightArena::WeightArena(size_t bytes) : size_(slice_bytes(bytes)) {
  if (size_ == 0) return;
  // Over-map by a huge page so that the arena can start on a 2 MiB boundary, then give the slack back.
  const size_t span = size_ + kHugePage;
  void *p = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail(PIMOE_ERR_OUT_OF_MEMORY, "cannot map ", size_, " bytes for the layer's packed weights");
  const auto start = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > start) ::munmap(p, aligned - start);
  const uintptr_t end = start + span, kept_end = aligned + ((size_ + 4095) & ~size_t{4095});
  if (end > kept_end) ::munmap(reinterpret_cast<void *>(kept_end), end - kept_end);
  base_ = reinterpret_cast<uint8_t *>(aligned);
  mapped_ = kept_end - aligned;
#if defined(MADV_HUGEPAGE)
  // Whole huge pages only (see the header); a kernel without THP answers EINVAL, which changes nothing.
  const size_t whole = size_ / kHugePage * kHugePage;
  if (whole > 0) ::madvise(base_, whole, MADV_HUGEPAGE);
#endif
}

WeightArena::~WeightArena() {
  if (base_ != nullptr) ::munmap(base_, mapped_);
}

uint8_t *WeightArena::take(size_t bytes) {
  const size_t n = slice_bytes(bytes);
  if (base_ == nullptr || n > size_ - used_) return nullptr;
  uint8_t *p = base_ + used_;
  used_ += n;
  return p;
}

PanelBytes::PanelBytes(size_t bytes, WeightArena *arena) : size_(bytes) {
  if (bytes == 0) return;
  if (arena != nullptr) data_ = arena->take(bytes);
  if (data_ == nullptr) {
    heap_.assign(bytes, 0);
    data_ = heap_.data();
  }
}

}  // namespace pimoe::cpu
