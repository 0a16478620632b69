package teleprompt

import (
	"context"
	"fmt"
	"slices"

	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyrand"
)

// RandomSearch is DSPy's BootstrapFewShotWithRandomSearch: it builds
// candidate programs — the zero-shot student (seed -3), a labeled-only
// LabeledFewShot copy (-2), an unshuffled BootstrapFewShot (-1), and
// NumCandidates bootstraps over shuffled training sets with random demo
// counts (seeds 0, 1, ...) — scores each on the validation set, and keeps
// the best (the first best on ties). Candidate seed s shuffles the
// training set and draws its demo count as DSPy does, with
// random.Random(s).shuffle and a fresh random.Random(s).randint(1,
// MaxBootstrappedDemos) (core/pyrand), so it bootstraps from the same
// examples as DSPy's candidate s. Candidates are scored one after
// another (each evaluation is concurrent); finished ones are skipped on
// resume.
type RandomSearch struct {
	Metric metric.Metric
	// MetricThreshold, MaxBootstrappedDemos (default 4), MaxLabeledDemos
	// (default 16), MaxRounds (default 1), Teacher and TeacherLM configure
	// each candidate's BootstrapFewShot.
	MetricThreshold      *float64
	MaxBootstrappedDemos int
	MaxLabeledDemos      int
	MaxRounds            int
	Teacher              module.Program
	TeacherLM            lm.LM
	// NumCandidates is how many shuffled candidates follow the three
	// baselines; default 16.
	NumCandidates int
	// StopAtScore ends the search once a candidate reaches it.
	StopAtScore *float64
	// MaxErrors bounds failures while bootstrapping and evaluating; default 10.
	MaxErrors int
	// Valset scores the candidates; default the training set.
	Valset []example.Example
	// Eval configures the evaluations (concurrency, timeouts).
	Eval evaluate.Options
	// Concurrency bounds examples bootstrapped at once; default 8.
	Concurrency int
	// Resume holds candidates finished by an interrupted run.
	Resume map[string]Finished
}

var _ Optimizer = (*RandomSearch)(nil)

// Name returns "BootstrapFewShotWithRandomSearch".
func (*RandomSearch) Name() string { return "BootstrapFewShotWithRandomSearch" }

// SearchResult is every candidate's score, best first.
type SearchResult struct {
	Best       *Candidate
	Candidates []*Candidate
	// Seeds are the candidates' seeds, in Candidates' order.
	Seeds []int
}

// Compile returns the best candidate program.
func (o *RandomSearch) Compile(ctx context.Context, student module.Program, trainset []example.Example) (module.Program, error) {
	res, err := o.Search(ctx, student, trainset)
	if err != nil {
		return nil, err
	}
	return res.Best.Program, nil
}

// CandidateID names the candidate of a seed, for trials and resume.
func CandidateID(seed int) string { return fmt.Sprintf("seed=%d", seed) }

// Search scores every candidate.
func (o *RandomSearch) Search(ctx context.Context, student module.Program, trainset []example.Example) (*SearchResult, error) {
	if o.Metric == nil {
		return nil, ErrNoMetric
	}
	n := o.NumCandidates
	if n <= 0 {
		n = 16
	}
	maxBoot := o.MaxBootstrappedDemos
	if maxBoot <= 0 {
		maxBoot = 4
	}
	valset := o.Valset
	if len(valset) == 0 {
		valset = trainset
	}
	eval := o.Eval
	if o.MaxErrors > 0 {
		eval.MaxErrors = o.MaxErrors
	}
	cfg := map[string]any{"num_candidates": n, "max_bootstrapped_demos": maxBoot, "max_labeled_demos": o.MaxLabeledDemos,
		"valset": len(valset), "metric": o.Metric.Name()}
	if o.StopAtScore != nil {
		cfg["stop_at_score"] = *o.StopAtScore
	}
	publishStart(ctx, o.Name(), cfg)
	stats, outer := &BootstrapStats{}, bootstrapStatsFrom(ctx)
	ctx = WithBootstrapStats(ctx, stats)
	trials := &Trials{Optimizer: o.Name(), Metric: o.Metric, Valset: valset, Eval: eval, Resume: o.Resume}
	res := &SearchResult{}
	bootstrap := func(maxDemos int) *BootstrapFewShot {
		return &BootstrapFewShot{Metric: o.Metric, MetricThreshold: o.MetricThreshold, MaxBootstrappedDemos: maxDemos,
			MaxLabeledDemos: o.MaxLabeledDemos, MaxRounds: o.MaxRounds, MaxErrors: o.MaxErrors, Teacher: o.Teacher,
			TeacherLM: o.TeacherLM, Concurrency: o.Concurrency}
	}
	var err error
	total := n + 3
	for seed := -3; seed < n; seed++ {
		build := func(ctx context.Context) (module.Program, error) {
			switch seed {
			case -3:
				return resetCopy(student), nil
			case -2:
				if o.MaxLabeledDemos < 0 { // DSPy's LabeledFewShot(k=0)
					return resetCopy(student), nil
				}
				return (&LabeledFewShot{K: o.MaxLabeledDemos}).compile(ctx, student, trainset)
			case -1:
				return bootstrap(maxBoot).compile(ctx, student, trainset)
			}
			// DSPy: random.Random(seed).shuffle(trainset_copy), then
			// size = random.Random(seed).randint(1, max_bootstrapped_demos).
			train := slices.Clone(trainset)
			pyrand.Shuffle(pyrand.New(int64(seed)), train)
			size, err := pyrand.New(int64(seed)).Randint(1, maxBoot)
			if err != nil {
				return nil, err
			}
			return bootstrap(size).compile(ctx, student, train)
		}
		var c *Candidate
		c, err = trials.Run(ctx, CandidateID(seed), student, build)
		if err != nil {
			break
		}
		res.Candidates = append(res.Candidates, c)
		res.Seeds = append(res.Seeds, seed)
		if res.Best == nil || c.Score > res.Best.Score {
			res.Best = c
		}
		progress(ctx, "random search", seed+4, total)
		if o.StopAtScore != nil && c.Score >= *o.StopAtScore {
			break
		}
	}
	var best *float64
	if res.Best != nil {
		best = &res.Best.Score
	}
	tot := stats.Totals()
	outer.add(tot)
	publishEndExtra(ctx, o.Name(), best, err, tot.ExtraCalls)
	if err != nil {
		return nil, err
	}
	return res, nil
}
