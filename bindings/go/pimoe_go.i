// SPDX-License-Identifier: MIT
/* Go part of bindings/pimoe.i (included under SWIGGO).
 *
 * SWIG generates the low-level package libpimoe.org/pimoe/internal/cpimoe (swig -go -cgo -intgosize 64
 * -package cpimoe); the public package libpimoe.org/pimoe is hand-written Go over it. The generated names are not
 * idiomatic and stay internal.
 *
 * Mapping rules:
 *   - Handles (pimoe_model *, pimoe_options *) cross as uintptr; out-handles (T **out) as *uintptr.
 *   - Buffers with an element count, (T *p, size_t n), are one Go slice; the count is the slice's length. The slice's
 *     memory is passed straight to C (no copy).
 *   - Every pimoe_status result becomes a Go string that is "" on success and "<code>:<message>" otherwise, built
 *     INSIDE the same C call: pimoe_last_error() is per OS thread, and a goroutine may move to another thread
 *     between two cgo calls, so reading it in a second call could give another goroutine's message.
 *     A call that succeeds but leaves a message (pimoe_backend_probe saying why a backend is unusable) gives
 *     "0:<message>".
 *   - Returned strings are copied inside the C call (SWIG's default for char *), so "valid until the next call on
 *     this thread" strings are safe too.
 */

%include <stdint.i>

/* ---------------------------------------------------------------- status results */
%typemap(gotype) pimoe_status PIMOE_STATUS_RESULT "string"
%typemap(imtype) pimoe_status PIMOE_STATUS_RESULT "string"
%typemap(out) pimoe_status PIMOE_STATUS_RESULT %{
  {
    const char *pimoe_go_msg_ = pimoe_last_error();
    if ($1 == PIMOE_OK && (pimoe_go_msg_ == NULL || pimoe_go_msg_[0] == '\0')) {
      $result.p = NULL;
      $result.n = 0;
    } else {
      char pimoe_go_buf_[2048];
      int pimoe_go_len_ = snprintf(pimoe_go_buf_, sizeof pimoe_go_buf_, "%d:%s", (int)$1,
                                   pimoe_go_msg_ ? pimoe_go_msg_ : "");
      if (pimoe_go_len_ < 0) pimoe_go_len_ = 0;
      if ((size_t)pimoe_go_len_ >= sizeof pimoe_go_buf_) pimoe_go_len_ = (int)(sizeof pimoe_go_buf_ - 1);
      $result = Swig_AllocateString(pimoe_go_buf_, (size_t)pimoe_go_len_);
    }
  }
%}
/* Success costs no second cgo call (swigCopyString frees the C copy through one). */
%typemap(goout) pimoe_status PIMOE_STATUS_RESULT %{
	if len($1) > 0 {
		$result = swigCopyString($1)
	}
%}
%apply pimoe_status PIMOE_STATUS_RESULT {
  pimoe_status pimoe_options_create, pimoe_status pimoe_options_set_int, pimoe_status pimoe_options_set_float,
  pimoe_status pimoe_options_set_string, pimoe_status pimoe_options_set_by_name,
  pimoe_status pimoe_options_set_expert_preset, pimoe_status pimoe_options_set_expert_activation,
  pimoe_status pimoe_options_set_expert_width, pimoe_status pimoe_options_set_expert_pre_norm,
  pimoe_status pimoe_options_set_expert_weight_dtype, pimoe_status pimoe_create, pimoe_status pimoe_model_dims, pimoe_status pimoe_model_expert,
  pimoe_status pimoe_forward, pimoe_status pimoe_stats, pimoe_status pimoe_stats_expert_loads,
  pimoe_status pimoe_stats_reset, pimoe_status pimoe_tensor_shape, pimoe_status pimoe_tensor_read,
  pimoe_status pimoe_backend_probe, pimoe_status pimoe_save, pimoe_status pimoe_load, pimoe_status pimoe_import_hf,
  pimoe_status pimoe_model_reset_adaptive_state, pimoe_status pimoe_go_forward,
  pimoe_status pimoe_go_options_set_expert_callback, pimoe_status pimoe_go_model_set_expert_callback
};

/* ---------------------------------------------------------------- handles */
%define PIMOE_GO_HANDLE(TYPE)
%typemap(gotype) TYPE *, const TYPE * "uintptr"
%typemap(imtype) TYPE *, const TYPE * "uintptr"
%typemap(in) TYPE *, const TYPE * %{ $1 = ($1_ltype)$input; %}
%typemap(gotype) TYPE **out "*uintptr"
%typemap(imtype) TYPE **out "*uintptr"
%typemap(in) TYPE **out %{ $1 = ($1_ltype)$input; %}
%enddef
PIMOE_GO_HANDLE(pimoe_model)
PIMOE_GO_HANDLE(pimoe_options)

/* ---------------------------------------------------------------- scalar out-parameters */
%define PIMOE_GO_OUT(CTYPE, GOTYPE, NAMES...)
%typemap(gotype) CTYPE *PIMOE_OUT "*" #GOTYPE
%typemap(imtype) CTYPE *PIMOE_OUT "*" #GOTYPE
%typemap(in) CTYPE *PIMOE_OUT %{ $1 = ($1_ltype)$input; %}
%apply CTYPE *PIMOE_OUT { NAMES };
%enddef
PIMOE_GO_OUT(int32_t, int32, int32_t *num_experts, int32_t *top_k, int32_t *pre_norm, int32_t *ndim,
             int32_t *usable)
PIMOE_GO_OUT(int64_t, int64, int64_t *hidden, int64_t *intermediate)
PIMOE_GO_OUT(pimoe_activation, int32, pimoe_activation *activation)

%typemap(gotype) int64_t dims[4] "*[4]int64"
%typemap(imtype) int64_t dims[4] "*[4]int64"
%typemap(in) int64_t dims[4] %{ $1 = (int64_t *)$input; %}

/* The stats snapshot is filled straight into the Go struct pimoe.Stats, whose layout mirrors pimoe_stats_snapshot
 * field for field (checked by the Go tests against offsetof() in C); its StructSize says how much the library fills. */
%typemap(gotype) pimoe_stats_snapshot *out "unsafe.Pointer"
%typemap(imtype) pimoe_stats_snapshot *out "unsafe.Pointer"
%typemap(in) pimoe_stats_snapshot *out %{ $1 = (pimoe_stats_snapshot *)$input; %}

/* ---------------------------------------------------------------- buffers: one slice each */
%define PIMOE_GO_SLICE(CTYPE, GOTYPE, PTR, COUNT)
%typemap(gotype) (CTYPE *PTR, size_t COUNT) "[]" #GOTYPE
%typemap(imtype) (CTYPE *PTR, size_t COUNT) "[]" #GOTYPE
%typemap(in) (CTYPE *PTR, size_t COUNT) %{
  $1 = ($1_ltype)$input.array;
  $2 = (size_t)$input.len;
%}
%enddef
PIMOE_GO_SLICE(const float, float32, input, input_count)
PIMOE_GO_SLICE(float, float32, output, output_count)
PIMOE_GO_SLICE(float, float32, expert_weights, routing_count)
PIMOE_GO_SLICE(uint64_t, uint64, counts, count)
PIMOE_GO_SLICE(float, float32, out, count)
PIMOE_GO_SLICE(int32_t, int32, routing_ids, ids_count)
PIMOE_GO_SLICE(float, float32, routing_weights, weights_count)
PIMOE_GO_SLICE(uint8_t, uint8, routing_dropped, dropped_count)
PIMOE_GO_SLICE(float, float32, routing_probs, probs_count)
/* expert_ids holds as many elements as expert_weights: the Go layer checks that before the call. */
%typemap(gotype) int32_t *expert_ids "[]int32"
%typemap(imtype) int32_t *expert_ids "[]int32"
%typemap(in) int32_t *expert_ids %{ $1 = (int32_t *)$input.array; %}

/* ---------------------------------------------------------------- forward, full routing, callback experts */
/* pimoe_go_forward: pimoe_forward (full == 0; routing_weights/ids as its expert_weights/expert_ids) or
 * pimoe_forward_routing (full != 0) in one cgo call. The routing slices are passed as they are (no copy); the Go layer
 * checks that the non-nil ones have equal lengths, the library checks the counts.
 *
 * Callback experts: the C function pimoe_go_expert_fn (a pimoe_expert_fn) calls the cgo-exported Go function
 * pimoeGoExpertTrampoline (internal/cpimoe/callback.go) with user_data, a runtime/cgo.Handle of the Go function.
 * libpimoe calls it on the thread that called pimoe_forward, i.e. inside this cgo call, on the same OS thread as the
 * calling goroutine. When the Go callback fails, the trampoline stores the Go error under a token and notes the
 * token in a C thread-local through pimoe_go_note_callback_failure; pimoe_go_forward hands that token back in the
 * same cgo call (*failed_callback), so the Forward that failed gets its own callback's error, whatever other
 * goroutines do. */
%typemap(gotype) uint64_t *failed_callback "*uint64"
%typemap(imtype) uint64_t *failed_callback "*uint64"
%typemap(in) uint64_t *failed_callback %{ $1 = (uint64_t *)$input; %}
%typemap(gotype) uintptr_t callback_handle "uintptr"
%typemap(imtype) uintptr_t callback_handle "uintptr"
%typemap(in) uintptr_t callback_handle %{ $1 = (uintptr_t)$input; %}
%{
#include <string.h>

extern int pimoeGoExpertTrampoline(uintptr_t handle, int32_t expert, float *input, int64_t rows, int64_t hidden,
                                   float *output);
static __thread uint64_t pimoe_go_failed_callback;

/* Called by the Go trampoline, on the thread of the failing forward call: records the first failure's token. Returns
 * 0 when a failure was recorded already (the caller then drops its error). */
int pimoe_go_note_callback_failure(uint64_t token) {
  if (pimoe_go_failed_callback) return 0;
  pimoe_go_failed_callback = token;
  return 1;
}

static int pimoe_go_expert_fn(void *user_data, int32_t expert, const float *input, int64_t rows, int64_t hidden,
                              float *output) {
  return pimoeGoExpertTrampoline((uintptr_t)user_data, expert, (float *)input, rows, hidden, output);
}
%}

/* ---------------------------------------------------------------- what Go does not get */
/* Reached through pimoe_go_forward and the pimoe_go_*_set_expert_callback helpers above. */
%ignore pimoe_routing;
%ignore pimoe_forward_routing;
%ignore pimoe_expert_fn;
%ignore pimoe_options_set_expert_callback;
%ignore pimoe_model_set_expert_callback;
/* Per OS thread: meaningless for goroutines. Failures carry their message (above); pimoe_model_last_error stays. */
%ignore pimoe_last_error;
/* Filled through unsafe.Pointer (above); no SWIG proxy with one cgo call per field. */
%ignore pimoe_stats_snapshot;

%include "pimoe_headers.i"

/* The helpers described above (after the header, so that its types are known). */
%inline %{
static pimoe_status pimoe_go_forward(pimoe_model *model, const float *input, size_t input_count, int64_t batch,
                                     int64_t seq, float *output, size_t output_count, int32_t *routing_ids,
                                     size_t ids_count, float *routing_weights, size_t weights_count,
                                     uint8_t *routing_dropped, size_t dropped_count, float *routing_probs,
                                     size_t probs_count, int full, uint64_t *failed_callback) {
  uint64_t saved = pimoe_go_failed_callback;
  pimoe_status s;
  pimoe_go_failed_callback = 0;
  if (!full) {
    s = pimoe_forward(model, input, input_count, batch, seq, output, output_count, routing_ids, routing_weights,
                      routing_weights ? weights_count : ids_count);
  } else {
    pimoe_routing r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.expert_ids = routing_ids;
    r.weights = routing_weights;
    r.dropped = routing_dropped;
    r.slot_count = routing_ids ? ids_count : routing_weights ? weights_count : dropped_count;
    r.probabilities = routing_probs;
    r.probability_count = probs_count;
    s = pimoe_forward_routing(model, input, input_count, batch, seq, output, output_count, &r);
  }
  *failed_callback = pimoe_go_failed_callback;
  pimoe_go_failed_callback = saved;
  return s;
}
static pimoe_status pimoe_go_options_set_expert_callback(pimoe_options *options, int32_t expert,
                                                         uintptr_t callback_handle) {
  return pimoe_options_set_expert_callback(options, expert, pimoe_go_expert_fn, (void *)callback_handle);
}
static pimoe_status pimoe_go_model_set_expert_callback(pimoe_model *model, int32_t expert,
                                                       uintptr_t callback_handle) {
  return pimoe_model_set_expert_callback(model, expert, pimoe_go_expert_fn, (void *)callback_handle);
}
%}
