// Package samplertest starts the Python sampler plugin of this checkout
// for Go tests, through a real bridge host, or skips the test when no
// Python with the plugin and Optuna is at hand.
package samplertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/core/config"
)

// Host returns a bridge host whose sampler plugin (bridge.SamplerPlugin)
// runs this checkout's python/ with $DSPEX_PYTHON, else the repository's
// .venv, and restarts quickly after a kill. The host shuts down when the
// test ends. Without a Python that imports dspex_plugins.sampler and
// optuna, the test is skipped.
func Host(t testing.TB) *bridge.Host {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, ok := bridge.RepoRoot(wd)
	if !ok {
		t.Fatalf("no repository root above %s", wd)
	}
	python := os.Getenv("DSPEX_PYTHON")
	if python == "" {
		python = filepath.Join(root, ".venv", "bin", "python")
	}
	if _, err := os.Stat(python); err != nil {
		t.Skipf("no Python at %s (set DSPEX_PYTHON or run `make setup`)", python)
	}
	pythonPath := filepath.Join(root, "python")
	probe := exec.Command(python, "-c", "import dspex_plugins.sampler, optuna")
	probe.Env = append(os.Environ(), "PYTHONPATH="+pythonPath)
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("%s cannot run the sampler plugin (make setup installs the sampler extra): %v: %s", python, err, out)
	}

	cfg := bridge.DefaultConfig()
	cfg.Python = python
	spec := cfg.Plugins[bridge.SamplerPlugin]
	spec.Env = map[string]string{"PYTHONPATH": pythonPath}
	cfg.Plugins[bridge.SamplerPlugin] = spec
	cfg.Supervisor = bridge.SupervisorConfig{
		StartTimeout:    config.Duration(60 * time.Second),
		HealthInterval:  config.Duration(time.Second),
		HealthTimeout:   config.Duration(5 * time.Second),
		BackoffInitial:  config.Duration(10 * time.Millisecond),
		ShutdownTimeout: config.Duration(5 * time.Second),
	}
	host, err := bridge.NewHost(cfg, bridge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := host.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return host
}
