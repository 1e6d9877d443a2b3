// SPDX-License-Identifier: MIT
package pimoe

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"libpimoe.org/pimoe/internal/cpimoe"
	"libpimoe.org/pimoe/internal/cref"
)

// ------------------------------------------------------------------------------------------------ helpers

// input gives n deterministic values in [-1, 1) (SplitMix64, as the C demo).
func input(n int, seed uint64) []float32 {
	out := make([]float32, n)
	s := seed
	for i := range out {
		s += 0x9E3779B97F4A7C15
		z := s
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
		z = (z ^ (z >> 27)) * 0x94D049BB133111EB
		z ^= z >> 31
		out[i] = float32(float64(z>>40)*(1.0/8388608.0) - 1.0)
	}
	return out
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, C gives %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %v, C gives %v", what, i, got[i], want[i])
		}
	}
}

// config is one model configuration, given both as Go Options and as the same C calls.
type config struct {
	name string
	opts *Options
	ref  func(o cref.Options) // the same settings through the C setters
}

func small() *Options {
	return &Options{Hidden: 64, NumExperts: 8, TopK: 2, Intermediate: 128, Seed: 7, Backend: "cpu",
		Deterministic: true}
}

func refSmall(o cref.Options) {
	o.SetInt(optHidden, 64)
	o.SetInt(optNumExperts, 8)
	o.SetInt(optTopK, 2)
	o.SetInt(optIntermediate, 128)
	o.SetInt(optSeed, 7)
	o.SetString(optBackend, "cpu")
	o.SetInt(optDeterministic, 1)
}

var configs = []config{
	{"gelu", small(), refSmall},
	{"swiglu_bias_overrides", func() *Options {
		o := small()
		o.Activation = ActivationSwiGLU
		o.ExpertBias = true
		o.LayerNormEps = 1e-6
		o.Experts = []ExpertOverride{ExpertPreset(1, PresetComputation), ExpertPreset(2, PresetReasoning),
			ExpertWidth(3, 96), ExpertPreNorm(4, true), ExpertActivation(5, ActivationTanh),
			ExpertPreset(AllExperts, PresetGeneric)}
		return o
	}(), func(o cref.Options) {
		refSmall(o)
		o.SetInt(optActivation, int64(ActivationSwiGLU))
		o.SetInt(optExpertBias, 1)
		o.SetFloat(optLayerNormEps, 1e-6)
		o.SetExpert(1, 1, int64(PresetComputation))
		o.SetExpert(1, 2, int64(PresetReasoning))
		o.SetExpert(3, 3, 96)
		o.SetExpert(4, 4, 1)
		o.SetExpert(2, 5, int64(ActivationTanh))
		o.SetExpert(1, -1, int64(PresetGeneric))
	}},
	{"capacity_temperature_raw_weights", func() *Options {
		o := small()
		o.TopK = 3
		o.CapacityFactor = 0.5
		o.Temperature = 0.7
		o.NoRenormalize = true
		o.AuxLossCoef = 0.25
		o.PreNorm = true
		o.Threads = 1
		o.Extra = []Setting{{"activation", "silu"}, {"aux_loss_coef", "0.5"}}
		return o
	}(), func(o cref.Options) {
		refSmall(o)
		o.SetInt(optTopK, 3)
		o.SetFloat(optCapacityFactor, 0.5)
		o.SetFloat(optTemperature, 0.7)
		o.SetInt(optRenormalize, 0)
		o.SetFloat(optAuxLossCoef, 0.25)
		o.SetInt(optPreNorm, 1)
		o.SetInt(optThreads, 1)
		o.SetByName("activation", "silu")
		o.SetByName("aux_loss_coef", "0.5")
	}},
	{"compact_int4_g64_zero_point_bf16_expert", compactOptions(), refCompact},
}

// compactOptions: compact weights (pimoe.h's WEIGHT_DTYPE formats): an int4 layer with 64-element groups and zero
// points, expert 0 kept at bf16, one expert at int8 and one at mxfp4.
func compactOptions() *Options {
	o := small()
	o.WeightDtype = "int4"
	o.WeightGroupSize = 64
	o.WeightZeroPoint = true
	o.Experts = []ExpertOverride{ExpertWeightDtype(0, "bf16"), ExpertWeightDtype(3, "int8"),
		ExpertWeightDtype(5, "mxfp4")}
	return o
}

func refCompact(o cref.Options) {
	refSmall(o)
	o.SetString(optWeightDtype, "int4")
	o.SetInt(optWeightGroupSize, 64)
	o.SetInt(optWeightZeroPoint, 1)
	o.SetExpertWeightDtype(0, "bf16")
	o.SetExpertWeightDtype(3, "int8")
	o.SetExpertWeightDtype(5, "mxfp4")
}

func refModel(t *testing.T, setup func(cref.Options)) cref.Model {
	t.Helper()
	o, r := cref.NewOptions()
	if r.Status != 0 {
		t.Fatal(r)
	}
	defer o.Destroy()
	setup(o)
	m, r := cref.Create(o)
	if r.Status != 0 {
		t.Fatalf("C reference model: %+v", r)
	}
	return m
}

func newModel(t *testing.T, o *Options) *Model {
	t.Helper()
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// ------------------------------------------------------------------------------------------------ constants, version

func TestConstantsMatchC(t *testing.T) {
	for s := StatusOK; s <= StatusCallback+1; s++ {
		if got, want := s.String(), cref.StatusString(int(s)); got != want {
			t.Errorf("Status(%d).String() = %q, C gives %q", s, got, want)
		}
	}
	pairs := []struct{ got, want int }{
		{int(StatusOK), int(cpimoe.PIMOE_OK)}, {int(StatusNullPointer), int(cpimoe.PIMOE_ERR_NULL_POINTER)},
		{int(StatusInvalidArgument), int(cpimoe.PIMOE_ERR_INVALID_ARGUMENT)},
		{int(StatusSizeMismatch), int(cpimoe.PIMOE_ERR_SIZE_MISMATCH)},
		{int(StatusUnknownOption), int(cpimoe.PIMOE_ERR_UNKNOWN_OPTION)},
		{int(StatusInvalidOption), int(cpimoe.PIMOE_ERR_INVALID_OPTION)},
		{int(StatusNonFiniteInput), int(cpimoe.PIMOE_ERR_NON_FINITE_INPUT)},
		{int(StatusBackendUnavailable), int(cpimoe.PIMOE_ERR_BACKEND_UNAVAILABLE)},
		{int(StatusOutOfMemory), int(cpimoe.PIMOE_ERR_OUT_OF_MEMORY)},
		{int(StatusNotFound), int(cpimoe.PIMOE_ERR_NOT_FOUND)}, {int(StatusIO), int(cpimoe.PIMOE_ERR_IO)},
		{int(StatusFormat), int(cpimoe.PIMOE_ERR_FORMAT)}, {int(StatusUnsupported), int(cpimoe.PIMOE_ERR_UNSUPPORTED)},
		{int(StatusInternal), int(cpimoe.PIMOE_ERR_INTERNAL)},
		{int(StatusCallback), int(cpimoe.PIMOE_ERR_CALLBACK)},
		{int(ActivationGELU), int(cpimoe.PIMOE_ACT_GELU)}, {int(ActivationGELUTanh), int(cpimoe.PIMOE_ACT_GELU_TANH)},
		{int(ActivationSiLU), int(cpimoe.PIMOE_ACT_SILU)}, {int(ActivationReLU), int(cpimoe.PIMOE_ACT_RELU)},
		{int(ActivationTanh), int(cpimoe.PIMOE_ACT_TANH)}, {int(ActivationSwiGLU), int(cpimoe.PIMOE_ACT_SWIGLU)},
		{int(ActivationSwiGLUOAI), int(cpimoe.PIMOE_ACT_SWIGLU_OAI)},
		{int(PresetGeneric), int(cpimoe.PIMOE_PRESET_GENERIC)}, {int(PresetReasoning), int(cpimoe.PIMOE_PRESET_REASONING)},
		{int(PresetComputation), int(cpimoe.PIMOE_PRESET_COMPUTATION)},
		{int(PresetMathematical), int(cpimoe.PIMOE_PRESET_MATHEMATICAL)},
		{int(PresetLogical), int(cpimoe.PIMOE_PRESET_LOGICAL)}, {int(PresetLanguage), int(cpimoe.PIMOE_PRESET_LANGUAGE)},
		{int(PresetCreative), int(cpimoe.PIMOE_PRESET_CREATIVE)}, {int(PresetAnalytical), int(cpimoe.PIMOE_PRESET_ANALYTICAL)},
		{optHidden, int(cpimoe.PIMOE_OPT_HIDDEN)}, {optNumExperts, int(cpimoe.PIMOE_OPT_NUM_EXPERTS)},
		{optTopK, int(cpimoe.PIMOE_OPT_TOP_K)}, {optIntermediate, int(cpimoe.PIMOE_OPT_INTERMEDIATE)},
		{optActivation, int(cpimoe.PIMOE_OPT_ACTIVATION)}, {optPreNorm, int(cpimoe.PIMOE_OPT_PRE_NORM)},
		{optExpertBias, int(cpimoe.PIMOE_OPT_EXPERT_BIAS)}, {optTemperature, int(cpimoe.PIMOE_OPT_TEMPERATURE)},
		{optRenormalize, int(cpimoe.PIMOE_OPT_RENORMALIZE)},
		{optCapacityFactor, int(cpimoe.PIMOE_OPT_CAPACITY_FACTOR)},
		{optAuxLossCoef, int(cpimoe.PIMOE_OPT_AUX_LOSS_COEF)}, {optLayerNormEps, int(cpimoe.PIMOE_OPT_LAYER_NORM_EPS)},
		{optSeed, int(cpimoe.PIMOE_OPT_SEED)}, {optThreads, int(cpimoe.PIMOE_OPT_THREADS)},
		{optBackend, int(cpimoe.PIMOE_OPT_BACKEND)}, {optDeterministic, int(cpimoe.PIMOE_OPT_DETERMINISTIC)},
		{optCPUGemm, int(cpimoe.PIMOE_OPT_CPU_GEMM)},
		{optRouterScoring, int(cpimoe.PIMOE_OPT_ROUTER_SCORING)}, {optRouterBias, int(cpimoe.PIMOE_OPT_ROUTER_BIAS)},
		{optRoutedScaling, int(cpimoe.PIMOE_OPT_ROUTED_SCALING)}, {optNumGroups, int(cpimoe.PIMOE_OPT_NUM_GROUPS)},
		{optTopKGroups, int(cpimoe.PIMOE_OPT_TOPK_GROUPS)}, {optGroupScore, int(cpimoe.PIMOE_OPT_GROUP_SCORE)},
		{optSharedWidth, int(cpimoe.PIMOE_OPT_SHARED_WIDTH)}, {optSharedGate, int(cpimoe.PIMOE_OPT_SHARED_GATE)},
		{optWeightDtype, int(cpimoe.PIMOE_OPT_WEIGHT_DTYPE)}, {optRoutingMode, int(cpimoe.PIMOE_OPT_ROUTING_MODE)},
		{optGroupLevels, int(cpimoe.PIMOE_OPT_GROUP_LEVELS)},
		{optAttentionHeads, int(cpimoe.PIMOE_OPT_ATTENTION_HEADS)},
		{optAttentionHeadDim, int(cpimoe.PIMOE_OPT_ATTENTION_HEAD_DIM)},
		{optAttentionCausal, int(cpimoe.PIMOE_OPT_ATTENTION_CAUSAL)},
		{optAdaptiveBiasRate, int(cpimoe.PIMOE_OPT_ADAPTIVE_BIAS_RATE)},
		{optDynamicCapacity, int(cpimoe.PIMOE_OPT_DYNAMIC_CAPACITY)},
		{optCapacityMomentum, int(cpimoe.PIMOE_OPT_CAPACITY_MOMENTUM)},
		{optCombineAttentionDim, int(cpimoe.PIMOE_OPT_COMBINE_ATTENTION_DIM)},
		{optWeightGroupSize, int(cpimoe.PIMOE_OPT_WEIGHT_GROUP_SIZE)},
		{optWeightZeroPoint, int(cpimoe.PIMOE_OPT_WEIGHT_ZERO_POINT)},
		{optRouterLogitBias, int(cpimoe.PIMOE_OPT_ROUTER_LOGIT_BIAS)},
		{optExpertInputScaling, int(cpimoe.PIMOE_OPT_EXPERT_INPUT_SCALING)},
		{optSparsemixerEps, int(cpimoe.PIMOE_OPT_SPARSEMIXER_EPS)},
		{optSwigluAlpha, int(cpimoe.PIMOE_OPT_SWIGLU_ALPHA)}, {optSwigluLimit, int(cpimoe.PIMOE_OPT_SWIGLU_LIMIT)},
	}
	for i, p := range pairs {
		if p.got != p.want {
			t.Errorf("constant #%d: Go %d, C %d", i, p.got, p.want)
		}
	}
}

func TestVersion(t *testing.T) {
	if Version() != cref.Version() || VersionNumber() != cref.VersionNumber() || ABIVersion() != cref.ABIVersion() ||
		BuildInfo() != cref.BuildInfo() {
		t.Fatalf("Go %s %d %d %q, C %s %d %d %q", Version(), VersionNumber(), ABIVersion(), BuildInfo(),
			cref.Version(), cref.VersionNumber(), cref.ABIVersion(), cref.BuildInfo())
	}
	if HeaderVersion != Version() {
		t.Errorf("package compiled against pimoe.h %s, library is %s", HeaderVersion, Version())
	}
	if !strings.Contains(BuildInfo(), "cpu") {
		t.Errorf("build info %q lists no cpu backend", BuildInfo())
	}
}

func TestBackendsMatchC(t *testing.T) {
	if got, want := Backends(), cref.Backends(); !reflect.DeepEqual(got, want) || len(got) == 0 {
		t.Fatalf("Backends() = %v, C gives %v", got, want)
	}
	for _, name := range []string{"cpu", "auto", "cuda", "vulkan", "vulkan:3"} {
		usable, reason, err := ProbeBackend(name)
		wantUsable, r := cref.Probe(name)
		if r.Status != 0 {
			var perr *Error
			if !errors.As(err, &perr) || int(perr.Status) != r.Status || perr.Message != r.Message {
				t.Errorf("ProbeBackend(%q) = %v, C gives %+v", name, err, r)
			}
			continue
		}
		if err != nil || usable != wantUsable || (!usable && reason != r.Message) {
			t.Errorf("ProbeBackend(%q) = %v %q %v, C gives %v %+v", name, usable, reason, err, wantUsable, r)
		}
		if !usable && reason == "" {
			t.Errorf("ProbeBackend(%q): unusable without a reason", name)
		}
		dev, err := BackendDevice(name)
		if usable && (err != nil || dev == "") {
			t.Errorf("BackendDevice(%q) = %q, %v", name, dev, err)
		}
		if !usable && err == nil {
			t.Errorf("BackendDevice(%q) of an unusable backend = %q, no error", name, dev)
		}
	}
	if usable, _, err := ProbeBackend("cpu"); !usable || err != nil {
		t.Fatalf("cpu backend not usable: %v", err)
	}
}

// ------------------------------------------------------------------------------------------------ numbers

func TestForwardMatchesC(t *testing.T) {
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			m := newModel(t, c.opts)
			ref := refModel(t, c.ref)
			defer ref.Destroy()
			const batch, seq = 2, 5
			in := input(batch*seq*m.Hidden(), 1)
			out, routing, err := m.ForwardRouted(in, batch, seq)
			if err != nil {
				t.Fatal(err)
			}
			k := m.TopK()
			wantOut := make([]float32, len(in))
			wantIDs := make([]int32, batch*seq*k)
			wantW := make([]float32, batch*seq*k)
			if r := ref.Forward(in, batch, seq, wantOut, wantIDs, wantW); r.Status != 0 {
				t.Fatalf("C forward: %+v", r)
			}
			sameBits(t, "output", out, wantOut)
			sameBits(t, "expert weights", routing.ExpertWeights, wantW)
			if !reflect.DeepEqual(routing.ExpertIDs, wantIDs) {
				t.Fatalf("expert ids %v, C gives %v", routing.ExpertIDs, wantIDs)
			}
			// Forward without routing, into a caller buffer: the same output.
			out2 := make([]float32, len(in))
			if err := m.ForwardInto(out2, in, batch, seq); err != nil {
				t.Fatal(err)
			}
			sameBits(t, "ForwardInto output", out2, wantOut)
			if r := ref.Forward(in, batch, seq, wantOut, nil, nil); r.Status != 0 {
				t.Fatal(r)
			}
			// Both models saw the same two calls: every statistic but the timings is the same.
			st, err := m.Stats()
			if err != nil {
				t.Fatal(err)
			}
			want, r := ref.Stats()
			if r.Status != 0 {
				t.Fatal(r)
			}
			got := statsFields(st)
			timing := map[int]bool{5: true, 6: true, 7: true, 8: true, 9: true, 10: true}
			for i := range got {
				if !timing[i] && got[i] != want[i] {
					t.Errorf("stats field %s = %v, C gives %v", reflect.TypeOf(st).Field(i).Name, got[i], want[i])
				}
			}
			if st.ForwardCalls != 2 || st.Tokens != 2*batch*seq || st.LatencyMeanMs <= 0 {
				t.Errorf("stats %+v", st)
			}
			loads, err := m.ExpertLoads()
			if err != nil {
				t.Fatal(err)
			}
			wantLoads := make([]uint64, m.NumExperts())
			if r := ref.ExpertLoads(wantLoads); r.Status != 0 || !reflect.DeepEqual(loads, wantLoads) {
				t.Fatalf("loads %v, C gives %v (%+v)", loads, wantLoads, r)
			}
		})
	}
}

func statsFields(s Stats) []float64 {
	v := reflect.ValueOf(s)
	out := make([]float64, v.NumField())
	for i := range out {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Uint32, reflect.Uint64:
			out[i] = float64(f.Uint())
		default:
			out[i] = f.Float()
		}
	}
	return out
}

func TestStatsLayoutMatchesC(t *testing.T) {
	layout := cref.StatsLayout()
	typ := reflect.TypeOf(Stats{})
	if unsafe.Sizeof(Stats{}) != layout[0] || typ.NumField() != len(layout)-1 {
		t.Fatalf("Stats: %d bytes, %d fields; pimoe_stats_snapshot: %d bytes, %d fields", unsafe.Sizeof(Stats{}),
			typ.NumField(), layout[0], len(layout)-1)
	}
	for i := 0; i < typ.NumField(); i++ {
		if typ.Field(i).Offset != layout[i+1] {
			t.Errorf("Stats.%s at offset %d, C field %d at %d", typ.Field(i).Name, typ.Field(i).Offset, i, layout[i+1])
		}
	}
}

func TestStatsReset(t *testing.T) {
	m := newModel(t, small())
	if _, err := m.Forward(input(3*64, 2), 1, 3); err != nil {
		t.Fatal(err)
	}
	if err := m.ResetStats(); err != nil {
		t.Fatal(err)
	}
	st, err := m.Stats()
	if err != nil || st.ForwardCalls != 0 || st.Tokens != 0 || st.NumExperts != 8 ||
		st.StructSize != uint32(unsafe.Sizeof(st)) || st.WeightBytes == 0 {
		t.Fatalf("after reset: %+v, %v", st, err)
	}
}

func TestModelInfoAndTensorsMatchC(t *testing.T) {
	c := configs[1]
	m := newModel(t, c.opts)
	ref := refModel(t, c.ref)
	defer ref.Destroy()
	if m.Hidden() != 64 || m.NumExperts() != 8 || m.TopK() != 2 {
		t.Fatalf("dims %d %d %d", m.Hidden(), m.NumExperts(), m.TopK())
	}
	if b, err := m.Backend(); b != "cpu" || err != nil {
		t.Fatalf("Backend() = %q, %v", b, err)
	}
	for e := 0; e < m.NumExperts(); e++ {
		spec, err := m.Expert(e)
		act, width, preNorm, r := ref.Expert(int32(e))
		if err != nil || r.Status != 0 || int32(spec.Activation) != act || spec.Intermediate != width ||
			spec.PreNorm != (preNorm != 0) {
			t.Fatalf("expert %d: %+v %v; C %d %d %d %+v", e, spec, err, act, width, preNorm, r)
		}
	}
	if spec, _ := m.Expert(1); spec.Intermediate != 256 || spec.Activation != ActivationGELU {
		t.Errorf("expert 1 (COMPUTATION preset) = %+v", spec)
	}
	names, err := m.TensorNames()
	if err != nil || len(names) == 0 || names[0] != "router.weight" {
		t.Fatalf("TensorNames() = %v, %v", names, err)
	}
	for _, name := range names {
		shape, err := m.TensorShape(name)
		wantShape, r := ref.TensorShape(name)
		if err != nil || r.Status != 0 || !reflect.DeepEqual(shape, wantShape) {
			t.Fatalf("%s: shape %v %v, C %v %+v", name, shape, err, wantShape, r)
		}
		vals, err := m.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, len(vals))
		if r := ref.TensorRead(name, want); r.Status != 0 {
			t.Fatal(r)
		}
		sameBits(t, name, vals, want)
	}
}

// ------------------------------------------------------------------------------------------------ errors

// errCase is one failure, made through the binding (call) and the same way through the C API (ref).
type errCase struct {
	name   string
	status Status // the status the C API documents for it
	call   func(m *Model) error
	ref    func(m cref.Model) cref.Result // nil: the Go layer itself rejects the call (no C call to compare)
}

func createRef(setup func(o cref.Options) cref.Result) func(cref.Model) cref.Result {
	return func(cref.Model) cref.Result {
		o, r := cref.NewOptions()
		if r.Status != 0 {
			return r
		}
		defer o.Destroy()
		if r := setup(o); r.Status != 0 {
			return r
		}
		m, r := cref.Create(o)
		if r.Status == 0 {
			m.Destroy()
		}
		return r
	}
}

func createGo(o *Options) func(*Model) error {
	return func(*Model) error {
		m, err := New(o)
		if err == nil {
			m.Close()
		}
		return err
	}
}

func fw(in []float32, batch, seq int64, out []float32, ids []int32, w []float32) func(cref.Model) cref.Result {
	return func(m cref.Model) cref.Result { return m.Forward(in, batch, seq, out, ids, w) }
}

func errCases() []errCase {
	const h = 64
	one := input(h, 3)
	nan := input(h, 3)
	nan[17] = float32(math.NaN())
	inf := input(2*h, 3)
	inf[h+5] = float32(math.Inf(-1))
	ok := func(cref.Options) cref.Result { return cref.Result{} }
	_ = ok
	return []errCase{
		{"create/top_k_exceeds_experts", StatusInvalidOption, createGo(&Options{NumExperts: 8, TopK: 9}),
			createRef(func(o cref.Options) cref.Result {
				o.SetInt(optNumExperts, 8)
				return o.SetInt(optTopK, 9)
			})},
		{"create/negative_hidden", StatusInvalidOption, createGo(&Options{Hidden: -1}),
			createRef(func(o cref.Options) cref.Result { return o.SetInt(optHidden, -1) })},
		{"create/negative_temperature", StatusInvalidOption, createGo(&Options{Temperature: -0.5}),
			createRef(func(o cref.Options) cref.Result { return o.SetFloat(optTemperature, -0.5) })},
		{"create/unknown_option_name", StatusUnknownOption,
			createGo(&Options{Extra: []Setting{{"no_such_option", "1"}}}),
			createRef(func(o cref.Options) cref.Result { return o.SetByName("no_such_option", "1") })},
		{"create/bad_activation_name", StatusInvalidOption,
			createGo(&Options{Extra: []Setting{{"activation", "sigmoidish"}}}),
			createRef(func(o cref.Options) cref.Result { return o.SetByName("activation", "sigmoidish") })},
		{"create/bad_activation_value", StatusInvalidOption, createGo(&Options{Activation: 42}),
			createRef(func(o cref.Options) cref.Result { return o.SetInt(optActivation, 42) })},
		{"create/bad_cpu_gemm", StatusInvalidOption, createGo(&Options{CPUGemm: "magic"}),
			createRef(func(o cref.Options) cref.Result { return o.SetString(optCPUGemm, "magic") })},
		{"create/unknown_backend", -1, createGo(&Options{Backend: "no_such_backend"}),
			createRef(func(o cref.Options) cref.Result { return o.SetString(optBackend, "no_such_backend") })},
		{"create/unavailable_backend", -1, createGo(&Options{Backend: "cuda"}),
			createRef(func(o cref.Options) cref.Result { return o.SetString(optBackend, "cuda") })},
		{"create/expert_index_past_E", -1,
			createGo(&Options{NumExperts: 4, TopK: 2, Experts: []ExpertOverride{ExpertPreset(4, PresetLogical)}}),
			createRef(func(o cref.Options) cref.Result {
				o.SetInt(optNumExperts, 4)
				o.SetInt(optTopK, 2)
				return o.SetExpert(1, 4, int64(PresetLogical))
			})},
		{"create/expert_index_below_-1", -1,
			createGo(&Options{Experts: []ExpertOverride{ExpertActivation(-2, ActivationReLU)}}),
			createRef(func(o cref.Options) cref.Result { return o.SetExpert(2, -2, int64(ActivationReLU)) })},
		{"create/bad_preset", -1, createGo(&Options{Experts: []ExpertOverride{ExpertPreset(0, 99)}}),
			createRef(func(o cref.Options) cref.Result { return o.SetExpert(1, 0, 99) })},
		{"create/zero_expert_width", -1, createGo(&Options{Experts: []ExpertOverride{ExpertWidth(1, 0)}}),
			createRef(func(o cref.Options) cref.Result { return o.SetExpert(3, 1, 0) })},
		{"create/weight_group_size_not_32_64_128", StatusInvalidOption, createGo(&Options{WeightGroupSize: 48}),
			createRef(func(o cref.Options) cref.Result { return o.SetInt(optWeightGroupSize, 48) })},
		{"create/weight_group_size_out_of_range", StatusInvalidOption, createGo(&Options{WeightGroupSize: 256}),
			createRef(func(o cref.Options) cref.Result { return o.SetInt(optWeightGroupSize, 256) })},
		{"create/bad_weight_dtype", StatusInvalidOption, createGo(&Options{WeightDtype: "int3"}),
			createRef(func(o cref.Options) cref.Result { return o.SetString(optWeightDtype, "int3") })},
		{"create/bad_expert_weight_dtype", StatusInvalidOption,
			createGo(&Options{Experts: []ExpertOverride{ExpertWeightDtype(0, "int3")}}),
			createRef(func(o cref.Options) cref.Result { return o.SetExpertWeightDtype(0, "int3") })},
		{"create/expert_weight_dtype_auto", StatusInvalidOption,
			createGo(&Options{Experts: []ExpertOverride{ExpertWeightDtype(1, "auto")}}),
			createRef(func(o cref.Options) cref.Result { return o.SetExpertWeightDtype(1, "auto") })},
		{"create/expert_weight_dtype_index_below_-1", StatusInvalidArgument,
			createGo(&Options{Experts: []ExpertOverride{ExpertWeightDtype(-2, "bf16")}}),
			createRef(func(o cref.Options) cref.Result { return o.SetExpertWeightDtype(-2, "bf16") })},
		{"create/empty_override", StatusInvalidArgument,
			createGo(&Options{Experts: []ExpertOverride{{}}}), nil},
		{"forward/input_size_mismatch", StatusSizeMismatch,
			func(m *Model) error { return m.ForwardInto(make([]float32, h), one[:h-1], 1, 1) },
			fw(one[:h-1], 1, 1, make([]float32, h), nil, nil)},
		{"forward/output_size_mismatch", StatusSizeMismatch,
			func(m *Model) error { return m.ForwardInto(make([]float32, 2*h), one, 1, 1) },
			fw(one, 1, 1, make([]float32, 2*h), nil, nil)},
		{"forward/zero_batch", -1, func(m *Model) error { _, err := m.Forward(one, 0, 1); return err },
			fw(one, 0, 1, make([]float32, h), nil, nil)},
		{"forward/negative_seq", -1, func(m *Model) error { _, err := m.Forward(one, 1, -1); return err },
			fw(one, 1, -1, make([]float32, h), nil, nil)},
		{"forward/nil_input", StatusNullPointer, func(m *Model) error { _, err := m.Forward(nil, 1, 1); return err },
			fw(nil, 1, 1, nil, nil, nil)},
		{"forward/nil_output", StatusNullPointer, func(m *Model) error { return m.ForwardInto(nil, one, 1, 1) },
			fw(one, 1, 1, nil, nil, nil)},
		{"forward/nan", StatusNonFiniteInput, func(m *Model) error { _, err := m.Forward(nan, 1, 1); return err },
			fw(nan, 1, 1, make([]float32, h), nil, nil)},
		{"forward/inf_second_token", StatusNonFiniteInput,
			func(m *Model) error { _, _, err := m.ForwardRouted(inf, 1, 2); return err },
			fw(inf, 1, 2, make([]float32, 2*h), make([]int32, 4), make([]float32, 4))},
		{"forward/routing_size_mismatch", StatusSizeMismatch,
			func(m *Model) error {
				return m.ForwardRoutedInto(make([]float32, h), one, 1, 1, make([]int32, 3), make([]float32, 3))
			},
			fw(one, 1, 1, make([]float32, h), make([]int32, 3), make([]float32, 3))},
		{"forward/routing_lengths_differ", StatusSizeMismatch,
			func(m *Model) error {
				return m.ForwardRoutedInto(make([]float32, h), one, 1, 1, make([]int32, 2), make([]float32, 3))
			}, nil},
		{"forward/routing_ids_only", StatusNullPointer,
			func(m *Model) error {
				return m.ForwardRoutedInto(make([]float32, h), one, 1, 1, make([]int32, 2), nil)
			}, nil},
		{"tensor/unknown_shape", StatusNotFound,
			func(m *Model) error { _, err := m.TensorShape("experts.99.up.weight"); return err },
			func(m cref.Model) cref.Result { _, r := m.TensorShape("experts.99.up.weight"); return r }},
		{"tensor/unknown_read", StatusNotFound,
			func(m *Model) error { return m.ReadTensor("nope", make([]float32, 4)) },
			func(m cref.Model) cref.Result { return m.TensorRead("nope", make([]float32, 4)) }},
		{"tensor/read_size_mismatch", StatusSizeMismatch,
			func(m *Model) error { return m.ReadTensor("router.weight", make([]float32, 10)) },
			func(m cref.Model) cref.Result { return m.TensorRead("router.weight", make([]float32, 10)) }},
		{"stats/loads_too_short", -1, func(m *Model) error { return m.ExpertLoadsInto(make([]uint64, 3)) },
			func(m cref.Model) cref.Result { return m.ExpertLoads(make([]uint64, 3)) }},
		{"model/expert_out_of_range", -1, func(m *Model) error { _, err := m.Expert(8); return err },
			func(m cref.Model) cref.Result { _, _, _, r := m.Expert(8); return r }},
		{"model/expert_negative", -1, func(m *Model) error { _, err := m.Expert(-1); return err },
			func(m cref.Model) cref.Result { _, _, _, r := m.Expert(-1); return r }},
		{"backend/probe_unknown", StatusNotFound,
			func(*Model) error { _, _, err := ProbeBackend("no_such_backend"); return err },
			func(cref.Model) cref.Result { _, r := cref.Probe("no_such_backend"); return r }},
		{"backend/device_unknown", StatusNotFound,
			func(*Model) error { _, err := BackendDevice("no_such_backend"); return err },
			func(cref.Model) cref.Result { _, r := cref.Probe("no_such_backend"); return r }},
	}
}

func TestErrorsMatchC(t *testing.T) {
	m := newModel(t, small())
	ref := refModel(t, refSmall)
	defer ref.Destroy()
	for _, c := range errCases() {
		t.Run(c.name, func(t *testing.T) {
			err := c.call(m)
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %v (%T) is not a *pimoe.Error", err, err)
			}
			if perr.Status == StatusOK || perr.Message == "" || perr.Op == "" {
				t.Fatalf("incomplete error %#v", perr)
			}
			if c.status >= 0 && perr.Status != c.status {
				t.Errorf("status %d (%s), want %d (%s); message %q", perr.Status, perr.Status, c.status, c.status,
					perr.Message)
			}
			if !errors.Is(err, &Error{Status: perr.Status}) || errors.Is(err, &Error{Status: perr.Status + 1}) {
				t.Errorf("errors.Is does not match on the status")
			}
			if !strings.Contains(err.Error(), perr.Message) || !strings.Contains(err.Error(), perr.Status.String()) {
				t.Errorf("Error() = %q lacks the message or the status text", err.Error())
			}
			if c.ref != nil {
				r := c.ref(ref)
				if int(perr.Status) != r.Status || perr.Message != r.Message {
					t.Errorf("Go: %d %q; C: %d %q", perr.Status, perr.Message, r.Status, r.Message)
				}
				if strings.HasPrefix(c.name, "forward/") {
					if last, err := m.LastError(); err != nil || last != perr.Message {
						t.Errorf("LastError() = %q, %v; want %q", last, err, perr.Message)
					}
				}
			}
			t.Logf("%s: %v", perr.Op, err)
		})
	}
	// A failed call leaves the model usable.
	if _, err := m.Forward(input(64, 9), 1, 1); err != nil {
		t.Fatal(err)
	}
}

// Messages stay with their goroutine: many goroutines fail differently at once, each sees its own message.
func TestErrorMessagesPerGoroutine(t *testing.T) {
	m := newModel(t, small())
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				n := 1 + (g*7+i)%63 // wrong element count, different per call
				err := m.ForwardInto(make([]float32, 64), make([]float32, n), 1, 1)
				var perr *Error
				if !errors.As(err, &perr) || perr.Status != StatusSizeMismatch ||
					!strings.Contains(perr.Message, "input_count ("+strconv.Itoa(n)+")") {
					t.Errorf("goroutine %d: input of %d elements gave %v", g, n, err)
					return
				}
				runtime.Gosched()
			}
		}(g)
	}
	wg.Wait()
}

// ------------------------------------------------------------------------------------------------ concurrency, close

func TestConcurrentMatchesSerial(t *testing.T) {
	m := newModel(t, small())
	const goroutines, iters = 8, 12
	type job struct {
		in     []float32
		tokens int
	}
	jobs := make([]job, goroutines*iters)
	for i := range jobs {
		tokens := 1 + i%4
		jobs[i] = job{input(tokens*64, uint64(100+i)), tokens}
	}
	serial := make([][]float32, len(jobs))
	serialIDs := make([][]int32, len(jobs))
	for i, j := range jobs {
		out, r, err := m.ForwardRouted(j.in, 1, j.tokens)
		if err != nil {
			t.Fatal(err)
		}
		serial[i], serialIDs[i] = out, r.ExpertIDs
	}
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := 0; k < iters; k++ {
				i := (g*iters + k*5) % len(jobs)
				out, r, err := m.ForwardRouted(jobs[i].in, 1, jobs[i].tokens)
				if err != nil {
					t.Error(err)
					return
				}
				for x := range out {
					if math.Float32bits(out[x]) != math.Float32bits(serial[i][x]) {
						t.Errorf("goroutine %d job %d: output[%d] %v, serial %v", g, i, x, out[x], serial[i][x])
						return
					}
				}
				if !reflect.DeepEqual(r.ExpertIDs, serialIDs[i]) {
					t.Errorf("goroutine %d job %d: routing differs", g, i)
					return
				}
				if _, err := m.Stats(); err != nil {
					t.Error(err)
				}
				if _, err := m.ExpertLoads(); err != nil {
					t.Error(err)
				}
			}
		}(g)
	}
	wg.Wait()
	st, err := m.Stats()
	if err != nil || st.ForwardCalls != 2*goroutines*iters {
		t.Fatalf("forward calls %d (want %d), %v", st.ForwardCalls, 2*goroutines*iters, err)
	}
}

func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	m, err := New(small())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	in := input(64, 1)
	calls := map[string]func() error{
		"Forward":           func() error { _, err := m.Forward(in, 1, 1); return err },
		"ForwardInto":       func() error { return m.ForwardInto(make([]float32, 64), in, 1, 1) },
		"ForwardRouted":     func() error { _, _, err := m.ForwardRouted(in, 1, 1); return err },
		"ForwardRoutedInto": func() error { return m.ForwardRoutedInto(make([]float32, 64), in, 1, 1, nil, nil) },
		"Stats":             func() error { _, err := m.Stats(); return err },
		"ExpertLoads":       func() error { _, err := m.ExpertLoads(); return err },
		"ResetStats":        m.ResetStats,
		"Expert":            func() error { _, err := m.Expert(0); return err },
		"Backend":           func() error { _, err := m.Backend(); return err },
		"LastError":         func() error { _, err := m.LastError(); return err },
		"TensorNames":       func() error { _, err := m.TensorNames(); return err },
		"TensorShape":       func() error { _, err := m.TensorShape("router.weight"); return err },
		"Tensor":            func() error { _, err := m.Tensor("router.weight"); return err },
		"ReadTensor":        func() error { return m.ReadTensor("router.weight", make([]float32, 512)) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

// Close while forwards are in flight: they finish, later calls get ErrClosed, nothing crashes.
func TestCloseDuringForward(t *testing.T) {
	m, err := New(small())
	if err != nil {
		t.Fatal(err)
	}
	in := input(4*64, 5)
	var wg sync.WaitGroup
	started := make(chan struct{}, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				_, err := m.Forward(in, 2, 2)
				if i == 0 {
					started <- struct{}{}
				}
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for g := 0; g < 8; g++ {
		<-started
	}
	time.Sleep(10 * time.Millisecond)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

func TestFinalizerIsSafetyNet(t *testing.T) {
	before := finalized.Load()
	func() {
		for i := 0; i < 3; i++ {
			if _, err := New(small()); err != nil { // dropped without Close
				t.Fatal(err)
			}
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for finalized.Load() < before+3 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if finalized.Load() < before+3 {
		t.Fatalf("finalizer freed %d of 3 dropped models", finalized.Load()-before)
	}
	// A closed model is not freed twice by the finalizer.
	m, _ := New(small())
	m.Close()
	m = nil
	runtime.GC()
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, c := range configs {
		t.Run(c.name, func(t *testing.T) {
			m := newModel(t, c.opts)
			const batch, seq = 1, 7
			in := input(batch*seq*m.Hidden(), 3)
			want, err := m.Forward(in, batch, seq)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "layer.safetensors")
			if err := m.Save(path); err != nil {
				t.Fatal(err)
			}
			loaded, err := Load(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer loaded.Close()
			got, err := loaded.Forward(in, batch, seq)
			if err != nil {
				t.Fatal(err)
			}
			sameBits(t, "output after save+load", got, want)
		})
	}
	_, err := Load(filepath.Join(t.TempDir(), "missing.safetensors"), nil)
	var pe *Error
	if !errors.As(err, &pe) || pe.Status != StatusIO || !strings.Contains(pe.Message, "missing.safetensors") {
		t.Fatalf("loading a missing file: got %v, want a StatusIO error naming the file", err)
	}
	closed := newModel(t, nil)
	closed.Close()
	if err := closed.Save(filepath.Join(t.TempDir(), "x.safetensors")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Save after Close: got %v, want ErrClosed", err)
	}
}

func TestImportHF(t *testing.T) {
	fixtures := os.Getenv("PIMOE_FIXTURES")
	if fixtures == "" {
		t.Fatal("PIMOE_FIXTURES is not set (ctest sets it to tests/fixtures)")
	}
	dir := filepath.Join(fixtures, "mixtral")
	m, err := ImportHF(dir, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ref := cref.ImportHF(t, dir, 1)
	defer ref.Destroy()
	in := input(3*m.Hidden(), 5)
	got, err := m.Forward(in, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, len(in))
	if r := ref.Forward(in, 1, 3, want, nil, nil); r.Status != 0 {
		t.Fatalf("C forward: %+v", r)
	}
	sameBits(t, "imported layer output", got, want)

	_, err = ImportHF(dir, 99, nil)
	var pe *Error
	if !errors.As(err, &pe) || pe.Status != StatusInvalidArgument || !strings.Contains(pe.Message, "layer") {
		t.Fatalf("importing layer 99: got %v, want a StatusInvalidArgument error about the layer", err)
	}
}
