package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/lm"
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
	env, err := spec.Open(ctx, program.EnvOptions{CachePath: f.cachePath, NoCache: f.noCache, Bus: bus})
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
