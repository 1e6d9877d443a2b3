package pimoe

import (
	"math"

	"libpimoe.org/pimoe/internal/cpimoe"
)

// Activation is the activation function of an expert FFN (pimoe_activation).
type Activation int32

// Activations of pimoe.h.
const (
	ActivationGELU     Activation = 0 // x/2 * (1 + erf(x/sqrt(2)))
	ActivationGELUTanh Activation = 1 // the tanh approximation of GELU
	ActivationSiLU     Activation = 2 // x * sigmoid(x)
	ActivationReLU     Activation = 3 // max(x, 0)
	ActivationTanh     Activation = 4 // tanh(x)
	ActivationSwiGLU   Activation = 5 // gated: silu(gate(x)) * up(x)
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
// Every option key of pimoe.h has a field. For the few keys whose zero is a meaningful non-default value
// (aux_loss_coef 0), or to set a key by its name, use Extra.
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

	// Experts holds per-expert overrides (ExpertPreset, ExpertActivation, ExpertWidth, ExpertPreNorm), applied in
	// order with the C API's rules: every-expert settings first, then per-expert ones; within each, presets first.
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
)

// ExpertOverride is one per-expert setting; build it with ExpertPreset, ExpertActivation, ExpertWidth or
// ExpertPreNorm.
type ExpertOverride struct {
	kind   overrideKind
	expert int
	value  int64
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

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// The C option keys (pimoe_option).
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
)

// build creates a C options object from o; the caller destroys it.
func (o *Options) build() (uintptr, error) {
	var h uintptr
	if err := check("pimoe_options_create", cpimoe.Pimoe_options_create(&h)); err != nil {
		return 0, err
	}
	if o == nil {
		return h, nil
	}
	err := o.apply(h)
	if err != nil {
		cpimoe.Pimoe_options_destroy(h)
		return 0, err
	}
	return h, nil
}

func (o *Options) apply(h uintptr) error {
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
	}
	for _, s := range floats {
		if s.v != 0 {
			if err := setFloat(s.key, s.v); err != nil {
				return err
			}
		}
	}
	if o.Backend != "" {
		if err := setString(optBackend, o.Backend); err != nil {
			return err
		}
	}
	if o.CPUGemm != "" {
		if err := setString(optCPUGemm, o.CPUGemm); err != nil {
			return err
		}
	}
	for _, x := range o.Experts {
		if err := x.apply(h); err != nil {
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

func (x ExpertOverride) apply(h uintptr) error {
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
	}
	return argError("ExpertOverride", StatusInvalidArgument,
		"empty per-expert override for expert %d (build it with ExpertPreset, ExpertActivation, ExpertWidth or "+
			"ExpertPreNorm)", e)
}
