// SPDX-License-Identifier: MIT

// Package cref calls libpimoe's C API directly through cgo, with no SWIG and no Go layer in between. The tests of
// package pimoe use it as the reference: the same call made through the binding must give the same numbers, the same
// status and the same message. (Test files cannot use cgo themselves, hence this package.) Each wrapper captures
// the status and pimoe_last_error() inside one C call.
package cref

/*
#cgo pkg-config: pimoe
#include <pimoe/pimoe.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int status; char msg[1024]; } ref_result;

static ref_result ref_capture(pimoe_status s) {
  ref_result r;
  r.status = (int)s;
  snprintf(r.msg, sizeof r.msg, "%s", pimoe_last_error());
  return r;
}
static ref_result ref_options_create(uintptr_t *out) {
  pimoe_options *o = NULL;
  ref_result r = ref_capture(pimoe_options_create(&o));
  *out = (uintptr_t)o;
  return r;
}
static void ref_options_destroy(uintptr_t o) { pimoe_options_destroy((pimoe_options *)o); }
static ref_result ref_set_int(uintptr_t o, int key, int64_t v) {
  return ref_capture(pimoe_options_set_int((pimoe_options *)o, (pimoe_option)key, v));
}
static ref_result ref_set_float(uintptr_t o, int key, double v) {
  return ref_capture(pimoe_options_set_float((pimoe_options *)o, (pimoe_option)key, v));
}
static ref_result ref_set_string(uintptr_t o, int key, const char *v) {
  return ref_capture(pimoe_options_set_string((pimoe_options *)o, (pimoe_option)key, v));
}
static ref_result ref_set_by_name(uintptr_t o, const char *k, const char *v) {
  return ref_capture(pimoe_options_set_by_name((pimoe_options *)o, k, v));
}
static ref_result ref_set_expert(uintptr_t o, int what, int32_t e, int64_t v) {
  pimoe_options *p = (pimoe_options *)o;
  switch (what) {
    case 1: return ref_capture(pimoe_options_set_expert_preset(p, e, (pimoe_expert_preset)v));
    case 2: return ref_capture(pimoe_options_set_expert_activation(p, e, (pimoe_activation)v));
    case 3: return ref_capture(pimoe_options_set_expert_width(p, e, v));
    default: return ref_capture(pimoe_options_set_expert_pre_norm(p, e, (int32_t)v));
  }
}
static ref_result ref_set_expert_weight_dtype(uintptr_t o, int32_t e, const char *dtype) {
  return ref_capture(pimoe_options_set_expert_weight_dtype((pimoe_options *)o, e, dtype));
}
static ref_result ref_import_hf(const char *dir, int32_t layer, uintptr_t *out) {
  pimoe_model *m = NULL;
  ref_result r = ref_capture(pimoe_import_hf(dir, layer, NULL, &m));
  *out = (uintptr_t)m;
  return r;
}
static ref_result ref_create(uintptr_t o, uintptr_t *out) {
  pimoe_model *m = NULL;
  ref_result r = ref_capture(pimoe_create((const pimoe_options *)o, &m));
  *out = (uintptr_t)m;
  return r;
}
static void ref_destroy(uintptr_t m) { pimoe_destroy((pimoe_model *)m); }
static ref_result ref_forward(uintptr_t m, const float *in, size_t in_count, int64_t batch, int64_t seq,
                              float *out, size_t out_count, int32_t *ids, float *w, size_t rc) {
  return ref_capture(pimoe_forward((pimoe_model *)m, in, in_count, batch, seq, out, out_count, ids, w, rc));
}
// n calls of pimoe_forward in one C loop: the C side of the overhead benchmark.
static ref_result ref_forward_loop(uintptr_t m, const float *in, size_t count, float *out, int64_t n) {
  pimoe_status s = PIMOE_OK;
  for (int64_t i = 0; i < n && s == PIMOE_OK; i++) s = pimoe_forward((pimoe_model *)m, in, count, 1, 1, out, count, NULL, NULL, 0);
  return ref_capture(s);
}
static ref_result ref_forward_routing(uintptr_t m, const float *in, size_t in_count, int64_t batch, int64_t seq,
                                      float *out, size_t out_count, int32_t *ids, float *w, uint8_t *dropped,
                                      size_t slots, float *probs, size_t probs_count) {
  pimoe_routing r;
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.expert_ids = ids;
  r.weights = w;
  r.dropped = dropped;
  r.slot_count = slots;
  r.probabilities = probs;
  r.probability_count = probs_count;
  return ref_capture(pimoe_forward_routing((pimoe_model *)m, in, in_count, batch, seq, out, out_count, &r));
}
static int64_t ref_routing_slots(uintptr_t m) { return pimoe_model_routing_slots((const pimoe_model *)m); }
static ref_result ref_reset_adaptive(uintptr_t m) {
  return ref_capture(pimoe_model_reset_adaptive_state((pimoe_model *)m));
}
static ref_result ref_save(uintptr_t m, const char *path) { return ref_capture(pimoe_save((const pimoe_model *)m, path)); }
// The reference callback expert: output = input * (expert + 1), or failure with the value of *user_data when it is
// non-zero (user_data points at an int owned by Go memory that outlives the model: a static here).
static int ref_fail_value;
static int ref_scale_expert(void *user_data, int32_t expert, const float *input, int64_t rows, int64_t hidden,
                            float *output) {
  (void)user_data;
  if (ref_fail_value) return ref_fail_value;
  for (int64_t i = 0; i < rows * hidden; i++) output[i] = input[i] * (float)(expert + 1);
  return 0;
}
static void ref_set_fail_value(int v) { ref_fail_value = v; }
static ref_result ref_options_set_scale_callback(uintptr_t o, int32_t expert) {
  return ref_capture(pimoe_options_set_expert_callback((pimoe_options *)o, expert, ref_scale_expert, NULL));
}
static ref_result ref_model_set_scale_callback(uintptr_t m, int32_t expert) {
  return ref_capture(pimoe_model_set_expert_callback((pimoe_model *)m, expert, ref_scale_expert, NULL));
}
static ref_result ref_stats(uintptr_t m, pimoe_stats_snapshot *s) {
  s->struct_size = sizeof *s;
  return ref_capture(pimoe_stats((const pimoe_model *)m, s));
}
static ref_result ref_loads(uintptr_t m, uint64_t *c, size_t n) {
  return ref_capture(pimoe_stats_expert_loads((const pimoe_model *)m, c, n));
}
static ref_result ref_expert(uintptr_t m, int32_t e, int32_t *act, int64_t *width, int32_t *pre_norm) {
  pimoe_activation a = PIMOE_ACT_GELU;
  ref_result r = ref_capture(pimoe_model_expert((const pimoe_model *)m, e, &a, width, pre_norm));
  *act = (int32_t)a;
  return r;
}
static ref_result ref_tensor_shape(uintptr_t m, const char *name, int32_t *ndim, int64_t *dims) {
  return ref_capture(pimoe_tensor_shape((const pimoe_model *)m, name, ndim, dims));
}
static ref_result ref_tensor_read(uintptr_t m, const char *name, float *out, size_t n) {
  return ref_capture(pimoe_tensor_read((const pimoe_model *)m, name, out, n));
}
static ref_result ref_probe(const char *name, int32_t *usable) { return ref_capture(pimoe_backend_probe(name, usable)); }
static void ref_stats_layout(size_t *o) {
  o[0] = sizeof(pimoe_stats_snapshot);
  o[1] = offsetof(pimoe_stats_snapshot, struct_size);
  o[2] = offsetof(pimoe_stats_snapshot, num_experts);
  o[3] = offsetof(pimoe_stats_snapshot, forward_calls);
  o[4] = offsetof(pimoe_stats_snapshot, tokens);
  o[5] = offsetof(pimoe_stats_snapshot, dropped_tokens);
  o[6] = offsetof(pimoe_stats_snapshot, latency_last_ms);
  o[7] = offsetof(pimoe_stats_snapshot, latency_mean_ms);
  o[8] = offsetof(pimoe_stats_snapshot, latency_p50_ms);
  o[9] = offsetof(pimoe_stats_snapshot, latency_p95_ms);
  o[10] = offsetof(pimoe_stats_snapshot, latency_p99_ms);
  o[11] = offsetof(pimoe_stats_snapshot, tokens_per_second);
  o[12] = offsetof(pimoe_stats_snapshot, weight_bytes);
  o[13] = offsetof(pimoe_stats_snapshot, workspace_bytes);
  o[14] = offsetof(pimoe_stats_snapshot, expert_utilization);
  o[15] = offsetof(pimoe_stats_snapshot, load_cv);
  o[16] = offsetof(pimoe_stats_snapshot, load_max_violation);
  o[17] = offsetof(pimoe_stats_snapshot, load_jain_index);
  o[18] = offsetof(pimoe_stats_snapshot, load_normalized_entropy);
  o[19] = offsetof(pimoe_stats_snapshot, routing_confidence);
  o[20] = offsetof(pimoe_stats_snapshot, aux_loss);
  o[21] = offsetof(pimoe_stats_snapshot, z_loss);
  o[22] = offsetof(pimoe_stats_snapshot, weight_quant_rel_rms_error);
  o[23] = offsetof(pimoe_stats_snapshot, weight_quant_max_abs_error);
}
*/
import "C"

import (
	"testing"
	"unsafe"
)

// Result is a C call's status and pimoe_last_error() right after it.
type Result struct {
	Status  int
	Message string
}

func res(r C.ref_result) Result {
	return Result{Status: int(r.status), Message: C.GoString(&r.msg[0])}
}

func cstr(s string) (*C.char, func()) {
	p := C.CString(s)
	return p, func() { C.free(unsafe.Pointer(p)) }
}

func f32(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

// Version is pimoe_version_string().
func Version() string { return C.GoString(C.pimoe_version_string()) }

// BuildInfo is pimoe_build_info().
func BuildInfo() string { return C.GoString(C.pimoe_build_info()) }

// VersionNumber is pimoe_version_number().
func VersionNumber() uint32 { return uint32(C.pimoe_version_number()) }

// ABIVersion is pimoe_abi_version().
func ABIVersion() uint32 { return uint32(C.pimoe_abi_version()) }

// StatusString is pimoe_status_string(s).
func StatusString(s int) string { return C.GoString(C.pimoe_status_string(C.pimoe_status(s))) }

// Backends lists pimoe_backend_name(0 .. pimoe_backend_count()-1).
func Backends() []string {
	var names []string
	for i := C.int32_t(0); i < C.pimoe_backend_count(); i++ {
		names = append(names, C.GoString(C.pimoe_backend_name(i)))
	}
	return names
}

// Probe is pimoe_backend_probe.
func Probe(name string) (bool, Result) {
	p, free := cstr(name)
	defer free()
	var u C.int32_t
	r := res(C.ref_probe(p, &u))
	return u != 0, r
}

// Options is a pimoe_options handle.
type Options uintptr

// NewOptions is pimoe_options_create.
func NewOptions() (Options, Result) {
	var h C.uintptr_t
	r := res(C.ref_options_create(&h))
	return Options(h), r
}

// Destroy is pimoe_options_destroy.
func (o Options) Destroy() { C.ref_options_destroy(C.uintptr_t(o)) }

// SetInt is pimoe_options_set_int.
func (o Options) SetInt(key int, v int64) Result {
	return res(C.ref_set_int(C.uintptr_t(o), C.int(key), C.int64_t(v)))
}

// SetFloat is pimoe_options_set_float.
func (o Options) SetFloat(key int, v float64) Result {
	return res(C.ref_set_float(C.uintptr_t(o), C.int(key), C.double(v)))
}

// SetString is pimoe_options_set_string.
func (o Options) SetString(key int, v string) Result {
	p, free := cstr(v)
	defer free()
	return res(C.ref_set_string(C.uintptr_t(o), C.int(key), p))
}

// SetByName is pimoe_options_set_by_name.
func (o Options) SetByName(k, v string) Result {
	pk, freek := cstr(k)
	defer freek()
	pv, freev := cstr(v)
	defer freev()
	return res(C.ref_set_by_name(C.uintptr_t(o), pk, pv))
}

// SetExpert is pimoe_options_set_expert_{preset (what 1), activation (2), width (3), pre_norm (4)}.
func (o Options) SetExpert(what int, expert int32, v int64) Result {
	return res(C.ref_set_expert(C.uintptr_t(o), C.int(what), C.int32_t(expert), C.int64_t(v)))
}

// SetExpertWeightDtype is pimoe_options_set_expert_weight_dtype.
func (o Options) SetExpertWeightDtype(expert int32, dtype string) Result {
	p, free := cstr(dtype)
	defer free()
	return res(C.ref_set_expert_weight_dtype(C.uintptr_t(o), C.int32_t(expert), p))
}

// Model is a pimoe_model handle.
type Model uintptr

// Create is pimoe_create.
func Create(o Options) (Model, Result) {
	var h C.uintptr_t
	r := res(C.ref_create(C.uintptr_t(o), &h))
	return Model(h), r
}

// ImportHF is pimoe_import_hf with default runtime options; it fails the test on an error.
func ImportHF(t testing.TB, dir string, layer int32) Model {
	cdir, free := cstr(dir)
	defer free()
	var h C.uintptr_t
	if r := res(C.ref_import_hf(cdir, C.int32_t(layer), &h)); r.Status != 0 {
		t.Fatalf("C pimoe_import_hf: %+v", r)
	}
	return Model(h)
}

// CreateByName creates a model from settings given by name (pairs key, value), failing on the first bad one.
func CreateByName(kv ...string) (Model, Result) {
	o, r := NewOptions()
	if r.Status != 0 {
		return 0, r
	}
	defer o.Destroy()
	for i := 0; i+1 < len(kv); i += 2 {
		if r := o.SetByName(kv[i], kv[i+1]); r.Status != 0 {
			return 0, r
		}
	}
	return Create(o)
}

// Destroy is pimoe_destroy.
func (m Model) Destroy() { C.ref_destroy(C.uintptr_t(m)) }

// Forward is pimoe_forward with the slices' lengths as counts (nil routing slices give NULL).
func (m Model) Forward(in []float32, batch, seq int64, out []float32, ids []int32, w []float32) Result {
	var pids *C.int32_t
	if len(ids) > 0 {
		pids = (*C.int32_t)(unsafe.Pointer(&ids[0]))
	}
	return res(C.ref_forward(C.uintptr_t(m), f32(in), C.size_t(len(in)), C.int64_t(batch), C.int64_t(seq),
		f32(out), C.size_t(len(out)), pids, f32(w), C.size_t(len(w))))
}

// ForwardRouting is pimoe_forward_routing with the slices' lengths as counts (nil slices give NULL; the slot count
// is the first non-nil one of ids, w, dropped).
func (m Model) ForwardRouting(in []float32, batch, seq int64, out []float32, ids []int32, w []float32,
	dropped []uint8, probs []float32) Result {
	var pids *C.int32_t
	var pd *C.uint8_t
	slots := len(w)
	if ids != nil {
		slots = len(ids)
	}
	if len(ids) > 0 {
		pids = (*C.int32_t)(unsafe.Pointer(&ids[0]))
	}
	if len(dropped) > 0 {
		pd = (*C.uint8_t)(unsafe.Pointer(&dropped[0]))
	}
	return res(C.ref_forward_routing(C.uintptr_t(m), f32(in), C.size_t(len(in)), C.int64_t(batch), C.int64_t(seq),
		f32(out), C.size_t(len(out)), pids, f32(w), pd, C.size_t(slots), f32(probs), C.size_t(len(probs))))
}

// RoutingSlots is pimoe_model_routing_slots.
func (m Model) RoutingSlots() int64 { return int64(C.ref_routing_slots(C.uintptr_t(m))) }

// ResetAdaptiveState is pimoe_model_reset_adaptive_state.
func (m Model) ResetAdaptiveState() Result { return res(C.ref_reset_adaptive(C.uintptr_t(m))) }

// Save is pimoe_save.
func (m Model) Save(path string) Result {
	p, free := cstr(path)
	defer free()
	return res(C.ref_save(C.uintptr_t(m), p))
}

// SetScaleCallback makes expert a callback expert computing output = input * (expert + 1) in C
// (pimoe_options_set_expert_callback).
func (o Options) SetScaleCallback(expert int32) Result {
	return res(C.ref_options_set_scale_callback(C.uintptr_t(o), C.int32_t(expert)))
}

// SetScaleCallback is pimoe_model_set_expert_callback with the same C callback.
func (m Model) SetScaleCallback(expert int32) Result {
	return res(C.ref_model_set_scale_callback(C.uintptr_t(m), C.int32_t(expert)))
}

// SetCallbackFailure makes the C reference callback return v (0: succeed). Not for concurrent tests.
func SetCallbackFailure(v int) { C.ref_set_fail_value(C.int(v)) }

// ForwardLoop runs n single-token forward calls (in and out hold one token) in one C loop.
func (m Model) ForwardLoop(in, out []float32, n int) Result {
	return res(C.ref_forward_loop(C.uintptr_t(m), f32(in), C.size_t(len(in)), f32(out), C.int64_t(n)))
}

// Stats is pimoe_stats into a C pimoe_stats_snapshot, returned as its fields in order (integers converted to
// float64 exactly: they are far below 2^53 in the tests).
func (m Model) Stats() ([]float64, Result) {
	var s C.pimoe_stats_snapshot
	r := res(C.ref_stats(C.uintptr_t(m), &s))
	return []float64{float64(s.struct_size), float64(s.num_experts), float64(s.forward_calls), float64(s.tokens),
		float64(s.dropped_tokens), float64(s.latency_last_ms), float64(s.latency_mean_ms),
		float64(s.latency_p50_ms), float64(s.latency_p95_ms), float64(s.latency_p99_ms),
		float64(s.tokens_per_second), float64(s.weight_bytes), float64(s.workspace_bytes),
		float64(s.expert_utilization), float64(s.load_cv), float64(s.load_max_violation),
		float64(s.load_jain_index), float64(s.load_normalized_entropy), float64(s.routing_confidence),
		float64(s.aux_loss), float64(s.z_loss), float64(s.weight_quant_rel_rms_error),
		float64(s.weight_quant_max_abs_error)}, r
}

// ExpertLoads is pimoe_stats_expert_loads into counts.
func (m Model) ExpertLoads(counts []uint64) Result {
	var p *C.uint64_t
	if len(counts) > 0 {
		p = (*C.uint64_t)(unsafe.Pointer(&counts[0]))
	}
	return res(C.ref_loads(C.uintptr_t(m), p, C.size_t(len(counts))))
}

// Expert is pimoe_model_expert.
func (m Model) Expert(e int32) (act int32, width int64, preNorm int32, r Result) {
	var a, p C.int32_t
	var w C.int64_t
	r = res(C.ref_expert(C.uintptr_t(m), C.int32_t(e), &a, &w, &p))
	return int32(a), int64(w), int32(p), r
}

// TensorShape is pimoe_tensor_shape.
func (m Model) TensorShape(name string) ([]int64, Result) {
	p, free := cstr(name)
	defer free()
	var ndim C.int32_t
	var dims [4]C.int64_t
	r := res(C.ref_tensor_shape(C.uintptr_t(m), p, &ndim, &dims[0]))
	out := make([]int64, 0, 4)
	for i := 0; i < int(ndim) && i < 4; i++ {
		out = append(out, int64(dims[i]))
	}
	return out, r
}

// TensorRead is pimoe_tensor_read into out.
func (m Model) TensorRead(name string, out []float32) Result {
	p, free := cstr(name)
	defer free()
	return res(C.ref_tensor_read(C.uintptr_t(m), p, f32(out), C.size_t(len(out))))
}

// StatsLayout gives sizeof(pimoe_stats_snapshot) then the offsetof of each field, in order.
func StatsLayout() []uintptr {
	var o [24]C.size_t
	C.ref_stats_layout(&o[0])
	out := make([]uintptr, len(o))
	for i, v := range o {
		out[i] = uintptr(v)
	}
	return out
}
