// SPDX-License-Identifier: MIT
package pimoe

import (
	"math"

	"libpimoe.org/pimoe/internal/cpimoe"
)

// Activation is the activation function of an expert FFN (pimoe_activation).
type Activation int32

// Activations of pimoe.h.
const (
	ActivationGELU      Activation = 0 // x/2 * (1 + erf(x/sqrt(2)))
	ActivationGELUTanh  Activation = 1 // the tanh approximation of GELU
	ActivationSiLU      Activation = 2 // x * sigmoid(x)
	ActivationReLU      Activation = 3 // max(x, 0)
	ActivationTanh      Activation = 4 // tanh(x)
	ActivationSwiGLU    Activation = 5 // gated: silu(gate(x)) * up(x)
	ActivationSwiGLUOAI Activation = 6 // gated and clamped (gpt-oss): see pimoe.h, PIMOE_ACT_SWIGLU_OAI
)

// Preset is a named expert type (pimoe_expert_preset): a fixed (activation, width, pre-LayerNorm) triple.
type Preset int32

// Presets of pimoe.h (see the table there).
const (
	PresetGeneric      Preset = 0
	PresetReasoning    Preset = 1
	PresetComputation  Preset = 2
	PresetMathematical Preset = 3
	PresetLogical      Preset = 4
	PresetLanguage     Preset = 5
	PresetCreative     Preset = 6
	PresetAnalytical   Preset = 7
)

// AllExperts as an expert index makes an override apply to every expert (-1 in the C API).
const AllExperts = -1

// Options configures a Model. The zero value (or a nil *Options) gives every library default; a field left at its
// zero value leaves the library's default in place, any other value is passed to the library, which validates it
// (an invalid value makes New fail with the library's message naming the option).
//
// Every option key of pimoe.h has a field, except the experimental ones ("experimental.*", which may change or
// disappear in any release): set those by name through Extra. For the few keys whose zero is a meaningful
// non-default value (aux_loss_coef 0, capacity_momentum 0), or to set a key by its name, use Extra too.
//
// WeightDtype (and ExpertWeightDtype per expert) takes the storage formats of pimoe.h: "auto" (the default: fp32 for
// New, the file's formats for Load, the checkpoint's for ImportHF), "fp32", "bf16", "fp16", "int8", "int4" (groups
// of WeightGroupSize elements, symmetric or with WeightZeroPoint), "fp8_e4m3" or "mxfp4". The CPU backend takes any
// of them, in any mix per expert; the GPU backends take fp32, bf16 or fp16, one per layer.
type Options struct {
	Hidden         int        // "hidden": model width H (default 512)
	NumExperts     int        // "num_experts": routed experts E (default 8)
	TopK           int        // "top_k": experts per token k (default 2)
	Intermediate   int        // "intermediate": expert FFN width I (default 2048)
	Activation     Activation // "activation" of GENERIC experts (default GELU)
	PreNorm        bool       // "pre_norm": GENERIC experts apply LayerNorm to their input
	ExpertBias     bool       // "expert_bias": expert projections have bias vectors
	Temperature    float64    // "temperature": router softmax temperature (default 1.0)
	NoRenormalize  bool       // "renormalize" = 0: raw softmax weights instead of the k weights divided by their sum
	CapacityFactor float64    // "capacity_factor": 0 (default) is dropless
	AuxLossCoef    float64    // "aux_loss_coef": alpha of the reported aux loss (default 1.0; 0 through Extra)
	LayerNormEps   float64    // "layer_norm_eps" (default 1e-5)
	Seed           int64      // "seed" of the deterministic weight initialisation (default 0)
	Threads        int        // "threads": CPU worker threads; 0 (default) = the machine's cores
	Backend        string     // "backend": "auto" (default), "cpu", "cuda", "vulkan" or "vulkan:N"
	Deterministic  bool       // "deterministic": a token's output bits depend neither on the batch nor the threads
	CPUGemm        string     // "cpu_gemm": "packed" (default) or "openblas"

	// Router extensions and the shared expert (see pimoe.h for the exact semantics).
	RouterScoring string  // "router_scoring": "softmax" (default) or "sigmoid"
	RouterBias    bool    // "router_bias": a per-expert selection bias (DeepSeek-V3)
	RoutedScaling float64 // "routed_scaling_factor" (default 1.0)
	NumGroups     int     // "num_groups": group-limited routing over G groups (default 1: off)
	TopKGroups    int     // "topk_groups": groups kept per token (default 1)
	GroupScore    string  // "group_score": "top2_sum" (default) or "max"
	SharedWidth   int     // "shared_width": width of the always-on shared SwiGLU expert (0: none)
	SharedGate    bool    // "shared_gate": the shared expert's output is scaled by sigmoid(w . x)

	// Weight storage and the routing features of pimoe.h (all off by default).
	WeightDtype         string  // "weight_dtype": storage of expert matrices (the values below)
	RoutingMode         string  // "routing_mode": "token_choice" (default) or "expert_choice"
	GroupLevels         string  // "group_levels": multi-level group-limited routing, "G1:K1,G2:K2,..."
	AttentionHeads      int     // "router_attention_heads": heads of the attention router (0: off)
	AttentionHeadDim    int     // "router_attention_head_dim" (default 16)
	AttentionCausal     bool    // "router_attention_causal": token t attends to tokens 0..t of its sequence
	AdaptiveBiasRate    float64 // "adaptive_bias_rate": auxiliary-loss-free balancing rate u (0: off)
	DynamicCapacity     bool    // "dynamic_capacity": capacity re-budgeted per expert (needs CapacityFactor > 0)
	CapacityMomentum    float64 // "capacity_momentum": beta of DynamicCapacity (default 0.9; 0 through Extra)
	CombineAttentionDim int     // "combine_attention_dim": cross-expert attention combine width (0: off)
	WeightGroupSize     int     // "weight_group_size": elements per int4 scale, 32 (default), 64 or 128
	WeightZeroPoint     bool    // "weight_zero_point": int4 groups carry a zero point (asymmetric)
	ActivationDtype     string  // "activation_dtype": the CPU's int8/int4 matrices on "int8" (auto) or "fp32" inputs

	// gpt-oss's block (pimoe.h): the router's logit bias, SwiGLU-OAI's alpha and limit (0: the defaults).
	RouterLogitBias bool    // "router_logit_bias": logits z = W_g x + c (tensor "router.bias")
	SwigluAlpha     float64 // "swiglu_alpha" of ActivationSwiGLUOAI experts (default 1.702)
	SwigluLimit     float64 // "swiglu_limit" of ActivationSwiGLUOAI experts (default 7.0)

	// Llama 4's block: each routed expert takes x scaled by its routing weight, its output added unweighted.
	ExpertInputScaling bool // "expert_input_scaling"
	// Phi-3.5-MoE's routing: sparsemixer with this eps (0: off).
	SparsemixerEps float64 // "sparsemixer_eps"

	// Experts holds per-expert overrides (ExpertPreset, ExpertActivation, ExpertWidth, ExpertPreNorm,
	// ExpertWeightDtype, ExpertCallback), applied in order with the C API's rules: every-expert settings first, then
	// per-expert ones; within each, presets first.
	Experts []ExpertOverride

	// Extra holds settings by name, parsed by the library (pimoe_options_set_by_name), applied after the fields.
	Extra []Setting
}

// Setting is one option set by name, e.g. {"activation", "swiglu"} or {"aux_loss_coef", "0"}.
type Setting struct {
	Key, Value string
}

type overrideKind uint8

const (
	overridePreset overrideKind = iota + 1
	overrideActivation
	overrideWidth
	overridePreNorm
	overrideCallback
	overrideWeightDtype
)

// ExpertOverride is one per-expert setting; build it with ExpertPreset, ExpertActivation, ExpertWidth,
// ExpertPreNorm, ExpertWeightDtype or ExpertCallback.
type ExpertOverride struct {
	kind   overrideKind
	expert int
	value  int64
	str    string
	fn     ExpertFunc
}

// ExpertPreset gives expert (or AllExperts) a preset.
func ExpertPreset(expert int, p Preset) ExpertOverride {
	return ExpertOverride{kind: overridePreset, expert: expert, value: int64(p)}
}

// ExpertActivation gives expert (or AllExperts) an activation.
func ExpertActivation(expert int, a Activation) ExpertOverride {
	return ExpertOverride{kind: overrideActivation, expert: expert, value: int64(a)}
}

// ExpertWidth gives expert (or AllExperts) an absolute intermediate size.
func ExpertWidth(expert int, intermediate int64) ExpertOverride {
	return ExpertOverride{kind: overrideWidth, expert: expert, value: intermediate}
}

// ExpertPreNorm turns the pre-LayerNorm of expert (or AllExperts) on or off.
func ExpertPreNorm(expert int, enabled bool) ExpertOverride {
	return ExpertOverride{kind: overridePreNorm, expert: expert, value: b2i(enabled)}
}

// ExpertWeightDtype gives expert (or AllExperts) its own storage format, overriding WeightDtype for its matrices
// (pimoe_options_set_expert_weight_dtype), e.g. a hot expert kept at "bf16" in an "int4" layer: any WeightDtype value
// but "auto"; int4 takes the layer's WeightGroupSize and WeightZeroPoint.
func ExpertWeightDtype(expert int, dtype string) ExpertOverride {
	return ExpertOverride{kind: overrideWeightDtype, expert: expert, str: dtype}
}

// ExpertCallback makes expert (an index in [0, NumExperts); AllExperts is not allowed) a callback expert computed by
// fn in Go instead of a neural network (pimoe_options_set_expert_callback). See ExpertFunc for the contract. Each
// Model created from the options keeps fn alive until Close.
func ExpertCallback(expert int, fn ExpertFunc) ExpertOverride {
	return ExpertOverride{kind: overrideCallback, expert: expert, fn: fn}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// The C option keys (pimoe_option) but the experimental ones; tests/test_option_table.cpp holds this list to the
// library's.
const (
	optHidden         = 0
	optNumExperts     = 1
	optTopK           = 2
	optIntermediate   = 3
	optActivation     = 4
	optPreNorm        = 5
	optExpertBias     = 6
	optTemperature    = 7
	optRenormalize    = 8
	optCapacityFactor = 9
	optAuxLossCoef    = 10
	optLayerNormEps   = 11
	optSeed           = 12
	optThreads        = 13
	optBackend        = 14
	optDeterministic  = 15
	optCPUGemm        = 16

	optRouterScoring       = 17
	optRouterBias          = 18
	optRoutedScaling       = 19
	optNumGroups           = 20
	optTopKGroups          = 21
	optGroupScore          = 22
	optSharedWidth         = 23
	optSharedGate          = 24
	optWeightDtype         = 25
	optRoutingMode         = 26
	optGroupLevels         = 27
	optAttentionHeads      = 28
	optAttentionHeadDim    = 29
	optAttentionCausal     = 30
	optAdaptiveBiasRate    = 31
	optDynamicCapacity     = 32
	optCapacityMomentum    = 33
	optCombineAttentionDim = 34
	optWeightGroupSize     = 35
	optWeightZeroPoint     = 36
	optRouterLogitBias     = 37
	optSwigluAlpha         = 38
	optSwigluLimit         = 39
	optActivationDtype     = 40
	optExpertInputScaling  = 41
	optSparsemixerEps      = 42
)

// callbacks are the cgo handles of the Go expert callbacks given to one C options object, by expert.
type callbacks map[int]uintptr

func (c callbacks) free() {
	for _, h := range c {
		cpimoe.DeleteCallbackHandle(h)
	}
}

// build creates a C options object from o; the caller destroys it, and owns the callback handles (which must outlive
// every model created from it: the Model takes them over).
func (o *Options) build() (uintptr, callbacks, error) {
	var h uintptr
	if err := check("pimoe_options_create", cpimoe.Pimoe_options_create(&h)); err != nil {
		return 0, nil, err
	}
	if o == nil {
		return h, nil, nil
	}
	cbs := callbacks{}
	err := o.apply(h, cbs)
	if err != nil {
		cpimoe.Pimoe_options_destroy(h)
		cbs.free()
		return 0, nil, err
	}
	return h, cbs, nil
}

func (o *Options) apply(h uintptr, cbs callbacks) error {
	setInt := func(key int, v int64) error {
		return check("pimoe_options_set_int", cpimoe.Pimoe_options_set_int(h, cpimoe.Enum_SS_pimoe_option(key), v))
	}
	setFloat := func(key int, v float64) error {
		return check("pimoe_options_set_float",
			cpimoe.Pimoe_options_set_float(h, cpimoe.Enum_SS_pimoe_option(key), v))
	}
	setString := func(key int, v string) error {
		return check("pimoe_options_set_string",
			cpimoe.Pimoe_options_set_string(h, cpimoe.Enum_SS_pimoe_option(key), v))
	}
	ints := []struct {
		key int
		v   int64
		set bool
	}{
		{optHidden, int64(o.Hidden), o.Hidden != 0},
		{optNumExperts, int64(o.NumExperts), o.NumExperts != 0},
		{optTopK, int64(o.TopK), o.TopK != 0},
		{optIntermediate, int64(o.Intermediate), o.Intermediate != 0},
		{optActivation, int64(o.Activation), o.Activation != ActivationGELU},
		{optPreNorm, 1, o.PreNorm},
		{optExpertBias, 1, o.ExpertBias},
		{optRenormalize, 0, o.NoRenormalize},
		{optSeed, o.Seed, o.Seed != 0},
		{optThreads, int64(o.Threads), o.Threads != 0},
		{optDeterministic, 1, o.Deterministic},
		{optRouterBias, 1, o.RouterBias},
		{optNumGroups, int64(o.NumGroups), o.NumGroups != 0},
		{optTopKGroups, int64(o.TopKGroups), o.TopKGroups != 0},
		{optSharedWidth, int64(o.SharedWidth), o.SharedWidth != 0},
		{optSharedGate, 1, o.SharedGate},
		{optAttentionHeads, int64(o.AttentionHeads), o.AttentionHeads != 0},
		{optAttentionHeadDim, int64(o.AttentionHeadDim), o.AttentionHeadDim != 0},
		{optAttentionCausal, 1, o.AttentionCausal},
		{optDynamicCapacity, 1, o.DynamicCapacity},
		{optCombineAttentionDim, int64(o.CombineAttentionDim), o.CombineAttentionDim != 0},
		{optWeightGroupSize, int64(o.WeightGroupSize), o.WeightGroupSize != 0},
		{optWeightZeroPoint, 1, o.WeightZeroPoint},
		{optRouterLogitBias, 1, o.RouterLogitBias},
		{optExpertInputScaling, 1, o.ExpertInputScaling},
	}
	for _, s := range ints {
		if s.set {
			if err := setInt(s.key, s.v); err != nil {
				return err
			}
		}
	}
	floats := []struct {
		key int
		v   float64
	}{
		{optTemperature, o.Temperature},
		{optCapacityFactor, o.CapacityFactor},
		{optAuxLossCoef, o.AuxLossCoef},
		{optLayerNormEps, o.LayerNormEps},
		{optRoutedScaling, o.RoutedScaling},
		{optAdaptiveBiasRate, o.AdaptiveBiasRate},
		{optCapacityMomentum, o.CapacityMomentum},
		{optSwigluAlpha, o.SwigluAlpha},
		{optSwigluLimit, o.SwigluLimit},
		{optSparsemixerEps, o.SparsemixerEps},
	}
	for _, s := range floats {
		if s.v != 0 {
			if err := setFloat(s.key, s.v); err != nil {
				return err
			}
		}
	}
	strs := []struct {
		key int
		v   string
	}{
		{optBackend, o.Backend},
		{optCPUGemm, o.CPUGemm},
		{optRouterScoring, o.RouterScoring},
		{optGroupScore, o.GroupScore},
		{optWeightDtype, o.WeightDtype},
		{optActivationDtype, o.ActivationDtype},
		{optRoutingMode, o.RoutingMode},
		{optGroupLevels, o.GroupLevels},
	}
	for _, s := range strs {
		if s.v != "" {
			if err := setString(s.key, s.v); err != nil {
				return err
			}
		}
	}
	for _, x := range o.Experts {
		if err := x.apply(h, cbs); err != nil {
			return err
		}
	}
	for _, s := range o.Extra {
		if err := check("pimoe_options_set_by_name", cpimoe.Pimoe_options_set_by_name(h, s.Key, s.Value)); err != nil {
			return err
		}
	}
	return nil
}

func (x ExpertOverride) apply(h uintptr, cbs callbacks) error {
	e := x.expert
	if e < math.MinInt32 || e > math.MaxInt32 {
		return argError("ExpertOverride", StatusInvalidArgument, "expert index %d does not fit the C API's int32_t", e)
	}
	switch x.kind {
	case overridePreset:
		return check("pimoe_options_set_expert_preset",
			cpimoe.Pimoe_options_set_expert_preset(h, e, cpimoe.Enum_SS_pimoe_expert_preset(x.value)))
	case overrideActivation:
		return check("pimoe_options_set_expert_activation",
			cpimoe.Pimoe_options_set_expert_activation(h, e, cpimoe.Enum_SS_pimoe_activation(x.value)))
	case overrideWidth:
		return check("pimoe_options_set_expert_width", cpimoe.Pimoe_options_set_expert_width(h, e, x.value))
	case overridePreNorm:
		return check("pimoe_options_set_expert_pre_norm",
			cpimoe.Pimoe_options_set_expert_pre_norm(h, e, int(x.value)))
	case overrideWeightDtype:
		return check("pimoe_options_set_expert_weight_dtype",
			cpimoe.Pimoe_options_set_expert_weight_dtype(h, e, x.str))
	case overrideCallback:
		if x.fn == nil {
			return argError("pimoe_options_set_expert_callback", StatusNullPointer,
				"ExpertCallback(%d, nil): the callback is nil", e)
		}
		ch := cpimoe.NewCallbackHandle(cpimoe.ExpertFunc(x.fn))
		if err := check("pimoe_options_set_expert_callback",
			cpimoe.Pimoe_go_options_set_expert_callback(h, e, ch)); err != nil {
			cpimoe.DeleteCallbackHandle(ch)
			return err
		}
		if old, ok := cbs[e]; ok { // a later call replaces an earlier one for the same expert
			cpimoe.DeleteCallbackHandle(old)
		}
		cbs[e] = ch
		return nil
	}
	return argError("ExpertOverride", StatusInvalidArgument,
		"empty per-expert override for expert %d (build it with ExpertPreset, ExpertActivation, ExpertWidth, "+
			"ExpertPreNorm, ExpertWeightDtype or ExpertCallback)", e)
}
