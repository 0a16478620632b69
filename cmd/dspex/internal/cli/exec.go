package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/plugins/codeact"
	"github.com/dspex/dspex/sandbox"
)

type execFlags struct {
	timeout   time.Duration
	config    string
	unsafe    bool
	maxOutput int
}

// maxSnippetBytes bounds the code dspex exec reads.
const maxSnippetBytes = 4 << 20

func newExecCommand(s *streams) *cobra.Command {
	f := &execFlags{}
	cmd := &cobra.Command{
		Use:   "exec [FILE|-]",
		Short: "Run one Python snippet in a fresh sandboxed interpreter and print the observation",
		Long: `Run one Python snippet (from FILE, or standard input when FILE is "-" or
left out) in a fresh interpreter plugin process, as CodeAct runs the code an
LM writes, and print one JSON object:

  {"stdout": "...", "stderr": "...", "error": null, "exit": 0, "duration_ms": 12.5}

"error" is null, or the exception that ended the code ({"type", "message",
"traceback"}); "exit" is 0 when the code ran through, 1 when it raised, 124
when its timeout ended it, and the process's exit code (128 + the signal for
a signal) when it or a sandbox limit killed the interpreter; "killed_by" is
present when a limit ended the code: "timeout", "output", "memory" (error
MemoryError, or MemoryLimitExceeded when the sandbox killed the process),
"processes" (ProcessLimitExceeded: a fork bomb), "cpu", "file-size", or
"crash" (InterpreterCrash: the process died, or stopped answering the
host's health checks and was killed); "value" is the repr of the last
expression's value, when it has one.

The code is untrusted: the interpreter runs in the OS sandbox (see dspex
sandbox check), and when none can be created here the command refuses, unless
--unsafe-no-sandbox lets it run without one, which is logged on standard
error. The command exits 0 when the code ran through, 1 when it
failed or was killed (the observation is printed either way), 2 on bad
usage.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "-"
			if len(args) == 1 {
				path = args[0]
			}
			return runExec(cmd.Context(), s, f, path)
		},
	}
	cmd.Flags().DurationVar(&f.timeout, "timeout", 10*time.Second, "wall-clock limit of the execution")
	cmd.Flags().StringVar(&f.config, "config", "", "YAML file with a plugins: section (default: the built-in registry)")
	cmd.Flags().BoolVar(&f.unsafe, "unsafe-no-sandbox", false, "where no OS sandbox can be created, run the code without one, with your user's rights (logged)")
	cmd.Flags().IntVar(&f.maxOutput, "max-output", 64<<10, "bytes of stdout and of stderr kept; code that writes 16 times more is stopped")
	return cmd
}

// execReport is what dspex exec prints.
type execReport struct {
	Stdout     string             `json:"stdout"`
	Stderr     string             `json:"stderr"`
	Error      *codeact.ExecError `json:"error"`
	Exit       int                `json:"exit"`
	DurationMS float64            `json:"duration_ms"`
	KilledBy   string             `json:"killed_by,omitempty"`
	Value      string             `json:"value,omitempty"`
	Truncated  bool               `json:"truncated,omitempty"`
}

func runExec(ctx context.Context, s *streams, f *execFlags, path string) error {
	if f.timeout <= 0 {
		return usageError("--timeout %s: want a positive duration", f.timeout)
	}
	if f.maxOutput <= 0 {
		return usageError("--max-output %d: want a positive number of bytes", f.maxOutput)
	}
	code, err := readSnippet(s, path)
	if err != nil {
		return err
	}
	pcfg, err := loadPluginConfig(f.config)
	if err != nil {
		return err
	}
	name, err := pcfg.Resolve(codeact.Capability, "")
	if err != nil {
		return err
	}
	spec := pcfg.Plugins[name]
	// Always in the sandbox; --unsafe-no-sandbox only lets the bridge go
	// on without one where none can be created, which it logs.
	spec.Sandbox, spec.UnsafeNoSandbox = true, f.unsafe
	pcfg.Plugins[name] = spec
	bus := event.NewBus()
	defer bus.Close()
	warnings, err := bus.Subscribe(event.SubscribeOptions{Name: "exec warnings", Kinds: []event.Kind{event.PluginLog}}, func(e event.Event) {
		// The bridge's word on the sandbox (running without one), not the
		// interpreter's exit when it is killed at the end.
		if l, ok := e.Data.(*event.PluginLogEntry); ok && l.Source == "host" && l.Level == "warn" && strings.Contains(l.Message, "sandbox") {
			fmt.Fprintf(s.err, "dspex: warning: %s: %s\n", l.Plugin, l.Message)
		}
	})
	if err != nil {
		return err
	}
	defer warnings.Close()
	// One execution: an interpreter the code killed is not replaced.
	pool, err := codeact.NewPool(codeact.Config{Plugins: &pcfg, Plugin: name, Warm: -1, Max: 1, LazyRestart: true, Timeout: f.timeout,
		Session: codeact.SessionOptions{MaxOutputBytes: f.maxOutput}, Bus: bus})
	if err != nil {
		if errors.Is(err, bridge.ErrPythonNotFound) {
			err = fmt.Errorf("%w; %s", err, interpreterHint)
		}
		return err
	}
	defer pool.Close()
	session, err := pool.NewSession(ctx, nil)
	if err != nil {
		if errors.Is(err, sandbox.ErrUnavailable) {
			return fmt.Errorf("refusing to run untrusted code: %w; --unsafe-no-sandbox runs it without isolation", err)
		}
		return err
	}
	defer session.Close()
	obs, err := session.Execute(ctx, code)
	if obs == nil {
		return err
	}
	rep := execReport{Stdout: obs.Stdout, Stderr: obs.Stderr, Error: obs.Error, DurationMS: float64(obs.Duration.Microseconds()) / 1000,
		KilledBy: obs.KilledBy, Value: obs.Value, Truncated: obs.Truncated, Exit: exitOf(obs)}
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	s.out.Write(append(b, '\n'))
	if rep.Exit != 0 {
		return &ExitError{Code: 1, Err: errors.New("the code failed"), Reported: true}
	}
	return nil
}

// exitOf is the observation's "exit": 0 ran through, 1 raised, 124 timed
// out, else how the killed or crashed process ended (128 + N for signal N).
func exitOf(obs *codeact.Observation) int {
	switch {
	case obs.Error == nil:
		return 0
	case obs.KilledBy == codeact.KilledByTimeout:
		return 124
	case obs.Exit != nil && obs.Exit.Signal != "":
		if n, ok := signalNumbers[obs.Exit.Signal]; ok {
			return 128 + n
		}
		return 137
	case obs.Exit != nil && obs.Exit.Code > 0:
		return obs.Exit.Code
	}
	return 1
}

var signalNumbers = map[string]int{"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6, "SIGBUS": 7,
	"SIGFPE": 8, "SIGKILL": 9, "SIGSEGV": 11, "SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15, "SIGXCPU": 24, "SIGXFSZ": 25, "SIGSYS": 31}

func readSnippet(s *streams, path string) (string, error) {
	var r io.Reader = s.in
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("read the snippet: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxSnippetBytes+1))
	if err != nil {
		return "", fmt.Errorf("read the snippet: %w", err)
	}
	if len(b) > maxSnippetBytes {
		return "", fmt.Errorf("the snippet is more than %d bytes", maxSnippetBytes)
	}
	return string(b), nil
}
