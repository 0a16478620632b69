package mipro

import (
	"context"
	"fmt"
	"slices"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyrand"
	"github.com/dspex/dspex/core/teleprompt"
)

// demoSets is DSPy's create_n_fewshot_demo_sets: per predictor, the
// zero-shot set, the labeled-only set, an unshuffled bootstrap, and
// numDemos−3 bootstraps of the training set shuffled by the shared RNG,
// each with rng.randint(1, maxBoot) bootstrapped demos. A zero-shot
// optimization still builds them (3 bootstrapped, 0 labeled) for the
// proposer to read.
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
	bootstrap := func(size int) *teleprompt.BootstrapFewShot {
		return &teleprompt.BootstrapFewShot{Metric: c.Metric, MetricThreshold: c.MetricThreshold, MaxBootstrappedDemos: size,
			MaxLabeledDemos: labeled, MaxErrors: r.s.maxErrors, Teacher: c.Teacher}
	}
	preds := r.program.NamedPredictors()
	out := make([][][]example.Example, len(preds))
	var prev module.Program
	total := r.s.numDemos
	for seed := -3; seed < r.s.numDemos-3; seed++ {
		var prog module.Program
		var err error
		switch {
		case seed == -3:
			prog = r.program.Clone()
			for _, np := range prog.NamedPredictors() {
				np.Predictor.SetDemos(nil)
			}
		case seed == -2 && maxLabeled > 0:
			prog, err = (&teleprompt.LabeledFewShot{K: maxLabeled}).Compile(ctx, r.program, r.train)
		case seed == -2:
			prog = prev // DSPy keeps the previous set's program
		case seed == -1:
			prog, err = bootstrap(maxBoot).Compile(ctx, r.program, r.train)
		default:
			train := slices.Clone(r.train)
			pyrand.Shuffle(r.rng, train)
			size, rerr := r.rng.Randint(1, maxBoot)
			if rerr != nil {
				return nil, fmt.Errorf("%w: demo set size: %v", ErrConfig, rerr)
			}
			prog, err = bootstrap(size).Compile(ctx, r.program, train)
		}
		if err != nil {
			return nil, fmt.Errorf("mipro: demo set %d of %d: %w", seed+4, total, err)
		}
		for i, np := range prog.NamedPredictors() {
			out[i] = append(out[i], np.Predictor.Demos())
		}
		prev = prog
		progress(ctx, "mipro: demo sets", seed+4, total)
	}
	return out, nil
}
