// Package codeacttest gives Go tests the interpreter plugin of this
// checkout, through the real bridge, or skips the test when no Python with
// dspex_plugins is at hand.
package codeacttest

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/bridge/bridgetest"
	"github.com/dspex/dspex/core/config"
	"github.com/dspex/dspex/plugins/codeact"
)

// Python returns the interpreter that runs this checkout's plugins:
// $DSPEX_PYTHON, else the repository's .venv. It skips the test when there
// is none, or when it cannot import dspex_plugins.interpreter.
func Python(t testing.TB) string {
	t.Helper()
	python, _ := bridgetest.Python(t, "import dspex_plugins.interpreter", "run `make setup`")
	return python
}

func repoRoot(t testing.TB) string {
	t.Helper()
	return bridgetest.RepoRoot(t)
}

// Plugins returns the built-in registry with Python(t) as the interpreter,
// this checkout's python/ on PYTHONPATH, and quick health checks. The
// interpreter runs in the OS sandbox when one can be created here, and
// without one otherwise (unsafe_no_sandbox).
func Plugins(t testing.TB) *bridge.Config {
	t.Helper()
	cfg := bridge.DefaultConfig()
	cfg.Python = Python(t)
	spec := cfg.Plugins[bridge.InterpreterPlugin]
	code := filepath.Join(repoRoot(t), "python")
	spec.Env = map[string]string{"PYTHONPATH": code}
	// In the OS sandbox, as the built-in registry has it, where one can be
	// created (make setup installs bubblewrap); elsewhere the tests still
	// run, unsandboxed, and the bridge logs that.
	spec.Sandbox, spec.UnsafeNoSandbox = true, true
	spec.SandboxReadOnly = []string{code}
	cfg.Plugins[bridge.InterpreterPlugin] = spec
	cfg.Supervisor = bridge.SupervisorConfig{
		StartTimeout:    config.Duration(60 * time.Second),
		HealthInterval:  config.Duration(time.Second),
		HealthTimeout:   config.Duration(5 * time.Second),
		ShutdownTimeout: config.Duration(5 * time.Second),
	}
	return &cfg
}

// Pool returns a pool of this checkout's interpreter plugin with cfg (its
// Plugins set by Plugins(t) when nil), closed when the test ends.
func Pool(t testing.TB, cfg codeact.Config) *codeact.Pool {
	t.Helper()
	if cfg.Plugins == nil {
		cfg.Plugins = Plugins(t)
	}
	pool, err := codeact.NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pool.Close(); err != nil {
			t.Errorf("close pool: %v", err)
		}
	})
	return pool
}
