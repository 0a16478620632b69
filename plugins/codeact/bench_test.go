package codeact_test

import (
	"testing"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/plugins/codeact"
	"github.com/dspex/dspex/plugins/codeact/codeacttest"
	"github.com/dspex/dspex/sandbox"
)

// isolations runs bench in the OS sandbox (where one can be created) and
// without it, so that the figures show what the sandbox costs.
func isolations(b *testing.B, bench func(b *testing.B, plugins *bridge.Config)) {
	plugins := codeacttest.Plugins(b)
	if rep := sandbox.Check(b.Context(), sandbox.Config{Python: plugins.Python}); rep.Available {
		b.Run("sandboxed", func(b *testing.B) { bench(b, plugins) })
	}
	bare := *plugins
	bare.Plugins = map[string]bridge.PluginSpec{}
	for name, spec := range plugins.Plugins {
		bare.Plugins[name] = spec
	}
	spec := bare.Plugins[bridge.InterpreterPlugin]
	spec.Sandbox = false
	bare.Plugins[bridge.InterpreterPlugin] = spec
	b.Run("unsandboxed", func(b *testing.B) { bench(b, &bare) })
}

// BenchmarkInterpreterWarm: a trivial snippet in a warm interpreter (a
// started session): one Execute stream, host to plugin and back. Goal:
// 20 ms or less.
func BenchmarkInterpreterWarm(b *testing.B) { isolations(b, benchWarm) }

func benchWarm(b *testing.B, plugins *bridge.Config) {
	pool := codeacttest.Pool(b, codeact.Config{Plugins: plugins})
	s, err := pool.NewSession(b.Context(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Execute(b.Context(), "x = 0"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		obs, err := s.Execute(b.Context(), "x += 1\nx")
		if err != nil || obs.Error != nil {
			b.Fatalf("%+v, %v", obs, err)
		}
	}
}

// BenchmarkInterpreterWarmTool: a snippet that calls one Go tool.
func BenchmarkInterpreterWarmTool(b *testing.B) { isolations(b, benchWarmTool) }

func benchWarmTool(b *testing.B, plugins *bridge.Config) {
	pool := codeacttest.Pool(b, codeact.Config{Plugins: plugins})
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
func BenchmarkInterpreterRestart(b *testing.B) { isolations(b, benchRestart) }

func benchRestart(b *testing.B, plugins *bridge.Config) {
	pool := codeacttest.Pool(b, codeact.Config{Plugins: plugins, Warm: -1, Max: 2})
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
func BenchmarkInterpreterColdStart(b *testing.B) { isolations(b, benchColdStart) }

func benchColdStart(b *testing.B, plugins *bridge.Config) {
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
