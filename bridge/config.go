package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dspex/dspex/core/config"
	"github.com/dspex/dspex/sandbox"
)

// Handshake values shared with every DSPEx plugin (the Python SDK in
// python/dspex_plugins uses the same).
const (
	MagicCookieKey   = "DSPEX_PLUGIN_MAGIC_COOKIE"
	MagicCookieValue = "7c1a3f9e-dspex-plugin-v1"
	// ProtocolVersion is the application protocol version negotiated in
	// the handshake: the contracts of bridge/proto/dspex/plugin/v1.
	ProtocolVersion = 1
	// Protocol is what PluginInfo.Info reports as its protocol.
	Protocol = "dspex.plugin.v1"
)

// PythonEnv names the environment variable that overrides the Python
// interpreter when Config.Python is empty.
const PythonEnv = "DSPEX_PYTHON"

// venvPython is where `make setup` puts the project's interpreter,
// relative to the repository root.
const venvPython = ".venv/bin/python"

// installedVenvPython is where the default interpreter is looked for,
// relative to the directory of the running executable: a dspex built into
// a checkout's bin/ (make build) finds the checkout's .venv beside it.
const installedVenvPython = "../" + venvPython

// Config is the plugin registry: which interpreter runs Python plugins,
// how to start each plugin, which plugin serves each capability, and how
// plugins are supervised. It decodes from YAML (see LoadConfig); the zero
// value plus DefaultConfig's registry is what a fresh checkout uses.
type Config struct {
	// Python is the interpreter that runs Python plugins. Default:
	// $DSPEX_PYTHON, else ../.venv/bin/python relative to the directory of
	// the running executable (see PythonInterpreter); never anything found
	// from the working directory. LoadConfig resolves a relative path
	// against the configuration file's directory.
	Python string `yaml:"python,omitempty" json:"python,omitempty"`
	// Plugins maps a plugin's name to how it is started.
	Plugins map[string]PluginSpec `yaml:"plugins,omitempty" json:"plugins,omitempty"`
	// Capabilities maps a capability ("sampler", "finetune",
	// "interpreter", "echo") to the plugin that serves it. A capability
	// not listed goes to the one plugin whose spec declares it.
	Capabilities map[string]string `yaml:"capabilities,omitempty" json:"capabilities,omitempty"`
	// Supervisor sets restarts, health checks and timeouts for every plugin.
	Supervisor SupervisorConfig `yaml:"supervisor,omitempty" json:"supervisor,omitempty"`
}

// PluginSpec says how to start one plugin process.
type PluginSpec struct {
	// Command is the executable. "" or "python" means Config.Python; a
	// name without a slash is looked up in $PATH.
	Command string `yaml:"command,omitempty" json:"command,omitempty"`
	// Args are the command's arguments (no shell: each is one argument).
	Args []string `yaml:"args,omitempty" json:"args,omitempty"`
	// Env is added to the host's environment for the process.
	Env map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	// Sandbox runs the plugin inside the OS sandbox (package sandbox): no
	// network, no view of the host's processes or files, uid 65534. It
	// sees, read-only, only its interpreter's runtime (a virtualenv and
	// what its sys.path names, which holds the plugin's code), or for a
	// non-Python command the executable itself; and, writable, only the
	// directory of its gRPC socket, bound at the same path. Its
	// environment is the spec's Env and go-plugin's handshake variables,
	// nothing of the host's. When no sandbox can be created here, starting
	// the plugin fails (sandbox.ErrUnavailable) unless UnsafeNoSandbox is
	// set.
	Sandbox bool `yaml:"sandbox,omitempty" json:"sandbox,omitempty"`
	// UnsafeNoSandbox lets a plugin marked Sandbox run WITHOUT isolation
	// when no sandbox can be created on this machine; each such start is
	// logged as a warning. Default false: refuse to start.
	UnsafeNoSandbox bool `yaml:"unsafe_no_sandbox,omitempty" json:"unsafe_no_sandbox,omitempty"`
	// SandboxReadOnly are more host paths a sandboxed plugin may read (at
	// the same path): its code, when that is not on its interpreter's
	// sys.path (a script run by path). Relative paths are not allowed.
	SandboxReadOnly []string `yaml:"sandbox_read_only,omitempty" json:"sandbox_read_only,omitempty"`
	// SandboxLimits caps a sandboxed plugin's resources; zero fields take
	// the defaults documented on SandboxLimits.
	SandboxLimits SandboxLimits `yaml:"sandbox_limits,omitempty" json:"sandbox_limits,omitempty"`
	// Capabilities are the capabilities the plugin serves.
	Capabilities []string `yaml:"capabilities,omitempty" json:"capabilities,omitempty"`
}

// SandboxLimits are the resource limits of a sandboxed plugin process as
// a whole (see sandbox.Limits). A plugin lives long and serves many calls,
// so its defaults differ from a one-shot sandbox's: no CPU-time limit
// (per-call limits are the plugin's business), 1 GiB of memory, 256
// processes and threads (gRPC's thread pools count), 16 MiB per file,
// 1024 open files. Negative means no limit.
type SandboxLimits struct {
	CPU       config.Duration `yaml:"cpu,omitempty" json:"cpu,omitempty"`
	Memory    int64           `yaml:"memory,omitempty" json:"memory,omitempty"`
	Processes int             `yaml:"processes,omitempty" json:"processes,omitempty"`
	FileSize  int64           `yaml:"file_size,omitempty" json:"file_size,omitempty"`
	OpenFiles int             `yaml:"open_files,omitempty" json:"open_files,omitempty"`
}

// limits returns the sandbox limits with the plugin defaults filled in.
func (l SandboxLimits) limits() sandbox.Limits {
	out := sandbox.Limits{CPU: time.Duration(l.CPU), Memory: l.Memory, Processes: l.Processes,
		FileSize: l.FileSize, OpenFiles: l.OpenFiles}
	if out.CPU == 0 {
		out.CPU = -1
	}
	if out.Memory == 0 {
		out.Memory = 1 << 30
	}
	if out.Processes == 0 {
		out.Processes = 256
	}
	if out.OpenFiles == 0 {
		out.OpenFiles = 1024
	}
	return out
}

// SupervisorConfig sets how a plugin is supervised. The zero value uses
// every default; durations decode from strings such as "500ms" or "1m".
type SupervisorConfig struct {
	// StartTimeout bounds a start: from launching the process to its first
	// passing health check, handshake included. A plugin that never prints
	// its handshake is killed when it passes. Default 20s.
	StartTimeout config.Duration `yaml:"start_timeout,omitempty" json:"start_timeout,omitempty"`
	// HealthInterval is the time between health checks (grpc.health.v1
	// Check of service "plugin"). Default 5s; negative disables them.
	HealthInterval config.Duration `yaml:"health_interval,omitempty" json:"health_interval,omitempty"`
	// HealthTimeout is each health check's deadline. Default 2s.
	HealthTimeout config.Duration `yaml:"health_timeout,omitempty" json:"health_timeout,omitempty"`
	// HealthFailures is how many failed checks in a row get the process
	// killed and restarted. Default 3.
	HealthFailures int `yaml:"health_failures,omitempty" json:"health_failures,omitempty"`
	// BackoffInitial is the wait before the first restart within the
	// restart window; each further restart within it waits
	// BackoffMultiplier times longer, up to BackoffMax. Defaults 200ms, 2
	// and 10s.
	BackoffInitial    config.Duration `yaml:"backoff_initial,omitempty" json:"backoff_initial,omitempty"`
	BackoffMax        config.Duration `yaml:"backoff_max,omitempty" json:"backoff_max,omitempty"`
	BackoffMultiplier float64         `yaml:"backoff_multiplier,omitempty" json:"backoff_multiplier,omitempty"`
	// MaxRestarts and RestartWindow are the restart intensity and period:
	// when a restart is due and MaxRestarts restarts already happened
	// within the last RestartWindow, the supervisor gives up (ErrGaveUp).
	// Defaults 5 and 1m; a negative MaxRestarts never restarts.
	MaxRestarts   int             `yaml:"max_restarts,omitempty" json:"max_restarts,omitempty"`
	RestartWindow config.Duration `yaml:"restart_window,omitempty" json:"restart_window,omitempty"`
	// ShutdownTimeout is how long Shutdown waits for a process to exit
	// after asking it to (GRPCController.Shutdown) before killing it.
	// Default 5s.
	ShutdownTimeout config.Duration `yaml:"shutdown_timeout,omitempty" json:"shutdown_timeout,omitempty"`
	// Eager starts a plugin as soon as it is created rather than on its
	// first call. Default false (lazy).
	Eager bool `yaml:"eager,omitempty" json:"eager,omitempty"`
	// Breaker sets the plugin's circuit breaker.
	Breaker BreakerConfig `yaml:"breaker,omitempty" json:"breaker,omitempty"`
}

// BreakerConfig sets when a plugin's circuit breaker opens. Calls that
// fail because the plugin is unreachable or its process died count as
// failures; calls the plugin answered, even with an error, count as
// successes; calls ended by the caller's context count as neither. The
// breaker is reset to closed whenever a new process starts.
type BreakerConfig struct {
	// Failures is how many such failures in a row open the breaker.
	// Default 5.
	Failures int `yaml:"failures,omitempty" json:"failures,omitempty"`
	// OpenTimeout is how long the open breaker fails calls fast before
	// letting a probe through. Default 5s.
	OpenTimeout config.Duration `yaml:"open_timeout,omitempty" json:"open_timeout,omitempty"`
	// HalfOpenRequests is how many probes may run while half-open.
	// Default 1.
	HalfOpenRequests int `yaml:"half_open_requests,omitempty" json:"half_open_requests,omitempty"`
}

// Defaults for SupervisorConfig.
const (
	DefaultStartTimeout      = 20 * time.Second
	DefaultHealthInterval    = 5 * time.Second
	DefaultHealthTimeout     = 2 * time.Second
	DefaultHealthFailures    = 3
	DefaultBackoffInitial    = 200 * time.Millisecond
	DefaultBackoffMax        = 10 * time.Second
	DefaultBackoffMultiplier = 2.0
	DefaultMaxRestarts       = 5
	DefaultRestartWindow     = time.Minute
	DefaultShutdownTimeout   = 5 * time.Second
	DefaultBreakerFailures   = 5
	DefaultBreakerOpen       = 5 * time.Second
)

// WithDefaults returns c with every unset field given its default.
func (c SupervisorConfig) WithDefaults() SupervisorConfig {
	def := func(d *config.Duration, v time.Duration) {
		if *d == 0 {
			*d = config.Duration(v)
		}
	}
	def(&c.StartTimeout, DefaultStartTimeout)
	def(&c.HealthInterval, DefaultHealthInterval)
	def(&c.HealthTimeout, DefaultHealthTimeout)
	def(&c.BackoffInitial, DefaultBackoffInitial)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.RestartWindow, DefaultRestartWindow)
	def(&c.ShutdownTimeout, DefaultShutdownTimeout)
	def(&c.Breaker.OpenTimeout, DefaultBreakerOpen)
	if c.HealthFailures <= 0 {
		c.HealthFailures = DefaultHealthFailures
	}
	if c.BackoffMultiplier < 1 {
		c.BackoffMultiplier = DefaultBackoffMultiplier
	}
	if c.MaxRestarts == 0 {
		c.MaxRestarts = DefaultMaxRestarts
	}
	if c.Breaker.Failures <= 0 {
		c.Breaker.Failures = DefaultBreakerFailures
	}
	if c.Breaker.HalfOpenRequests <= 0 {
		c.Breaker.HalfOpenRequests = 1
	}
	return c
}

// backoff is the wait before the nth restart within the window (n >= 1).
func (c SupervisorConfig) backoff(n int) time.Duration {
	d := float64(c.BackoffInitial)
	for i := 1; i < n && d < float64(c.BackoffMax); i++ {
		d *= c.BackoffMultiplier
	}
	return min(time.Duration(d), time.Duration(c.BackoffMax))
}

// Names of the built-in plugins.
const (
	// EchoPlugin is the echo plugin, the conformance reference.
	EchoPlugin = "echo"
	// SamplerPlugin is Optuna's sampler for MIPROv2 (plugins/sampler is
	// its Go client). It needs Optuna beside dspex_plugins: pip install
	// 'dspex_plugins[sampler]'.
	SamplerPlugin = "sampler"
	// InterpreterPlugin is CodeAct's Python interpreter (plugins/codeact is
	// its Go client): `<python> -m dspex_plugins.interpreter`, serving
	// "interpreter". It runs untrusted code, so it runs in the OS sandbox
	// (Sandbox: true); where none can be created it does not start unless
	// the configuration sets unsafe_no_sandbox.
	InterpreterPlugin = "interpreter"
	// FineTunePlugin is BootstrapFinetune's fine-tuning plugin
	// (plugins/finetune is its Go client): `<python> -m
	// dspex_plugins.finetune`, serving "finetune" over an OpenAI-compatible
	// provider (pip install 'dspex_plugins[finetune]') or a local
	// transformers trainer ('dspex_plugins[finetune-local]'). It is not
	// sandboxed: it needs the network to reach its provider.
	FineTunePlugin = "finetune"
)

// DefaultConfig returns the built-in registry: the echo plugin, started as
// `<python> -m dspex_plugins.echo`, serving the "echo" capability, the
// sampler plugin, `<python> -m dspex_plugins.sampler`, serving "sampler",
// the interpreter plugin, `<python> -m dspex_plugins.interpreter`,
// serving "interpreter", sandboxed, and the fine-tuning plugin, `<python>
// -m dspex_plugins.finetune`, serving "finetune". Each call returns a
// fresh copy.
func DefaultConfig() Config {
	return Config{
		Plugins: map[string]PluginSpec{
			EchoPlugin:        {Command: "python", Args: []string{"-m", "dspex_plugins.echo"}, Capabilities: []string{"echo"}},
			SamplerPlugin:     {Command: "python", Args: []string{"-m", "dspex_plugins.sampler"}, Capabilities: []string{"sampler"}},
			InterpreterPlugin: {Command: "python", Args: []string{"-m", "dspex_plugins.interpreter"}, Capabilities: []string{"interpreter"}, Sandbox: true},
			FineTunePlugin:    {Command: "python", Args: []string{"-m", "dspex_plugins.finetune"}, Capabilities: []string{"finetune"}},
		},
		Capabilities: map[string]string{},
	}
}

// ErrConfig is the Kind of every configuration error.
var ErrConfig = errors.New("bridge: bad plugin configuration")

// LoadConfig reads the `plugins:` section of a YAML file (a program file
// may hold one among its other sections) over DefaultConfig: plugins and
// capabilities named in the file replace the built-in ones of the same
// name, and supervisor settings given replace the defaults. Unknown keys
// inside the section are errors. A file without the section yields
// DefaultConfig.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read plugin configuration: %w", err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	// A relative interpreter path means the one beside the file, wherever
	// dspex runs from.
	if cfg.Python != "" && strings.ContainsRune(cfg.Python, filepath.Separator) && !filepath.IsAbs(cfg.Python) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return Config{}, fmt.Errorf("%s: resolve plugins.python %s: %w", path, cfg.Python, err)
		}
		cfg.Python = filepath.Join(filepath.Dir(abs), cfg.Python)
	}
	return cfg, nil
}

// ParseConfig is LoadConfig for YAML already read.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	section, ok := top["plugins"]
	if !ok {
		return cfg, nil
	}
	// Re-encoding the section lets the strict decoder catch misspelt keys
	// without rejecting the file's other sections.
	raw, err := yaml.Marshal(&section)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: plugins: %v", ErrConfig, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate checks that every plugin has a name and every capability
// mapping names a configured plugin.
func (c Config) Validate() error {
	for name, spec := range c.Plugins {
		if strings.TrimSpace(name) == "" {
			return fmt.Errorf("%w: a plugin has an empty name", ErrConfig)
		}
		for _, a := range spec.Capabilities {
			if a == "" {
				return fmt.Errorf("%w: plugin %s lists an empty capability", ErrConfig, name)
			}
		}
		for _, path := range spec.SandboxReadOnly {
			if !filepath.IsAbs(path) {
				return fmt.Errorf("%w: plugin %s: sandbox_read_only path %q is not absolute", ErrConfig, name, path)
			}
		}
	}
	for capability, name := range c.Capabilities {
		if _, ok := c.Plugins[name]; !ok {
			return fmt.Errorf("%w: capability %s maps to plugin %q, which is not configured (configured: %s)",
				ErrConfig, capability, name, strings.Join(c.Names(), ", "))
		}
	}
	return nil
}

// Names returns the configured plugins' names, sorted.
func (c Config) Names() []string {
	return slices.Sorted(maps.Keys(c.Plugins))
}

// ErrUnknownPlugin is returned for a plugin name that is not configured.
var ErrUnknownPlugin = errors.New("bridge: unknown plugin")

// ErrNoCapability is returned when no plugin serves a capability.
var ErrNoCapability = errors.New("bridge: no plugin for capability")

// Resolve names the plugin that serves capability. A non-empty override
// (an optimizer's own setting) wins over the configuration; it must name
// a configured plugin, and when that plugin declares capabilities,
// capability must be among them. Otherwise Capabilities decides, else the one plugin whose spec declares
// the capability; two such plugins are an error asking for a mapping.
func (c Config) Resolve(capability, override string) (string, error) {
	if override != "" {
		spec, ok := c.Plugins[override]
		if !ok {
			return "", fmt.Errorf("%w: %q (for capability %s; configured: %s)", ErrUnknownPlugin, override, capability, strings.Join(c.Names(), ", "))
		}
		if len(spec.Capabilities) > 0 && !slices.Contains(spec.Capabilities, capability) {
			return "", fmt.Errorf("%w: plugin %s serves %s, not %s", ErrNoCapability, override, strings.Join(spec.Capabilities, ", "), capability)
		}
		return override, nil
	}
	if name, ok := c.Capabilities[capability]; ok {
		if _, ok := c.Plugins[name]; !ok {
			return "", fmt.Errorf("%w: capability %s maps to %q", ErrUnknownPlugin, capability, name)
		}
		return name, nil
	}
	var found []string
	for _, name := range c.Names() {
		if slices.Contains(c.Plugins[name].Capabilities, capability) {
			found = append(found, name)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%w %s: no configured plugin declares it", ErrNoCapability, capability)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%w %s: plugins %s all declare it; choose one under plugins.capabilities",
		ErrNoCapability, capability, strings.Join(found, ", "))
}

// ErrPythonNotFound is returned when no Python interpreter can be found
// for a Python plugin.
var ErrPythonNotFound = errors.New("bridge: python interpreter not found")

// pythonHint is what to do about a missing interpreter.
const pythonHint = "set " + PythonEnv + " (or plugins.python) to a Python that has dspex_plugins installed (pip install it from the repository), or run `make setup` in a checkout and use its bin/dspex"

// PythonInterpreter returns the interpreter for Python plugins: c.Python,
// else $DSPEX_PYTHON, else the virtualenv tied to the installation,
// InstalledPython. A configured name without a slash is looked up in
// $PATH. Nothing is ever looked for from the working directory: a
// .venv/bin/python planted in a directory someone runs dspex from must
// never run. The error says what to do when none is found.
func (c Config) PythonInterpreter() (string, error) {
	configured := c.Python
	if configured == "" {
		configured = os.Getenv(PythonEnv)
	}
	if configured != "" {
		path, err := findExecutable(configured)
		if err != nil {
			return "", pythonNotFound(configured)
		}
		return path, nil
	}
	path, err := InstalledPython()
	if err != nil {
		return "", err
	}
	return path, nil
}

// InstalledPython returns the virtualenv interpreter that belongs to the
// running executable: ../.venv/bin/python from the directory the
// executable (symlinks resolved) is in. That is where `make setup` and
// `make build` put them in a checkout (.venv and bin/dspex). The error,
// ErrPythonNotFound, names the path looked at and what to do.
func InstalledPython() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", &kindError{kind: ErrPythonNotFound, msg: "python interpreter not found: cannot locate the running executable (" + err.Error() + "): " + pythonHint}
	}
	return pythonBeside(exe)
}

// pythonBeside is InstalledPython for the executable exe.
func pythonBeside(exe string) (string, error) {
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	candidate := filepath.Join(filepath.Dir(exe), installedVenvPython)
	if !isExecutable(candidate) {
		return "", &kindError{kind: ErrPythonNotFound, msg: "python interpreter not found: no " + candidate + " beside " + exe + ", and " + PythonEnv + " and plugins.python are not set: " + pythonHint}
	}
	return candidate, nil
}

// pythonNotFound says which interpreter is missing and what to do.
func pythonNotFound(path string) error {
	return &kindError{kind: ErrPythonNotFound, msg: "python interpreter " + path + " not found: " + pythonHint}
}

// kindError is an error with its own message that matches a sentinel.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// RepoRoot returns the nearest directory, from dir upwards, holding
// pyproject.toml, go.mod or .git.
func RepoRoot(dir string) (string, bool) {
	for {
		if isRepoRoot(dir) {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

func isRepoRoot(dir string) bool {
	for _, marker := range []string{"pyproject.toml", "go.mod", ".git"} {
		if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
			return true
		}
	}
	return false
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// findExecutable resolves a command: a path is checked as is, a bare name
// is looked up in $PATH.
func findExecutable(command string) (string, error) {
	if strings.ContainsRune(command, filepath.Separator) {
		if !isExecutable(command) {
			return "", fmt.Errorf("%s is not an executable file", command)
		}
		return command, nil
	}
	return exec.LookPath(command)
}

// isPython reports whether a spec's command means the configured
// interpreter.
func isPython(command string) bool { return command == "" || command == "python" }

// Spec returns the named plugin's spec with its command resolved: the
// Python interpreter for "python" or "", else the executable found for
// Command. It fails with ErrUnknownPlugin for a name not configured and
// ErrPythonNotFound (with what to run) when the interpreter is missing.
func (c Config) Spec(name string) (PluginSpec, error) {
	spec, ok := c.Plugins[name]
	if !ok {
		return PluginSpec{}, fmt.Errorf("%w %q (configured: %s)", ErrUnknownPlugin, name, strings.Join(c.Names(), ", "))
	}
	spec.Args = slices.Clone(spec.Args)
	spec.SandboxReadOnly = slices.Clone(spec.SandboxReadOnly)
	spec.Capabilities = slices.Clone(spec.Capabilities)
	spec.Env = maps.Clone(spec.Env)
	if isPython(spec.Command) {
		python, err := c.PythonInterpreter()
		if err != nil {
			return PluginSpec{}, err
		}
		spec.Command = python
		if spec.Env == nil {
			spec.Env = map[string]string{}
		}
		if _, set := spec.Env["PYTHONUNBUFFERED"]; !set {
			// Log lines reach the host as they are written, not when a
			// buffer fills or the process dies.
			spec.Env["PYTHONUNBUFFERED"] = "1"
		}
		return spec, nil
	}
	path, err := findExecutable(spec.Command)
	if err != nil {
		return PluginSpec{}, fmt.Errorf("plugin %s: command %s not found: %w", name, spec.Command, err)
	}
	spec.Command = path
	return spec, nil
}

// CommandLine renders a spec's command and arguments for display.
func (s PluginSpec) CommandLine() string {
	parts := make([]string, 0, 1+len(s.Args))
	cmd := s.Command
	if cmd == "" {
		cmd = "python"
	}
	parts = append(parts, cmd)
	for _, a := range s.Args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$") {
			a = fmt.Sprintf("%q", a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// env renders the spec's Env as KEY=VALUE entries, sorted.
func (s PluginSpec) env() []string {
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+s.Env[k])
	}
	return out
}
