// SPDX-License-Identifier: MIT
/* Python part of bindings/pimoe.i (included under SWIGPYTHON).
 *
 * SWIG generates the low-level module pimoe.cpimoe (swig -python -threads -module cpimoe); the public package
 * pimoe (bindings/python/src/pimoe) is hand-written Python over it. The generated names are not idiomatic and stay
 * private.
 *
 * Mapping rules:
 *   - Every pimoe_status result raises on failure: pimoe.Error (or its subclass for that status) with .status and
 *     the library's message, read on the same OS thread right after the call (pimoe_last_error() is per thread; the
 *     wrapper releases the GIL only around the C call, and a Python thread never changes OS thread).
 *   - Handles are SWIG pointer objects that own nothing: pimoe.Model and pimoe.Options free them.
 *   - Out-handles (T **out) and scalar out-parameters become return values.
 *   - Buffers: the forward calls, pimoe_tensor_read and pimoe_stats_expert_loads are replaced by the pimoe_py_*
 *     functions below, which take objects exporting the buffer protocol (a NumPy array) and hand the library their
 *     own memory: no copy. Each buffer's element count is its own length, so no call can overrun it.
 *   - Callback experts are not wrapped (the callback setters are ignored).
 */

%{
#include <string.h>
%}

/* ---------------------------------------------------------------- status results raise */
%{
/* Raises the Python exception for a failed status: pimoe._errors.error_for_status(status, message) builds it (the
 * subclass per status lives in Python, in one table). */
static void pimoe_py_raise(pimoe_status status, const char *message) {
  PyObject *module = PyImport_ImportModule("pimoe._errors");
  PyObject *exc = NULL;
  if (module) {
    exc = PyObject_CallMethod(module, "error_for_status", "is", (int)status, message ? message : "");
    Py_DECREF(module);
  }
  if (exc) {
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
  }
  /* else the import or the call failed and its exception is already set */
}
%}
%typemap(out) pimoe_status PIMOE_STATUS_RESULT %{
  if (PyErr_Occurred()) SWIG_fail;
  if ($1 != PIMOE_OK) {
    pimoe_py_raise($1, pimoe_last_error());
    SWIG_fail;
  }
  $result = SWIG_Py_Void();
%}
%apply pimoe_status PIMOE_STATUS_RESULT {
  pimoe_status pimoe_options_create, pimoe_status pimoe_options_set_int, pimoe_status pimoe_options_set_float,
  pimoe_status pimoe_options_set_string, pimoe_status pimoe_options_set_by_name,
  pimoe_status pimoe_options_set_expert_preset, pimoe_status pimoe_options_set_expert_activation,
  pimoe_status pimoe_options_set_expert_width, pimoe_status pimoe_options_set_expert_pre_norm,
  pimoe_status pimoe_options_set_expert_weight_dtype, pimoe_status pimoe_create, pimoe_status pimoe_model_dims,
  pimoe_status pimoe_model_expert, pimoe_status pimoe_stats, pimoe_status pimoe_stats_reset,
  pimoe_status pimoe_tensor_shape, pimoe_status pimoe_backend_probe, pimoe_status pimoe_save, pimoe_status pimoe_load,
  pimoe_status pimoe_import_hf, pimoe_status pimoe_model_reset_adaptive_state, pimoe_status pimoe_py_forward,
  pimoe_status pimoe_py_forward_routing, pimoe_status pimoe_py_tensor_read, pimoe_status pimoe_py_stats_expert_loads
};

/* ---------------------------------------------------------------- out-handles */
%define PIMOE_PY_OUT_HANDLE(TYPE)
%typemap(in, numinputs=0) TYPE **out (TYPE *handle_ = NULL) %{ $1 = &handle_; %}
%typemap(argout) TYPE **out {
  %append_output(SWIG_NewPointerObj(SWIG_as_voidptr(handle_$argnum), $*1_descriptor, 0));
}
%enddef
PIMOE_PY_OUT_HANDLE(pimoe_model)
PIMOE_PY_OUT_HANDLE(pimoe_options)

/* ---------------------------------------------------------------- scalar out-parameters */
%include <stdint.i>
%include <typemaps.i>
%apply int64_t *OUTPUT { int64_t *hidden, int64_t *intermediate };
%apply int32_t *OUTPUT { int32_t *num_experts, int32_t *top_k, int32_t *pre_norm, int32_t *usable };
%typemap(in, numinputs=0) pimoe_activation *activation (pimoe_activation activation_ = PIMOE_ACT_GELU)
  %{ $1 = &activation_; %}
%typemap(argout) pimoe_activation *activation {
  %append_output(PyLong_FromLong((long)activation_$argnum));
}
/* pimoe_tensor_shape: (ndim, dims[4]) -> a tuple of the ndim dimensions. */
%typemap(in, numinputs=0) (int32_t *ndim, int64_t dims[4]) (int32_t ndim_ = 0, int64_t dims_[4] = {0, 0, 0, 0})
  %{ $1 = &ndim_; $2 = dims_; %}
%typemap(argout) (int32_t *ndim, int64_t dims[4]) {
  PyObject *shape_ = PyTuple_New(ndim_$argnum);
  if (!shape_) SWIG_fail;
  for (int32_t i_ = 0; i_ < ndim_$argnum; ++i_) {
    PyObject *dim_ = PyLong_FromLongLong(dims_$argnum[i_]);
    if (!dim_) {
      Py_DECREF(shape_);
      SWIG_fail;
    }
    PyTuple_SET_ITEM(shape_, i_, dim_);
  }
  %append_output(shape_);
}
/* pimoe_stats: a new snapshot object (owned by Python) with struct_size set to this build's size. */
%typemap(in, numinputs=0) pimoe_stats_snapshot *out (pimoe_stats_snapshot snapshot_) %{
  memset(&snapshot_, 0, sizeof snapshot_);
  snapshot_.struct_size = (uint32_t)sizeof snapshot_;
  $1 = &snapshot_;
%}
%typemap(argout) pimoe_stats_snapshot *out {
  pimoe_stats_snapshot *copy_ = (pimoe_stats_snapshot *)malloc(sizeof *copy_);
  if (!copy_) {
    PyErr_NoMemory();
    SWIG_fail;
  }
  *copy_ = snapshot_$argnum;
  %append_output(SWIG_NewPointerObj(copy_, $1_descriptor, SWIG_POINTER_OWN));
}

/* ---------------------------------------------------------------- replaced and unwrapped functions */
%ignore pimoe_forward;
%ignore pimoe_forward_routing;
%ignore pimoe_routing;
%ignore pimoe_tensor_read;
%ignore pimoe_stats_expert_loads;
%ignore pimoe_options_set_expert_callback;
%ignore pimoe_model_set_expert_callback;
%ignore pimoe_expert_fn;

/* ---------------------------------------------------------------- buffers */
%{
/* A buffer the library reads or writes in place. The element type is checked against the buffer's format (a NumPy
 * array of another dtype is refused, never converted). */
typedef struct pimoe_py_buffer {
  Py_buffer view;
  int held;
} pimoe_py_buffer;

static int pimoe_py_format_is(const char *format, char code) {
  if (!format) return code == 'B';
  if (format[0] == '@' || format[0] == '=' || format[0] == '<') ++format; /* native or little-endian */
  return format[0] == code && format[1] == '\0';
}

/* Acquires `obj`'s C-contiguous buffer of elements `code` (struct module codes: 'f', 'i', 'B', 'Q'/'L' for uint64)
 * of `itemsize` bytes; `optional` lets None through (held stays 0). Sets a Python exception naming `arg`, returns 0,
 * on failure. */
static int pimoe_py_acquire(pimoe_py_buffer *b, PyObject *obj, const char *arg, int writable, char code,
                            Py_ssize_t itemsize, int optional) {
  b->held = 0;
  if (optional && obj == Py_None) return 1;
  int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
  if (PyObject_GetBuffer(obj, &b->view, flags) != 0) {
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous%s buffer of %zd-byte '%c' elements, got %.100s", arg,
                 writable ? " writable" : "", itemsize, code, Py_TYPE(obj)->tp_name);
    return 0;
  }
  b->held = 1;
  int ok = b->view.itemsize == itemsize &&
           (pimoe_py_format_is(b->view.format, code) ||
            (code == 'Q' && sizeof(long) == 8 && pimoe_py_format_is(b->view.format, 'L')));
  if (!ok) {
    PyErr_Format(PyExc_TypeError, "%s: expected %zd-byte '%c' elements, got format '%s' of %zd bytes", arg, itemsize,
                 code, b->view.format ? b->view.format : "B", b->view.itemsize);
    PyBuffer_Release(&b->view);
    b->held = 0;
    return 0;
  }
  return 1;
}

static void pimoe_py_release(pimoe_py_buffer *b) {
  if (b->held) PyBuffer_Release(&b->view);
  b->held = 0;
}

static void *pimoe_py_data(const pimoe_py_buffer *b) { return b->held ? b->view.buf : NULL; }
static size_t pimoe_py_count(const pimoe_py_buffer *b) {
  return b->held ? (size_t)(b->view.len / b->view.itemsize) : 0;
}
%}

/* The PyObject arguments of the functions below reach them as they are. */
%typemap(in) PyObject *PIMOE_PY_BUFFER %{ $1 = $input; %}
%apply PyObject *PIMOE_PY_BUFFER { PyObject *input, PyObject *output, PyObject *expert_ids,
                                   PyObject *expert_weights, PyObject *dropped, PyObject *probabilities,
                                   PyObject *out, PyObject *counts };
/* These manage the GIL themselves: they hold it while acquiring buffers and release it around the C call. */
%nothread pimoe_py_forward;
%nothread pimoe_py_forward_routing;
%nothread pimoe_py_tensor_read;
%nothread pimoe_py_stats_expert_loads;

%inline %{
/* pimoe_forward on buffers: input (float32, read), output (float32, written), expert_ids (int32) and
 * expert_weights (float32), both None or both buffers of the same length (the routing count). */
pimoe_status pimoe_py_forward(pimoe_model *model, PyObject *input, int64_t batch, int64_t seq, PyObject *output,
                              PyObject *expert_ids, PyObject *expert_weights) {
  pimoe_py_buffer in, out, ids, weights;
  pimoe_status status = PIMOE_ERR_INVALID_ARGUMENT;
  if (!pimoe_py_acquire(&in, input, "input", 0, 'f', 4, 0)) return status;
  if (!pimoe_py_acquire(&out, output, "out", 1, 'f', 4, 0)) goto release_in;
  if (!pimoe_py_acquire(&ids, expert_ids, "expert_ids", 1, 'i', 4, 1)) goto release_out;
  if (!pimoe_py_acquire(&weights, expert_weights, "expert_weights", 1, 'f', 4, 1)) goto release_ids;
  if (ids.held != weights.held || pimoe_py_count(&ids) != pimoe_py_count(&weights)) {
    PyErr_SetString(PyExc_ValueError, "expert_ids and expert_weights: both None, or buffers of the same length");
  } else {
    Py_BEGIN_ALLOW_THREADS
    status = pimoe_forward(model, (const float *)pimoe_py_data(&in), pimoe_py_count(&in), batch, seq,
                           (float *)pimoe_py_data(&out), pimoe_py_count(&out), (int32_t *)pimoe_py_data(&ids),
                           (float *)pimoe_py_data(&weights), pimoe_py_count(&ids));
    Py_END_ALLOW_THREADS
  }
  pimoe_py_release(&weights);
release_ids:
  pimoe_py_release(&ids);
release_out:
  pimoe_py_release(&out);
release_in:
  pimoe_py_release(&in);
  return status;
}

/* pimoe_forward_routing on buffers; each routing buffer may be None (not wanted). expert_ids (int32), weights
 * (float32) and dropped (uint8) share one length when given; probabilities (float32) has its own. */
pimoe_status pimoe_py_forward_routing(pimoe_model *model, PyObject *input, int64_t batch, int64_t seq,
                                      PyObject *output, PyObject *expert_ids, PyObject *expert_weights,
                                      PyObject *dropped, PyObject *probabilities) {
  pimoe_py_buffer b[6];
  pimoe_status status = PIMOE_ERR_INVALID_ARGUMENT;
  int held = 0;
  if (pimoe_py_acquire(&b[0], input, "input", 0, 'f', 4, 0)) ++held; else goto done;
  if (pimoe_py_acquire(&b[1], output, "out", 1, 'f', 4, 0)) ++held; else goto done;
  if (pimoe_py_acquire(&b[2], expert_ids, "expert_ids", 1, 'i', 4, 1)) ++held; else goto done;
  if (pimoe_py_acquire(&b[3], expert_weights, "expert_weights", 1, 'f', 4, 1)) ++held; else goto done;
  if (pimoe_py_acquire(&b[4], dropped, "dropped", 1, 'B', 1, 1)) ++held; else goto done;
  if (pimoe_py_acquire(&b[5], probabilities, "probabilities", 1, 'f', 4, 1)) ++held; else goto done;
  {
    size_t slots = 0;
    for (int i = 2; i < 5; ++i) {
      if (!b[i].held) continue;
      if (slots != 0 && pimoe_py_count(&b[i]) != slots) {
        PyErr_SetString(PyExc_ValueError, "expert_ids, expert_weights and dropped must have the same length");
        goto done;
      }
      slots = pimoe_py_count(&b[i]);
    }
    pimoe_routing routing;
    memset(&routing, 0, sizeof routing);
    routing.struct_size = sizeof routing;
    routing.expert_ids = (int32_t *)pimoe_py_data(&b[2]);
    routing.weights = (float *)pimoe_py_data(&b[3]);
    routing.dropped = (uint8_t *)pimoe_py_data(&b[4]);
    routing.slot_count = slots;
    routing.probabilities = (float *)pimoe_py_data(&b[5]);
    routing.probability_count = pimoe_py_count(&b[5]);
    Py_BEGIN_ALLOW_THREADS
    status = pimoe_forward_routing(model, (const float *)pimoe_py_data(&b[0]), pimoe_py_count(&b[0]), batch, seq,
                                   (float *)pimoe_py_data(&b[1]), pimoe_py_count(&b[1]), &routing);
    Py_END_ALLOW_THREADS
  }
done:
  while (held > 0) pimoe_py_release(&b[--held]);
  return status;
}

/* pimoe_tensor_read into a float32 buffer of exactly the tensor's element count. */
pimoe_status pimoe_py_tensor_read(const pimoe_model *model, const char *name, PyObject *out) {
  pimoe_py_buffer b;
  pimoe_status status;
  if (!pimoe_py_acquire(&b, out, "out", 1, 'f', 4, 0)) return PIMOE_ERR_INVALID_ARGUMENT;
  Py_BEGIN_ALLOW_THREADS
  status = pimoe_tensor_read(model, name, (float *)pimoe_py_data(&b), pimoe_py_count(&b));
  Py_END_ALLOW_THREADS
  pimoe_py_release(&b);
  return status;
}

/* pimoe_stats_expert_loads into a uint64 buffer of at least num_experts elements. */
pimoe_status pimoe_py_stats_expert_loads(const pimoe_model *model, PyObject *counts) {
  pimoe_py_buffer b;
  pimoe_status status;
  if (!pimoe_py_acquire(&b, counts, "counts", 1, 'Q', 8, 0)) return PIMOE_ERR_INVALID_ARGUMENT;
  status = pimoe_stats_expert_loads(model, (uint64_t *)pimoe_py_data(&b), pimoe_py_count(&b));
  pimoe_py_release(&b);
  return status;
}
%}

/* Statistics snapshots are read, never written, from Python. */
%immutable;
%include "pimoe_headers.i"
