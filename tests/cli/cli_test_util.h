/* SPDX-License-Identifier: MIT */
// Running the installed-to-be `pimoe` program from a test: its exit status, stdout and stderr, and a scratch folder.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace cli_test {

struct Result {
  int status = -1;  // the exit status; -1 when it did not exit normally
  std::string out, err;
};

inline std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A fresh folder for one test's files, removed with the object.
class Scratch {
 public:
  Scratch() {
    const auto *info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "." + info->name();
    for (char &c : name) {
      if (c == '/') c = '_';
    }
    dir_ = std::filesystem::temp_directory_path() / ("pimoe-cli-" + std::to_string(::getpid()) + "-" + name);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~Scratch() { std::filesystem::remove_all(dir_); }
  std::string path(const std::string &name) const { return (dir_ / name).string(); }

 private:
  std::filesystem::path dir_;
};

inline std::string quote(const std::string &arg) {
  std::string q = "'";
  for (char c : arg) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs PIMOE_CLI_PATH with `args` (each quoted for the shell), stderr to a file of `scratch`.
inline Result run_pimoe(const Scratch &scratch, const std::vector<std::string> &args) {
  std::string command = quote(PIMOE_CLI_PATH);
  for (const std::string &a : args) command += " " + quote(a);
  const std::string err_path = scratch.path("stderr.txt");
  command += " 2>" + quote(err_path);
  Result r;
  FILE *pipe = ::popen(command.c_str(), "r");
  if (!pipe) return r;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) r.out.append(buffer, n);
  const int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = read_file(err_path);
  return r;
}

}  // namespace cli_test
