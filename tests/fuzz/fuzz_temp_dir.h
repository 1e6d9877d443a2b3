// SPDX-License-Identifier: MIT
// A private folder for the files a fuzz target writes (checkpoints, saved models): one per process, so that
// libFuzzer's -fork/-jobs workers never share files, and removed with its contents when the process exits.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace pimoe_fuzz {

class TempDir {
 public:
  TempDir() {
    // $TMPDIR, else /dev/shm where it exists: pimoe_save fsyncs every file it writes, which on a disk costs more
    // than the rest of an input (in memory it costs nothing).
    const char *base = std::getenv("TMPDIR");
    const std::string folder = base && *base ? base : ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    std::string pattern = folder + "/pimoe-fuzz-XXXXXX";
    if (!::mkdtemp(pattern.data())) {
      std::perror("pimoe fuzz: mkdtemp");
      std::abort();
    }
    path_ = pattern;
  }
  ~TempDir() {
    clear();
    ::rmdir(path_.c_str());
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;

  const std::string &path() const { return path_; }

  // Removes every file in the folder (the targets write no subfolders).
  void clear() const {
    DIR *d = ::opendir(path_.c_str());
    if (!d) return;
    while (const dirent *entry = ::readdir(d)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") ::unlink((path_ + "/" + name).c_str());
    }
    ::closedir(d);
  }

 private:
  std::string path_;
};

// The process's folder, made on first use (the one piece of process-wide state of a target: a test fixture).
inline const TempDir &temp_dir() {
  static const TempDir dir;
  return dir;
}

}  // namespace pimoe_fuzz
