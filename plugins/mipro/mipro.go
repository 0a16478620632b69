package mipro

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyrand"
	"github.com/dspex/dspex/plugins/sampler"
)

// Name is the optimizer's name in events, as DSPy spells it.
const Name = "MIPROv2"

// Auto is a run mode: how many candidates and trials, and how large a
// validation set, DSPy's `auto` setting picks.
type Auto string

const (
	// Light: 6 candidates, a validation set of at most 100.
	Light Auto = "light"
	// Medium: 12 candidates, at most 300.
	Medium Auto = "medium"
	// Heavy: 18 candidates, at most 1000.
	Heavy Auto = "heavy"
	// Off: NumCandidates and NumTrials say how much to search (DSPy's
	// auto=None).
	Off Auto = "off"
)

// autoSettings is DSPy's AUTO_RUN_SETTINGS.
var autoSettings = map[Auto]struct{ n, valSize int }{
	Light:  {6, 100},
	Medium: {12, 300},
	Heavy:  {18, 1000},
}

// DSPy's constants.
const (
	// DefaultSeed is MIPROv2's default seed.
	DefaultSeed = 9
	// DefaultMinibatchSize is compile's minibatch_size.
	DefaultMinibatchSize = 35
	// DefaultMinibatchFullEvalSteps is compile's minibatch_full_eval_steps.
	DefaultMinibatchFullEvalSteps = 5
	// minMinibatchSize: in an auto mode, minibatches are used only for a
	// validation set larger than this (MIN_MINIBATCH_SIZE).
	minMinibatchSize = 50
	// bootstrappedInContext and labeledInContext are the demo limits of a
	// zero-shot optimization's demo sets, which only the proposer sees.
	bootstrappedInContext = 3
	labeledInContext      = 0
	defaultViewDataBatch  = 10
)

// Errors for errors.Is.
var (
	// ErrConfig: the settings contradict each other (DSPy's ValueErrors).
	ErrConfig = errors.New("mipro: invalid configuration")
	// ErrData: the training or validation set cannot be used.
	ErrData = errors.New("mipro: invalid data")
	// ErrSpace: the search space cannot hold the trials asked for.
	ErrSpace = errors.New("mipro: search space too small")
	// ErrResume: Config.Resume is not a log of this optimization.
	ErrResume = errors.New("mipro: resume log does not match")
	// ErrSampler: the sampler answered outside the search space, or out of
	// order.
	ErrSampler = errors.New("mipro: bad sampler answer")
)

// Sampler is what the search needs from the sampler plugin;
// *sampler.Client implements it.
type Sampler interface {
	CreateStudy(ctx context.Context, cfg sampler.StudyConfig) (string, error)
	Ask(ctx context.Context, study string) (sampler.Trial, error)
	Tell(ctx context.Context, study string, number int64, value float64, state sampler.State) error
	Replay(ctx context.Context, study string, trials []sampler.PastTrial) (int64, error)
	Rebuild(ctx context.Context, cfg sampler.StudyConfig, history []sampler.PastTrial) error
}

var _ Sampler = (*sampler.Client)(nil)

// FusedSampler is a Sampler whose asks and replays carry the study's other
// changes (sampler.Client.AskAfter and ReplayAfter); *sampler.Client is
// one. With one, the search tells each trial (and adds each full
// evaluation) in the round trip of the next ask, or of its last replay:
// the same calls on the study, in the same order, in half the round trips.
// With a plain Sampler each change is a call of its own, made at once.
type FusedSampler interface {
	Sampler
	AskAfter(ctx context.Context, study string, before []sampler.Op) (sampler.Trial, error)
	ReplayAfter(ctx context.Context, study string, before []sampler.Op, trials []sampler.PastTrial) (int64, error)
}

var _ FusedSampler = (*sampler.Client)(nil)

// Config configures MIPROv2. Its zero value, with a Metric and a Sampler,
// is DSPy's default MIPROv2 (auto "light", seed 9).
type Config struct {
	// Metric scores predictions; required.
	Metric metric.Metric
	// MetricThreshold, when set, is the score a bootstrapped run must reach.
	MetricThreshold *float64
	// Sampler asks and tells the study; required (sampler.Open).
	Sampler Sampler
	// SamplerName is the plugin's sampler ("tpe", "random", ...); default
	// the plugin's (TPE, multivariate, as DSPy).
	SamplerName string
	// SamplerOptions are further sampler options (sampler.StudyConfig).
	SamplerOptions map[string]string
	// StudyID names the study; default "mipro-<seed>".
	StudyID string
	// Auto picks the amount of search. Default Light, unless NumCandidates
	// or NumTrials is set, which means Off.
	Auto Auto
	// NumCandidates is how many instructions and demo sets to propose per
	// predictor when Auto is Off (DSPy's num_candidates).
	NumCandidates int
	// NumTrials is how many sampled trials to run when Auto is Off.
	NumTrials int
	// Minibatch evaluates trials on minibatches (when Auto is Off; an auto
	// mode uses them for validation sets larger than 50, as DSPy).
	// Default true; set NoMinibatch to turn it off.
	NoMinibatch bool
	// MinibatchSize is each trial's minibatch; default 35.
	MinibatchSize int
	// MinibatchFullEvalSteps: the best candidate so far is fully evaluated
	// after every this many trials; default 5.
	MinibatchFullEvalSteps int
	// MaxBootstrappedDemos and MaxLabeledDemos bound each demo set;
	// default 4 each. ZeroShot sets both to 0 (instructions only).
	MaxBootstrappedDemos int
	MaxLabeledDemos      int
	ZeroShot             bool
	// Seed seeds every random choice; 0 means DefaultSeed (9), as DSPy's
	// `seed or self.seed`.
	Seed int64
	// PromptModel proposes instructions; default the context's LM.
	PromptModel lm.LM
	// TaskModel runs the program; default the context's LM.
	TaskModel lm.LM
	// Teacher bootstraps the demos; default the student.
	Teacher module.Program
	// InitTemperature is the proposer's temperature; default 1.0.
	InitTemperature float64
	// ViewDataBatchSize is how many training examples each dataset summary
	// call sees; default 10.
	ViewDataBatchSize int
	// MaxErrors bounds failures while bootstrapping and in each
	// evaluation; default 10 (DSPy's max_errors); negative means never
	// stop for errors (failed examples still score 0).
	MaxErrors int
	// Timeout bounds each run of the program on one example, in
	// bootstrapping and in every evaluation (the CLI's --timeout); the run
	// then fails, and counts as an error. Default none.
	Timeout time.Duration
	// Concurrency bounds the examples of one evaluation run at once;
	// default 16.
	Concurrency int
	// TrialsInFlight is how many trials are asked and evaluated at once;
	// default 1 (DSPy's sequence). Trials in flight never cross a full
	// evaluation. TPE proposes each without the others' results; its
	// constant liar (on by default in Optuna 5; SamplerOptions
	// "constant_liar") keeps it from proposing the same trial k times.
	TrialsInFlight int
	// Resume is the trial log of an interrupted run of the same
	// optimization (the same program, data, settings and seed; read back
	// from trial events with TrialFromRecord). Its trials are not evaluated
	// again: each is added to the study under its number with its logged
	// score, and the run goes on after the last. The demo sets and
	// instructions are made again, so they are those of the interrupted
	// run only with a deterministic or cached LM.
	Resume []Trial
	// SamplerRetry bounds how long a sampler call waits for a restarting
	// plugin; default 2 minutes.
	SamplerRetry time.Duration
}

// Optimizer runs MIPROv2. A run reads the Optimizer and never changes it.
type Optimizer struct {
	cfg Config
}

// Option sets a Config field.
type Option func(*Config)

// New returns an optimizer with cfg's settings, changed by opts.
func New(cfg Config, opts ...Option) *Optimizer {
	for _, o := range opts {
		o(&cfg)
	}
	return &Optimizer{cfg: cfg}
}

// WithAuto sets the run mode.
func WithAuto(a Auto) Option { return func(c *Config) { c.Auto = a } }

// WithSeed sets the seed.
func WithSeed(seed int64) Option { return func(c *Config) { c.Seed = seed } }

// WithTrialsInFlight sets how many trials run at once.
func WithTrialsInFlight(k int) Option { return func(c *Config) { c.TrialsInFlight = k } }

// TrialKind says what a trial evaluated.
type TrialKind string

const (
	// Baseline: the unmodified program, fully evaluated.
	Baseline TrialKind = "baseline"
	// Sampled: a trial the sampler proposed (on a minibatch, or the full
	// validation set without minibatches).
	Sampled TrialKind = "sampled"
	// FullEval: the best-averaging sampled candidate, fully evaluated.
	FullEval TrialKind = "full_eval"
)

// Trial is one trial of the study, in the trial log.
type Trial struct {
	// Number is the study's trial number (the baseline is 0).
	Number int64
	Kind   TrialKind
	// Params are the chosen indices by DSPy's parameter names
	// ("0_predictor_instruction", "0_predictor_demos", ...).
	Params map[string]int
	// Score is the evaluation's score (a percentage, as DSPy's Evaluate).
	Score float64
	// Minibatch reports a score over BatchSize examples, not all.
	Minibatch bool
	BatchSize int
	// Error is why the evaluation failed (it then scores 0, as DSPy).
	Error string
	// Resumed reports a trial taken from Config.Resume, not evaluated.
	Resumed bool
}

// TrialFromRecord reads a trial back from an optimizer.trial event of this
// optimizer (its trial number, candidate record, score and minibatch flag),
// for Config.Resume; false when the record is not one of MIPROv2's trials.
func TrialFromRecord(number int, candidate json.RawMessage, score float64, minibatch bool) (Trial, bool) {
	var rec struct {
		Kind      TrialKind      `json:"kind"`
		Params    map[string]int `json:"params"`
		BatchSize int            `json:"batch_size"`
		Error     string         `json:"error"`
	}
	if json.Unmarshal(candidate, &rec) != nil || rec.Params == nil {
		return Trial{}, false
	}
	switch rec.Kind {
	case Baseline, Sampled, FullEval:
	default:
		return Trial{}, false
	}
	return Trial{Number: int64(number), Kind: rec.Kind, Params: rec.Params, Score: score, Minibatch: minibatch,
		BatchSize: rec.BatchSize, Error: rec.Error}, true
}

// Proposal is a proposed instruction.
type Proposal struct {
	Predictor   int
	Index       int
	Instruction string
	// Tip is the key of the tip drawn (DSPy's TIPS); RolloutID the
	// rollout id drawn for the proposal's calls. Candidate 0 draws both too,
	// as DSPy does, though it keeps the original instruction.
	Tip       string
	RolloutID string
	// Fallback is why the original instruction stands in for the
	// proposal (the prompt model failed or answered nothing usable).
	Fallback string
}

// Result is a finished optimization.
type Result struct {
	// Program is the best fully evaluated program, Score its score.
	Program module.Program
	Score   float64
	// Trials is the trial log, in trial-number order.
	Trials []Trial
	// Instructions are the instruction candidates per predictor (0 is the
	// original); DemoSets the demo-set candidates per predictor (nil when
	// zero-shot).
	Instructions [][]string
	DemoSets     [][][]example.Example
	Proposals    []Proposal
	// DatasetSummary is the prompt model's summary of the training set;
	// SummaryError why there is none (the proposals then go without, as
	// DSPy's).
	DatasetSummary string
	SummaryError   string
	// Settings in effect.
	NumTrials  int
	Minibatch  bool
	ValsetSize int
	// Rebuilds counts study rebuilds after plugin restarts.
	Rebuilds int
}

// settings are Config resolved as DSPy resolves compile's arguments.
type settings struct {
	auto                  Auto
	numInstruct, numDemos int
	numTrials             int
	minibatch             bool
	minibatchSize         int
	fullEvalSteps         int
	maxBoot, maxLabeled   int
	zeroShot              bool
	seed                  int64
	temperature           float64
	viewBatch, maxErrors  int
	concurrency, inFlight int
	samplerRetry          time.Duration
}

func (o *Optimizer) settings(predictors int) (settings, error) {
	c := o.cfg
	s := settings{
		auto: c.Auto, maxBoot: c.MaxBootstrappedDemos, maxLabeled: c.MaxLabeledDemos, seed: c.Seed,
		minibatch: !c.NoMinibatch, minibatchSize: c.MinibatchSize, fullEvalSteps: c.MinibatchFullEvalSteps,
		temperature: c.InitTemperature, viewBatch: c.ViewDataBatchSize, maxErrors: c.MaxErrors,
		concurrency: c.Concurrency, inFlight: c.TrialsInFlight, samplerRetry: c.SamplerRetry,
	}
	if s.auto == "" {
		s.auto = Light
		if c.NumCandidates > 0 || c.NumTrials > 0 {
			s.auto = Off
		}
	}
	if s.maxBoot <= 0 {
		s.maxBoot = 4
	}
	if s.maxLabeled <= 0 {
		s.maxLabeled = 4
	}
	if c.ZeroShot {
		s.maxBoot, s.maxLabeled = 0, 0
	}
	s.zeroShot = s.maxBoot == 0 && s.maxLabeled == 0
	if s.seed == 0 {
		s.seed = DefaultSeed
	}
	if s.minibatchSize <= 0 {
		s.minibatchSize = DefaultMinibatchSize
	}
	if s.fullEvalSteps <= 0 {
		s.fullEvalSteps = DefaultMinibatchFullEvalSteps
	}
	if s.temperature == 0 {
		s.temperature = 1.0
	}
	if s.viewBatch <= 0 {
		s.viewBatch = defaultViewDataBatch
	}
	if s.maxErrors == 0 {
		s.maxErrors = evaluate.DefaultMaxErrors
	}
	if s.concurrency <= 0 {
		s.concurrency = 16
	}
	if s.inFlight <= 0 {
		s.inFlight = 1
	}
	if s.samplerRetry <= 0 {
		s.samplerRetry = 2 * time.Minute
	}
	switch s.auto {
	case Off:
		if c.NumCandidates <= 0 {
			return s, fmt.Errorf("%w: auto is off, so NumCandidates must be set", ErrConfig)
		}
		if c.NumTrials <= 0 {
			return s, fmt.Errorf("%w: auto is off, so NumTrials must be set (about %d for %d candidates)",
				ErrConfig, NumTrialsFor(predictors, s.zeroShot, c.NumCandidates), c.NumCandidates)
		}
		s.numInstruct, s.numDemos, s.numTrials = c.NumCandidates, c.NumCandidates, c.NumTrials
	case Light, Medium, Heavy:
		if c.NumCandidates > 0 || c.NumTrials > 0 {
			return s, fmt.Errorf("%w: auto %q sets the candidates and trials; leave NumCandidates and NumTrials unset or set Auto to Off", ErrConfig, s.auto)
		}
		n := autoSettings[s.auto].n
		s.numDemos, s.numInstruct = n, n/2
		if s.zeroShot {
			s.numInstruct = n
		}
		s.numTrials = NumTrialsFor(predictors, s.zeroShot, n)
	default:
		return s, fmt.Errorf("%w: auto %q, want light, medium, heavy or off", ErrConfig, s.auto)
	}
	return s, nil
}

// NumTrialsFor is DSPy's trial count for a number of candidates:
// max(2·M·log2(N), 1.5·N), M the variables (a predictor's instruction, and
// its demo set unless zero-shot).
func NumTrialsFor(predictors int, zeroShot bool, candidates int) int {
	vars := predictors
	if !zeroShot {
		vars *= 2
	}
	return int(math.Max(2*float64(vars)*math.Log2(float64(candidates)), 1.5*float64(candidates)))
}

// Split is DSPy's _set_and_validate_datasets: without a valset, the last
// 80% of the training set (at most 1000 examples) validates and the rest
// trains.
func Split(trainset, valset []example.Example) (train, val []example.Example, err error) {
	if len(trainset) == 0 {
		return nil, nil, fmt.Errorf("%w: the training set is empty", ErrData)
	}
	if valset != nil {
		if len(valset) < 1 {
			return nil, nil, fmt.Errorf("%w: the validation set is empty", ErrData)
		}
		return trainset, valset, nil
	}
	if len(trainset) < 2 {
		return nil, nil, fmt.Errorf("%w: without a validation set the training set needs at least 2 examples, it has %d", ErrData, len(trainset))
	}
	size := min(1000, max(1, int(float64(len(trainset))*0.80)))
	cut := len(trainset) - size
	return trainset[:cut], trainset[cut:], nil
}

// Plan is what a Compile with the optimizer's settings will do on a
// program and data, worked out without calling an LM.
type Plan struct {
	// Auto is the run mode in effect (Off when the counts were given).
	Auto Auto
	// NumTrials is how many sampled trials run.
	NumTrials int
	// InstructionCandidates and DemoSetCandidates are the candidates
	// proposed per predictor (0 demo sets when zero-shot).
	InstructionCandidates, DemoSetCandidates int
	// ZeroShot: instructions only, no demos.
	ZeroShot bool
	// Minibatch reports trials scored on minibatches of MinibatchSize,
	// with a full evaluation every FullEvalSteps trials; otherwise every
	// trial is scored on the whole validation set.
	Minibatch     bool
	MinibatchSize int
	FullEvalSteps int
	// TrainSize and ValSize are the examples that bootstrap and propose,
	// and those that score (after the split and the auto mode's sample).
	TrainSize, ValSize int
	// Seed is the seed in effect.
	Seed int64
}

// Plan checks the settings and the data as Compile does before its first
// LM call, and says what Compile will do: the errors are Compile's
// (ErrConfig, ErrData). valset nil splits the training set as DSPy.
func (o *Optimizer) Plan(program module.Program, trainset, valset []example.Example) (Plan, error) {
	preds := program.NamedPredictors()
	if len(preds) == 0 {
		return Plan{}, fmt.Errorf("%w: the program has no predictors", ErrConfig)
	}
	s, err := o.settings(len(preds))
	if err != nil {
		return Plan{}, err
	}
	train, val, err := Split(trainset, valset)
	if err != nil {
		return Plan{}, err
	}
	if len(train) == 0 {
		return Plan{}, fmt.Errorf("%w: no training examples left after the validation split (%d examples)", ErrData, len(trainset))
	}
	valSize := len(val)
	if s.auto != Off {
		valSize = min(autoSettings[s.auto].valSize, valSize)
		s.minibatch = valSize > minMinibatchSize
	}
	if s.minibatch && s.minibatchSize > valSize {
		return Plan{}, fmt.Errorf("%w: minibatch size %d exceeds the validation set (%d examples)", ErrConfig, s.minibatchSize, valSize)
	}
	p := Plan{Auto: s.auto, NumTrials: s.numTrials, InstructionCandidates: s.numInstruct, DemoSetCandidates: s.numDemos,
		ZeroShot: s.zeroShot, Minibatch: s.minibatch, MinibatchSize: s.minibatchSize,
		FullEvalSteps: s.fullEvalSteps, TrainSize: len(train), ValSize: valSize, Seed: s.seed}
	if s.zeroShot {
		p.DemoSetCandidates = 0
	}
	return p, nil
}

// Compile optimizes a copy of program (never changed) and returns the best
// program with the trial log. valset nil splits the training set as DSPy.
// The task model runs every evaluation and bootstrap (Config.TaskModel, else
// the context's LM).
func (o *Optimizer) Compile(ctx context.Context, program module.Program, trainset, valset []example.Example) (*Result, error) {
	c := o.cfg
	if c.Metric == nil {
		return nil, fmt.Errorf("%w: a metric is required", ErrConfig)
	}
	if c.Sampler == nil {
		return nil, fmt.Errorf("%w: a sampler is required (sampler.Open)", ErrConfig)
	}
	preds := program.NamedPredictors()
	if len(preds) == 0 {
		return nil, fmt.Errorf("%w: the program has no predictors", ErrConfig)
	}
	s, err := o.settings(len(preds))
	if err != nil {
		return nil, err
	}
	train, val, err := Split(trainset, valset)
	if err != nil {
		return nil, err
	}
	if len(train) == 0 {
		return nil, fmt.Errorf("%w: no training examples left after the validation split (%d examples)", ErrData, len(trainset))
	}
	rng := pyrand.New(s.seed)
	if s.auto != Off {
		val, err = pyrand.Sample(rng, val, min(autoSettings[s.auto].valSize, len(val)))
		if err != nil {
			return nil, fmt.Errorf("mipro: sample the validation set: %w", err)
		}
		s.minibatch = len(val) > minMinibatchSize
	}
	if s.minibatch && s.minibatchSize > len(val) {
		return nil, fmt.Errorf("%w: minibatch size %d exceeds the validation set (%d examples)", ErrConfig, s.minibatchSize, len(val))
	}
	taskCtx, promptCtx := ctx, ctx
	if c.TaskModel != nil {
		taskCtx = module.WithLM(ctx, c.TaskModel)
	}
	if c.PromptModel != nil {
		promptCtx = module.WithLM(ctx, c.PromptModel)
	}
	publish(ctx, event.OptimizerStart, &event.OptimizerInfo{Optimizer: Name, Config: map[string]any{
		"auto": string(s.auto), "num_trials": s.numTrials, "num_instruct_candidates": s.numInstruct,
		"num_fewshot_candidates": s.numDemos, "minibatch": s.minibatch, "minibatch_size": s.minibatchSize,
		"minibatch_full_eval_steps": s.fullEvalSteps, "max_bootstrapped_demos": s.maxBoot,
		"max_labeled_demos": s.maxLabeled, "seed": s.seed, "valset": len(val), "trainset": len(train),
		"metric": c.Metric.Name(), "trials_in_flight": s.inFlight,
	}})
	r := &run{o: o, s: s, rng: rng, program: withTimeout(program.Clone(), c.Timeout), train: train, val: val}
	res, err := r.compile(taskCtx, promptCtx)
	if err == nil {
		res.Program = withoutTimeout(res.Program)
	}
	end := &event.OptimizerInfo{Optimizer: Name}
	if err != nil {
		end.Error = err.Error()
	} else {
		end.BestScore = &res.Score
	}
	publish(ctx, event.OptimizerEnd, end)
	return res, err
}

type run struct {
	o          *Optimizer
	s          settings
	rng        *pyrand.Rand
	program    module.Program
	train, val []example.Example
}

func (r *run) compile(taskCtx, promptCtx context.Context) (*Result, error) {
	progress(taskCtx, "mipro: demo sets", 0, 1)
	demos, err := r.demoSets(taskCtx)
	if err != nil {
		return nil, err
	}
	progress(taskCtx, "mipro: demo sets", 1, 1)
	res := &Result{NumTrials: r.s.numTrials, Minibatch: r.s.minibatch, ValsetSize: len(r.val)}
	if err := r.propose(promptCtx, demos, res); err != nil {
		return nil, err
	}
	if !r.s.zeroShot {
		res.DemoSets = demos
	}
	if err := r.search(taskCtx, res); err != nil {
		return nil, err
	}
	return res, nil
}

// timed bounds each Forward of a program by Config.Timeout. The run
// optimizes a timed program, so that every clone the search and the
// bootstraps make, and every evaluation of one, is bounded too; Compile
// returns the program inside.
type timed struct {
	module.Program
	timeout time.Duration
}

// withTimeout returns p bounded by d, or p when d is not positive.
func withTimeout(p module.Program, d time.Duration) module.Program {
	if d <= 0 || p == nil {
		return p
	}
	return &timed{Program: p, timeout: d}
}

// withoutTimeout returns the program inside a timed one.
func withoutTimeout(p module.Program) module.Program {
	if t, ok := p.(*timed); ok {
		return t.Program
	}
	return p
}

func (t *timed) Forward(ctx context.Context, inputs module.Inputs) (*example.Prediction, error) {
	tctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	pred, err := t.Program.Forward(tctx, inputs)
	if err != nil && ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("mipro: timed out after %v: %w", t.timeout, err)
		}
		// The program reported the deadline in its own terms.
		return nil, fmt.Errorf("mipro: timed out after %v: %w (%w)", t.timeout, err, context.DeadlineExceeded)
	}
	return pred, err
}

func (t *timed) Clone() module.Program { return &timed{Program: t.Program.Clone(), timeout: t.timeout} }

func publish(ctx context.Context, kind event.Kind, data any) {
	event.Publish(ctx, kind, event.SpanFrom(ctx), data)
}

func progress(ctx context.Context, label string, done, total int) {
	publish(ctx, event.Progress, &event.ProgressInfo{Label: label, Done: done, Total: total})
}
