package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/sandbox"
)

// sandboxCheckTimeout bounds `dspex sandbox check`.
const sandboxCheckTimeout = time.Minute

func newSandboxCommand(s *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Check the OS sandbox that runs untrusted Python (CodeAct, sandboxed plugins)",
		Long: `The sandbox runs untrusted code — the Python an LM writes for CodeAct, and
plugins marked sandbox: true — in bubblewrap: fresh user, pid, network, ipc
and uts namespaces, uid 65534, a read-only view of only the Python runtime,
a seccomp filter, a cgroup capping processes and memory, rlimits, a
wall-clock timeout and capped output (see docs/sandbox.md). Where none can
be created, dspex refuses to run untrusted code unless told
--unsafe-no-sandbox (or unsafe_no_sandbox: true for a plugin).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newSandboxCheckCommand(s))
	return cmd
}

func newSandboxCheckCommand(s *streams) *cobra.Command {
	var (
		python string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "check [--python PATH] [--json]",
		Short: "Say whether a working sandbox can be created here, and which protections are active",
		Long: `check runs a trivial Python probe in a fresh sandbox and reports what it
found: bubblewrap's version, the interpreter, the uid inside, the
namespaces, whether the seccomp filter, a cgroup (v1 or v2) and the
rlimits are in force, and the cold start time. Without a cgroup (cgroups
not writable) the sandbox runs as host uid 65534 when dspex is root, so
that the process limit still binds; the report says so. It exits 1, with
the reason, when no working sandbox can be created.`,
		Example: `  dspex sandbox check
  dspex sandbox check --python .venv/bin/python --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSandboxCheck(cmd.Context(), s, python, asJSON)
		},
	}
	cmd.Flags().StringVar(&python, "python", "", "the interpreter whose runtime the sandbox shows (default: python3 in $PATH)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	return cmd
}

func runSandboxCheck(ctx context.Context, s *streams, python string, asJSON bool) error {
	ctx, cancel := context.WithTimeout(ctx, sandboxCheckTimeout)
	defer cancel()
	rep := sandbox.Check(ctx, sandbox.Config{Python: python})
	if asJSON {
		if err := writeJSON(s, rep); err != nil {
			return err
		}
	} else if err := printSandboxReport(s, rep); err != nil {
		return err
	}
	if !rep.Available {
		return &ExitError{Code: 1, Err: errors.New("no working sandbox: " + rep.Reason), Reported: asJSON}
	}
	return nil
}

func printSandboxReport(s *streams, rep sandbox.Report) error {
	w := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	line := func(k, format string, args ...any) { fmt.Fprintf(w, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	if rep.Available {
		line("sandbox", "available")
	} else {
		line("sandbox", "UNAVAILABLE: %s", rep.Reason)
	}
	if rep.Bwrap != "" {
		line("bwrap", "%s (%s)", rep.Bwrap, rep.BwrapVersion)
	} else {
		line("bwrap", "not found in $PATH")
	}
	if rep.Python != "" {
		line("python", "%s", rep.Python)
	}
	p := rep.Protections
	if rep.Available {
		line("uid", "%d inside, %d on the host", rep.UID, p.HostUID)
		line("network", "none (loopback only)")
	}
	if len(p.Namespaces) > 0 {
		line("namespaces", "%s", strings.Join(p.Namespaces, ", "))
	}
	line("seccomp", "%s", onOff(p.Seccomp))
	if p.Cgroup != "" {
		line("cgroup", "%s (pids.max, memory)", p.Cgroup)
	} else {
		line("cgroup", "off")
	}
	line("rlimits", "%s (cpu, address space, processes, file size, open files, no core)", onOff(p.Rlimits))
	for _, n := range p.Notes {
		line("note", "%s", n)
	}
	if rep.Duration > 0 {
		line("cold start", "%s", rep.Duration.Round(time.Millisecond))
	}
	return w.Flush()
}
