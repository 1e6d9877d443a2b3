// SPDX-License-Identifier: MIT
#include "formats/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "error.h"

namespace pimoe {
namespace {

struct FileCloser {
  void operator()(std::FILE *f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

// Removes the temporary file unless the write completed and it was renamed into place.
class TemporaryFile {
 public:
  // Created with open(O_CREAT | O_EXCL, 0666) under a fresh name, not mkstemp(): mkstemp's files are 0600 whatever the
  // umask, and the saved file must get the mode any new file of the caller's gets (0644 under umask 022). The kernel
  // applies the umask (and a default ACL), so it is never read or changed here: umask() is process-wide.
  explicit TemporaryFile(const std::string &target) {
    std::random_device entropy;
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
      char suffix[16];
      std::snprintf(suffix, sizeof suffix, ".tmp-%08x", static_cast<unsigned>(entropy()));
      name_ = target + suffix;
      fd = ::open(name_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) fail(PIMOE_ERR_IO, "cannot create a file next to '", target, "': ", std::string(std::strerror(errno)));
    file_.reset(::fdopen(fd, "wb"));
    if (!file_) {
      ::close(fd);
      ::unlink(name_.c_str());
      fail(PIMOE_ERR_IO, "cannot open '", name_, "' for writing: ", std::string(std::strerror(errno)));
    }
  }
  ~TemporaryFile() {
    file_.reset();
    if (!committed_) ::unlink(name_.c_str());
  }
  TemporaryFile(const TemporaryFile &) = delete;
  TemporaryFile &operator=(const TemporaryFile &) = delete;

  void write(const std::string &target, const void *bytes, size_t size) {
    if (size && std::fwrite(bytes, 1, size, file_.get()) != size) {
      fail(PIMOE_ERR_IO, "cannot write '", target, "': ", std::string(std::strerror(errno)));
    }
  }
  void commit(const std::string &target) {
    std::FILE *f = file_.release();
    const bool flushed = std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
    const int flush_errno = errno;
    if (std::fclose(f) != 0 || !flushed) {
      fail(PIMOE_ERR_IO, "cannot write '", target, "': ", std::string(std::strerror(flushed ? errno : flush_errno)));
    }
    if (std::rename(name_.c_str(), target.c_str()) != 0) {
      fail(PIMOE_ERR_IO, "cannot rename '", name_, "' to '", target, "': ", std::string(std::strerror(errno)));
    }
    committed_ = true;
  }

 private:
  std::string name_;
  FilePtr file_;
  bool committed_ = false;
};

uint64_t byte_size(const TensorToWrite &t) {
  uint64_t count = 1;
  for (int64_t d : t.shape) count *= static_cast<uint64_t>(d);
  return count * dtype_size(t.dtype);
}

}  // namespace

void write_safetensors(const std::string &path, const std::map<std::string, std::string> &metadata,
                       const std::vector<TensorToWrite> &tensors) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorToWrite &t : tensors) {
    const uint64_t bytes = byte_size(t);
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  // Data aligned to 8 bytes in the file (so mapped fp32 data is aligned), as the reference writer pads.
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');

  TemporaryFile out(path);
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  out.write(path, length, sizeof length);
  out.write(path, text.data(), text.size());
  std::vector<uint64_t> buffer;  // 8-byte words: the fill writes any element type at an aligned address
  for (const TensorToWrite &t : tensors) {
    const uint64_t bytes = byte_size(t);
    buffer.assign(static_cast<size_t>((bytes + 7) / 8), 0);
    t.fill(buffer.data());
    out.write(path, buffer.data(), static_cast<size_t>(bytes));
  }
  out.commit(path);
}

}  // namespace pimoe
