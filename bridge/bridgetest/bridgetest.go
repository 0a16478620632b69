// Package bridgetest gives Go tests this checkout's Python plugins through
// a real bridge host, or skips the test when no Python that can run them is
// at hand (make setup installs one into the repository's .venv).
package bridgetest

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

// Python returns the interpreter that runs this checkout's plugins
// ($DSPEX_PYTHON, else the repository's .venv) and the checkout's python/
// directory. It skips the test when there is no interpreter, or when it
// cannot run probe, an import statement such as
// "import dspex_plugins.sampler, optuna"; hint says what installs it.
func Python(t testing.TB, probe, hint string) (python, pythonPath string) {
	t.Helper()
	root := RepoRoot(t)
	python = os.Getenv(bridge.PythonEnv)
	if python == "" {
		python = filepath.Join(root, ".venv", "bin", "python")
	}
	if _, err := os.Stat(python); err != nil {
		t.Skipf("no Python at %s (set %s or run `make setup`)", python, bridge.PythonEnv)
	}
	pythonPath = filepath.Join(root, "python")
	if probe != "" && !Imports(python, pythonPath, probe) {
		out, err := probeCmd(python, pythonPath, probe).CombinedOutput()
		t.Skipf("%s cannot run %q (%s): %v: %s", python, probe, hint, err, out)
	}
	return python, pythonPath
}

// Imports reports whether python, with pythonPath on PYTHONPATH, runs the
// import statement code.
func Imports(python, pythonPath, code string) bool {
	return probeCmd(python, pythonPath, code).Run() == nil
}

func probeCmd(python, pythonPath, code string) *exec.Cmd {
	cmd := exec.Command(python, "-c", code)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+pythonPath)
	return cmd
}

// RepoRoot is the repository holding the test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, ok := bridge.RepoRoot(wd)
	if !ok {
		t.Fatalf("no repository root above %s", wd)
	}
	return root
}

// Supervisor is a supervisor for tests: a minute to start (a loaded
// machine), health checked every second, restarted almost at once.
func Supervisor() bridge.SupervisorConfig {
	return bridge.SupervisorConfig{
		StartTimeout:    config.Duration(60 * time.Second),
		HealthInterval:  config.Duration(time.Second),
		HealthTimeout:   config.Duration(5 * time.Second),
		BackoffInitial:  config.Duration(10 * time.Millisecond),
		ShutdownTimeout: config.Duration(5 * time.Second),
	}
}

// Host returns a bridge host of the built-in registry whose plugin name
// runs this checkout's python/ with the interpreter Python finds (the test
// is skipped without one that runs probe), under Supervisor. The host shuts
// down when the test ends.
func Host(t testing.TB, name, probe, hint string) *bridge.Host {
	t.Helper()
	python, pythonPath := Python(t, probe, hint)
	cfg := bridge.DefaultConfig()
	cfg.Python = python
	spec, ok := cfg.Plugins[name]
	if !ok {
		t.Fatalf("no plugin %q in the built-in registry", name)
	}
	spec.Env = map[string]string{"PYTHONPATH": pythonPath}
	cfg.Plugins[name] = spec
	cfg.Supervisor = Supervisor()
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
