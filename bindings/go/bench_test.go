// SPDX-License-Identifier: MIT
package pimoe

import (
	"testing"
	"time"

	"libpimoe.org/pimoe/internal/cpimoe"
	"libpimoe.org/pimoe/internal/cref"
)

// The overhead of one Go Forward call over the C call, at 1 token.
//
// Each benchmark reports ns/op and "ns-outside/op": ns/op minus the mean latency the library measures inside
// pimoe_forward (its own stats), i.e. the time per call spent outside the library's timed region. For "c" that is a
// plain C loop calling pimoe_forward (one cgo call for all b.N iterations); for "go" it is Model.ForwardInto.
// The binding's overhead is go's ns-outside/op minus c's. Shape S is hidden 512, 8 experts, top-2, intermediate
// 2048 (the defaults); "tiny" (hidden 16, intermediate 32, 1 thread) makes the fixed cost visible in ns/op as well.
//
//	go test -run '^$' -bench Forward -benchtime 3s
func BenchmarkForward(b *testing.B) {
	shapes := []struct {
		name string
		opts *Options
		kv   []string
	}{
		{"S", &Options{Backend: "cpu"}, []string{"backend", "cpu"}},
		{"tiny", &Options{Hidden: 16, Intermediate: 32, Threads: 1, Backend: "cpu"},
			[]string{"hidden", "16", "intermediate", "32", "threads", "1", "backend", "cpu"}},
	}
	for _, s := range shapes {
		b.Run(s.name+"/go", func(b *testing.B) {
			m, err := New(s.opts)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			in := input(m.Hidden(), 1)
			out := make([]float32, len(in))
			for i := 0; i < 10; i++ {
				if err := m.ForwardInto(out, in, 1, 1); err != nil {
					b.Fatal(err)
				}
			}
			if err := m.ResetStats(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if err := m.ForwardInto(out, in, 1, 1); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			st, err := m.Stats()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N)-st.LatencyMeanMs*1e6, "ns-outside/op")
		})
		b.Run(s.name+"/c", func(b *testing.B) {
			m, r := cref.CreateByName(s.kv...)
			if r.Status != 0 {
				b.Fatal(r)
			}
			defer m.Destroy()
			h := 512
			if s.name == "tiny" {
				h = 16
			}
			in := input(h, 1)
			out := make([]float32, h)
			if r := m.ForwardLoop(in, out, 10); r.Status != 0 {
				b.Fatal(r)
			}
			resetRef(b, m)
			b.ResetTimer()
			start := time.Now()
			if r := m.ForwardLoop(in, out, b.N); r.Status != 0 {
				b.Fatal(r)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			st, r := m.Stats()
			if r.Status != 0 {
				b.Fatal(r)
			}
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N)-st[6]*1e6, "ns-outside/op")
		})
	}
}

// resetRef resets the reference model's statistics through the binding's own call on the same handle.
func resetRef(b *testing.B, m cref.Model) {
	if err := check("pimoe_stats_reset", cpimoeReset(uintptr(m))); err != nil {
		b.Fatal(err)
	}
}

func cpimoeReset(h uintptr) string { return cpimoe.Pimoe_stats_reset(h) }
