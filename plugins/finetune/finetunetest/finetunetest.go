// Package finetunetest starts the Python fine-tuning plugin of this
// checkout for Go tests, through a real bridge host, or skips the test
// when no Python with the plugin and its openai extra is at hand.
package finetunetest

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

// PluginName is the fine-tuning plugin's name in the built-in registry.
const PluginName = bridge.FineTunePlugin

// Python returns the interpreter the plugin runs with ($DSPEX_PYTHON, else
// the repository's .venv) and the checkout's python/ directory, skipping
// the test when there is none.
func Python(t testing.TB) (python, pythonPath string) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, ok := bridge.RepoRoot(wd)
	if !ok {
		t.Fatalf("no repository root above %s", wd)
	}
	python = os.Getenv("DSPEX_PYTHON")
	if python == "" {
		python = filepath.Join(root, ".venv", "bin", "python")
	}
	if _, err := os.Stat(python); err != nil {
		t.Skipf("no Python at %s (set DSPEX_PYTHON or run `make setup`)", python)
	}
	return python, filepath.Join(root, "python")
}

// Imports reports whether python imports every module of code's import
// statement (e.g. "import transformers, torch").
func Imports(python, pythonPath, code string) bool {
	probe := exec.Command(python, "-c", code)
	probe.Env = append(os.Environ(), "PYTHONPATH="+pythonPath)
	return probe.Run() == nil
}

// Host returns a bridge host whose fine-tuning plugin runs this
// checkout's python/ and restarts quickly after a kill. The host shuts down
// when the test ends. Without a Python that imports
// dspex_plugins.finetune and openai, the test is skipped.
func Host(t testing.TB) *bridge.Host {
	t.Helper()
	return HostWith(t, "import dspex_plugins.finetune, openai")
}

// HostWith is Host for a Python that runs the import statement probe
// (e.g. "import dspex_plugins.finetune, torch" for the local backend).
func HostWith(t testing.TB, probeCode string) *bridge.Host {
	t.Helper()
	python, pythonPath := Python(t)
	probe := exec.Command(python, "-c", probeCode)
	probe.Env = append(os.Environ(), "PYTHONPATH="+pythonPath)
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("%s cannot run the fine-tuning plugin (%s; make setup installs the finetune extra): %v: %s", python, probeCode, err, out)
	}
	cfg := bridge.DefaultConfig()
	cfg.Python = python
	spec, ok := cfg.Plugins[PluginName]
	if !ok {
		spec = bridge.PluginSpec{Command: "python", Args: []string{"-m", "dspex_plugins.finetune"}, Capabilities: []string{"finetune"}}
	}
	spec.Env = map[string]string{"PYTHONPATH": pythonPath}
	cfg.Plugins[PluginName] = spec
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
