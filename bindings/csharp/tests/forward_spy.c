/* SPDX-License-Identifier: MIT */
/* LD_PRELOAD interposer on pimoe_forward, for the C# no-copy test (NoCopyTests.cs): it records, per thread, the
 * input/output addresses that reached libpimoe's pimoe_forward, then calls the real one (dlsym RTLD_NEXT).
 * If the binding copied the managed array (marshalling), the recorded address would differ from the array's pinned
 * address. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pimoe/pimoe.h>
#include <stdint.h>

typedef pimoe_status (*forward_fn)(pimoe_model *, const float *, size_t, int64_t, int64_t, float *, size_t, int32_t *,
                                   float *, size_t);

static __thread const void *last_input;
static __thread const void *last_output;
static __thread uint64_t calls;

pimoe_status pimoe_forward(pimoe_model *model, const float *input, size_t input_count, int64_t batch, int64_t seq,
                           float *output, size_t output_count, int32_t *expert_ids, float *expert_weights,
                           size_t routing_count) {
  static forward_fn real;
  if (!real) real = (forward_fn)dlsym(RTLD_NEXT, "pimoe_forward");
  last_input = input;
  last_output = output;
  calls++;
  return real(model, input, input_count, batch, seq, output, output_count, expert_ids, expert_weights,
              routing_count);
}

intptr_t pimoe_spy_last_input(void) { return (intptr_t)last_input; }
intptr_t pimoe_spy_last_output(void) { return (intptr_t)last_output; }
uint64_t pimoe_spy_calls(void) { return calls; }
