/* SPDX-License-Identifier: MIT */
/** \file
 * libpimoe: token-level routed Mixture-of-Experts layers, fast, behind one stable C ABI.
 *
 * This header, with the topic headers it includes (listed at its end), is the whole public interface and its
 * documentation. Every one of them is strict C99 and compiles alone; include this one.
 * docs/conventions.md gives the rules it follows (naming, ownership, errors, threading) and how to add a call.
 *
 * ---------------------------------------------------------------------------------------------------------------
 * THREADING
 *   - One pimoe_model may be shared by any number of threads. pimoe_forward() and every read-only call
 *     (pimoe_stats, pimoe_tensor_*, pimoe_model_*) may run concurrently on the same handle: weights are
 *     immutable after creation, scratch memory is per call, statistics are updated under a lock.
 *   - pimoe_destroy() must not race with any other call on the same handle (as with free()).
 *   - pimoe_options objects are NOT thread-safe: build one in one thread, then hand it to pimoe_create(), which
 *     copies what it needs (the options object may be destroyed or reused right after).
 *
 * OWNERSHIP
 *   - Every object you create (pimoe_options, pimoe_model) is yours to destroy with the matching destroy call.
 *     Destroy calls accept NULL and do nothing.
 *   - Buffers passed in are borrowed for the duration of the call only; the library never keeps a pointer to them.
 *   - Strings returned as `const char *` are owned by the library. Static strings (status text, names, version) live
 *     for the whole process; error messages stay valid until the next pimoe_* call on the same thread.
 *
 * ERRORS
 *   - Every fallible call returns a pimoe_status. PIMOE_OK (0) is success; codes are never renumbered.
 *   - After a failure, pimoe_last_error() gives a message with context, e.g. "top_k (9) exceeds num_experts (8)".
 *     It is per thread, and is cleared (set to "") by every entry point that can fail. pimoe_model_last_error()
 *     gives the last failure recorded on one model handle, from whichever thread it came.
 *   - A failed call leaves its out-parameters untouched and the model usable. No C++ exception crosses this ABI.
 *
 * TENSORS
 *   - Activations are fp32, row-major, shape [batch, seq, hidden], passed as caller-owned buffers together with
 *     their element count, which the library checks.
 *   - Weights follow PyTorch's nn.Linear layout ([out_features, in_features], row-major) and are named as listed at
 *     pimoe_tensor_count().
 *
 * ---------------------------------------------------------------------------------------------------------------
 */
#ifndef PIMOE_PIMOE_H
#define PIMOE_PIMOE_H

#include <stddef.h>
#include <stdint.h>

#include <pimoe/pimoe_export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================ version ============================================ */

/** The version of the headers you compile against (CMakeLists.txt reads it from here). PIMOE_VERSION_NUMBER is
 * major*10000 + minor*100 + patch, as in zstd. PIMOE_ABI_VERSION is the N of libpimoe.so.N, bumped only when a
 * binary-incompatible change is made. PIMOE_VERSION_STRING spells out MAJOR.MINOR.PATCH (a literal, so that bindings
 * see it); CMakeLists.txt refuses to configure if the two differ. */
/** @{ */
#define PIMOE_VERSION_MAJOR 0
#define PIMOE_VERSION_MINOR 1
#define PIMOE_VERSION_PATCH 0
#define PIMOE_ABI_VERSION 0
#define PIMOE_VERSION_NUMBER (PIMOE_VERSION_MAJOR * 10000 + PIMOE_VERSION_MINOR * 100 + PIMOE_VERSION_PATCH)
#define PIMOE_VERSION_STRING "0.1.0"
/** @} */

/** The library's version as "MAJOR.MINOR.PATCH". Compare with PIMOE_VERSION_STRING to detect a header/library skew. */
PIMOE_API const char *pimoe_version_string(void);
/** The library's PIMOE_VERSION_NUMBER. */
PIMOE_API uint32_t pimoe_version_number(void);
/** The library's ABI major version (the number in its SONAME, libpimoe.so.N). */
PIMOE_API uint32_t pimoe_abi_version(void);
/** One line describing the build: compiled backends, BLAS vendor and core, compiler. Static string. */
PIMOE_API const char *pimoe_build_info(void);

#ifdef __cplusplus
}
#endif

/* ======================================== the API, by topic ====================================== */

/* Each topic has its own header, included here in this order; include this header, not them. */
#include <pimoe/pimoe_status.h>   /* status codes, pimoe_status_string, pimoe_last_error */
#include <pimoe/pimoe_options.h>  /* activations, presets, the option keys and their semantics, setters, callbacks */
#include <pimoe/pimoe_model.h>    /* create, forward, routing, save, load, import_hf */
#include <pimoe/pimoe_stats.h>    /* pimoe_stats_snapshot and its metrics */
#include <pimoe/pimoe_tensors.h>  /* the weight tensors' names, shapes and values */
#include <pimoe/pimoe_backends.h> /* the compiled-in backends and their devices */

#endif /* PIMOE_PIMOE_H */
