package bridge

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/config"
)

func TestParseConfigMergesOverDefaults(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
model: other sections of a program file are ignored
plugins:
  python: /opt/py/bin/python
  plugins:
    sampler:
      args: ["-m", "dspex_plugins.sampler"]
      capabilities: [sampler]
      env: {OPTUNA_LOG: warn}
    tuner:
      command: /usr/local/bin/tuner
      sandbox: true
      capabilities: [finetune]
  capabilities:
    finetune: tuner
  supervisor:
    start_timeout: 45s
    health_interval: 750ms
    max_restarts: 2
    restart_window: 10s
    breaker:
      failures: 3
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Python: "/opt/py/bin/python",
		Plugins: map[string]PluginSpec{
			"echo":        DefaultConfig().Plugins["echo"],
			"finetune":    DefaultConfig().Plugins["finetune"],
			"interpreter": DefaultConfig().Plugins["interpreter"],
			"sampler":     {Args: []string{"-m", "dspex_plugins.sampler"}, Capabilities: []string{"sampler"}, Env: map[string]string{"OPTUNA_LOG": "warn"}},
			"tuner":       {Command: "/usr/local/bin/tuner", Sandbox: true, Capabilities: []string{"finetune"}},
		},
		Capabilities: map[string]string{"finetune": "tuner"},
		Supervisor: SupervisorConfig{
			StartTimeout: config.Duration(45 * time.Second), HealthInterval: config.Duration(750 * time.Millisecond),
			MaxRestarts: 2, RestartWindow: config.Duration(10 * time.Second), Breaker: BreakerConfig{Failures: 3},
		},
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestParseConfigWithoutSection(t *testing.T) {
	cfg, err := ParseConfig([]byte("model: x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(DefaultConfig(), cfg); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

// The built-in registry: echo, the sampler, the interpreter and fine-tuning, each the one
// plugin for its capability, run by the configured interpreter.
func TestDefaultConfigBuiltIns(t *testing.T) {
	cfg := DefaultConfig()
	want := map[string]PluginSpec{
		EchoPlugin:        {Command: "python", Args: []string{"-m", "dspex_plugins.echo"}, Capabilities: []string{"echo"}},
		SamplerPlugin:     {Command: "python", Args: []string{"-m", "dspex_plugins.sampler"}, Capabilities: []string{"sampler"}},
		InterpreterPlugin: {Command: "python", Args: []string{"-m", "dspex_plugins.interpreter"}, Capabilities: []string{"interpreter"}, Sandbox: true},
		FineTunePlugin:    {Command: "python", Args: []string{"-m", "dspex_plugins.finetune"}, Capabilities: []string{"finetune"}},
	}
	if diff := cmp.Diff(want, cfg.Plugins); diff != "" {
		t.Errorf("built-in plugins (-want +got):\n%s", diff)
	}
	for capability, plugin := range map[string]string{"echo": EchoPlugin, "sampler": SamplerPlugin, "interpreter": InterpreterPlugin, "finetune": FineTunePlugin} {
		if got, err := cfg.Resolve(capability, ""); err != nil || got != plugin {
			t.Errorf("Resolve(%q) = %q, %v; want %q", capability, got, err, plugin)
		}
	}
	// Each call is a fresh copy.
	cfg.Plugins[SamplerPlugin].Args[1] = "changed"
	if DefaultConfig().Plugins[SamplerPlugin].Args[1] != "dspex_plugins.sampler" {
		t.Error("DefaultConfig shares its specs between calls")
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "plugins:\n  plugins:\n    x:\n      comand: y\n", "comand"},
		{"bad duration", "plugins:\n  supervisor:\n    start_timeout: soon\n", `"soon" is not a duration`},
		{"unmapped capability", "plugins:\n  capabilities:\n    sampler: nope\n", `maps to plugin "nope"`},
		{"not yaml", "plugins: [\n", "yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	cfg := Config{
		Plugins: map[string]PluginSpec{
			"optuna": {Capabilities: []string{"sampler"}},
			"random": {Capabilities: []string{"sampler"}},
			"tuner":  {Capabilities: []string{"finetune"}},
			"any":    {},
		},
		Capabilities: map[string]string{"interpreter": "any"},
	}
	for _, tc := range []struct {
		capability, override, want string
		err                        error
	}{
		{"finetune", "", "tuner", nil},
		{"interpreter", "", "any", nil},
		{"sampler", "random", "random", nil},
		{"sampler", "any", "any", nil},
		{"sampler", "", "", ErrNoCapability},
		{"sampler", "tuner", "", ErrNoCapability},
		{"sampler", "nope", "", ErrUnknownPlugin},
		{"embedding", "", "", ErrNoCapability},
	} {
		got, err := cfg.Resolve(tc.capability, tc.override)
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("Resolve(%q, %q) = %q, %v; want %q, %v", tc.capability, tc.override, got, err, tc.want, tc.err)
		}
	}
}

// fakeRepo makes a directory tree with a repository root (go.mod) and
// returns its root.
func fakeRepo(t *testing.T, withVenv bool) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "repo")
	if err := os.MkdirAll(filepath.Join(root, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if withVenv {
		if err := os.MkdirAll(filepath.Join(root, ".venv", "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, venvPython), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestPythonInterpreter(t *testing.T) {
	t.Setenv(PythonEnv, "")

	// A .venv/bin/python in (or above) the working directory is never
	// used: the directory may be an untrusted checkout.
	root := fakeRepo(t, true)
	t.Chdir(filepath.Join(root, "a", "b"))
	got, err := Config{}.PythonInterpreter()
	if err == nil || strings.HasPrefix(got, root) {
		t.Errorf("with a venv in the working directory's repository: %q, %v; want no interpreter", got, err)
	}
	if !errors.Is(err, ErrPythonNotFound) || !strings.Contains(err.Error(), "set DSPEX_PYTHON (or plugins.python)") {
		t.Errorf("missing interpreter: %v; want ErrPythonNotFound saying what to set", err)
	}
	if _, err := DefaultConfig().Spec(EchoPlugin); !errors.Is(err, ErrPythonNotFound) {
		t.Errorf("echo spec with a planted venv: %v; want ErrPythonNotFound", err)
	}

	t.Setenv(PythonEnv, "/nowhere/python")
	_, err = Config{}.PythonInterpreter()
	if want := "python interpreter /nowhere/python not found: " + pythonHint; err == nil || err.Error() != want {
		t.Errorf("missing $DSPEX_PYTHON: %v; want %q", err, want)
	}

	t.Setenv(PythonEnv, filepath.Join(root, venvPython))
	got, err = Config{}.PythonInterpreter()
	if err != nil || got != filepath.Join(root, venvPython) {
		t.Errorf("$DSPEX_PYTHON: %q, %v", got, err)
	}

	// plugins.python wins over the environment.
	t.Setenv(PythonEnv, "/nowhere/python")
	got, err = Config{Python: filepath.Join(root, venvPython)}.PythonInterpreter()
	if err != nil || got != filepath.Join(root, venvPython) {
		t.Errorf("configured python: %q, %v", got, err)
	}
}

// The default interpreter is the .venv beside the executable's bin/
// directory, found through symlinks to the executable.
func TestPythonBesideExecutable(t *testing.T) {
	root := fakeRepo(t, true)
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(root, "bin", "dspex")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(root, "bin", installedVenvPython)
	if got, err := pythonBeside(exe); err != nil || got != want {
		t.Errorf("pythonBeside(%s) = %q, %v; want %q", exe, got, err, want)
	}
	link := filepath.Join(t.TempDir(), "dspex")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	if got, err := pythonBeside(link); err != nil || got != want {
		t.Errorf("pythonBeside(symlink %s) = %q, %v; want %q", link, got, err, want)
	}
	lone := filepath.Join(t.TempDir(), "bin", "dspex")
	_, err := pythonBeside(lone)
	if !errors.Is(err, ErrPythonNotFound) || !strings.Contains(err.Error(), filepath.Join(filepath.Dir(lone), installedVenvPython)) {
		t.Errorf("pythonBeside(%s) without a venv: %v; want ErrPythonNotFound naming the path looked at", lone, err)
	}
}

// A relative plugins.python in a configuration file is relative to the
// file, not to the working directory.
func TestLoadConfigRelativePython(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "program.yaml")
	if err := os.WriteFile(path, []byte("plugins:\n  python: .venv/bin/python\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, venvPython); cfg.Python != want {
		t.Errorf("plugins.python = %q; want %q", cfg.Python, want)
	}
}

func TestSpecResolvesCommand(t *testing.T) {
	root := fakeRepo(t, true)
	cfg := DefaultConfig()
	cfg.Python = filepath.Join(root, venvPython)
	cfg.Plugins["tool"] = PluginSpec{Command: "sh", Args: []string{"-c", "exit 1"}}
	cfg.Plugins["gone"] = PluginSpec{Command: "/nowhere/tool"}

	spec, err := cfg.Spec("echo")
	if err != nil {
		t.Fatal(err)
	}
	if spec.Command != cfg.Python || spec.Env["PYTHONUNBUFFERED"] != "1" || cfg.Plugins["echo"].Env != nil {
		t.Errorf("echo spec %+v (configured spec changed: %+v)", spec, cfg.Plugins["echo"])
	}
	if spec, err := cfg.Spec("tool"); err != nil || !filepath.IsAbs(spec.Command) {
		t.Errorf("tool spec %+v, %v; want sh found in $PATH", spec, err)
	}
	if _, err := cfg.Spec("gone"); err == nil || !strings.Contains(err.Error(), "/nowhere/tool") {
		t.Errorf("missing command: %v", err)
	}
	if _, err := cfg.Spec("nope"); !errors.Is(err, ErrUnknownPlugin) {
		t.Errorf("unknown plugin: %v", err)
	}
}

func TestSupervisorDefaultsAndBackoff(t *testing.T) {
	c := SupervisorConfig{}.WithDefaults()
	if c.StartTimeout != config.Duration(DefaultStartTimeout) || c.MaxRestarts != DefaultMaxRestarts || c.Breaker.Failures != DefaultBreakerFailures {
		t.Errorf("defaults %+v", c)
	}
	var got []time.Duration
	for n := 1; n <= 8; n++ {
		got = append(got, c.backoff(n))
	}
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond,
		3200 * time.Millisecond, 6400 * time.Millisecond, 10 * time.Second, 10 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
	if c := (SupervisorConfig{MaxRestarts: -1, HealthInterval: -1}).WithDefaults(); c.MaxRestarts != -1 || c.HealthInterval >= 0 {
		t.Errorf("negative settings not kept: %+v", c)
	}
}

func TestCommandLine(t *testing.T) {
	spec := PluginSpec{Args: []string{"-m", "x.y", "a b", ""}}
	if got, want := spec.CommandLine(), `python -m x.y "a b" ""`; got != want {
		t.Errorf("command line %s, want %s", got, want)
	}
}

func TestErrorMessages(t *testing.T) {
	exit := &Error{Plugin: "echo", Op: "start", Kind: ErrPluginExited, Detail: "before the handshake",
		Exit: &ExitStatus{Code: 1}, Stderr: "ModuleNotFoundError: No module named 'dspex_plugins'"}
	gaveUp := &Error{Plugin: "echo", Kind: ErrGaveUp, Detail: "after 5 restarts within 1m0s; last failure", Err: exit}
	const want = "plugin echo: plugin supervisor gave up after 5 restarts within 1m0s; last failure: " +
		"start: plugin process exited before the handshake (exit code 1); stderr: ModuleNotFoundError: No module named 'dspex_plugins'"
	if got := gaveUp.Error(); got != want {
		t.Errorf("message\n got %s\nwant %s", got, want)
	}
	if !errors.Is(gaveUp, ErrGaveUp) || !errors.Is(gaveUp, ErrPluginExited) {
		t.Error("the give-up error does not wrap both kinds")
	}
	if got := (ExitStatus{Code: -1, Signal: "SIGKILL"}).String(); got != "killed by SIGKILL" {
		t.Errorf("exit status %q", got)
	}
	if got := (ExitStatus{Code: -1, Signal: "SIGKILL", Limit: "memory"}).String(); got != "killed by SIGKILL (sandbox memory limit)" {
		t.Errorf("exit status %q", got)
	}
}

// FuzzParseConfig: any input either fails with ErrConfig or yields a
// configuration that validates and resolves without panicking.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("plugins:\n  plugins:\n    s:\n      args: [-m, x]\n      capabilities: [sampler]\n  capabilities:\n    sampler: s\n"))
	f.Add([]byte("plugins:\n  supervisor:\n    start_timeout: 1s\n    breaker: {failures: 2}\n"))
	f.Add([]byte("model: x\n"))
	f.Add([]byte("plugins: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v is not ErrConfig", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		for c := range cfg.Capabilities {
			if _, err := cfg.Resolve(c, ""); err != nil {
				t.Fatalf("mapped capability %s does not resolve: %v", c, err)
			}
		}
		_ = cfg.Supervisor.WithDefaults().backoff(3)
	})
}

func TestParseConfigSandbox(t *testing.T) {
	cfg, err := ParseConfig([]byte(`plugins:
  plugins:
    interp:
      args: ["-m", "x"]
      sandbox: true
      unsafe_no_sandbox: true
      sandbox_read_only: [/opt/code]
      sandbox_limits: {cpu: 30s, memory: 268435456, processes: 32, file_size: 1048576, open_files: 64}
`))
	if err != nil {
		t.Fatal(err)
	}
	spec := cfg.Plugins["interp"]
	if !spec.Sandbox || !spec.UnsafeNoSandbox || len(spec.SandboxReadOnly) != 1 {
		t.Fatalf("spec %+v", spec)
	}
	lim := spec.SandboxLimits.limits()
	if lim.CPU != 30*time.Second || lim.Memory != 256<<20 || lim.Processes != 32 || lim.FileSize != 1<<20 || lim.OpenFiles != 64 {
		t.Errorf("limits %+v", lim)
	}
	if def := (SandboxLimits{}).limits(); def.CPU != -1 || def.Memory != 1<<30 || def.Processes != 256 || def.OpenFiles != 1024 {
		t.Errorf("default plugin limits %+v", def)
	}
	if _, err := ParseConfig([]byte("plugins:\n  plugins:\n    x:\n      sandbox_read_only: [relative/dir]\n")); !errors.Is(err, ErrConfig) {
		t.Errorf("relative sandbox_read_only: %v, want ErrConfig", err)
	}
}
