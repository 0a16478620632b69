package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/program"
)

// envFlags are the flags every command that calls an LM shares.
type envFlags struct {
	cachePath string
	noCache   bool
	quiet     bool
}

func (f *envFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.cachePath, "cache", "", `response cache file (default: the program file's cache.path, else the user cache directory; "memory" keeps it in memory)`)
	cmd.Flags().BoolVar(&f.noCache, "no-cache", false, "do not read or write the response cache")
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "do not print the usage summary")
}

// open builds the program's endpoints, printing warnings (such as an
// unusable cache file) to standard error.
func (f *envFlags) open(ctx context.Context, s *streams, spec *program.Spec, bus *event.Bus) (*program.Env, error) {
	env, err := spec.Open(ctx, program.EnvOptions{CachePath: f.cachePath, NoCache: f.noCache, Bus: bus,
		OnCacheFailure: func(err error) { fmt.Fprintf(s.err, "dspex: warning: %v\n", err) }})
	if err != nil {
		return nil, err
	}
	for _, w := range env.Warnings {
		fmt.Fprintf(s.err, "dspex: warning: %v\n", w)
	}
	return env, nil
}

// report prints the calls, tokens and cost a command spent, unless --quiet.
func (f *envFlags) report(s *streams, t *lm.Tracker) {
	tot := t.Total()
	if f.quiet || tot.Calls == 0 {
		return
	}
	canceled := ""
	if tot.Canceled > 0 {
		canceled = fmt.Sprintf(", %d canceled", tot.Canceled)
	}
	fmt.Fprintf(s.err, "dspex: %d LM calls (%d from cache, %d failed%s), %d tokens (%d prompt, %d completion), cost %s\n",
		tot.Calls, tot.CacheHits, tot.Errors, canceled, tot.Usage.TotalTokens, tot.Usage.PromptTokens, tot.Usage.CompletionTokens, tot.Cost)
}

// loadProgram loads the program file at path and builds its program, with
// the state file at state loaded into it when state is not empty.
func loadProgram(path, state string) (*program.Spec, module.Program, error) {
	spec, err := program.LoadFile(path)
	if err != nil {
		return nil, nil, err
	}
	prog, err := spec.NewProgram()
	if err != nil {
		return nil, nil, err
	}
	if state != "" {
		if err := program.LoadStateFile(state, prog); err != nil {
			return nil, nil, err
		}
	}
	return spec, prog, nil
}

// session is what a command running a program holds while it runs: the
// observer of its run, the program's LM endpoints, and the usage they
// spent.
type session struct {
	obs   *observer
	env   *program.Env
	usage *lm.Tracker
	s     *streams
	flags *envFlags
}

// startSession starts observing the run described by info (continuing the
// run runID when it is not empty) and opens spec's LM endpoints. The
// context it returns carries the bus, the run's span, the usage tracker,
// the LM and the program's adapter. Unless it fails, the caller must call
// end.
func startSession(ctx context.Context, s *streams, ef *envFlags, of *observeFlags, spec *program.Spec, info event.RunInfo, runID string) (context.Context, *session, error) {
	ctx, obs, err := startObserving(ctx, s, of, info, spec.Retention(), spec.Redactor(), runID)
	if err != nil {
		return ctx, nil, err
	}
	ss := &session{obs: obs, usage: lm.NewTracker(), s: s, flags: ef}
	if ss.env, err = ef.open(ctx, s, spec, obs.bus); err != nil {
		return ctx, nil, ss.end(ctx, err)
	}
	ctx = module.WithAdapter(module.WithLM(lm.WithTracker(ctx, ss.usage), ss.env.LM), spec.NewAdapter())
	return ctx, ss, nil
}

// end closes the endpoints, publishes the run's end with the command's
// error and usage, closes the observer so that every trace is written, and
// prints the usage line. It returns runErr, else the observer's error.
func (ss *session) end(ctx context.Context, runErr error) error {
	if ss.env != nil {
		if err := ss.env.Close(); err != nil {
			fmt.Fprintf(ss.s.err, "dspex: warning: close the response cache: %v\n", err)
		}
	}
	if err := ss.obs.finish(ctx, runErr, ss.usage.Total()); err != nil && runErr == nil {
		runErr = err
	}
	ss.flags.report(ss.s, ss.usage)
	return runErr
}
