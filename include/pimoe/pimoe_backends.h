/* SPDX-License-Identifier: MIT */
/** \file
 * libpimoe public API: the compiled-in backends and their devices.
 *
 * Part of the public interface that <pimoe/pimoe.h> gathers (include that one); pimoe.h states the rules every call
 * follows (threading, ownership, errors, tensors). This header compiles alone as strict C99.
 */
#ifndef PIMOE_BACKENDS_H
#define PIMOE_BACKENDS_H

#include <stdint.h>

#include <pimoe/pimoe_export.h>
#include <pimoe/pimoe_status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================ backends =========================================== */

/** Backends compiled into this build, in order of preference ("cuda", "vulkan", "cpu"). */
PIMOE_API int32_t pimoe_backend_count(void);
/** Name of compiled-in backend i, or NULL when out of range. Static string. */
PIMOE_API const char *pimoe_backend_name(int32_t index);
/** Whether a backend ("cpu", "cuda", "vulkan", "vulkan:N", "auto") can run here: *usable receives 1 or 0. When 0,
 * pimoe_last_error() says why (not compiled in, no device, no driver...). An unknown name is PIMOE_ERR_NOT_FOUND. */
PIMOE_API pimoe_status pimoe_backend_probe(const char *name, int32_t *usable);
/** Human-readable description of the device a backend would use here (e.g. "cpu: 2 threads, OpenBLAS 0.3.21
 * (SkylakeX)"), or NULL if the backend is unknown or unusable. Valid until the next call on this thread. */
PIMOE_API const char *pimoe_backend_device(const char *name);
/** Number of devices of a backend kind ("cpu": 1; "vulkan": the Vulkan devices the loader reports, software ones such
 * as lavapipe included, 0 without a Vulkan driver or when not compiled in; "cuda": 1 when the CUDA backend can run
 * (it uses device 0), else 0), or -1 for an unknown kind. Device N of "vulkan" is "vulkan:N":
 * pimoe_backend_device("vulkan:N") gives its name, type and memory, or NULL with the reason in pimoe_last_error()
 * when the backend cannot use it. */
PIMOE_API int32_t pimoe_backend_device_count(const char *kind);

#ifdef __cplusplus
}
#endif

#endif /* PIMOE_BACKENDS_H */
