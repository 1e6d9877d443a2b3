// SPDX-License-Identifier: MIT
package pimoe

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"libpimoe.org/pimoe/internal/cref"
)

// Full routing (pimoe_forward_routing), the routing-feature options and callback experts, against the C library.

// routingConfigs use every option key added with the routing features, set through the Go fields and, for the
// reference, through the C setters.
var routingConfigs = []config{
	{"token_choice_basic", small(), refSmall},
	{"features", func() *Options {
		o := small()
		o.WeightDtype = "bf16"
		o.AttentionHeads = 2
		o.AttentionHeadDim = 8
		o.AttentionCausal = true
		o.CombineAttentionDim = 16
		o.GroupLevels = "2:1,2:2"
		o.AdaptiveBiasRate = 0.01
		o.CapacityFactor = 1.0
		o.DynamicCapacity = true
		o.CapacityMomentum = 0.8
		o.RoutingMode = "token_choice"
		o.Deterministic = false // not promisable with adaptive routing: one thread keeps the bits reproducible
		o.Threads = 1
		return o
	}(), func(o cref.Options) {
		refSmall(o)
		o.SetString(optWeightDtype, "bf16")
		o.SetInt(optAttentionHeads, 2)
		o.SetInt(optAttentionHeadDim, 8)
		o.SetInt(optAttentionCausal, 1)
		o.SetInt(optCombineAttentionDim, 16)
		o.SetString(optGroupLevels, "2:1,2:2")
		o.SetFloat(optAdaptiveBiasRate, 0.01)
		o.SetFloat(optCapacityFactor, 1.0)
		o.SetInt(optDynamicCapacity, 1)
		o.SetFloat(optCapacityMomentum, 0.8)
		o.SetString(optRoutingMode, "token_choice")
		o.SetInt(optDeterministic, 0)
		o.SetInt(optThreads, 1)
	}},
	{"router_extensions_shared", func() *Options {
		o := small()
		o.RouterScoring = "sigmoid"
		o.RouterBias = true
		o.RoutedScaling = 2.5
		o.NumGroups = 4
		o.TopKGroups = 2
		o.GroupScore = "max"
		o.SharedWidth = 32
		o.SharedGate = true
		o.WeightDtype = "fp16"
		return o
	}(), func(o cref.Options) {
		refSmall(o)
		o.SetString(optRouterScoring, "sigmoid")
		o.SetInt(optRouterBias, 1)
		o.SetFloat(optRoutedScaling, 2.5)
		o.SetInt(optNumGroups, 4)
		o.SetInt(optTopKGroups, 2)
		o.SetString(optGroupScore, "max")
		o.SetInt(optSharedWidth, 32)
		o.SetInt(optSharedGate, 1)
		o.SetString(optWeightDtype, "fp16")
	}},
	{"expert_choice", func() *Options {
		o := small()
		o.RoutingMode = "expert_choice"
		o.CapacityFactor = 1.5
		return o
	}(), func(o cref.Options) {
		refSmall(o)
		o.SetString(optRoutingMode, "expert_choice")
		o.SetFloat(optCapacityFactor, 1.5)
	}},
}

// refRouting runs pimoe_forward_routing on the C model and gives the output and the full routing.
func refRouting(t *testing.T, ref cref.Model, in []float32, batch, seq, slots, experts int) ([]float32, Routing) {
	t.Helper()
	n := batch * seq
	out := make([]float32, len(in))
	r := Routing{ExpertIDs: make([]int32, n*slots), ExpertWeights: make([]float32, n*slots),
		Dropped: make([]uint8, n*slots), Probabilities: make([]float32, n*experts)}
	if res := ref.ForwardRouting(in, int64(batch), int64(seq), out, r.ExpertIDs, r.ExpertWeights, r.Dropped,
		r.Probabilities); res.Status != 0 {
		t.Fatalf("C pimoe_forward_routing: %+v", res)
	}
	return out, r
}

func sameRouting(t *testing.T, what string, got, want Routing) {
	t.Helper()
	if !reflect.DeepEqual(got.ExpertIDs, want.ExpertIDs) {
		t.Fatalf("%s: expert ids %v, C gives %v", what, got.ExpertIDs, want.ExpertIDs)
	}
	sameBits(t, what+": weights", got.ExpertWeights, want.ExpertWeights)
	if !reflect.DeepEqual(got.Dropped, want.Dropped) {
		t.Fatalf("%s: dropped %v, C gives %v", what, got.Dropped, want.Dropped)
	}
	sameBits(t, what+": probabilities", got.Probabilities, want.Probabilities)
}

func TestForwardRoutingMatchesC(t *testing.T) {
	for _, c := range routingConfigs {
		t.Run(c.name, func(t *testing.T) {
			m := newModel(t, c.opts)
			ref := refModel(t, c.ref)
			defer ref.Destroy()
			if m.RoutingSlots() != int(ref.RoutingSlots()) {
				t.Fatalf("RoutingSlots() = %d, C gives %d", m.RoutingSlots(), ref.RoutingSlots())
			}
			wantSlots := m.TopK()
			if c.name == "expert_choice" {
				wantSlots = m.NumExperts()
			}
			if m.RoutingSlots() != wantSlots {
				t.Fatalf("RoutingSlots() = %d, want %d", m.RoutingSlots(), wantSlots)
			}
			const batch, seq = 2, 6
			S, E := m.RoutingSlots(), m.NumExperts()
			var first []float32
			for call := 0; call < 3; call++ { // adaptive state evolves over calls: both sides see the same history
				in := input(batch*seq*m.Hidden(), uint64(10+call))
				out, r, err := m.ForwardRouting(in, batch, seq)
				if err != nil {
					t.Fatal(err)
				}
				wantOut, wantR := refRouting(t, ref, in, batch, seq, S, E)
				sameBits(t, "output", out, wantOut)
				sameRouting(t, "routing", r, wantR)
				if call == 0 {
					first = out
				}
				if c.name == "expert_choice" && call == 0 {
					unused := 0
					for _, id := range r.ExpertIDs {
						if id == -1 {
							unused++
						}
					}
					if unused == 0 {
						t.Errorf("expert choice: no unused slot (-1) in %v", r.ExpertIDs)
					}
				}
			}
			// pimoe_forward's routing outputs have the same slots.
			in := input(batch*seq*m.Hidden(), 99)
			_, routed, err := m.ForwardRouted(in, batch, seq)
			if err != nil {
				t.Fatal(err)
			}
			_, wantR := refRouting(t, ref, in, batch, seq, S, E)
			if !reflect.DeepEqual(routed.ExpertIDs, wantR.ExpertIDs) {
				t.Fatalf("ForwardRouted ids %v, C gives %v", routed.ExpertIDs, wantR.ExpertIDs)
			}
			sameBits(t, "ForwardRouted weights", routed.ExpertWeights, wantR.ExpertWeights)
			// Reset: the first call's output again, on both sides.
			if err := m.ResetAdaptiveState(); err != nil {
				t.Fatal(err)
			}
			if r := ref.ResetAdaptiveState(); r.Status != 0 {
				t.Fatal(r)
			}
			in0 := input(batch*seq*m.Hidden(), 10)
			out, r, err := m.ForwardRouting(in0, batch, seq)
			if err != nil {
				t.Fatal(err)
			}
			wantOut, wantR0 := refRouting(t, ref, in0, batch, seq, S, E)
			sameBits(t, "output after reset", out, wantOut)
			sameRouting(t, "routing after reset", r, wantR0)
			sameBits(t, "output after reset vs first call", out, first)
			// Only some outputs wanted, into caller buffers.
			probs := make([]float32, batch*seq*E)
			out2 := make([]float32, len(in0))
			if err := m.ForwardRoutingInto(out2, in0, batch, seq, &Routing{Probabilities: probs}); err != nil {
				t.Fatal(err)
			}
			sameBits(t, "probabilities only", probs, wantR0.Probabilities)
		})
	}
}

func TestForwardRoutingErrorsMatchC(t *testing.T) {
	m := newModel(t, small())
	ref := refModel(t, refSmall)
	defer ref.Destroy()
	const batch, seq = 1, 3
	in := input(batch*seq*64, 5)
	out := make([]float32, len(in))
	bad := []struct {
		name string
		r    Routing
	}{
		{"slots", Routing{ExpertIDs: make([]int32, 5), ExpertWeights: make([]float32, 5), Dropped: make([]uint8, 5)}},
		{"probabilities", Routing{Probabilities: make([]float32, 7)}},
	}
	for _, b := range bad {
		err := m.ForwardRoutingInto(out, in, batch, seq, &b.r)
		res := ref.ForwardRouting(in, batch, seq, make([]float32, len(in)), b.r.ExpertIDs, b.r.ExpertWeights,
			b.r.Dropped, b.r.Probabilities)
		var perr *Error
		if !errors.As(err, &perr) || int(perr.Status) != res.Status || perr.Message != res.Message || res.Status == 0 {
			t.Errorf("%s: Go %v, C %+v", b.name, err, res)
		}
	}
	err := m.ForwardRoutingInto(out, in, batch, seq, &Routing{ExpertIDs: make([]int32, 6), Dropped: make([]uint8, 5)})
	var perr *Error
	if !errors.As(err, &perr) || perr.Status != StatusSizeMismatch {
		t.Errorf("different routing slice lengths: %v", err)
	}
	if err := m.ForwardRoutingInto(out, in, batch, seq, nil); err != nil {
		t.Errorf("no routing wanted: %v", err)
	}
}

// goScale is the Go twin of cref's C callback: output = input * (expert + 1).
func goScale(expert int, input []float32, rows, hidden int, output []float32) error {
	if len(input) != rows*hidden || len(output) != rows*hidden {
		return errors.New("bad slice lengths")
	}
	f := float32(expert + 1)
	for i, x := range input {
		output[i] = x * f
	}
	return nil
}

func callbackOptions(fn ExpertFunc) *Options {
	o := small()
	o.CapacityFactor = 1.25
	o.Experts = []ExpertOverride{ExpertCallback(2, fn), ExpertCallback(5, fn)}
	return o
}

func refCallbackModel(t *testing.T) cref.Model {
	return refModel(t, func(o cref.Options) {
		refSmall(o)
		o.SetFloat(optCapacityFactor, 1.25)
		o.SetScaleCallback(2)
		o.SetScaleCallback(5)
	})
}

func TestCallbackExpertsMatchC(t *testing.T) {
	m := newModel(t, callbackOptions(goScale))
	ref := refCallbackModel(t)
	defer ref.Destroy()
	spec, err := m.Expert(2)
	if err != nil || spec.Intermediate != 0 {
		t.Fatalf("expert 2 of a callback model: %+v %v", spec, err)
	}
	const batch, seq = 3, 4
	S, E := m.RoutingSlots(), m.NumExperts()
	in := input(batch*seq*m.Hidden(), 21)
	out, r, err := m.ForwardRouting(in, batch, seq)
	if err != nil {
		t.Fatal(err)
	}
	wantOut, wantR := refRouting(t, ref, in, batch, seq, S, E)
	sameBits(t, "output", out, wantOut)
	sameRouting(t, "routing", r, wantR)
	used := false
	for _, id := range r.ExpertIDs {
		used = used || id == 2 || id == 5
	}
	if !used {
		t.Fatalf("the input routes no token to a callback expert: %v", r.ExpertIDs)
	}

	// Concurrent forward calls run the callback concurrently; each result is still the C library's.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				got, err := m.Forward(in, batch, seq)
				if err != nil {
					errs <- err
					return
				}
				for j := range got {
					if got[j] != wantOut[j] {
						errs <- errors.New("concurrent callback forward differs from C")
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestCallbackErrorsSurfaceAsStatusCallback(t *testing.T) {
	boom := errors.New("boom from Go")
	var mode sync.Map // "fail" -> error or "panic"
	fn := func(expert int, input []float32, rows, hidden int, output []float32) error {
		if v, ok := mode.Load("fail"); ok {
			if v == "panic" {
				panic("callback panic")
			}
			return v.(error)
		}
		return goScale(expert, input, rows, hidden, output)
	}
	m := newModel(t, callbackOptions(fn))
	ref := refCallbackModel(t)
	defer ref.Destroy()
	const batch, seq = 3, 4
	in := input(batch*seq*m.Hidden(), 21)
	cref.SetCallbackFailure(1) // the Go trampoline returns 1 on failure: the same library message
	defer cref.SetCallbackFailure(0)
	res := ref.Forward(in, batch, seq, make([]float32, len(in)), nil, nil)
	if res.Status != int(StatusCallback) {
		t.Fatalf("C reference with a failing callback: %+v", res)
	}

	mode.Store("fail", boom)
	_, err := m.Forward(in, batch, seq)
	var perr *Error
	if !errors.As(err, &perr) || perr.Status != StatusCallback || perr.Message != res.Message || perr.Op != "pimoe_forward" {
		t.Fatalf("failing callback: %v, C gives %+v", err, res)
	}
	if !errors.Is(err, boom) || perr.Err != boom || !strings.Contains(err.Error(), "boom from Go") {
		t.Fatalf("the callback's own error is not reachable: %v (%#v)", err, perr.Err)
	}
	_, _, err = m.ForwardRouting(in, batch, seq)
	if !errors.As(err, &perr) || perr.Status != StatusCallback || !errors.Is(err, boom) {
		t.Fatalf("failing callback, ForwardRouting: %v", err)
	}

	mode.Store("fail", "panic")
	_, err = m.Forward(in, batch, seq)
	if !errors.As(err, &perr) || perr.Status != StatusCallback || perr.Err == nil ||
		!strings.Contains(perr.Err.Error(), "callback panic") {
		t.Fatalf("panicking callback: %v", err)
	}

	// The model stays usable, and a concurrent failure never leaks into another goroutine's call.
	mode.Delete("fail")
	cref.SetCallbackFailure(0)
	got, err := m.Forward(in, batch, seq)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, len(in))
	if r := ref.Forward(in, batch, seq, want, nil, nil); r.Status != 0 {
		t.Fatal(r)
	}
	sameBits(t, "output after failures", got, want)

	if _, err := New(&Options{Hidden: 64, NumExperts: 8, Experts: []ExpertOverride{ExpertCallback(1, nil)}}); err == nil {
		t.Fatal("nil callback accepted")
	}
	if err := m.SetExpertCallback(0, goScale); !errors.As(err, &perr) || perr.Status != StatusInvalidArgument {
		t.Fatalf("SetExpertCallback on a neural expert: %v", err)
	}
}

func TestCallbackExpertsAfterLoad(t *testing.T) {
	m := newModel(t, callbackOptions(goScale))
	ref := refCallbackModel(t)
	defer ref.Destroy()
	const batch, seq = 2, 5
	in := input(batch*seq*m.Hidden(), 31)
	want := make([]float32, len(in))
	if r := ref.Forward(in, batch, seq, want, nil, nil); r.Status != 0 {
		t.Fatal(r)
	}
	path := filepath.Join(t.TempDir(), "callback.safetensors")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(path, &Options{Backend: "cpu", Deterministic: true})
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	_, err = loaded.Forward(in, batch, seq)
	var perr *Error
	if !errors.As(err, &perr) || perr.Status != StatusCallback || perr.Err != nil {
		t.Fatalf("forward of a loaded callback model without callbacks: %v", err)
	}
	for _, e := range []int{2, 5} {
		if err := loaded.SetExpertCallback(e, func(expert int, input []float32, rows, hidden int, output []float32) error {
			return errors.New("replaced below")
		}); err != nil {
			t.Fatal(err)
		}
		if err := loaded.SetExpertCallback(e, goScale); err != nil { // replaces (and frees) the first one
			t.Fatal(err)
		}
	}
	got, err := loaded.Forward(in, batch, seq)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "loaded model with callbacks set", got, want)
	loaded.Close()
	if err := loaded.SetExpertCallback(2, goScale); err != ErrClosed {
		t.Fatalf("SetExpertCallback after Close: %v", err)
	}
}
