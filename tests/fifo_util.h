/* SPDX-License-Identifier: MIT */
// Shared by the loaders' tests (test_format, test_hf_import): a FIFO in place of a file, and a call that must fail on
// it without blocking. A call that blocks in open() is unblocked (the FIFO's write end opened and closed) so that the
// test fails instead of hanging.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>

namespace pimoe_fifo_test {

// Replaces `path` (if any) with a FIFO; false when the file system has none.
inline bool make_fifo(const std::string &path) {
  ::unlink(path.c_str());
  return ::mkfifo(path.c_str(), 0600) == 0;
}

// Runs `call` on another thread; it must return within 10 s. Returns what it returned.
template <typename Call>
auto returns_without_blocking(const std::string &fifo, Call call) {
  auto result = std::async(std::launch::async, call);
  if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "the call blocked on the FIFO '" << fifo << "'";
    while (result.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
      const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // lets a reader blocked in open() go on
      if (fd >= 0) ::close(fd);
    }
  }
  return result.get();
}

}  // namespace pimoe_fifo_test
