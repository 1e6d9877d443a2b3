/* SPDX-License-Identifier: MIT */
// The one place where C++ errors become C status codes: every exported function runs its body through guarded().
#pragma once

#include <cstdio>
#include <cstring>
#include <new>

#include "error.h"
#include "model.h"

namespace pimoe {

// Records a failure on the thread and the model. Allocates nothing that can fail the report (it runs in the catch
// handlers of a noexcept function, where a throw would terminate the process; memory may be exhausted right then).
inline pimoe_status report(const pimoe_model *model, pimoe_status status, const char *message) noexcept {
  set_thread_error(message);
  if (model) const_cast<pimoe_model *>(model)->model.record_error(message);
  return status;
}

// Clears the thread's last error, runs body, and converts anything it throws into a status and a message.
template <typename Body>
pimoe_status guarded(const pimoe_model *model, Body &&body) noexcept {
  clear_thread_error();
  try {
    body();
    return PIMOE_OK;
  } catch (const Error &e) {
    return report(model, e.status(), e.what());
  } catch (const std::bad_alloc &) {
    return report(model, PIMOE_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception &e) {
    char message[512];  // on the stack: building a std::string here could throw
    std::snprintf(message, sizeof message, "internal error: %s", e.what());
    return report(model, PIMOE_ERR_INTERNAL, message);
  } catch (...) {
    return report(model, PIMOE_ERR_INTERNAL, "internal error: unknown exception");
  }
}

// The raw value of an enum parameter, read without an enum-typed load: a C caller may pass any int, and loading an
// out-of-range value as a C++ enum is undefined behaviour.
template <typename Enum>
int raw_value(const Enum &value) {
  static_assert(sizeof(Enum) == sizeof(int), "C enums are int-sized here");
  int raw;
  std::memcpy(&raw, &value, sizeof raw);
  return raw;
}

template <typename T>
void require(const T *pointer, const char *function, const char *parameter) {
  if (!pointer) fail(PIMOE_ERR_NULL_POINTER, function, ": ", parameter, " is NULL");
}

}  // namespace pimoe
