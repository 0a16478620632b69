package cli

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/core/cache"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/program"
	"github.com/dspex/dspex/core/programfile"
	"github.com/dspex/dspex/core/runenv"
	"github.com/dspex/dspex/plugins/codeact"
	"github.com/dspex/dspex/plugins/finetune"
)

// envFlags are the flags every command that calls an LM shares.
type envFlags struct {
	cachePath string
	noCache   bool
	quiet     bool
}

func (f *envFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.cachePath, "cache", "", `response cache file (default: the program file's cache.path, else the user cache directory; "memory" keeps it in memory)`)
	cmd.Flags().BoolVar(&f.noCache, "no-cache", false, "do not read or write the response cache: every call goes to the LM")
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "do not print the usage summary")
}

// open builds the program's endpoints, printing warnings (such as an
// unusable cache file) to standard error. Every call's response is shown
// to seen, which notes answers from the simulated LM.
func (f *envFlags) open(ctx context.Context, s *streams, spec *programfile.Spec, bus *event.Bus, seen *answerSources) (*runenv.Env, error) {
	hooks := lm.EventHooks(bus)
	hooks.Call = seen.note
	env, err := runenv.Open(ctx, spec, runenv.Options{CachePath: f.cachePath, NoCache: f.noCache, Bus: bus, Hooks: hooks,
		OnCacheFailure: func(err error) { fmt.Fprintf(s.err, "dspex: warning: %v\n", err) }})
	if err != nil {
		return nil, err
	}
	for _, w := range env.Warnings {
		fmt.Fprintf(s.err, "dspex: warning: %v\n", w)
	}
	return env, nil
}

// cacheFile is the response cache file of spec, as Spec.Open chooses it:
// --cache, else the file's cache.path, else the default file; "" when the
// cache lives in memory.
func (f *envFlags) cacheFile(spec *programfile.Spec) string {
	path := spec.Cache.Path
	if f.cachePath != "" {
		path = f.cachePath
	}
	switch path {
	case "memory":
		return ""
	case "":
		p, err := cache.DefaultPath()
		if err != nil {
			return ""
		}
		path = p
	}
	return path
}

// maxFreshIDs bounds the response ids answerSources remembers; a
// long-running serve stops remembering after that many, and counts later
// cache hits as saved by earlier runs.
const maxFreshIDs = 1 << 16

// answerSources notes, for the usage summary, where answers came from:
// whether any came from the simulated LM (its response ids start with
// lmtest.ResponseIDPrefix, cached ones included), and how many cache hits
// were saved by earlier runs rather than by this one (a hit whose response
// id this command saw come from the LM is this run's own repeat). Safe for
// concurrent use.
type answerSources struct {
	simulated atomic.Bool

	mu      sync.Mutex
	fresh   map[string]struct{}
	earlier int
}

func (a *answerSources) note(_ context.Context, info lm.CallInfo) {
	res := info.Response
	if res == nil {
		return
	}
	if strings.HasPrefix(res.ID, lmtest.ResponseIDPrefix) {
		a.simulated.Store(true)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, seen := a.fresh[res.ID]
	switch {
	case res.CacheHit && (res.ID == "" || !seen):
		a.earlier++
	case !res.CacheHit && res.ID != "" && len(a.fresh) < maxFreshIDs:
		if a.fresh == nil {
			a.fresh = map[string]struct{}{}
		}
		a.fresh[res.ID] = struct{}{}
	}
}

// earlierHits is how many answers came from cache entries saved before
// this command started.
func (a *answerSources) earlierHits() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.earlier
}

// report prints the calls, tokens and cost a command spent, unless --quiet;
// then, when answers came from the simulated LM or from the cache, says so:
// a cached answer was saved from an earlier call, maybe to a server that
// has changed since.
func (f *envFlags) report(s *streams, t *lm.Tracker, spec *programfile.Spec, seen *answerSources) {
	tot := t.Total()
	if f.quiet || tot.Calls == 0 {
		return
	}
	canceled := ""
	if tot.Canceled > 0 {
		canceled = fmt.Sprintf(", %d canceled", tot.Canceled)
	}
	cost := tot.Cost.String()
	if tot.Cost.Unknown > 0 {
		cost += " (no price for the model in the program file's prices:)"
	}
	fmt.Fprintf(s.err, "dspex: %d LM calls (%d from cache, %d failed%s), %d tokens (%d prompt, %d completion), cost %s\n",
		tot.Calls, tot.CacheHits, tot.Errors, canceled, tot.Usage.TotalTokens, tot.Usage.PromptTokens, tot.Usage.CompletionTokens, cost)
	if tot.Canceled > 0 {
		fmt.Fprintf(s.err, "dspex: canceled calls are not failures: dspex stopped them when their answers were no longer needed (an evaluation that stopped early, a bootstrap stopped by its error bound, an interrupt)\n")
	}
	if seen.simulated.Load() {
		fmt.Fprintf(s.err, "dspex: answers came from the simulated LM (dspex mock-lm): scripted or simulated, not a model's\n")
	}
	if tot.CacheHits == 0 {
		return
	}
	where, clear := "in memory", ""
	if path := f.cacheFile(spec); path != "" {
		where, clear = "at "+path, ", dspex cache clear --path "+path+" empties it"
	}
	if earlier := seen.earlierHits(); earlier > 0 {
		fmt.Fprintf(s.err, "dspex: %s from the response cache %s, saved by earlier runs: the LM was not asked again, even if its server or model has changed since; --no-cache skips the cache%s\n",
			countNoun(int64(earlier), "answer came", "answers came"), where, clear)
	}
	if repeats := tot.CacheHits - seen.earlierHits(); repeats > 0 {
		fmt.Fprintf(s.err, "dspex: %s answered from this run's own entries in the response cache %s (--no-cache skips the cache)\n",
			countNoun(int64(repeats), "repeated request was", "repeated requests were"), where)
	}
}

// loadProgram loads the program file at path and builds its program, with
// the state file at state loaded into it when state is not empty.
func loadProgram(path, state string) (*programfile.Spec, module.Program, error) {
	spec, err := programfile.LoadFile(path, programModules())
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
		// As DSPy's Predict.load_state, a predictor whose state records a
		// model of its own ("lm": {"model": …}, e.g. BootstrapFinetune's
		// fine-tuned one) runs on it, through the program file's lm:.
		models, err := finetune.StateModels(state)
		if err != nil {
			return nil, nil, err
		}
		finetune.UseModels(prog, models, spec.LM.Model)
	}
	return spec, prog, nil
}

// session is what a command running a program holds while it runs: the
// observer of its run, the program's LM endpoints, and the usage they
// spent.
type session struct {
	obs   *observer
	env   *runenv.Env
	spec  *programfile.Spec
	usage *lm.Tracker
	seen  answerSources
	s     *streams
	flags *envFlags
	// interpreters run the program's code_act and program_of_thought
	// modules; nil when it has none.
	interpreters *codeact.Pool
}

// startSession starts observing the run described by info (continuing the
// run runID when it is not empty) and opens spec's LM endpoints. The
// context it returns carries the bus, the run's span, the usage tracker,
// the LM and the program's adapter. Unless it fails, the caller must call
// end.
func startSession(ctx context.Context, s *streams, ef *envFlags, of *observeFlags, spec *programfile.Spec, info event.RunInfo, runID string) (context.Context, *session, error) {
	red := spec.Redactor()
	ctx, obs, err := startObserving(ctx, s, of, info, runenv.Retention(spec), red, runID)
	if err != nil {
		return ctx, nil, red.Error(err)
	}
	// What the command prints itself (predictions, per-input errors, the
	// summary) is redacted too, like its logs and traces.
	s.out, s.err = red.Writer(s.out), red.Writer(s.err)
	ss := &session{obs: obs, spec: spec, usage: lm.NewTracker(), s: s, flags: ef}
	if ss.env, err = ef.open(ctx, s, spec, obs.bus, &ss.seen); err != nil {
		return ctx, nil, ss.end(ctx, err)
	}
	ctx = module.WithAdapter(module.WithLM(lm.WithTracker(ctx, ss.usage), ss.env.LM), spec.NewAdapter())
	if ss.interpreters, err = openInterpreters(spec, obs.bus); err != nil {
		return ctx, nil, ss.end(ctx, err)
	}
	if ss.interpreters != nil {
		ctx = codeact.WithPool(ctx, ss.interpreters)
	}
	return ctx, ss, nil
}

// end closes the endpoints, publishes the run's end with the command's
// error and usage, closes the observer so that every trace is written, and
// prints the usage line. It returns runErr, else the observer's error.
func (ss *session) end(ctx context.Context, runErr error) error {
	if ss.interpreters != nil {
		_ = ss.interpreters.Close()
	}
	if ss.env != nil {
		if err := ss.env.Close(); err != nil {
			fmt.Fprintf(ss.s.err, "dspex: warning: close the response cache: %v\n", err)
		}
	}
	if err := ss.obs.finish(ctx, runErr, ss.usage.Total()); err != nil && runErr == nil {
		runErr = err
	}
	ss.flags.report(ss.s, ss.usage, ss.spec, &ss.seen)
	return ss.spec.Redactor().Error(runErr)
}
