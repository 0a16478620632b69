package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/bridge"
	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
)

// Bounds on `dspex plugins check`.
const (
	checkCallTimeout = 10 * time.Second
	checkStopTimeout = 15 * time.Second
	checkRoundTrips  = 5
)

func newPluginsCommand(s *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List and check the plugins behind MIPROv2's sampler, fine-tuning and CodeAct",
		Long: `Plugins are the Python processes that serve what only Python does well:
Optuna's sampler for MIPROv2, fine-tuning, and CodeAct's interpreter. dspex
starts them on demand over gRPC and restarts them when they fail (see
docs/plugins.md).

Without --config the built-in registry is used: the echo plugin, run as
"<python> -m dspex_plugins.echo", the sampler plugin (Optuna, for dspex
optimize --optimizer mipro), "<python> -m dspex_plugins.sampler", CodeAct's
interpreter, "<python> -m dspex_plugins.interpreter" (sandboxed), and the
fine-tuning plugin, "<python> -m dspex_plugins.finetune". <python>
is the --config file's
plugins.python, else $DSPEX_PYTHON, else ../.venv/bin/python beside the
dspex executable (a checkout's bin/dspex and the .venv make setup creates);
never one found from the working directory. After go install, pip install
the repository's Python package into a virtualenv and set DSPEX_PYTHON to
its interpreter (docs/plugins.md). --config reads the plugins: section of a
YAML file over the built-in registry.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newPluginsListCommand(s), newPluginsCheckCommand(s))
	return cmd
}

// pluginReport is one line of `dspex plugins list`.
type pluginReport struct {
	Name         string   `json:"name"`
	Capabilities []string `json:"capabilities"`
	Command      string   `json:"command"`
	Args         []string `json:"args,omitempty"`
	// Sandbox: the plugin runs inside the OS sandbox (docs/sandbox.md).
	Sandbox bool `json:"sandbox,omitempty"`
	// Status is "configured": the CLI runs no plugin while listing.
	Status string `json:"status"`
}

func newPluginsListCommand(s *streams) *cobra.Command {
	var (
		config string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list [--config FILE] [--json]",
		Short: "List the configured plugins and the capabilities they serve",
		Long: `list prints each configured plugin's name, the capabilities it serves, its
command and its status. Plugins run only inside a dspex process that uses
them, so here every plugin's status is "configured"; "dspex plugins check"
starts one and reports whether it works. A command of "python" means the
configured Python interpreter, shown after the table.`,
		Example: `  dspex plugins list
  dspex plugins list --config program.yaml --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPluginsList(s, config, asJSON)
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "YAML file with a plugins: section (default: the built-in registry)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func loadPluginConfig(path string) (bridge.Config, error) {
	if path == "" {
		return bridge.DefaultConfig(), nil
	}
	return bridge.LoadConfig(path)
}

// servedCapabilities lists what name serves: its spec's capabilities and
// those mapped to it.
func servedCapabilities(cfg bridge.Config, name string) []string {
	caps := slices.Clone(cfg.Plugins[name].Capabilities)
	for c, n := range cfg.Capabilities {
		if n == name && !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
	}
	slices.Sort(caps)
	return caps
}

func runPluginsList(s *streams, path string, asJSON bool) error {
	cfg, err := loadPluginConfig(path)
	if err != nil {
		return err
	}
	reports := make([]pluginReport, 0, len(cfg.Plugins))
	for _, name := range cfg.Names() {
		spec := cfg.Plugins[name]
		command := spec.Command
		if command == "" {
			command = "python"
		}
		reports = append(reports, pluginReport{
			Name: name, Capabilities: servedCapabilities(cfg, name), Command: command,
			Args: spec.Args, Sandbox: spec.Sandbox, Status: "configured",
		})
	}
	if asJSON {
		return writeJSON(s, reports)
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCAPABILITIES\tCOMMAND\tSTATUS")
	for _, r := range reports {
		capabilities := strings.Join(r.Capabilities, ",")
		if capabilities == "" {
			capabilities = "-"
		}
		status := r.Status
		if r.Sandbox {
			status += " (sandbox requested, not enforced yet)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, capabilities, cfg.Plugins[r.Name].CommandLine(), status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	python, err := cfg.PythonInterpreter()
	if err != nil {
		python = err.Error()
	}
	_, err = fmt.Fprintf(s.out, "\npython: %s\n", python)
	return err
}

func newPluginsCheckCommand(s *streams) *cobra.Command {
	var config string
	cmd := &cobra.Command{
		Use:   "check [NAME] [--config FILE]",
		Short: "Start a plugin, check its health, version and round-trip time, and stop it",
		Long: `check starts the named plugin (every configured plugin without NAME) and
runs its checks in order, printing a line for each:

  start   the process starts and completes the handshake (its pid, the time)
  health  grpc.health.v1 reports it serving
  info    its name, version, protocol (must be dspex.plugin.v1) and
          capabilities (must include those configured)
  echo    five Echo round trips (five Info calls for a plugin without
          the echo capability): minimum, median and maximum
  stop    it exits when asked to

A failed check ends that plugin's checks (it is stopped) and makes the
command exit with status 1, after the other plugins' checks.`,
		Example: `  dspex plugins check
  dspex plugins check echo --config program.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPluginsCheck(cmd.Context(), s, config, args)
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "YAML file with a plugins: section (default: the built-in registry)")
	return cmd
}

func runPluginsCheck(ctx context.Context, s *streams, path string, args []string) error {
	cfg, err := loadPluginConfig(path)
	if err != nil {
		return err
	}
	names := cfg.Names()
	if len(args) == 1 {
		if _, ok := cfg.Plugins[args[0]]; !ok {
			return usageError("unknown plugin %q (configured: %s)", args[0], strings.Join(names, ", "))
		}
		names = args
	}
	if len(names) == 0 {
		_, err := fmt.Fprintln(s.out, "no plugins configured")
		return err
	}
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	var failed []string
	var firstErr error
	for _, name := range names {
		if err := checkPlugin(ctx, s, cfg, name, width); err != nil {
			failed = append(failed, name)
			if firstErr == nil {
				firstErr = err
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	switch {
	case len(failed) == 0:
		return nil
	case len(names) == 1:
		return &ExitError{Code: 1, Err: firstErr}
	}
	return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d plugins failed their checks (%s); first: %w",
		len(failed), len(names), strings.Join(failed, ", "), firstErr)}
}

// checkReport prints check lines for one plugin.
type checkReport struct {
	s     *streams
	name  string
	width int
}

func (r checkReport) ok(check, format string, args ...any) {
	fmt.Fprintf(r.s.out, "%-*s  %-6s  ok    %s\n", r.width, r.name, check, fmt.Sprintf(format, args...))
}

// fail prints the failed check and returns the error for the exit status.
func (r checkReport) fail(check string, err error) error {
	fmt.Fprintf(r.s.out, "%-*s  %-6s  FAIL  %v\n", r.width, r.name, check, err)
	var be *bridge.Error
	if errors.As(err, &be) && be.Plugin == r.name {
		return err // it names the plugin and what failed
	}
	return fmt.Errorf("plugin %s: %s check failed: %w", r.name, check, err)
}

// startFailure returns the failure behind a plugin that gave up at once
// (the check disables restarts), rather than the give-up around it.
func startFailure(err error) error {
	var be *bridge.Error
	if errors.Is(err, bridge.ErrGaveUp) && errors.As(err, &be) && be.Err != nil {
		return be.Err
	}
	return err
}

func checkPlugin(ctx context.Context, s *streams, cfg bridge.Config, name string, width int) (err error) {
	r := checkReport{s: s, name: name, width: width}
	spec, err := cfg.Spec(name)
	if err != nil {
		return r.fail("start", err)
	}
	sup := cfg.Supervisor
	sup.MaxRestarts = -1    // report the failure rather than retry it
	sup.HealthInterval = -1 // the check does its own
	sup.Eager = false
	p, err := bridge.NewPlugin(name, spec, sup, bridge.Options{})
	if err != nil {
		return r.fail("start", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			sctx, cancel := context.WithTimeout(ctx, checkStopTimeout)
			defer cancel()
			_ = p.Shutdown(sctx)
		}
	}()

	start := time.Now()
	if err := p.Start(ctx); err != nil {
		return r.fail("start", startFailure(err))
	}
	r.ok("start", "pid %d in %s", p.Pid(), roundDuration(time.Since(start)))

	cctx, cancel := context.WithTimeout(ctx, checkCallTimeout)
	defer cancel()
	start = time.Now()
	if err := p.Check(cctx); err != nil {
		return r.fail("health", err)
	}
	r.ok("health", "serving (%s)", roundDuration(time.Since(start)))

	info, err := p.Info(cctx)
	if err != nil {
		return r.fail("info", err)
	}
	if info.GetProtocol() != bridge.Protocol {
		return r.fail("info", fmt.Errorf("protocol %q, want %q", info.GetProtocol(), bridge.Protocol))
	}
	for _, c := range spec.Capabilities {
		if !slices.Contains(info.GetCapabilities(), c) {
			return r.fail("info", fmt.Errorf("configured for capability %s, but serves only %s",
				c, strings.Join(info.GetCapabilities(), ", ")))
		}
	}
	r.ok("info", "%s %s, protocol %s, capabilities %s",
		info.GetName(), info.GetVersion(), info.GetProtocol(), strings.Join(info.GetCapabilities(), ", "))

	check, call := "info", func() error { _, err := p.Info(cctx); return err }
	if slices.Contains(info.GetCapabilities(), "echo") {
		req := &pluginv1.EchoRequest{Message: "dspex plugins check", Payload: make([]byte, 64)}
		check, call = "echo", func() error { _, err := p.Echo().Echo(cctx, req); return err }
	}
	rtts := make([]time.Duration, 0, checkRoundTrips)
	for range checkRoundTrips {
		start := time.Now()
		if err := call(); err != nil {
			return r.fail(check, err)
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	r.ok(check, "%d round trips: min %s, median %s, max %s",
		len(rtts), roundDuration(rtts[0]), roundDuration(rtts[len(rtts)/2]), roundDuration(rtts[len(rtts)-1]))

	stopped = true
	sctx, scancel := context.WithTimeout(ctx, checkStopTimeout)
	defer scancel()
	start = time.Now()
	if err := p.Shutdown(sctx); err != nil {
		return r.fail("stop", err)
	}
	r.ok("stop", "exited when asked, in %s", roundDuration(time.Since(start)))
	return nil
}

// roundDuration keeps three significant digits or so: 412ms, 1.52ms, 180µs.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
