package codeact_test

import (
	"testing"

	"github.com/dspex/dspex/plugins/codeact"
	"github.com/dspex/dspex/plugins/codeact/codeacttest"
)

// BenchmarkInterpreterWarm: a trivial snippet in a warm interpreter (a
// started session): one Execute stream, host to plugin and back. Goal:
// 20 ms or less.
func BenchmarkInterpreterWarm(b *testing.B) {
	pool := codeacttest.Pool(b, codeact.Config{})
	s, err := pool.NewSession(b.Context(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Execute(b.Context(), "x = 0"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		obs, err := s.Execute(b.Context(), "x += 1\nx")
		if err != nil || obs.Error != nil {
			b.Fatalf("%+v, %v", obs, err)
		}
	}
}

// BenchmarkInterpreterWarmTool: a snippet that calls one Go tool.
func BenchmarkInterpreterWarmTool(b *testing.B) {
	pool := codeacttest.Pool(b, codeact.Config{})
	s, err := pool.NewSession(b.Context(), shopTools(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		obs, err := s.Execute(b.Context(), "price('apple')")
		if err != nil || obs.Value != "3" {
			b.Fatalf("%+v, %v", obs, err)
		}
	}
}

// BenchmarkInterpreterRestart: code kills its interpreter (os._exit); the
// session notices, discards it, starts a fresh process (no warm spare)
// and a new session on it. One iteration is the whole restart after a kill.
func BenchmarkInterpreterRestart(b *testing.B) {
	pool := codeacttest.Pool(b, codeact.Config{Warm: -1, Max: 2})
	s, err := pool.NewSession(b.Context(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		obs, err := s.Execute(b.Context(), "import os\nos._exit(1)")
		if err != nil || !obs.StateLost {
			b.Fatalf("%+v, %v", obs, err)
		}
	}
}

// BenchmarkInterpreterColdStart: a fresh pool's first session and snippet:
// process start, handshake, first health check, session, execution.
func BenchmarkInterpreterColdStart(b *testing.B) {
	plugins := codeacttest.Plugins(b)
	for b.Loop() {
		pool, err := codeact.NewPool(codeact.Config{Plugins: plugins, Warm: -1, Max: 1})
		if err != nil {
			b.Fatal(err)
		}
		s, err := pool.NewSession(b.Context(), nil)
		if err != nil {
			b.Fatal(err)
		}
		if obs, err := s.Execute(b.Context(), "1"); err != nil || obs.Value != "1" {
			b.Fatalf("%+v, %v", obs, err)
		}
		s.Close()
		if err := pool.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
