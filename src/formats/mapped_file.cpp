// SPDX-License-Identifier: MIT
#include "formats/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "error.h"

namespace pimoe {
namespace {

// Closes the descriptor on every path out of the constructor; the mapping stays valid after close().
struct FileDescriptor {
  int fd;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string path_error_text(int error) {
  switch (error) {
    case ENOENT:
      return "it does not exist";
    case ELOOP:
      return "symbolic link loop (too many levels of symbolic links)";
    default:
      return std::strerror(error);
  }
}

int open_regular_file(const std::string &path, size_t &size) {
  // O_NONBLOCK: open() of a FIFO without a writer would otherwise wait forever; regular files ignore the flag.
  FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (file.fd < 0) fail(PIMOE_ERR_IO, "cannot open '", path, "': ", path_error_text(errno));
  struct stat info {};
  if (::fstat(file.fd, &info) != 0) fail(PIMOE_ERR_IO, "cannot stat '", path, "': ", std::string(std::strerror(errno)));
  if (S_ISDIR(info.st_mode)) fail(PIMOE_ERR_IO, "'", path, "' is a directory, not a file");
  if (!S_ISREG(info.st_mode)) fail(PIMOE_ERR_IO, "'", path, "' is not a regular file");
  size = info.st_size > 0 ? static_cast<size_t>(info.st_size) : 0;
  return std::exchange(file.fd, -1);
}

std::string read_text_file(const std::string &path, size_t max_bytes) {
  size_t size = 0;
  FileDescriptor file{open_regular_file(path, size)};
  if (size > max_bytes) {
    fail(PIMOE_ERR_FORMAT, "file '", path, "' is ", size, " bytes, more than the limit of ", max_bytes,
         " bytes for a file read whole");
  }
  std::string text(size, '\0');
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(file.fd, &text[done], size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(PIMOE_ERR_IO, "cannot read '", path, "': ", std::string(std::strerror(errno)));
    if (n == 0) break;  // the file shrank since fstat()
    done += static_cast<size_t>(n);
  }
  text.resize(done);
  return text;
}

MappedFile::MappedFile(const std::string &path) : path_(path) {
  size_t size = 0;
  FileDescriptor file{open_regular_file(path, size)};
  if (size == 0) return;  // mmap of 0 bytes is an error; an empty file is the parser's to reject
  size_ = size;
  void *mapped = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, file.fd, 0);
  if (mapped == MAP_FAILED) {
    size_ = 0;
    fail(PIMOE_ERR_IO, "cannot map '", path, "': ", std::string(std::strerror(errno)));
  }
  data_ = static_cast<const uint8_t *>(mapped);
}

MappedFile::MappedFile(MappedFile &&other) noexcept
    : path_(std::move(other.path_)), data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t *>(data_), size_);
}

void release_mapped_pages(const void *begin, size_t length) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto first = (reinterpret_cast<uintptr_t>(begin) + page - 1) / page * page;  // whole pages inside only
  const auto last = (reinterpret_cast<uintptr_t>(begin) + length) / page * page;
  // Advice only: a failure costs memory, never correctness, so it is not reported.
  if (last > first) ::madvise(reinterpret_cast<void *>(first), last - first, MADV_DONTNEED);
}

}  // namespace pimoe
