package bridge

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
	"github.com/dspex/dspex/core/config"
)

// pythonForTests returns the repository's virtualenv interpreter, or skips
// the test when there is none or dspex_plugins is not installed in it —
// and only then: `make test` runs `make setup` first, so in CI these tests
// run.
func pythonForTests(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, ok := RepoRoot(wd)
	if !ok {
		t.Fatalf("no repository root above %s", wd)
	}
	python := filepath.Join(root, venvPython)
	if !isExecutable(python) {
		t.Skipf("no Python virtualenv at %s: run `make setup` to run the tests against the Python plugin", python)
	}
	probe := exec.Command(python, "-c", `import importlib.util, sys
sys.exit(0 if importlib.util.find_spec("dspex_plugins") and importlib.util.find_spec("dspex_plugins.echo") else 3)`)
	out, err := probe.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 3 {
		t.Skipf("dspex_plugins.echo is not installed in %s: run `make setup` to run the tests against the Python plugin", python)
	}
	if err != nil {
		t.Fatalf("probe %s: %v: %s", python, err, out)
	}
	return python
}

// pythonEchoSpec is the built-in echo plugin's spec, resolved with the
// virtualenv's interpreter.
func pythonEchoSpec(t testing.TB) PluginSpec {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Python = pythonForTests(t)
	spec, err := cfg.Spec(EchoPlugin)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// pythonConfig supervises quickly but leaves the interpreter time to
// answer health checks on a loaded machine.
func pythonConfig() SupervisorConfig {
	cfg := fastConfig()
	cfg.StartTimeout = config.Duration(30 * time.Second)
	cfg.HealthInterval = config.Duration(500 * time.Millisecond)
	cfg.HealthTimeout = config.Duration(3 * time.Second)
	cfg.ShutdownTimeout = config.Duration(5 * time.Second)
	return cfg
}

func TestConformancePython(t *testing.T) {
	t.Parallel()
	runConformance(t, pythonEchoSpec(t), pythonConfig())
}

// The real Python echo plugin through the default registry: start, call,
// SIGKILL with a Sleep call in flight (a clear error for the caller), and
// the next call succeeds after the restart.
func TestPythonEchoIntegration(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Python = pythonForTests(t)
	cfg.Supervisor = pythonConfig()
	h, err := NewHost(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.ForCapability("echo", "")
	if err != nil {
		t.Fatal(err)
	}
	pid := echo(t, p, "from go")
	info, err := p.Info(ctxTimeout(t, 10*time.Second))
	if err != nil || info.GetProtocol() != Protocol {
		t.Fatalf("info: %v, %v", info, err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := p.Echo().Sleep(ctxTimeout(t, 60*time.Second), &pluginv1.SleepRequest{Seconds: 30})
		errc <- err
	}()
	time.Sleep(500 * time.Millisecond)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("the Sleep call in flight did not return within 10s of the SIGKILL")
	}
	if !errors.Is(err, ErrPluginExited) || !strings.Contains(err.Error(), "plugin echo") || !strings.Contains(err.Error(), "killed by SIGKILL") {
		t.Fatalf("sleep in flight: %v, want ErrPluginExited naming echo, killed by SIGKILL", err)
	}
	if err := p.WaitReady(ctxTimeout(t, 30*time.Second)); err != nil {
		t.Fatalf("restart: %v", err)
	}
	pid2 := echo(t, p, "after restart")
	if pid2 == pid {
		t.Errorf("served by the killed pid %d", pid)
	}
	if err := h.Shutdown(ctxTimeout(t, 20*time.Second)); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	processGone(t, pid)
	processGone(t, pid2)
}
