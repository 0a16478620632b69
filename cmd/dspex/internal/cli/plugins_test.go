package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/dspex/dspex/bridge"
	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
)

// cliFakePluginEnv makes the test binary a fake plugin for the plugins
// command's tests: "normal" serves Info and Echo; "oldproto" reports
// another protocol; "exit" exits with code 3 before the handshake. It is
// checked in init, before the package's TestMain (which builds the dspex
// binary for the end-to-end tests) could run in the plugin process.
const cliFakePluginEnv = "DSPEX_CLI_FAKE_PLUGIN"

func init() {
	mode := os.Getenv(cliFakePluginEnv)
	if mode == "" {
		return
	}
	if mode == "exit" {
		fmt.Fprintln(os.Stderr, "fake plugin: giving up at once")
		os.Exit(3)
	}
	srv := &cliFakePlugin{protocol: bridge.Protocol}
	if mode == "oldproto" {
		srv.protocol = "dspex.plugin.v0"
	}
	bridge.Serve(bridge.ServeConfig{Register: func(s *grpc.Server) {
		pluginv1.RegisterPluginInfoServer(s, srv)
		pluginv1.RegisterEchoServer(s, srv)
	}})
	os.Exit(0)
}

type cliFakePlugin struct {
	pluginv1.UnimplementedPluginInfoServer
	pluginv1.UnimplementedEchoServer
	protocol string
}

func (f *cliFakePlugin) Info(context.Context, *pluginv1.InfoRequest) (*pluginv1.InfoResponse, error) {
	return &pluginv1.InfoResponse{Name: "fake", Version: "9.9.9", Protocol: f.protocol, Capabilities: []string{"echo"}}, nil
}

func (f *cliFakePlugin) Echo(_ context.Context, req *pluginv1.EchoRequest) (*pluginv1.EchoResponse, error) {
	return &pluginv1.EchoResponse{Message: req.GetMessage(), Payload: req.GetPayload(), Pid: int64(os.Getpid())}, nil
}

// runPluginsCLI runs `dspex plugins ...` in-process.
func runPluginsCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	s := &streams{in: strings.NewReader(""), out: &out, err: &errb}
	root := &cobra.Command{Use: "dspex", SilenceUsage: true, SilenceErrors: true}
	root.SetOut(&out)
	root.SetErr(&errb)
	root.AddCommand(newPluginsCommand(s))
	root.SetArgs(append([]string{"plugins"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// fakePluginsConfig writes a plugins: section with fake plugins, one per
// name → mode.
func fakePluginsConfig(t *testing.T, modes map[string]string, extra string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("model: ignored-by-plugins\nplugins:\n  supervisor:\n    start_timeout: 20s\n  plugins:\n")
	for name, mode := range modes {
		fmt.Fprintf(&b, "    %s:\n      command: %q\n      env: {%s: %s}\n      capabilities: [echo]\n", name, exe, cliFakePluginEnv, mode)
	}
	b.WriteString(extra)
	path := filepath.Join(t.TempDir(), "plugins.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPluginsListBuiltIn(t *testing.T) {
	t.Setenv(bridge.PythonEnv, "/nowhere/python")
	out, err := runPluginsCLI(t, "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"NAME", "echo", "python -m dspex_plugins.echo", "configured",
		"sampler", "python -m dspex_plugins.sampler",
		"interpreter", "python -m dspex_plugins.interpreter",
		"finetune", "python -m dspex_plugins.finetune",
		"python: python interpreter /nowhere/python not found: set DSPEX_PYTHON (or plugins.python)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
}

func TestPluginsListJSON(t *testing.T) {
	path := fakePluginsConfig(t, map[string]string{"fake": "normal"},
		"    tuner:\n      command: /bin/true\n      sandbox: true\n  capabilities:\n    finetune: tuner\n")
	out, err := runPluginsCLI(t, "list", "--config", path, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got []pluginReport
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	exe, _ := os.Executable()
	want := []pluginReport{
		{Name: "echo", Capabilities: []string{"echo"}, Command: "python", Args: []string{"-m", "dspex_plugins.echo"}, Status: "configured"},
		{Name: "fake", Capabilities: []string{"echo"}, Command: exe, Status: "configured"},
		{Name: "finetune", Capabilities: []string{"finetune"}, Command: "python", Args: []string{"-m", "dspex_plugins.finetune"}, Status: "configured"},
		{Name: "interpreter", Capabilities: []string{"interpreter"}, Command: "python", Args: []string{"-m", "dspex_plugins.interpreter"}, Sandbox: true, Status: "configured"},
		{Name: "sampler", Capabilities: []string{"sampler"}, Command: "python", Args: []string{"-m", "dspex_plugins.sampler"}, Status: "configured"},
		{Name: "tuner", Capabilities: []string{"finetune"}, Command: "/bin/true", Sandbox: true, Status: "configured"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("list --json (-want +got):\n%s", diff)
	}
}

func TestPluginsListBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("plugins:\n  plugins:\n    x:\n      comand: oops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := runPluginsCLI(t, "list", "--config", path)
	if !errors.Is(err, bridge.ErrConfig) || !strings.Contains(err.Error(), "comand") {
		t.Errorf("bad config: %v, want an error naming the unknown key", err)
	}
}

func TestPluginsCheckFake(t *testing.T) {
	path := fakePluginsConfig(t, map[string]string{"fake": "normal"}, "")
	out, err := runPluginsCLI(t, "check", "fake", "--config", path)
	if err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	checks := []string{"start", "health", "info", "echo", "stop"}
	if len(lines) != len(checks) {
		t.Fatalf("want a line per check %v:\n%s", checks, out)
	}
	for i, check := range checks {
		if f := strings.Fields(lines[i]); len(f) < 3 || f[0] != "fake" || f[1] != check || f[2] != "ok" {
			t.Errorf("line %d %q, want fake %s ok", i, lines[i], check)
		}
	}
	for _, want := range []string{"fake 9.9.9, protocol dspex.plugin.v1, capabilities echo", "5 round trips: min", "exited when asked"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPluginsCheckFailures(t *testing.T) {
	// The fakes replace the built-in plugins (echo, finetune, interpreter and sampler).
	path := fakePluginsConfig(t, map[string]string{"echo": "normal", "finetune": "normal", "interpreter": "normal", "sampler": "normal", "crashy": "exit", "old": "oldproto"}, "")
	out, err := runPluginsCLI(t, "check", "--config", path)
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit %d (%v), want 1:\n%s", code, err, out)
	}
	for _, want := range []string{
		"crashy       start   FAIL  plugin crashy: start: plugin process exited before the handshake (exit code 3); stderr: fake plugin: giving up at once",
		`old          info    FAIL  protocol "dspex.plugin.v0", want "dspex.plugin.v1"`,
		"echo         stop    ok",
		"finetune     stop    ok",
		"interpreter  stop    ok",
		"sampler      stop    ok",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if msg := err.Error(); !strings.Contains(msg, "2 of 6 plugins failed their checks (crashy, old)") {
		t.Errorf("error %q", msg)
	}
}

// A .venv/bin/python in the working directory, as an untrusted checkout
// could plant it, is never run: without DSPEX_PYTHON or plugins.python the
// check fails, saying what to set.
func TestPluginsCheckIgnoresPlantedPython(t *testing.T) {
	dir := t.TempDir()
	ran := filepath.Join(dir, "planted-python-ran")
	if err := os.MkdirAll(filepath.Join(dir, ".venv", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	planted := "#!/bin/sh\ntouch " + ran + "\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, ".venv", "bin", "python"), []byte(planted), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module planted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	t.Setenv(bridge.PythonEnv, "")
	for _, args := range [][]string{{"check", "echo"}, {"list"}} {
		out, err := runPluginsCLI(t, args...)
		if _, serr := os.Stat(ran); serr == nil {
			t.Fatalf("plugins %s ran the planted .venv/bin/python", strings.Join(args, " "))
		}
		if strings.Contains(out, filepath.Join(dir, ".venv")) {
			t.Errorf("plugins %s names the planted interpreter:\n%s", strings.Join(args, " "), out)
		}
		if args[0] == "check" {
			const want = "set DSPEX_PYTHON (or plugins.python) to a Python that has dspex_plugins installed"
			if code := exitCode(err); code != 1 || !strings.Contains(out, "echo  start   FAIL  python interpreter not found") || !strings.Contains(err.Error(), want) {
				t.Errorf("check echo: exit %d, output %q, error %v; want a start failure saying %q", code, out, err, want)
			}
		}
	}
}

func TestPluginsCheckUnknown(t *testing.T) {
	_, err := runPluginsCLI(t, "check", "nope")
	if code := exitCode(err); code != 2 || !strings.Contains(err.Error(), `unknown plugin "nope" (configured: echo, finetune, interpreter, sampler)`) {
		t.Errorf("check nope: exit %d, %v", code, err)
	}
}

// repoPython returns the repository's virtualenv interpreter with
// dspex_plugins.echo installed, or skips the test when `make setup` has
// not made it.
func repoPython(t *testing.T) string {
	t.Helper()
	wd, _ := os.Getwd()
	root, _ := bridge.RepoRoot(wd)
	python := filepath.Join(root, ".venv", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		t.Skipf("no Python virtualenv at %s: run `make setup` to check the Python echo plugin", python)
	}
	probe := exec.Command(python, "-c", `import importlib.util, sys
sys.exit(0 if importlib.util.find_spec("dspex_plugins") and importlib.util.find_spec("dspex_plugins.echo") else 3)`)
	if out, err := probe.CombinedOutput(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 3 {
			t.Skipf("dspex_plugins.echo is not installed in %s: run `make setup` to check the Python echo plugin", python)
		}
		t.Fatalf("probe %s: %v: %s", python, err, out)
	}
	return python
}

// The built-in registry against the real Python echo plugin, when `make
// setup` has made the virtualenv: the interpreter comes from DSPEX_PYTHON,
// so the check works from any directory.
func TestPluginsCheckPythonEcho(t *testing.T) {
	t.Setenv(bridge.PythonEnv, repoPython(t))
	t.Chdir(t.TempDir())
	out, err := runPluginsCLI(t, "check", "echo")
	if err != nil {
		t.Fatalf("check echo: %v\n%s", err, out)
	}
	if n := strings.Count(out, " ok "); n != 5 {
		t.Errorf("%d checks ok, want 5:\n%s", n, out)
	}
}

// plugins.python in a --config file, relative to that file, works from
// another directory.
func TestPluginsCheckConfiguredPython(t *testing.T) {
	python := repoPython(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "py"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\nexec '" + python + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "py", "python"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "plugins.yaml")
	if err := os.WriteFile(config, []byte("plugins:\n  python: py/python\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(bridge.PythonEnv, "")
	t.Chdir(t.TempDir())
	out, err := runPluginsCLI(t, "check", "echo", "--config", config)
	if err != nil {
		t.Fatalf("check echo --config %s: %v\n%s", config, err, out)
	}
	if n := strings.Count(out, " ok "); n != 5 {
		t.Errorf("%d checks ok, want 5:\n%s", n, out)
	}
}
