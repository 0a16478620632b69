package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/program"
	"github.com/dspex/dspex/core/runenv"
	"github.com/dspex/dspex/core/teleprompt"
	"github.com/dspex/dspex/core/trace"
	"github.com/dspex/dspex/plugins/finetune"
	"github.com/dspex/dspex/plugins/mipro"
	"github.com/dspex/dspex/plugins/sampler"
)

type optimizeFlags struct {
	taskFlags
	train      string
	val        string
	optimizer  string
	out        string
	resume     string
	candidates int
	maxBoot    int
	maxLabeled int
	seed       int64
	k          int
	breadth    int
	depth      int
	mipro      miproFlags
	finetune   finetuneFlags
	// changed reports the flags given on the command line.
	changed func(name string) bool
}

// Optimizers the command offers.
var optimizerNames = []string{"labeled", "bootstrap", "random-search", "knn", "copro", "mipro", "finetune"}

func newOptimizeCommand(s *streams) *cobra.Command {
	f := &optimizeFlags{}
	cmd := &cobra.Command{
		Use:   "optimize --program FILE --train FILE [--val FILE] --optimizer NAME --metric NAME --out STATE.json [--resume RUN]",
		Short: "Optimize a program's demos or instructions and save its state",
		Long: `Compile the program with an optimizer — labeled (LabeledFewShot), bootstrap
(BootstrapFewShot), random-search (BootstrapFewShotWithRandomSearch), knn
(KNNFewShot; needs an embeddings: section), copro (COPRO), mipro (MIPROv2;
its sampler is a Python plugin with Optuna, see docs/plugins.md) or finetune
(BootstrapFinetune: trains a model on the teacher's passing traces through the
fine-tuning plugin, see docs/finetune.md) — score it before
and after on the validation set (--val, else the training set), and save the
optimized program's state to --out in DSPy's JSON format (load it with
dspex run --state, or with DSPy).

Every candidate evaluation is recorded in the trace database. An optimization
that was interrupted (even killed) continues with --resume RUN: candidates
it finished are restored from the database, not evaluated again. The command
prints the run id at the start.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.changed = cmd.Flags().Changed
			return runOptimize(cmd.Context(), s, f)
		},
	}
	f.register(cmd)
	f.mipro.register(cmd)
	f.finetune.register(cmd)
	cmd.Flags().StringVar(&f.train, "train", "", "JSONL training set")
	cmd.Flags().StringVar(&f.val, "val", "", "JSONL validation set (default: the training set)")
	cmd.Flags().StringVar(&f.optimizer, "optimizer", "bootstrap", "optimizer: "+strings.Join(optimizerNames, ", "))
	cmd.Flags().StringVar(&f.out, "out", "", "file to save the optimized state to")
	cmd.Flags().StringVar(&f.resume, "resume", "", "continue the interrupted optimization RUN")
	cmd.Flags().IntVar(&f.candidates, "candidates", 16, "random-search: candidate programs beyond the three baselines")
	cmd.Flags().IntVar(&f.maxBoot, "max-bootstrapped-demos", 4, "bootstrapped demos per predictor")
	cmd.Flags().IntVar(&f.maxLabeled, "max-labeled-demos", 16, "labeled demos per predictor (mipro: 4 unless given)")
	cmd.Flags().Int64Var(&f.seed, "seed", 0, "seed of the optimizer's sampling (mipro: 0 means 9, DSPy's default)")
	cmd.Flags().IntVar(&f.k, "k", 3, "knn: neighbours per call")
	cmd.Flags().IntVar(&f.breadth, "breadth", 10, "copro: instructions proposed per round")
	cmd.Flags().IntVar(&f.depth, "depth", 3, "copro: rounds")
	_ = cmd.MarkFlagRequired("train")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// fingerprint identifies the optimization, so a resume can check it
// continues the same one.
func (f *optimizeFlags) fingerprint() (string, error) {
	var parts [][]byte
	for _, p := range []string{f.program, f.train, f.val, f.state} {
		if p == "" {
			parts = append(parts, nil)
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		parts = append(parts, b)
	}
	settings := fmt.Sprintf("%s|%s|%s|%d|%d|%d|%d|%d|%d|%d", f.optimizer, f.metric, f.field, f.candidates, f.maxBoot, f.maxLabeled, f.seed, f.k, f.breadth, f.depth)
	if f.optimizer == "mipro" {
		// What changes the trials; the sampler plugin's configuration
		// does not (a resumed run may use another interpreter).
		m := f.mipro
		settings += fmt.Sprintf("|%s|%d|%d|%s|%s|%d|%d", m.auto, m.numTrials, m.numCandidates, m.sampler, m.promptModel, m.trialsInFlight, m.minibatchSize)
	}
	if f.optimizer == "finetune" {
		settings += f.finetune.fingerprintSettings()
	}
	return teleprompt.Fingerprint(append(parts, []byte(settings))...), nil
}

func runOptimize(ctx context.Context, s *streams, f *optimizeFlags) (err error) {
	if !slices.Contains(optimizerNames, f.optimizer) {
		return usageError("--optimizer %q: expected one of %s", f.optimizer, strings.Join(optimizerNames, ", "))
	}
	t, err := f.load()
	if err != nil {
		return err
	}
	trainset, err := t.data(f.train)
	if err != nil {
		return err
	}
	valset := trainset
	if f.val != "" {
		if valset, err = t.data(f.val); err != nil {
			return err
		}
	}
	// Everything that can be checked without the LM is checked before the
	// first call, so that a mistake costs nothing.
	if f.optimizer == "knn" && t.spec.Embeddings == nil {
		return usageError("--optimizer knn needs an embeddings: section in the program file %s (an OpenAI-compatible embeddings endpoint; see docs/program-file.md)", f.program)
	}
	if f.optimizer == "copro" && f.breadth < 2 {
		return usageError("--breadth %d: copro needs at least 2 (each round keeps the current instructions and proposes breadth-1 new ones)", f.breadth)
	}
	var (
		miproCfg  mipro.Config
		miproPlan mipro.Plan
		miproVal  []example.Example // nil: MIPROv2 splits the training set, as DSPy
	)
	if f.optimizer == "mipro" {
		changed := f.changed
		if changed == nil {
			changed = func(string) bool { return false }
		}
		if miproCfg, err = f.miproConfig(t, changed); err != nil {
			return err
		}
		if f.val != "" {
			miproVal = valset
		}
		if miproPlan, err = planMIPRO(miproCfg, t, trainset, miproVal); err != nil {
			return err
		}
	}
	var ftCfg finetune.Config
	if f.optimizer == "finetune" {
		if ftCfg, err = f.finetuneConfig(t); err != nil {
			return err
		}
	}
	if err := checkOutPath(f.out); err != nil {
		return err
	}
	fp, err := f.fingerprint()
	if err != nil {
		return err
	}
	resume := map[string]teleprompt.Finished{}
	var logged []trace.Trial
	if f.resume != "" {
		if resume, logged, err = f.loadResume(ctx, fp); err != nil {
			return err
		}
		if f.optimizer == "finetune" {
			if ftCfg.Resume, err = f.finetuneResume(ctx); err != nil {
				return err
			}
		}
	}
	scoredOn := "the training set"
	if f.val != "" {
		scoredOn = "the validation set"
	}
	f.observe.describeCandidate, f.observe.candidates = describeCandidate, f.expectedCandidates()
	ctx, ss, err := startSession(ctx, s, &f.env, &f.observe, t.spec, event.RunInfo{Name: "optimize", Program: f.program,
		Meta: map[string]any{"fingerprint": fp, "optimizer": f.optimizer, "metric": t.metric.Name(), "field": t.field,
			"train": f.train, "val": f.val, "out": f.out}}, f.resume)
	if err != nil {
		return err
	}
	defer func() { err = ss.end(ctx, err) }()
	var samplerClient *sampler.Client
	if f.optimizer == "mipro" {
		var host *bridge.Host
		if host, samplerClient, err = f.openSampler(ctx, ss, miproCfg); err != nil {
			return err
		}
		defer shutdownHost(host)
		ss.obs.showTrials(miproPlan.NumTrials, func() int { return ss.usage.Total().Calls })
	}
	var ftClient *finetune.Client
	if f.optimizer == "finetune" {
		var host *bridge.Host
		if host, ftClient, err = f.openFinetune(ctx, ss, ftCfg.Backend); err != nil {
			return err
		}
		defer shutdownHost(host)
	}
	boot := &teleprompt.BootstrapStats{}
	ctx = teleprompt.WithBootstrapStats(ctx, boot)
	fmt.Fprintf(s.err, "dspex: optimize run %s (resume with --resume %s)\n", ss.obs.RunID(), ss.obs.RunID())
	// An error after paid work says how to keep it: the finished
	// evaluations are in the trace database, and --resume restores them.
	defer func() {
		if err != nil && ss.obs.store != nil && ss.usage.Total().Calls > 0 {
			err = fmt.Errorf("%w (the evaluations finished so far are recorded: fix the cause and rerun the same command with --resume %s to continue without paying for them again)", err, ss.obs.RunID())
		}
	}()

	if !f.env.quiet {
		plan := f.plan(scoredOn, len(valset))
		if f.optimizer == "mipro" {
			plan = miproPlanLine(miproPlan, miproCfg, fmt.Sprintf("scored on %s (%d examples)", scoredOn, len(valset)))
		}
		fmt.Fprintf(s.err, "dspex: %s\n", plan)
	}
	trials := &teleprompt.Trials{Optimizer: f.optimizer, Metric: t.metric, Valset: valset, Eval: f.evalOptions("eval"), Resume: resume}
	before, err := trials.Run(ctx, "baseline", t.prog, func(context.Context) (module.Program, error) { return t.prog.Clone(), nil })
	if err != nil {
		return err
	}
	var (
		after    *teleprompt.Candidate
		miproRes *mipro.Result    // nil unless MIPROv2 ran (not when resumed after it)
		ftRes    *finetune.Result // nil unless BootstrapFinetune ran
	)
	switch f.optimizer {
	case "random-search":
		rs := &teleprompt.RandomSearch{Metric: t.metric, MaxBootstrappedDemos: f.maxBoot, MaxLabeledDemos: f.maxLabeled,
			NumCandidates: f.candidates, MaxErrors: f.maxErrors, Valset: valset, Eval: f.evalOptions("eval"), Resume: resume}
		res, err := rs.Search(ctx, t.prog, trainset)
		if err != nil {
			return err
		}
		after = res.Best
	case "mipro":
		cfg := miproCfg
		cfg.Sampler = samplerClient
		cfg.Resume = miproResume(logged)
		if name := f.mipro.promptModel; name != "" {
			if cfg.PromptModel, err = ss.env.Model(name); err != nil {
				return err
			}
		}
		after, err = trials.Run(ctx, "compiled", t.prog, func(ctx context.Context) (module.Program, error) {
			res, err := mipro.New(cfg).Compile(ctx, t.prog, trainset, miproVal)
			if err != nil {
				return nil, err
			}
			miproRes = res
			return res.Program, nil
		})
		if err != nil {
			return err
		}
	case "finetune":
		cfg := ftCfg
		cfg.Trainer = ftClient
		cfg.RunID = ss.obs.RunID()
		after, err = trials.Run(ctx, "compiled", t.prog, func(ctx context.Context) (module.Program, error) {
			res, err := finetune.NewOptimizer(cfg).Compile(ctx, t.prog, trainset)
			if err != nil {
				return nil, err
			}
			ftRes = res
			return res.Program, nil
		})
		if err != nil {
			return err
		}
		if fin, ok := resume["compiled"]; ok && after.Resumed {
			// A state read back from the trace store: its predictors'
			// models are in its "lm" entries.
			models, err := finetune.ParseStateModels(fin.State)
			if err != nil {
				return fmt.Errorf("--resume %s: the tuned program's state: %w", f.resume, err)
			}
			finetune.UseModels(after.Program, models, t.spec.LM.Model)
		}
	default:
		opt, err := f.newOptimizer(t, ss.env, resume)
		if err != nil {
			return err
		}
		after, err = trials.Run(ctx, "compiled", t.prog, func(ctx context.Context) (module.Program, error) {
			return opt.Compile(ctx, t.prog, trainset)
		})
		if err != nil {
			return err
		}
	}
	if err := program.SaveStateFile(f.out, after.Program); err != nil {
		return err
	}
	ss.obs.endProgress()
	printComparison(s, t, before, after, scoredOn, len(valset), f.out)
	if !f.env.quiet {
		reportBootstrap(s, boot.Totals())
		if miproRes != nil {
			reportMIPRO(s, miproRes)
		}
		if ftRes != nil {
			reportFinetune(s, ftRes)
		}
	}
	reportSkipped(s, t.skipped)
	return nil
}

// candidatesFor is how many candidates random search scores for
// --candidates n: n random ones and its three baselines.
func candidatesFor(n int) int {
	if n <= 0 {
		n = 16 // RandomSearch's default
	}
	return n + 3
}

// expectedCandidates is how many candidate lines the optimization prints,
// the command's own baseline included; 0 when it depends on the search.
func (f *optimizeFlags) expectedCandidates() int {
	switch f.optimizer {
	case "random-search":
		return 1 + candidatesFor(f.candidates)
	case "copro":
		return 0
	}
	return 2 // mipro too: its trials have lines of their own
}

// plan says, before the first LM call, what the optimization will score,
// so that every candidate line that follows can be read. Each line but the
// first is indented.
func (f *optimizeFlags) plan(scoredOn string, n int) string {
	on := fmt.Sprintf("each scored on %s (%d examples)", scoredOn, n)
	switch f.optimizer {
	case "random-search":
		k := candidatesFor(f.candidates)
		return fmt.Sprintf("random search: the program as given, then %d candidates, %s:\n"+
			"  3 baselines: no demos; labeled demos only; demos bootstrapped in training-set order\n"+
			"  %d (--candidates): 1 to %d demos bootstrapped from a shuffled training set, topped up with labeled ones to %d\n"+
			"  (a bootstrap runs training examples only until it has the demos it needs); the best is saved",
			k, on, k-3, f.maxBoot, f.maxLabeled)
	case "copro":
		return fmt.Sprintf("copro: the program as given, then instructions proposed by the LM (%d per round, %d rounds), %s; the best is saved",
			f.breadth, f.depth, on)
	}
	return fmt.Sprintf("%s: the program as given, then the optimized program, %s", f.optimizer, on)
}

// describeCandidate says what an optimizer's candidate id stands for.
func describeCandidate(id string) string {
	switch id {
	case "baseline":
		return "the program as given"
	case "compiled":
		return "the optimized program"
	case teleprompt.CandidateID(-3):
		return "baseline without demos"
	case teleprompt.CandidateID(-2):
		return "baseline with labeled demos only"
	case teleprompt.CandidateID(-1):
		return "baseline with demos bootstrapped in training-set order"
	}
	var seed int
	if _, err := fmt.Sscanf(id, "seed=%d", &seed); err == nil {
		return fmt.Sprintf("demos bootstrapped from the training set shuffled with seed %d", seed)
	}
	if strings.HasPrefix(id, "copro-") {
		return "proposed instructions " + strings.TrimPrefix(id, "copro-")
	}
	return id
}

// checkOutPath makes sure the optimized state can be saved to path, before
// any LM call: not a directory, and its directory exists and takes a new
// file (the state is written to a temporary file there, then renamed).
func checkOutPath(path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return usageError("--out %s is a directory; give the state file's name", path)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--out %s: its directory %s: %w", path, dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("--out %s: %s is not a directory", path, dir)
	}
	fh, err := os.CreateTemp(dir, "."+filepath.Base(path)+".check*")
	if err != nil {
		return fmt.Errorf("--out %s: cannot write in %s: %w", path, dir, err)
	}
	fh.Close()
	return os.Remove(fh.Name())
}

func (f *optimizeFlags) newOptimizer(t *task, env *runenv.Env, resume map[string]teleprompt.Finished) (teleprompt.Optimizer, error) {
	boot := teleprompt.BootstrapFewShot{Metric: t.metric, MaxBootstrappedDemos: f.maxBoot, MaxLabeledDemos: f.maxLabeled,
		MaxErrors: f.maxErrors, Seed: f.seed}
	switch f.optimizer {
	case "labeled":
		return &teleprompt.LabeledFewShot{K: f.maxLabeled, Seed: f.seed}, nil
	case "bootstrap":
		return &boot, nil
	case "knn":
		if env.Embedder == nil {
			return nil, errors.New("optimizer knn needs an embeddings: section in the program file")
		}
		return &teleprompt.KNNFewShot{K: f.k, Embedder: env.Embedder, Metric: t.metric,
			MaxBootstrappedDemos: f.maxBoot, MaxLabeledDemos: f.maxLabeled}, nil
	case "copro":
		return &teleprompt.COPRO{Metric: t.metric, Breadth: f.breadth, Depth: f.depth, Eval: f.evalOptions("eval"), Resume: resume}, nil
	}
	return nil, usageError("unknown optimizer %q", f.optimizer)
}

// loadResume reads the finished candidates of the run to resume, checking
// that it is the same optimization.
// It returns the run's stored trials too, for optimizers that read their
// own log back (MIPROv2).
func (f *optimizeFlags) loadResume(ctx context.Context, fingerprint string) (map[string]teleprompt.Finished, []trace.Trial, error) {
	r, err := openTraces(ctx, f.observe.db)
	if err != nil {
		return nil, nil, fmt.Errorf("--resume %s: %w", f.resume, err)
	}
	defer r.Close()
	run, err := r.Run(ctx, f.resume)
	if err != nil {
		return nil, nil, fmt.Errorf("--resume %s: %w", f.resume, err)
	}
	var meta struct {
		Fingerprint string `json:"fingerprint"`
	}
	_ = json.Unmarshal(run.Meta, &meta)
	if run.Name != "optimize" || meta.Fingerprint == "" {
		return nil, nil, fmt.Errorf("--resume %s: run %s is a %q run, not an optimization", f.resume, run.ID, run.Name)
	}
	if meta.Fingerprint != fingerprint {
		return nil, nil, fmt.Errorf("--resume %s: run %s belongs to a different optimization (program, data or optimizer settings differ)", f.resume, run.ID)
	}
	f.resume = run.ID
	trials, err := r.Trials(ctx, run.ID)
	if err != nil {
		return nil, nil, err
	}
	done := map[string]teleprompt.Finished{}
	for _, tr := range trials {
		if tr.Score == nil || tr.Kind != trace.TrialEvaluated {
			continue
		}
		if id, fin, ok := teleprompt.FinishedFromRecord(tr.Candidate, *tr.Score); ok {
			done[id] = fin
		}
	}
	return done, trials, nil
}

// printComparison ends an optimization with a before/after table, scored
// on scoredOn (n examples).
func printComparison(s *streams, t *task, before, after *teleprompt.Candidate, scoredOn string, n int, out string) {
	tw := tabwriter.NewWriter(s.out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\t%s\t%s\n", "before", "after")
	fmt.Fprintf(tw, "score on %s (%s on %s, %d examples)\t%.2f\t%.2f\n", scoredOn, t.metric.Name(), t.field, n, before.Score, after.Score)
	b, a := predictorSummary(before.Program), predictorSummary(after.Program)
	names := make([]string, 0, len(a))
	for name := range a {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		// A bare predictor is the program: its rows need no name.
		label := name + ": "
		if name == "self" {
			label = ""
		}
		fmt.Fprintf(tw, "%sdemos\t%d\t%d\n", label, b[name].demos, a[name].demos)
		if b[name].model != a[name].model {
			fmt.Fprintf(tw, "%smodel\t%s\t%s\n", label, orProgramLM(b[name].model), orProgramLM(a[name].model))
		}
		if b[name].instructions != a[name].instructions {
			fmt.Fprintf(tw, "%sinstructions\t%s\t%s\n", label, oneLine(b[name].instructions, 50), oneLine(a[name].instructions, 50))
		}
	}
	tw.Flush()
	if scoredOn == "the training set" {
		fmt.Fprintf(s.out, "(without --val, candidates are scored and chosen on the training set, which flatters \"after\": score held-out data with dspex eval --state %s)\n", out)
	}
	fmt.Fprintf(s.out, "saved %s\n", out)
}

type predSummary struct {
	demos        int
	instructions string
	// model is the predictor's own model, "" when it uses the program's.
	model string
}

func orProgramLM(model string) string {
	if model == "" {
		return "(lm:)"
	}
	return model
}

func predictorSummary(p module.Program) map[string]predSummary {
	out := map[string]predSummary{}
	for _, np := range p.NamedPredictors() {
		ps := predSummary{demos: len(np.Predictor.Demos()), instructions: np.Predictor.Signature().Instructions()}
		if own := np.Predictor.LM(); own != nil {
			ps.model = own.Model()
		}
		out[np.Name] = ps
	}
	return out
}

// reportBootstrap says what bootstrapping cost beyond a sequential run: a
// concurrent bootstrap starts an example only while it could still be
// needed, so this is zero unless the error bound stopped one.
func reportBootstrap(s *streams, t teleprompt.BootstrapTotals) {
	if t.Bootstraps == 0 {
		return
	}
	fmt.Fprintf(s.err, "dspex: bootstrapping ran the teacher on %d examples (%d LM calls); %d calls beyond those a sequential run makes\n",
		t.Runs, t.Calls, t.ExtraCalls)
}
