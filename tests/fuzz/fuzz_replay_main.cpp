// SPDX-License-Identifier: MIT
// The corpus replay of a fuzz target in the normal build (ctest fuzz_replay_<target>, any compiler, any sanitizer
// of the suite): runs LLVMFuzzerTestOneInput once on every file of the folders (or files) given, as libFuzzer does
// with -runs=0. A target reports a finding by aborting; an empty or missing folder fails the test, so that a moved
// corpus cannot turn the replay into a test of nothing.
//   usage: fuzz_replay_<target> DIR_OR_FILE...
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

namespace {

std::vector<std::string> files_of(const std::string &path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return {};
  if (!S_ISDIR(info.st_mode)) return {path};
  std::vector<std::string> out;
  DIR *d = ::opendir(path.c_str());
  if (!d) return out;
  while (const dirent *entry = ::readdir(d)) {
    const std::string name = entry->d_name;
    if (name[0] != '.') out.push_back(path + "/" + name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());  // a fixed order: a finding reproduces with the same history
  return out;
}

}  // namespace

int main(int argc, char **argv) {
  size_t replayed = 0;
  for (int i = 1; i < argc; ++i) {
    const std::vector<std::string> files = files_of(argv[i]);
    if (files.empty()) {
      std::fprintf(stderr, "FAIL: '%s' holds no corpus files\n", argv[i]);
      return 1;
    }
    for (const std::string &file : files) {
      std::ifstream in(file, std::ios::binary);
      const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::fprintf(stderr, "replay %s (%zu bytes)\n", file.c_str(), bytes.size());
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
      ++replayed;
    }
  }
  std::printf("replayed %zu inputs\n", replayed);
  return replayed > 0 ? 0 : 1;
}
