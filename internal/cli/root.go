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
)

// Version is the dspex release, set at build time with
// -ldflags "-X github.com/dspex/dspex/internal/cli.Version=...".
var Version = "0.1.0-dev"

// ExitError carries a specific exit code out of a command.
type ExitError struct {
	Code int
	Err  error
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
	)
	return root
}

// Main runs the command line and returns the process exit code: 0 on
// success, 1 on error, 2 on bad usage, or an ExitError's code. SIGINT and
// SIGTERM cancel the command's context.
func Main(args []string, in io.Reader, out, errOut io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	root := NewRootCommand(in, out, errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(errOut, "dspex:", err)
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}

func newVersionCommand(s *streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the dspex version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(s.out, "dspex %s\n", Version)
			return err
		},
	}
}
