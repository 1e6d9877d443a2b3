/* SPDX-License-Identifier: MIT */
// Internal error type and the thread-local last-error message behind pimoe_last_error().
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

#include "pimoe/pimoe.h"

namespace pimoe {

// Thrown anywhere inside the library; converted to a pimoe_status at the C boundary (api.cpp).
class Error : public std::runtime_error {
 public:
  Error(pimoe_status status, std::string message) : std::runtime_error(std::move(message)), status_(status) {}
  pimoe_status status() const noexcept { return status_; }

 private:
  pimoe_status status_;
};

inline std::string to_message_part(const std::string &s) {
  return s;
}
inline std::string to_message_part(const char *s) {
  return s ? s : "(null)";
}
std::string to_message_part(double value);
template <typename T>
std::string to_message_part(const T &value) {
  return std::to_string(value);
}

// Builds a message from pieces: fail(PIMOE_ERR_INVALID_ARGUMENT, "top_k (", k, ") exceeds ...").
template <typename... Parts>
[[noreturn]] void fail(pimoe_status status, const Parts &...parts) {
  std::string message;
  ((message += to_message_part(parts)), ...);
  throw Error(status, std::move(message));
}

// The calling thread's last error message ("" after a success). Never throws: reporting must work when memory is
// exhausted, so a message that cannot be copied is kept cut to the bytes the thread's buffer already has (at least
// the 15 of a short string: "out of memory" always fits).
void set_thread_error(const char *message) noexcept;
inline void set_thread_error(const std::string &message) noexcept { set_thread_error(message.c_str()); }
void clear_thread_error() noexcept;
const char *thread_error() noexcept;

// Copies message into text without throwing: when the copy cannot be allocated, text keeps the message's first
// text.capacity() bytes (a string's existing buffer is reused without allocating).
void assign_without_throwing(std::string &text, const char *message) noexcept;

}  // namespace pimoe
