package mipro

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyrand"
	"github.com/dspex/dspex/core/teleprompt"
)

// maxDemoSetsInFlight bounds the demo sets bootstrapped at once (each
// bootstraps up to 8 examples at once).
const maxDemoSetsInFlight = 4

// demoSets is DSPy's create_n_fewshot_demo_sets: per predictor, the
// zero-shot set, the labeled-only set, an unshuffled bootstrap, and
// numDemos−3 bootstraps of the training set shuffled by the shared RNG,
// each with rng.randint(1, maxBoot) bootstrapped demos. A zero-shot
// optimization still builds them (3 bootstrapped, 0 labeled) for the
// proposer to read.
//
// DSPy builds the sets one after another; DSPEx makes the random draws
// first, in DSPy's order, then builds the sets concurrently.
func (r *run) demoSets(ctx context.Context) ([][][]example.Example, error) {
	maxBoot, maxLabeled := r.s.maxBoot, r.s.maxLabeled
	if r.s.zeroShot {
		maxBoot, maxLabeled = bootstrappedInContext, labeledInContext
	}
	c := r.o.cfg
	labeled := maxLabeled
	if labeled == 0 {
		labeled = -1 // teleprompt: negative means none
	}
	maxErrors := r.s.maxErrors
	if maxErrors < 0 {
		// BootstrapFewShot has no "never"; no run counts this many.
		maxErrors = math.MaxInt
	}
	bootstrap := func(size int) *teleprompt.BootstrapFewShot {
		return &teleprompt.BootstrapFewShot{Metric: c.Metric, MetricThreshold: c.MetricThreshold, MaxBootstrappedDemos: size,
			MaxLabeledDemos: labeled, MaxErrors: maxErrors, Teacher: withTimeout(c.Teacher, c.Timeout)}
	}
	// The random draws first, in DSPy's order (each shuffled set's shuffle,
	// then its size); then the sets are built at once, at most
	// maxDemoSetsInFlight at a time.
	type job struct {
		train []example.Example
		size  int
	}
	var jobs []job
	for seed := 0; seed < r.s.numDemos-3; seed++ {
		train := slices.Clone(r.train)
		pyrand.Shuffle(r.rng, train)
		size, err := r.rng.Randint(1, maxBoot)
		if err != nil {
			return nil, fmt.Errorf("%w: demo set size: %v", ErrConfig, err)
		}
		jobs = append(jobs, job{train, size})
	}
	total := max(r.s.numDemos, 1)
	progs := make([]module.Program, total)
	errs := make([]error, total)
	build := func(i int) {
		seed := i - 3
		switch {
		case seed == -3:
			prog := r.program.Clone()
			for _, np := range prog.NamedPredictors() {
				np.Predictor.SetDemos(nil)
			}
			progs[i] = prog
		case seed == -2 && maxLabeled > 0:
			progs[i], errs[i] = (&teleprompt.LabeledFewShot{K: maxLabeled}).Compile(ctx, r.program, r.train)
		case seed == -2:
			// DSPy keeps the previous set's program: the zero-shot one.
		case seed == -1:
			progs[i], errs[i] = bootstrap(maxBoot).Compile(ctx, r.program, r.train)
		default:
			progs[i], errs[i] = bootstrap(jobs[seed].size).Compile(ctx, r.program, jobs[seed].train)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxDemoSetsInFlight)
	for i := range total {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			build(i)
			progress(ctx, "mipro: demo sets", i+1, total)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([][][]example.Example, len(r.program.NamedPredictors()))
	for i, prog := range progs {
		if errs[i] != nil {
			return nil, fmt.Errorf("mipro: demo set %d of %d: %w", i+1, total, errs[i])
		}
		if prog == nil {
			prog = progs[i-1]
		}
		for pi, np := range prog.NamedPredictors() {
			out[pi] = append(out[pi], np.Predictor.Demos())
		}
	}
	// One event per candidate, in candidate order (the sets were built
	// concurrently).
	if event.Enabled(ctx, event.OptimizerDemoSet) {
		for pi, np := range r.program.NamedPredictors() {
			for i, set := range out[pi] {
				demos := make([]any, len(set))
				for j, d := range set {
					demos[j] = d.Object()
				}
				publish(ctx, event.OptimizerDemoSet, &event.OptimizerDemoSetInfo{Optimizer: Name, Predictor: np.Name, Index: i,
					Source: demoSetSource(i, maxLabeled), Demos: demos})
			}
		}
	}
	return out, nil
}

// demoSetSource says how demo set i was made.
func demoSetSource(i, maxLabeled int) string {
	switch {
	case i == 0, i == 1 && maxLabeled <= 0:
		return "zero_shot"
	case i == 1:
		return "labeled"
	case i == 2:
		return "bootstrap"
	}
	return "bootstrap_shuffled"
}
