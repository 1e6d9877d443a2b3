// SPDX-License-Identifier: MIT
#include "error.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

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

void assign_without_throwing(std::string &text, const char *message) noexcept {
  try {
    text.assign(message);
  } catch (...) {
    text.assign(message, std::min(std::strlen(message), text.capacity()));  // within capacity: no allocation
  }
}

void set_thread_error(const char *message) noexcept {
  assign_without_throwing(t_last_error, message);
}
void clear_thread_error() noexcept {
  t_last_error.clear();
}
const char *thread_error() noexcept {
  return t_last_error.c_str();
}

}  // namespace pimoe
