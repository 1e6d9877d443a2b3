// SPDX-License-Identifier: MIT
package pimoe

import (
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// Compact weights: WeightDtype's formats, WeightGroupSize, WeightZeroPoint and ExpertWeightDtype. The same model
// through the C setters gives the same bits (configs' "compact_int4_g64_zero_point_bf16_expert" in
// TestForwardMatchesC); here, what the formats do to the model.

func stats(t *testing.T, m *Model) Stats {
	t.Helper()
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestCompactWeights(t *testing.T) {
	const batch, seq = 2, 5
	in := input(batch*seq*64, 11)
	compact := newModel(t, compactOptions())
	fp32 := newModel(t, small())
	int4 := small()
	int4.WeightDtype, int4.WeightGroupSize, int4.WeightZeroPoint = "int4", 64, true
	allInt4 := newModel(t, int4)

	out, err := compact.Forward(in, batch, seq)
	if err != nil {
		t.Fatal(err)
	}
	want, err := fp32.Forward(in, batch, seq)
	if err != nil {
		t.Fatal(err)
	}
	var diff float64
	for i, v := range out {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("output[%d] = %v", i, v)
		}
		diff = math.Max(diff, math.Abs(float64(v-want[i])))
	}
	if diff == 0 {
		t.Errorf("the int4 layer computes exactly as the fp32 layer: were its weights quantised?")
	}

	// Weight memory: well below the fp32 layer's; the bf16 expert costs more than an int4 one would.
	wc, wf, w4 := stats(t, compact).WeightBytes, stats(t, fp32).WeightBytes, stats(t, allInt4).WeightBytes
	if wc == 0 || 3*wc > wf || w4 >= wc {
		t.Errorf("weight bytes: compact %d, fp32 %d, all int4 %d (want compact < fp32/3 and all int4 < compact)",
			wc, wf, w4)
	}

	// The tensors read back are the stored values: expert 0's are bf16 numbers; expert 1's are int4 codes times a
	// scale, at most 16 values in each group of 64 inputs.
	e0, err := compact.Tensor("experts.0.up.weight")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range e0 {
		if math.Float32bits(v)&0xffff != 0 {
			t.Fatalf("experts.0.up.weight[%d] = %v is no bf16 value", i, v)
		}
	}
	e1, err := compact.Tensor("experts.1.up.weight")
	if err != nil {
		t.Fatal(err)
	}
	for g := 0; g+64 <= len(e1); g += 64 { // rows of 64 inputs: one group each
		distinct := map[float32]bool{}
		for _, v := range e1[g : g+64] {
			distinct[v] = true
		}
		if len(distinct) > 16 {
			t.Fatalf("experts.1.up.weight, group at %d: %d distinct values, int4 has 16", g, len(distinct))
		}
	}

	// Saved and loaded, the layer computes the same bits (the file holds the values that Tensor reads back).
	path := filepath.Join(t.TempDir(), "compact.safetensors")
	if err := compact.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(path, &Options{Backend: "cpu", Deterministic: true})
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	again, err := loaded.Forward(in, batch, seq)
	if err != nil {
		t.Fatal(err)
	}
	sameBits(t, "loaded output", again, out)
}

// Every storage format is accepted layer-wide and per expert (but "auto" per expert); a bad one is the library's
// error, with its status and message.
func TestWeightDtypeValues(t *testing.T) {
	for _, dtype := range []string{"auto", "fp32", "bf16", "fp16", "int8", "int4", "fp8_e4m3", "mxfp4"} {
		o := small()
		o.WeightDtype = dtype
		if dtype != "auto" {
			o.Experts = []ExpertOverride{ExpertWeightDtype(AllExperts, dtype), ExpertWeightDtype(2, "fp32")}
		}
		m := newModel(t, o)
		out, err := m.Forward(input(64, 5), 1, 1)
		if err != nil {
			t.Fatalf("%s: %v", dtype, err)
		}
		for i, v := range out {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s: output[%d] = %v", dtype, i, v)
			}
		}
	}
	_, err := New(&Options{Experts: []ExpertOverride{ExpertWeightDtype(0, "int3")}})
	var perr *Error
	if !errors.As(err, &perr) || perr.Status != StatusInvalidOption || perr.Op != "pimoe_options_set_expert_weight_dtype" ||
		!strings.Contains(perr.Message, "'int3' is not a storage format") {
		t.Fatalf("ExpertWeightDtype(0, \"int3\"): %#v", err)
	}
	_, err = New(&Options{WeightGroupSize: 48})
	if !errors.As(err, &perr) || perr.Status != StatusInvalidOption ||
		!strings.Contains(perr.Message, "weight_group_size (48) must be 32, 64 or 128") {
		t.Fatalf("WeightGroupSize 48: %#v", err)
	}
}
