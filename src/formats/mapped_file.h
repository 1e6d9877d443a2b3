/* SPDX-License-Identifier: MIT */
// A read-only memory map of a whole regular file (RAII: unmapped and closed on destruction).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pimoe {

class MappedFile {
 public:
  // Maps `path` read-only. Throws PIMOE_ERR_IO naming the file when it does not exist, is not a regular file (a
  // directory, a FIFO...) or cannot be read. An empty file maps to data() == nullptr, size() == 0.
  explicit MappedFile(const std::string &path);
  ~MappedFile();
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;
  MappedFile(MappedFile &&other) noexcept;
  MappedFile &operator=(MappedFile &&other) = delete;

  const uint8_t *data() const { return data_; }
  size_t size() const { return size_; }
  const std::string &path() const { return path_; }

 private:
  std::string path_;
  const uint8_t *data_ = nullptr;
  size_t size_ = 0;
};

// Why a path could not be opened or stat()ed, from errno: "it does not exist" (ENOENT), "symbolic link loop (...)"
// (ELOOP: a link that points back at itself must not read as a missing file), else strerror's text.
std::string path_error_text(int error);

// Opens `path` read-only and non-blocking (a FIFO or a device never blocks open()) and checks with fstat() that it
// is a regular file before anything is read. Throws PIMOE_ERR_IO naming the file when it does not exist, cannot be
// opened (a symlink loop, no permission), is a directory or is not a regular file. Returns the descriptor (the
// caller closes it) and its size.
int open_regular_file(const std::string &path, size_t &size);

// The largest JSON file read whole (config.json, a shard index): 64 MiB, far above any real one (DeepSeek-V3's index
// is ~9 MB), so that a huge or sparse file fails before it is read.
constexpr size_t kMaxJsonFileBytes = size_t{64} << 20;

// The whole contents of the regular file `path` (opened by open_regular_file), for small text files such as
// config.json and a shard index. A file larger than `max_bytes` is PIMOE_ERR_FORMAT naming the file, its size and
// the limit, before anything is read.
std::string read_text_file(const std::string &path, size_t max_bytes);

// Tells the kernel that the mapped pages inside [begin, begin + length) will not be read again soon: for a
// read-only file mapping they leave the process's resident set and come back from the file if touched. Loaders call
// it after copying a tensor, so loading a file never holds the whole file and the whole model at once.
// Only for memory inside a MappedFile.
void release_mapped_pages(const void *begin, size_t length);

}  // namespace pimoe
