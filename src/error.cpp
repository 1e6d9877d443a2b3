// SPDX-License-Identifier: MIT
#include "error.h"

#include <cstdio>

namespace pimoe {
namespace {
// One message per thread: a failed call on this thread must not be overwritten by another thread's call.
thread_local std::string t_last_error;
}  // namespace

std::string to_message_part(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

void set_thread_error(const std::string &message) {
  t_last_error = message;
}
void clear_thread_error() {
  t_last_error.clear();
}
const char *thread_error() {
  return t_last_error.c_str();
}

}  // namespace pimoe
