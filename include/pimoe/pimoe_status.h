/* SPDX-License-Identifier: MIT */
/** \file
 * libpimoe public API: status codes and error messages.
 *
 * Part of the public interface that <pimoe/pimoe.h> gathers (include that one); pimoe.h states the rules every call
 * follows (threading, ownership, errors, tensors). This header compiles alone as strict C99.
 */
#ifndef PIMOE_STATUS_H
#define PIMOE_STATUS_H

#include <pimoe/pimoe_export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================ status ============================================= */

/** What a call did: PIMOE_OK, or why it failed (pimoe_last_error() gives the message). Every fallible call returns
 * one; codes are never renumbered (pimoe.h, ERRORS). */
typedef enum pimoe_status {
  PIMOE_OK = 0,                      /**< success */
  PIMOE_ERR_NULL_POINTER = 1,        /**< a required pointer argument was NULL */
  PIMOE_ERR_INVALID_ARGUMENT = 2,    /**< a size or value is out of range (zero, negative, absurdly large) */
  PIMOE_ERR_SIZE_MISMATCH = 3,       /**< a buffer's element count does not match the shape it must hold */
  PIMOE_ERR_UNKNOWN_OPTION = 4,      /**< an option key (enum value or name) this library does not know */
  PIMOE_ERR_INVALID_OPTION = 5,      /**< a known option given a value of the wrong type or out of range */
  PIMOE_ERR_NON_FINITE_INPUT = 6,    /**< the input held NaN or Inf */
  PIMOE_ERR_BACKEND_UNAVAILABLE = 7, /**< the requested backend is not compiled in or has no usable device */
  PIMOE_ERR_OUT_OF_MEMORY = 8,       /**< an allocation (host or device) failed */
  PIMOE_ERR_NOT_FOUND = 9,           /**< a named thing (tensor, expert, backend) does not exist */
  PIMOE_ERR_IO = 10,                 /**< reading or writing a file failed */
  PIMOE_ERR_FORMAT = 11,             /**< a file's contents are malformed or inconsistent */
  PIMOE_ERR_UNSUPPORTED = 12,        /**< valid request that this build or backend cannot do */
  PIMOE_ERR_INTERNAL = 13,           /**< a bug in libpimoe: please report it with the message */
  PIMOE_ERR_CALLBACK = 14            /**< an expert callback failed, or a callback expert has no callback set */
} pimoe_status;

/** Static English text for a status code ("unknown status" for codes this library does not know). */
PIMOE_API const char *pimoe_status_string(pimoe_status status);

/** The message of the last failed call on this thread, or "" if the last call succeeded. Never NULL. */
PIMOE_API const char *pimoe_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* PIMOE_STATUS_H */
