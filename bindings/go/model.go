// SPDX-License-Identifier: MIT
package pimoe

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"libpimoe.org/pimoe/internal/cpimoe"
)

// Model is one MoE layer (a pimoe_model). All its methods are safe to call from many goroutines at once: forward
// calls run concurrently in the library; Close waits for the calls in flight and makes later calls return ErrClosed.
// Call Close when done; a finalizer frees a forgotten Model, but only as a safety net.
type Model struct {
	mu         sync.RWMutex // read-held by every call on the handle, write-held by Close
	handle     uintptr      // the pimoe_model *, 0 once closed
	hidden     int
	numExperts int
	topK       int
	slots      int       // routing slots per token (pimoe_model_routing_slots): TopK, or NumExperts with expert choice
	callbacks  callbacks // cgo handles of the Go expert callbacks this model may call; freed after the model
}

// finalized counts models freed by the finalizer (read by the tests).
var finalized atomic.Int64

// New creates a model from opts (nil for every default), its weights initialised from the seed option.
func New(opts *Options) (*Model, error) {
	oh, cbs, err := opts.build()
	if err != nil {
		return nil, err
	}
	var h uintptr
	status := cpimoe.Pimoe_create(oh, &h)
	cpimoe.Pimoe_options_destroy(oh)
	if err := check("pimoe_create", status); err != nil {
		cbs.free()
		return nil, err
	}
	return wrap(h, cbs)
}

// Load reads a model saved in libpimoe's native format (see pimoe_load in pimoe.h): the layer comes from the file;
// opts (nil for defaults) gives only the runtime settings (backend, threads, deterministic, cpu_gemm).
func Load(path string, opts *Options) (*Model, error) {
	oh, cbs, err := opts.build()
	if err != nil {
		return nil, err
	}
	var h uintptr
	status := cpimoe.Pimoe_load(path, oh, &h)
	cpimoe.Pimoe_options_destroy(oh)
	if err := check("pimoe_load", status); err != nil {
		cbs.free()
		return nil, err
	}
	return wrap(h, cbs)
}

// ImportHF builds the MoE block of decoder layer `layer` of a Hugging Face checkpoint folder (config.json and
// model.safetensors or a sharded index; see pimoe_import_hf in pimoe.h for the families and their semantics).
// opts (nil for defaults) gives only the runtime settings.
func ImportHF(dir string, layer int, opts *Options) (*Model, error) {
	if layer < 0 || layer > math.MaxInt32 {
		return nil, &Error{Status: StatusInvalidArgument, Op: "pimoe_import_hf",
			Message: fmt.Sprintf("layer %d is out of range", layer)}
	}
	oh, cbs, err := opts.build()
	if err != nil {
		return nil, err
	}
	var h uintptr
	status := cpimoe.Pimoe_import_hf(dir, layer, oh, &h)
	cpimoe.Pimoe_options_destroy(oh)
	if err := check("pimoe_import_hf", status); err != nil {
		cbs.free()
		return nil, err
	}
	return wrap(h, cbs)
}

// Save writes the model in libpimoe's native format (safetensors with the layer settings in its metadata).
func (m *Model) Save(path string) error {
	h, err := m.acquire()
	if err != nil {
		return err
	}
	status := cpimoe.Pimoe_save(h, path)
	m.release()
	return check("pimoe_save", status)
}

// wrap takes ownership of a fresh model handle and of the callback handles it may call.
func wrap(h uintptr, cbs callbacks) (*Model, error) {
	var hidden int64
	var experts, topK int32
	if err := check("pimoe_model_dims", cpimoe.Pimoe_model_dims(h, &hidden, &experts, &topK)); err != nil {
		cpimoe.Pimoe_destroy(h)
		cbs.free()
		return nil, err
	}
	if cbs == nil {
		cbs = callbacks{}
	}
	m := &Model{handle: h, hidden: int(hidden), numExperts: int(experts), topK: int(topK),
		slots: int(cpimoe.Pimoe_model_routing_slots(h)), callbacks: cbs}
	runtime.SetFinalizer(m, (*Model).finalize)
	return m, nil
}

func (m *Model) finalize() {
	if m.handle != 0 {
		cpimoe.Pimoe_destroy(m.handle)
		m.handle = 0
		m.callbacks.free()
		finalized.Add(1)
	}
}

// Close frees the model. It waits for calls in flight on other goroutines; afterwards every method returns
// ErrClosed. Closing twice is harmless (nil).
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.handle != 0 {
		cpimoe.Pimoe_destroy(m.handle)
		m.handle = 0
		m.callbacks.free()
		m.callbacks = nil
		runtime.SetFinalizer(m, nil)
	}
	return nil
}

// acquire read-locks the model and gives its handle, or ErrClosed (unlocked).
func (m *Model) acquire() (uintptr, error) {
	m.mu.RLock()
	if m.handle == 0 {
		m.mu.RUnlock()
		return 0, ErrClosed
	}
	return m.handle, nil
}

func (m *Model) release() {
	m.mu.RUnlock()
	runtime.KeepAlive(m)
}

// Hidden is the model width H.
func (m *Model) Hidden() int { return m.hidden }

// NumExperts is the number of routed experts E.
func (m *Model) NumExperts() int { return m.numExperts }

// TopK is the number of experts per token k.
func (m *Model) TopK() int { return m.topK }

// RoutingSlots is the number of routing slots per token in the routing outputs (pimoe_model_routing_slots): TopK, or
// NumExperts with expert-choice routing.
func (m *Model) RoutingSlots() int { return m.slots }

// Forward runs the layer on input [batch, seq, hidden] (row-major, len(input) == batch*seq*hidden) and returns the
// output of the same shape.
func (m *Model) Forward(input []float32, batch, seq int) ([]float32, error) {
	out := make([]float32, len(input))
	if err := m.ForwardInto(out, input, batch, seq); err != nil {
		return nil, err
	}
	return out, nil
}

// ForwardInto is Forward into a caller-owned output (len(output) == len(input)); it allocates nothing. Both slices
// are passed to the library without copies.
func (m *Model) ForwardInto(output, input []float32, batch, seq int) error {
	return m.forward(output, input, batch, seq, nil, nil)
}

// Routing is the routing decision of a forward call. With S = RoutingSlots(), for token t and slot j (index t*S + j,
// slots in descending router probability or selection score) ExpertIDs holds the chosen expert (-1 for an unused
// expert-choice slot) and ExpertWeights the weight its output was combined with (0 for a slot dropped by the
// capacity limit or unused). ForwardRouting also fills Dropped (1 where the capacity limit dropped the slot) and
// Probabilities ([tokens, NumExperts]: the router scores of every token and expert, before any bias or group mask).
type Routing struct {
	ExpertIDs     []int32
	ExpertWeights []float32
	Dropped       []uint8   // ForwardRouting only
	Probabilities []float32 // ForwardRouting only
}

// ForwardRouted is Forward that also returns the routing decision (expert ids and weights).
func (m *Model) ForwardRouted(input []float32, batch, seq int) ([]float32, Routing, error) {
	out := make([]float32, len(input))
	n := 0
	if batch > 0 && seq > 0 && m.slots > 0 {
		n = batch * seq * m.slots
	}
	r := Routing{ExpertIDs: make([]int32, n), ExpertWeights: make([]float32, n)}
	if err := m.forward(out, input, batch, seq, r.ExpertIDs, r.ExpertWeights); err != nil {
		return nil, Routing{}, err
	}
	return out, r, nil
}

// ForwardRoutedInto is ForwardRouted into caller-owned buffers: expertIDs and expertWeights must have the same
// length, batch*seq*RoutingSlots() (or both be nil for no routing output). It allocates nothing.
func (m *Model) ForwardRoutedInto(output, input []float32, batch, seq int, expertIDs []int32,
	expertWeights []float32) error {
	if expertIDs != nil && expertWeights != nil && len(expertIDs) != len(expertWeights) {
		return argError("pimoe_forward", StatusSizeMismatch,
			"expert_ids has %d elements but expert_weights has %d", len(expertIDs), len(expertWeights))
	}
	if (expertIDs == nil) != (expertWeights == nil) {
		return argError("pimoe_forward", StatusNullPointer,
			"expert_ids and expert_weights must both be nil or both be given")
	}
	return m.forward(output, input, batch, seq, expertIDs, expertWeights)
}

// ForwardRouting is Forward that also returns the full routing (pimoe_forward_routing): expert ids, weights and
// dropped flags (batch*seq*RoutingSlots() each) and the router probabilities (batch*seq*NumExperts).
func (m *Model) ForwardRouting(input []float32, batch, seq int) ([]float32, Routing, error) {
	out := make([]float32, len(input))
	n, p := 0, 0
	if batch > 0 && seq > 0 {
		n, p = batch*seq*m.slots, batch*seq*m.numExperts
	}
	r := Routing{ExpertIDs: make([]int32, n), ExpertWeights: make([]float32, n), Dropped: make([]uint8, n),
		Probabilities: make([]float32, p)}
	if err := m.ForwardRoutingInto(out, input, batch, seq, &r); err != nil {
		return nil, Routing{}, err
	}
	return out, r, nil
}

// ForwardRoutingInto is ForwardRouting into caller-owned buffers: each slice of r may be nil (not wanted); the
// non-nil ones of ExpertIDs, ExpertWeights and Dropped must have the same length, batch*seq*RoutingSlots(), and
// Probabilities batch*seq*NumExperts. Every slice is passed to the library without a copy; it allocates nothing.
// r may be nil (no routing output).
func (m *Model) ForwardRoutingInto(output, input []float32, batch, seq int, r *Routing) error {
	var rr Routing
	if r != nil {
		rr = *r
	}
	lens := []int{}
	if rr.ExpertIDs != nil {
		lens = append(lens, len(rr.ExpertIDs))
	}
	if rr.ExpertWeights != nil {
		lens = append(lens, len(rr.ExpertWeights))
	}
	if rr.Dropped != nil {
		lens = append(lens, len(rr.Dropped))
	}
	for _, l := range lens {
		if l != lens[0] {
			return argError("pimoe_forward_routing", StatusSizeMismatch,
				"the routing slices have different lengths (expert ids %d, weights %d, dropped %d)",
				len(rr.ExpertIDs), len(rr.ExpertWeights), len(rr.Dropped))
		}
	}
	return m.call("pimoe_forward_routing", output, input, batch, seq, rr.ExpertIDs, rr.ExpertWeights, rr.Dropped,
		rr.Probabilities, 1)
}

func (m *Model) forward(output, input []float32, batch, seq int, ids []int32, weights []float32) error {
	return m.call("pimoe_forward", output, input, batch, seq, ids, weights, nil, nil, 0)
}

// call runs pimoe_forward (full 0) or pimoe_forward_routing (full 1); a failing Go expert callback's error comes
// back as the Err of the *Error (StatusCallback).
func (m *Model) call(op string, output, input []float32, batch, seq int, ids []int32, weights []float32,
	dropped []uint8, probs []float32, full int) error {
	h, err := m.acquire()
	if err != nil {
		return err
	}
	var failed uint64
	status := cpimoe.Pimoe_go_forward(h, input, int64(batch), int64(seq), output, ids, weights, dropped, probs, full,
		&failed)
	m.release()
	cbErr := cpimoe.TakeCallbackError(failed)
	if err := check(op, status); err != nil {
		if e, ok := err.(*Error); ok && cbErr != nil {
			e.Err = cbErr
		}
		return err
	}
	return nil
}

// ResetAdaptiveState restores the adaptive routing state (the selection bias of AdaptiveBiasRate, the load average
// of DynamicCapacity) to its value at creation or load (pimoe_model_reset_adaptive_state); a no-op without them. Safe
// while forward calls run.
func (m *Model) ResetAdaptiveState() error {
	h, err := m.acquire()
	if err != nil {
		return err
	}
	status := cpimoe.Pimoe_model_reset_adaptive_state(h)
	m.release()
	return check("pimoe_model_reset_adaptive_state", status)
}

// ExpertFunc computes a callback expert (pimoe_expert_fn): it receives the rows routed to expert (input [rows,
// hidden], the tokens' x in token order, no LayerNorm) and writes the expert's outputs into output [rows, hidden]
// (zero-filled). Both slices alias the library's buffers (no copy) and are valid only during the call: do not keep
// them, do not write input. A non-nil error (or a panic, which is recovered) fails the forward call with an *Error
// of StatusCallback whose Err is that error.
//
// Thread contract: fn runs on the goroutine that called Forward (inside its cgo call, on the same OS thread), at
// most once per call and callback expert, after routing and before Forward returns. Concurrent Forward calls on one
// Model may run fn concurrently, so fn must be safe for concurrent use. fn must not call methods of the same Model.
type ExpertFunc func(expert int, input []float32, rows, hidden int, output []float32) error

// SetExpertCallback sets or replaces the Go function of callback expert `expert`
// (pimoe_model_set_expert_callback), e.g. after Load: a loaded model's callback experts have none and fail Forward
// with StatusCallback until it is set. It waits for the forward calls in flight (it must not race with them).
func (m *Model) SetExpertCallback(expert int, fn ExpertFunc) error {
	if int(int32(expert)) != expert {
		return argError("pimoe_model_set_expert_callback", StatusInvalidArgument,
			"expert index %d does not fit the C API's int32_t", expert)
	}
	if fn == nil {
		return argError("pimoe_model_set_expert_callback", StatusNullPointer, "the callback is nil")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.handle == 0 {
		return ErrClosed
	}
	ch := cpimoe.NewCallbackHandle(cpimoe.ExpertFunc(fn))
	status := cpimoe.Pimoe_go_model_set_expert_callback(m.handle, expert, ch)
	if err := check("pimoe_model_set_expert_callback", status); err != nil {
		cpimoe.DeleteCallbackHandle(ch)
		return err
	}
	if old, ok := m.callbacks[expert]; ok {
		cpimoe.DeleteCallbackHandle(old)
	}
	m.callbacks[expert] = ch
	return nil
}

// ExpertSpec is the resolved specification of one expert (after presets and overrides).
type ExpertSpec struct {
	Activation   Activation
	Intermediate int64
	PreNorm      bool
}

// Expert gives the resolved spec of expert e.
func (m *Model) Expert(e int) (ExpertSpec, error) {
	if int(int32(e)) != e {
		return ExpertSpec{}, argError("pimoe_model_expert", StatusInvalidArgument,
			"expert index %d does not fit the C API's int32_t", e)
	}
	h, err := m.acquire()
	if err != nil {
		return ExpertSpec{}, err
	}
	var act, preNorm int32
	var width int64
	status := cpimoe.Pimoe_model_expert(h, e, &act, &width, &preNorm)
	m.release()
	if err := check("pimoe_model_expert", status); err != nil {
		return ExpertSpec{}, err
	}
	return ExpertSpec{Activation: Activation(act), Intermediate: width, PreNorm: preNorm != 0}, nil
}

// Backend is the name of the backend the model runs on ("cpu", ...).
func (m *Model) Backend() (string, error) {
	h, err := m.acquire()
	if err != nil {
		return "", err
	}
	defer m.release()
	return cpimoe.Pimoe_model_backend(h), nil
}

// LastError is the last failure recorded on this model from any goroutine (pimoe_model_last_error), or "".
func (m *Model) LastError() (string, error) {
	h, err := m.acquire()
	if err != nil {
		return "", err
	}
	defer m.release()
	return cpimoe.Pimoe_model_last_error(h), nil
}

// Stats gives a snapshot of the model's statistics (see Stats).
func (m *Model) Stats() (Stats, error) {
	var s Stats
	s.StructSize = uint32(unsafe.Sizeof(s))
	h, err := m.acquire()
	if err != nil {
		return Stats{}, err
	}
	status := cpimoe.Pimoe_stats(h, unsafe.Pointer(&s))
	m.release()
	if err := check("pimoe_stats", status); err != nil {
		return Stats{}, err
	}
	return s, nil
}

// ExpertLoads gives the per-expert loads: (token, expert) assignments computed, summed over calls.
func (m *Model) ExpertLoads() ([]uint64, error) {
	loads := make([]uint64, m.numExperts)
	if err := m.ExpertLoadsInto(loads); err != nil {
		return nil, err
	}
	return loads, nil
}

// ExpertLoadsInto writes the per-expert loads into counts (len(counts) >= NumExperts).
func (m *Model) ExpertLoadsInto(counts []uint64) error {
	h, err := m.acquire()
	if err != nil {
		return err
	}
	status := cpimoe.Pimoe_stats_expert_loads(h, counts)
	m.release()
	return check("pimoe_stats_expert_loads", status)
}

// ResetStats clears every statistic; safe while forward calls run.
func (m *Model) ResetStats() error {
	h, err := m.acquire()
	if err != nil {
		return err
	}
	status := cpimoe.Pimoe_stats_reset(h)
	m.release()
	return check("pimoe_stats_reset", status)
}

// TensorNames lists the model's weight tensors in the library's order (see pimoe_tensor_count in pimoe.h).
func (m *Model) TensorNames() ([]string, error) {
	h, err := m.acquire()
	if err != nil {
		return nil, err
	}
	defer m.release()
	n := cpimoe.Pimoe_tensor_count(h)
	names := make([]string, 0, n)
	for i := int64(0); i < n; i++ {
		names = append(names, cpimoe.Pimoe_tensor_name(h, i))
	}
	return names, nil
}

// TensorShape gives the extents of a named tensor (rank 1 or 2).
func (m *Model) TensorShape(name string) ([]int64, error) {
	h, err := m.acquire()
	if err != nil {
		return nil, err
	}
	var ndim int32
	var dims [4]int64
	status := cpimoe.Pimoe_tensor_shape(h, name, &ndim, &dims)
	m.release()
	if err := check("pimoe_tensor_shape", status); err != nil {
		return nil, err
	}
	if ndim < 0 || ndim > 4 {
		return nil, argError("pimoe_tensor_shape", StatusInternal, "tensor %q has rank %d", name, ndim)
	}
	return append([]int64(nil), dims[:ndim]...), nil
}

// Tensor gives a copy of a named tensor's values (row-major fp32).
func (m *Model) Tensor(name string) ([]float32, error) {
	shape, err := m.TensorShape(name)
	if err != nil {
		return nil, err
	}
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	out := make([]float32, n)
	if err := m.ReadTensor(name, out); err != nil {
		return nil, err
	}
	return out, nil
}

// ReadTensor copies a named tensor's values into out, whose length must equal the tensor's element count.
func (m *Model) ReadTensor(name string, out []float32) error {
	h, err := m.acquire()
	if err != nil {
		return err
	}
	status := cpimoe.Pimoe_tensor_read(h, name, out)
	m.release()
	return check("pimoe_tensor_read", status)
}
