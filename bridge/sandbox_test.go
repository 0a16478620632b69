//go:build linux

package bridge

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/sandbox"
)

// requireSandbox skips where no sandbox can be created (set
// DSPEX_SANDBOX_REQUIRED=1, as CI does, to fail instead).
func requireSandbox(t *testing.T, python string) {
	t.Helper()
	rep := sandbox.Check(ctxTimeout(t, 30*time.Second), sandbox.Config{Python: python})
	if rep.Available {
		return
	}
	if os.Getenv("DSPEX_SANDBOX_REQUIRED") == "1" {
		t.Fatalf("no sandbox: %s", rep.Reason)
	}
	t.Skipf("no sandbox on this machine: %s", rep.Reason)
}

// The built-in echo plugin, marked sandbox: true, starts and answers from
// its own pid namespace (it is pid 2 there: bwrap's init is 1).
func TestSandboxedPythonEcho(t *testing.T) {
	t.Parallel()
	spec := pythonEchoSpec(t)
	requireSandbox(t, spec.Command)
	spec.Sandbox = true
	rec := newRecorder(t)
	p := startPlugin(t, "echo", spec, pythonConfig(), rec)
	if pid := echo(t, p, "from go"); pid != 2 {
		t.Errorf("echo pid %d inside the sandbox, want 2 (a fresh pid namespace)", pid)
	}
	rec.waitFor(t, event.PluginLog, func(ev event.Event) bool {
		return strings.HasPrefix(ev.Data.(*event.PluginLogEntry).Message, "sandboxed: ")
	})
}

// A test-only plugin reports what it can see from inside the sandbox: no
// host files, no repository, no host environment, no network; its uid is
// 65534; its socket directory is the one place of the host it can write.
func TestSandboxedPluginSeesNoHost(t *testing.T) {
	python := pythonForTests(t)
	requireSandbox(t, python)
	const secret = "DSPEX_BRIDGE_SANDBOX_SECRET"
	t.Setenv(secret, "s3cr3t")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	testdata := filepath.Join(wd, "testdata")
	repo := filepath.Dir(wd)
	spec := PluginSpec{
		Command: python, Args: []string{filepath.Join(testdata, "sandbox_probe.py")},
		Env: map[string]string{"PYTHONUNBUFFERED": "1"}, Sandbox: true, SandboxReadOnly: []string{testdata},
	}
	p := startPlugin(t, "probe", spec, pythonConfig(), nil)
	probe := func(msg string) string {
		t.Helper()
		resp, err := p.Echo().Echo(ctxTimeout(t, 20*time.Second), &pluginv1.EchoRequest{Message: msg})
		if err != nil {
			t.Fatalf("probe %s: %v", msg, err)
		}
		return resp.GetMessage()
	}
	for _, tc := range []struct{ probe, want string }{
		{"uid:", strconv.Itoa(sandbox.UID)},
		{"read:/root/.bashrc", "FileNotFoundError"},
		{"listdir:/root/.ssh", "FileNotFoundError"},
		{"listdir:/home", "FileNotFoundError"},
		{"read:/etc/shadow", "FileNotFoundError"},
		{"read:/etc/passwd", "FileNotFoundError"},
		{"read:" + filepath.Join(repo, "go.mod"), "FileNotFoundError"},
		{"listdir:" + filepath.Join(repo, "bridge"), "testdata"},
		{"env:" + secret, "<unset>"},
		{"env:HOME", sandbox.Scratch},
		{"connect:1.1.1.1:80", "OSError"},
	} {
		if got := probe(tc.probe); got != tc.want {
			t.Errorf("probe %s: %q, want %q", tc.probe, got, tc.want)
		}
	}
	// pid 1 is the sandbox's own init: its root is the sandbox's.
	if got := probe("listdir:/proc/1/root"); !strings.Contains(got, "scratch") || strings.Contains(got, "home") {
		t.Errorf("probe listdir:/proc/1/root: %q, want the sandbox's root", got)
	}
	// /root holds at most the interpreter's runtime (pyenv's, on machines
	// whose Python lives there).
	if got := probe("listdir:/root"); got != "FileNotFoundError" && got != ".pyenv" {
		t.Errorf("probe listdir:/root: %q", got)
	}
	// The socket directory is bound at the same path and holds the socket.
	if got := probe("env:PLUGIN_UNIX_SOCKET_DIR"); got == "<unset>" || !strings.Contains(probe("listdir:"+got), "plugin") {
		t.Errorf("socket directory %q: %q", got, probe("listdir:"+got))
	}
}

// Without bubblewrap a plugin that asks for the sandbox does not start,
// and says why; with unsafe_no_sandbox it starts unsandboxed, with a
// warning.
func TestSandboxUnavailable(t *testing.T) {
	spec := pythonEchoSpec(t)
	spec.Sandbox = true
	t.Setenv("PATH", t.TempDir()) // no bwrap
	cfg := pythonConfig()
	cfg.MaxRestarts = -1
	p := startPlugin(t, "echo", spec, cfg, nil)
	err := p.WaitReady(ctxTimeout(t, 30*time.Second))
	if !errors.Is(err, sandbox.ErrUnavailable) || !strings.Contains(err.Error(), "unsafe_no_sandbox") ||
		!strings.Contains(err.Error(), "bubblewrap") {
		t.Fatalf("start without bwrap: %v, want sandbox.ErrUnavailable naming bubblewrap and unsafe_no_sandbox", err)
	}

	spec.UnsafeNoSandbox = true
	rec := newRecorder(t)
	p = startPlugin(t, "echo", spec, pythonConfig(), rec)
	if pid := echo(t, p, "unsafe"); pid == 2 {
		t.Errorf("pid 2: sandboxed after all?")
	}
	rec.waitFor(t, event.PluginLog, func(ev event.Event) bool {
		e := ev.Data.(*event.PluginLogEntry)
		return e.Level == "warn" && strings.Contains(e.Message, "WITHOUT isolation")
	})
}
