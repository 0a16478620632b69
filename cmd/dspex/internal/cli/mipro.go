package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/programfile"
	"github.com/dspex/dspex/core/trace"
	"github.com/dspex/dspex/plugins/mipro"
	"github.com/dspex/dspex/plugins/sampler"
)

// miproFlags are the flags of --optimizer mipro.
type miproFlags struct {
	auto           string
	numTrials      int
	numCandidates  int
	sampler        string
	samplerRNG     string
	promptModel    string
	trialsInFlight int
	minibatchSize  int
	pluginConfig   string
}

// samplerNames are the samplers the sampler plugin offers.
var samplerNames = []string{"tpe", "random", "nsgaii", "bruteforce"}

// samplerHint says what makes the sampler plugin run.
const samplerHint = "MIPROv2's sampler is a Python plugin that needs dspex_plugins with Optuna: " +
	"set DSPEX_PYTHON (or plugins.python in the program file or --config) to a Python that has them, " +
	"installed with pip install 'dspex_plugins[sampler]' from the repository (see docs/plugins.md)"

func (f *miproFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.auto, "auto", "", "mipro: light, medium or heavy: how many candidates, trials and validation examples, as DSPy's auto (default light, unless --num-candidates and --num-trials are given)")
	cmd.Flags().IntVar(&f.numTrials, "num-trials", 0, "mipro without --auto: sampled trials")
	cmd.Flags().IntVar(&f.numCandidates, "num-candidates", 0, "mipro without --auto: instructions and demo sets proposed per predictor")
	cmd.Flags().StringVar(&f.sampler, "sampler", "", "mipro: the sampler plugin's sampler: "+strings.Join(samplerNames, ", ")+" (default: the plugin's, tpe)")
	cmd.Flags().StringVar(&f.samplerRNG, "sampler-rng", "", "mipro: the sampler's RNG rule: trial (each trial seeded from the seed and its number) or continuous (one generator, DSPy's own trial sequence) (default: the plugin's, trial)")
	cmd.Flags().StringVar(&f.promptModel, "prompt-model", "", "mipro: the endpoint of the program file's models: section that proposes instructions (default: the task LM)")
	cmd.Flags().IntVar(&f.trialsInFlight, "trials-in-flight", 1, "mipro: trials asked and evaluated at once (1: DSPy's sequence)")
	cmd.Flags().IntVar(&f.minibatchSize, "minibatch-size", mipro.DefaultMinibatchSize, "mipro: examples in each trial's minibatch")
	cmd.Flags().StringVar(&f.pluginConfig, "config", "", "mipro, finetune: YAML file with a plugins: section (default: the program file's, over the built-in registry)")
}

// miproConfig checks the mipro flags, before any LM call, and returns
// the optimizer's configuration without its sampler, prompt model and
// resume log. changed reports the flags given on the command line.
func (f *optimizeFlags) miproConfig(t *task, changed func(string) bool) (mipro.Config, error) {
	m := f.mipro
	cfg := mipro.Config{Metric: t.metric, SamplerName: m.sampler, NumCandidates: m.numCandidates, NumTrials: m.numTrials,
		MinibatchSize: m.minibatchSize, Seed: f.seed, MaxErrors: f.maxErrors, Timeout: f.timeout, Concurrency: f.concurrency,
		TrialsInFlight: m.trialsInFlight}
	switch {
	case m.numTrials < 0 || m.numCandidates < 0:
		return cfg, usageError("--num-trials and --num-candidates cannot be negative")
	case m.trialsInFlight < 1:
		return cfg, usageError("--trials-in-flight %d: want at least 1", m.trialsInFlight)
	case m.minibatchSize < 1:
		return cfg, usageError("--minibatch-size %d: want at least 1", m.minibatchSize)
	case m.sampler != "" && !slices.Contains(samplerNames, m.sampler):
		return cfg, usageError("--sampler %q: expected one of %s", m.sampler, strings.Join(samplerNames, ", "))
	case m.samplerRNG != "" && m.samplerRNG != sampler.RNGTrial && m.samplerRNG != sampler.RNGContinuous:
		return cfg, usageError("--sampler-rng %q: expected %s or %s", m.samplerRNG, sampler.RNGTrial, sampler.RNGContinuous)
	}
	if m.samplerRNG != "" {
		cfg.SamplerOptions = map[string]string{"rng": m.samplerRNG}
	}
	manual := m.numTrials > 0 || m.numCandidates > 0
	switch {
	case m.auto != "" && manual:
		// DSPy's ValueError: auto sets both counts.
		return cfg, usageError("--auto %s sets the candidates and trials; leave out --num-candidates and --num-trials, or --auto", m.auto)
	case manual && (m.numTrials == 0 || m.numCandidates == 0):
		n := max(m.numCandidates, 1)
		return cfg, usageError("without --auto, give both --num-candidates and --num-trials (about %d trials for %d candidates)",
			mipro.NumTrialsFor(len(t.prog.NamedPredictors()), false, n), n)
	case manual:
		cfg.Auto = mipro.Off
	case m.auto == "":
		cfg.Auto = mipro.Light
	default:
		cfg.Auto = mipro.Auto(m.auto)
		if !slices.Contains([]mipro.Auto{mipro.Light, mipro.Medium, mipro.Heavy}, cfg.Auto) {
			return cfg, usageError("--auto %q: expected light, medium or heavy", m.auto)
		}
	}
	if m.promptModel != "" && m.promptModel != "lm" && !slices.ContainsFunc(t.spec.Models, func(l programfile.LMSpec) bool { return l.Name == m.promptModel }) {
		names := make([]string, 0, len(t.spec.Models))
		for _, l := range t.spec.Models {
			names = append(names, l.Name)
		}
		known := "it has none"
		if len(names) > 0 {
			known = "it has " + strings.Join(names, ", ")
		}
		return cfg, usageError("--prompt-model %q: no such endpoint under models: in the program file %s (%s)", m.promptModel, f.program, known)
	}
	// MIPROv2's demo limits are 4 and 4 unless given; both 0 is zero-shot.
	cfg.MaxBootstrappedDemos, cfg.MaxLabeledDemos = 4, 4
	if changed("max-bootstrapped-demos") {
		cfg.MaxBootstrappedDemos = f.maxBoot
	}
	if changed("max-labeled-demos") {
		cfg.MaxLabeledDemos = f.maxLabeled
	}
	switch boot, labeled := cfg.MaxBootstrappedDemos, cfg.MaxLabeledDemos; {
	case boot <= 0 && labeled <= 0:
		cfg.ZeroShot = true
	case boot <= 0 || labeled <= 0:
		return cfg, usageError("mipro: --max-bootstrapped-demos %d with --max-labeled-demos %d: set both to 0 for instructions only (zero-shot), or both above 0", boot, labeled)
	}
	return cfg, nil
}

// planMIPRO checks the mipro configuration against the program and data,
// before any LM call.
func planMIPRO(cfg mipro.Config, t *task, trainset, valset []example.Example) (mipro.Plan, error) {
	plan, err := mipro.New(cfg).Plan(t.prog, trainset, valset)
	if errors.Is(err, mipro.ErrConfig) {
		return plan, usageError("--optimizer mipro: %v", err)
	}
	return plan, err
}

// pluginHost is a bridge host of the plugins: section of --config, else of
// the program file, over the built-in registry, publishing on the run's
// bus, and how long to wait for a plugin's first start (the supervisor's
// start timeout and a margin).
func (f *optimizeFlags) pluginHost(ss *session) (*bridge.Host, time.Duration, error) {
	path := f.mipro.pluginConfig
	if path == "" {
		path = f.program
	}
	pcfg, err := bridge.LoadConfig(path)
	if err != nil {
		return nil, 0, err
	}
	host, err := bridge.NewHost(pcfg, bridge.Options{Bus: ss.obs.bus, Span: ss.obs.run})
	if err != nil {
		return nil, 0, err
	}
	return host, time.Duration(pcfg.Supervisor.WithDefaults().StartTimeout) + 5*time.Second, nil
}

// openSampler starts the sampler plugin under a bridge host (the plugins:
// section of --config, else of the program file, over the built-in
// registry) and creates a study as the run's will be, so that a missing
// interpreter, dspex_plugins or Optuna, or a sampler the plugin refuses,
// fails before any LM call. The caller shuts the host down.
func (f *optimizeFlags) openSampler(ctx context.Context, ss *session, cfg mipro.Config) (*bridge.Host, *sampler.Client, error) {
	host, limit, err := f.pluginHost(ss)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*bridge.Host, *sampler.Client, error) {
		shutdownHost(host)
		return nil, nil, err
	}
	client, p, err := sampler.Open(host, "")
	if err != nil {
		if errors.Is(err, bridge.ErrPythonNotFound) {
			err = fmt.Errorf("%w; %s", err, samplerHint)
		}
		return fail(err)
	}
	if err := awaitFirstStart(ctx, p, limit); err != nil {
		return fail(fmt.Errorf("the sampler plugin did not start: %w; %s", err, samplerHint))
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = mipro.DefaultSeed
	}
	probe := sampler.StudyConfig{ID: "dspex-optimize-check", Space: []sampler.Param{sampler.Indices("check", 2)},
		Seed: seed, Sampler: cfg.SamplerName, Options: cfg.SamplerOptions}
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if _, err := client.CreateStudy(cctx, probe); err != nil {
		if errors.Is(err, sampler.ErrInvalid) {
			return fail(fmt.Errorf("the sampler plugin refused the study: %w", err))
		}
		return fail(fmt.Errorf("the sampler plugin cannot run a study: %w; %s", err, samplerHint))
	}
	return host, client, nil
}

// awaitFirstStart waits until the plugin runs. A first start that fails
// is reported at once, not after the supervisor's restarts: a missing
// module or interpreter does not come back.
func awaitFirstStart(ctx context.Context, p *bridge.Plugin, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := p.WaitReady(wctx)
		wcancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded):
			return err
		case p.State() == bridge.StateDown:
			var be *bridge.Error
			if errors.As(err, &be) && be.Err != nil {
				return be.Err
			}
			return err
		}
	}
}

// shutdownHost stops the host's plugins, even after the command's
// context was cancelled.
func shutdownHost(host *bridge.Host) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = host.Shutdown(ctx)
}

// miproResume reads MIPROv2's trial log back from a run's stored trials.
func miproResume(trials []trace.Trial) []mipro.Trial {
	var out []mipro.Trial
	for _, tr := range trials {
		if tr.Optimizer != mipro.Name || tr.Kind != trace.TrialEvaluated || tr.Score == nil {
			continue
		}
		if t, ok := mipro.TrialFromRecord(tr.Trial, tr.Candidate, *tr.Score, tr.Minibatch); ok {
			out = append(out, t)
		}
	}
	return out
}

// miproPlanLine says what a mipro optimization will do.
func miproPlanLine(plan mipro.Plan, cfg mipro.Config, on string) string {
	what := fmt.Sprintf("%d demo sets and %d instructions per predictor", plan.DemoSetCandidates, plan.InstructionCandidates)
	if plan.ZeroShot {
		what = fmt.Sprintf("%d instructions per predictor (zero-shot)", plan.InstructionCandidates)
	}
	samplerName := cfg.SamplerName
	if samplerName == "" {
		samplerName = "the plugin's default, tpe"
	}
	scored := fmt.Sprintf("each on the whole validation set of %d examples", plan.ValSize)
	if plan.Minibatch {
		scored = fmt.Sprintf("each on a minibatch of %d of a validation set of %d examples; every %d trials and at the end the best-averaging one is scored on all of it",
			min(plan.MinibatchSize, plan.ValSize), plan.ValSize, plan.FullEvalSteps)
	}
	return fmt.Sprintf("mipro (MIPROv2, auto %s, seed %d): the program as given and the optimized one, each %s;\n"+
		"  in between %s (demos bootstrapped from %d training examples, instructions proposed by the prompt model),\n"+
		"  then %d trials chosen by the sampler (%s), %s;\n"+
		"  the program with the best full score is saved",
		plan.Auto, plan.Seed, on, what, plan.TrainSize, plan.NumTrials, samplerName, scored)
}

// reportMIPRO says, after the comparison, what the search did.
func reportMIPRO(s *streams, res *mipro.Result) {
	fallbacks := 0
	for _, p := range res.Proposals {
		if p.Fallback != "" {
			fallbacks++
		}
	}
	resumed := 0
	for _, t := range res.Trials {
		if t.Resumed {
			resumed++
		}
	}
	fmt.Fprintf(s.err, "dspex: mipro: %d trials in the study (%d sampled), best full score %.2f on %d validation examples",
		len(res.Trials), res.NumTrials, res.Score, res.ValsetSize)
	if resumed > 0 {
		fmt.Fprintf(s.err, "; %d restored from the run resumed", resumed)
	}
	if fallbacks > 0 {
		fmt.Fprintf(s.err, "; %d of %d proposals kept the original instruction (the prompt model failed or answered nothing usable)", fallbacks, len(res.Proposals))
	}
	if res.SummaryError != "" {
		fmt.Fprintf(s.err, "; no dataset summary (%s)", res.SummaryError)
	}
	if res.Rebuilds > 0 {
		fmt.Fprintf(s.err, "; the sampler study was rebuilt %d times after plugin restarts", res.Rebuilds)
	}
	fmt.Fprintln(s.err)
}
