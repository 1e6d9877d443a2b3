/* SPDX-License-Identifier: MIT */
/* Zero-copy probe of the Python binding's tests (LD_PRELOAD it into the Python process that runs pytest).
 *
 * It defines pimoe_forward and pimoe_forward_routing, so the extension module's calls land here first (a preloaded
 * library comes first in symbol lookup); it records the buffer pointers each call is given, then calls the real
 * function of the libpimoe already loaded. test_zero_copy.py reads the records through
 * pimoe_python_probe_last() (ctypes) and compares them with the addresses of the caller's arrays and tensors: the
 * library worked on the caller's memory, not on copies. Records are per thread, like the calls. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>

#include <pimoe/pimoe.h>

typedef pimoe_status (*forward_fn)(pimoe_model *, const float *, size_t, int64_t, int64_t, float *, size_t,
                                   int32_t *, float *, size_t);
typedef pimoe_status (*forward_routing_fn)(pimoe_model *, const float *, size_t, int64_t, int64_t, float *, size_t,
                                           pimoe_routing *);

/* input, output, expert ids, weights, dropped, probabilities of this thread's last forward call (0: NULL). */
static _Thread_local uintptr_t last[6];

static void *real_symbol(const char *name, void *self) {
  void *lib = dlopen("libpimoe.so.0", RTLD_NOW | RTLD_NOLOAD);
  void *fn = lib ? dlsym(lib, name) : NULL;
  if (!fn || fn == self) {
    fprintf(stderr, "forward_probe: cannot find the real %s\n", name);
    return NULL;
  }
  return fn;
}

PIMOE_API pimoe_status pimoe_forward(pimoe_model *model, const float *input, size_t input_count, int64_t batch,
                                     int64_t seq, float *output, size_t output_count, int32_t *expert_ids,
                                     float *expert_weights, size_t routing_count) {
  forward_fn real = (forward_fn)real_symbol("pimoe_forward", (void *)&pimoe_forward);
  if (!real) return PIMOE_ERR_INTERNAL;
  last[0] = (uintptr_t)input;
  last[1] = (uintptr_t)output;
  last[2] = (uintptr_t)expert_ids;
  last[3] = (uintptr_t)expert_weights;
  last[4] = last[5] = 0;
  return real(model, input, input_count, batch, seq, output, output_count, expert_ids, expert_weights,
              routing_count);
}

PIMOE_API pimoe_status pimoe_forward_routing(pimoe_model *model, const float *input, size_t input_count,
                                             int64_t batch, int64_t seq, float *output, size_t output_count,
                                             pimoe_routing *routing) {
  forward_routing_fn real =
      (forward_routing_fn)real_symbol("pimoe_forward_routing", (void *)&pimoe_forward_routing);
  if (!real) return PIMOE_ERR_INTERNAL;
  last[0] = (uintptr_t)input;
  last[1] = (uintptr_t)output;
  last[2] = routing ? (uintptr_t)routing->expert_ids : 0;
  last[3] = routing ? (uintptr_t)routing->weights : 0;
  last[4] = routing ? (uintptr_t)routing->dropped : 0;
  last[5] = routing ? (uintptr_t)routing->probabilities : 0;
  return real(model, input, input_count, batch, seq, output, output_count, routing);
}

/* Copies this thread's records into out[0..5]; returns 1 (so that a caller can tell the probe is loaded). */
PIMOE_API int pimoe_python_probe_last(uint64_t out[6]) {
  for (int i = 0; i < 6; ++i) out[i] = (uint64_t)last[i];
  return 1;
}
