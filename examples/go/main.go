// SPDX-License-Identifier: MIT

// Go example for libpimoe: creates the default MoE layer (hidden 512, 8 experts, top-2) on the CPU, runs a few
// tokens through it from several goroutines, and prints the routing, statistics and loads. It also shows a library
// error as a Go value.
//
// Build it against an installed libpimoe (pkg-config must find pimoe.pc) with a go.mod that requires
// libpimoe.org/pimoe (installed under <prefix>/share/pimoe/go: add a `replace` to that directory), then `go build`.
package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync"

	"libpimoe.org/pimoe"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
	fmt.Println("example: ok")
}

func run() error {
	fmt.Printf("libpimoe %s (package compiled against %s), ABI %d\n", pimoe.Version(), pimoe.HeaderVersion,
		pimoe.ABIVersion())
	fmt.Println("build:", pimoe.BuildInfo())
	for _, b := range pimoe.Backends() {
		usable, reason, err := pimoe.ProbeBackend(b)
		if err != nil {
			return err
		}
		if usable {
			dev, err := pimoe.BackendDevice(b)
			if err != nil {
				return err
			}
			fmt.Printf("backend %-7s usable: %s\n", b, dev)
		} else {
			fmt.Printf("backend %-7s unusable: %s\n", b, reason)
		}
	}

	m, err := pimoe.New(&pimoe.Options{Backend: "cpu", Seed: 42, Deterministic: true})
	if err != nil {
		return err
	}
	defer m.Close()

	const tokens = 4
	h := m.Hidden()
	input := make([]float32, tokens*h)
	for i := range input {
		input[i] = float32(math.Sin(float64(i) * 0.01))
	}
	out, routing, err := m.ForwardRouted(input, 1, tokens)
	if err != nil {
		return err
	}
	for t := 0; t < tokens; t++ {
		fmt.Printf("token %d: out[0..2] = %+.5f %+.5f %+.5f  experts", t, out[t*h], out[t*h+1], out[t*h+2])
		for j := 0; j < m.TopK(); j++ {
			k := t*m.TopK() + j
			fmt.Printf(" %d(%.3f)", routing.ExpertIDs[k], routing.ExpertWeights[k])
		}
		fmt.Println()
	}

	// The same model from 4 goroutines at once: each token alone gives the bits of the batched call.
	var wg sync.WaitGroup
	errs := make([]error, tokens)
	for t := 0; t < tokens; t++ {
		wg.Add(1)
		go func(t int) {
			defer wg.Done()
			one, err := m.Forward(input[t*h:(t+1)*h], 1, 1)
			if err == nil && !equal(one, out[t*h:(t+1)*h]) {
				err = fmt.Errorf("token %d alone differs from the batched call", t)
			}
			errs[t] = err
		}(t)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}

	st, err := m.Stats()
	if err != nil {
		return err
	}
	loads, err := m.ExpertLoads()
	if err != nil {
		return err
	}
	fmt.Printf("stats: %d calls, %d tokens, mean latency %.3f ms, utilization %.2f, loads %v\n",
		st.ForwardCalls, st.Tokens, st.LatencyMeanMs, st.ExpertUtilization, loads)

	// A library error is a *pimoe.Error with the status and the library's message.
	_, err = pimoe.New(&pimoe.Options{NumExperts: 8, TopK: 9})
	var perr *pimoe.Error
	if !errors.As(err, &perr) || perr.Status != pimoe.StatusInvalidOption {
		return fmt.Errorf("expected an invalid-option error, got %v", err)
	}
	fmt.Printf("error as a value: status %d (%s), message %q\n", perr.Status, perr.Status, perr.Message)
	return nil
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
