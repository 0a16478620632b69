// Package cli is the dspex command tree. Each command is built by a
// constructor returning a *cobra.Command whose RunE returns an error; Main
// maps errors to exit codes. Nothing here uses package-level state, so tests
// run commands in-process with their own streams.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/core/version"
)

// ExitError carries a specific exit code out of a command.
type ExitError struct {
	Code int
	Err  error
	// Reported says the command has already printed Err: Main only
	// exits with Code.
	Reported bool
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// streams are the command's standard streams.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// NewRootCommand builds the dspex command tree writing to the given streams.
func NewRootCommand(in io.Reader, out, errOut io.Writer) *cobra.Command {
	s := &streams{in: in, out: out, err: errOut}
	root := &cobra.Command{
		Use:           "dspex",
		Short:         "Program language models: run, evaluate, optimize and serve DSPEx programs",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	root.AddCommand(
		newVersionCommand(s),
		newRunCommand(s),
		newMockLMCommand(s),
		newCacheCommand(s),
		newTracesCommand(s),
		newHistoryCommand(s),
		newEvalCommand(s),
		newOptimizeCommand(s),
		newServeCommand(s),
		newPluginsCommand(s),
		newExecCommand(s),
		newSandboxCommand(s),
		newDashboardCommand(s),
	)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &ExitError{Code: 2, Err: err} })
	markUsageErrors(root)
	return root
}

// markUsageErrors makes every usage error cobra itself finds in the tree
// under c exit 2, as RunE's own usage errors do: unknown flags and bad flag
// values (the root's flag error function), wrong positional arguments,
// required flags not given, and unknown subcommands. A command group given
// no subcommand prints its help.
func markUsageErrors(c *cobra.Command) {
	if c.HasSubCommands() && !c.Runnable() {
		c.Args = cobra.ArbitraryArgs
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2 // cobra's default, which SuggestionsFor does not apply
		}
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if sugg := cmd.SuggestionsFor(args[0]); len(sugg) > 0 {
				msg += fmt.Sprintf("; did you mean %q?", sugg[0])
			}
			return &ExitError{Code: 2, Err: errors.New(msg)}
		}
	} else if args := c.Args; args != nil {
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			return nil
		}
	}
	if c.Runnable() && c.PreRunE == nil && c.PreRun == nil {
		// cobra checks required flags after PreRunE, as a plain error.
		c.PreRunE = func(cmd *cobra.Command, _ []string) error {
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if err := cmd.ValidateFlagGroups(); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markUsageErrors(sub)
	}
}

// Main runs the command line and returns the process exit code: 0 on
// success, 1 on error, 2 on bad usage, or an ExitError's code. SIGINT and
// SIGTERM cancel the command's context.
func Main(args []string, in io.Reader, out, errOut io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	root := NewRootCommand(in, out, errOut)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if !ee.Reported {
			fmt.Fprintln(errOut, "dspex:", err)
		}
		if ee.Code == 2 && cmd != nil {
			fmt.Fprintf(errOut, "run %q for usage\n", cmd.CommandPath()+" --help")
		}
		return ee.Code
	}
	fmt.Fprintln(errOut, "dspex:", err)
	return 1
}

func newVersionCommand(s *streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the dspex version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(s.out, "dspex %s\n", version.String())
			return err
		},
	}
}
