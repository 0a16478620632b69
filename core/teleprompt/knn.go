package teleprompt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/retrieve"
)

// DefaultKNNK is KNNFewShot's K when none is given. DSPy requires k; 3 is
// the value its documentation uses.
const DefaultKNNK = 3

// ErrNoEmbedder is returned by KNNFewShot.Compile without an Embedder.
var ErrNoEmbedder = errors.New("teleprompt: knn: an embedder is required")

// KNNFewShot is DSPy's KNNFewShot: the program it compiles finds, on every
// call, the K training examples nearest to the call's inputs and runs a
// BootstrapFewShot over just those neighbours to pick that call's demos.
//
// Compile embeds the training set once, each example as the text of its
// input fields ("key: value" pairs joined by " | ", as DSPy's KNN writes
// them). Every call of the compiled program then costs one embedding of
// its inputs, a bootstrap — up to K runs of the teacher (times MaxRounds),
// stopping after MaxBootstrappedDemos successes — and the call itself: as
// in DSPy, up to K+1 program runs per call instead of one. An LM cache
// makes the teacher runs on neighbours seen before cheap.
//
// The fields after Embedder are BootstrapFewShot's, passed through to each
// call's bootstrap with that type's defaults.
type KNNFewShot struct {
	// K is how many nearest training examples each call bootstraps from;
	// default DefaultKNNK (3).
	K int
	// Embedder embeds training examples and call inputs; required.
	// Neighbours are the examples whose vectors have the highest cosine
	// similarity to the call's (DSPy takes a dot product, the same for the
	// unit-length vectors sentence embedders return).
	Embedder lm.Embedder
	// Metric accepts a teacher run as a demo. Nil accepts every run that
	// does not fail, as DSPy's BootstrapFewShot does without a metric.
	Metric metric.Metric
	// MetricThreshold, when set with a Metric, is the score a run must
	// reach; otherwise any score above 0 is kept.
	MetricThreshold *float64
	// MaxBootstrappedDemos bounds the bootstrapped demos per predictor;
	// default 4.
	MaxBootstrappedDemos int
	// MaxLabeledDemos bounds all demos per predictor; default 16; negative
	// means none beyond the bootstrapped ones.
	MaxLabeledDemos int
	// MaxRounds is how many attempts a neighbour gets; default 1.
	MaxRounds int
	// MaxErrors fails a call's bootstrap after this many failed teacher
	// runs; default 10.
	MaxErrors int
	// Teacher runs the neighbours; default a LabeledFewShot copy of the
	// student over the neighbours.
	Teacher module.Program
	// TeacherLM, when set, is the LM the teacher's calls use.
	TeacherLM lm.LM
	// Concurrency bounds neighbours bootstrapped at once within one call;
	// default 8. The demos chosen are those of a sequential pass either
	// way (see BootstrapFewShot); concurrency only shortens a call.
	Concurrency int
	// Seed seeds the labeled sampling; default 0.
	Seed int64
}

var _ Optimizer = (*KNNFewShot)(nil)

// Name returns "KNNFewShot".
func (*KNNFewShot) Name() string { return "KNNFewShot" }

func (o *KNNFewShot) bootstrapper() BootstrapFewShot {
	b := BootstrapFewShot{
		Metric: o.Metric, MetricThreshold: o.MetricThreshold,
		MaxBootstrappedDemos: o.MaxBootstrappedDemos, MaxLabeledDemos: o.MaxLabeledDemos,
		MaxRounds: o.MaxRounds, MaxErrors: o.MaxErrors, Teacher: o.Teacher, TeacherLM: o.TeacherLM,
		Concurrency: o.Concurrency, Seed: o.Seed,
	}
	if b.Metric == nil {
		b.Metric, b.MetricThreshold = acceptAll{}, nil
	}
	return b
}

// acceptAll is the metric of a bootstrap without one: every run that
// finishes is a demo.
type acceptAll struct{}

func (acceptAll) Name() string { return "accept_all" }

func (acceptAll) Score(context.Context, example.Example, *example.Prediction) (metric.Result, error) {
	return metric.Result{Score: 1}, nil
}

// Compile embeds the training set and returns a *KNNProgram wrapping a
// demo-less copy of student. Every training example must have its inputs
// marked (example.WithInputs), since only they are embedded.
func (o *KNNFewShot) Compile(ctx context.Context, student module.Program, trainset []example.Example) (module.Program, error) {
	k := o.K
	if k <= 0 {
		k = DefaultKNNK
	}
	boot := o.bootstrapper()
	cfg := boot.config()
	cfg["k"] = k
	cfg["trainset"] = len(trainset)
	if o.Metric == nil {
		delete(cfg, "metric")
	}
	if o.Embedder != nil {
		cfg["embedder"] = o.Embedder.EmbeddingModel()
	}
	publishStart(ctx, o.Name(), cfg)
	out, err := o.compile(ctx, student, trainset, k)
	publishEnd(ctx, o.Name(), nil, err)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (o *KNNFewShot) compile(ctx context.Context, student module.Program, trainset []example.Example, k int) (*KNNProgram, error) {
	if o.Embedder == nil {
		return nil, ErrNoEmbedder
	}
	if len(trainset) == 0 {
		return nil, errors.New("teleprompt: knn: the training set is empty")
	}
	// The order in which input keys are written: as the examples mark
	// them, first seen first.
	var keys []string
	for i, ex := range trainset {
		if !ex.HasInputs() {
			return nil, fmt.Errorf("teleprompt: knn: training example %d has no input keys marked (use WithInputs)", i)
		}
		for _, key := range ex.InputKeys() {
			if !slices.Contains(keys, key) {
				keys = append(keys, key)
			}
		}
	}
	passages := make([]retrieve.Passage, len(trainset))
	for i, ex := range trainset {
		passages[i] = retrieve.Passage{ID: strconv.Itoa(i), Text: knnText(keys, ex.Inputs())}
	}
	index := retrieve.NewIndex(o.Embedder)
	if err := index.Add(ctx, passages...); err != nil {
		return nil, fmt.Errorf("teleprompt: knn: embed %d training examples: %w", len(trainset), err)
	}
	return &KNNProgram{
		student:  resetCopy(student),
		index:    index,
		trainset: slices.Clone(trainset),
		keys:     keys,
		k:        k,
		boot:     o.bootstrapper(),
	}, nil
}

// knnText writes a field map as DSPy's KNN does: "key: value" pairs joined
// by " | ", values as Python's str() writes them. Keys follow order; keys
// not in it follow, sorted.
func knnText(order []string, fields map[string]any) string {
	var parts []string
	add := func(key string) {
		parts = append(parts, key+": "+pyjson.Str(fields[key]))
	}
	for _, key := range order {
		if _, ok := fields[key]; ok {
			add(key)
		}
	}
	var rest []string
	for key := range fields {
		if !slices.Contains(order, key) {
			rest = append(rest, key)
		}
	}
	slices.Sort(rest)
	for _, key := range rest {
		add(key)
	}
	return strings.Join(parts, " | ")
}

// KNNProgram is the program KNNFewShot compiles: a demo-less copy of the
// student whose every call bootstraps demos from the call's nearest
// training examples (see KNNFewShot for the cost). Its predictors are the
// copy's, so optimizers and state files see and change the student's
// instructions; each call's demos live only in that call's program. (DSPy
// bootstraps each call from the student as it was compiled; here it is
// this copy, so that instructions set on it, by COPRO or a state file,
// take effect.) Built by KNNFewShot.Compile; safe for concurrent use.
type KNNProgram struct {
	student  module.Program
	index    *retrieve.Index // shared by clones; never changed after Compile
	trainset []example.Example
	keys     []string
	k        int
	boot     BootstrapFewShot
}

var _ module.Program = (*KNNProgram)(nil)

// NamedPredictors returns the wrapped student's predictors.
func (p *KNNProgram) NamedPredictors() []module.NamedPredictor {
	return p.student.NamedPredictors()
}

// Clone returns a copy with its own copy of the student; the embedded
// training set is shared.
func (p *KNNProgram) Clone() module.Program {
	c := *p
	c.student = p.student.Clone()
	return &c
}

// K returns how many neighbours each call uses.
func (p *KNNProgram) K() int { return p.k }

// Neighbors returns the K training examples nearest to inputs, nearest
// first (equal similarities keep training-set order).
func (p *KNNProgram) Neighbors(ctx context.Context, inputs module.Inputs) ([]example.Example, error) {
	hits, err := p.index.Search(ctx, knnText(p.keys, inputs), p.k)
	if err != nil {
		return nil, fmt.Errorf("teleprompt: knn: find neighbours: %w", err)
	}
	out := make([]example.Example, len(hits))
	for i, h := range hits {
		j, err := strconv.Atoi(h.Passage.ID)
		if err != nil || j < 0 || j >= len(p.trainset) {
			return nil, fmt.Errorf("teleprompt: knn: index returned unknown passage %q", h.Passage.ID)
		}
		out[i] = p.trainset[j]
	}
	return out, nil
}

// ProgramFor returns the program a call with inputs runs: a copy of the
// student with demos bootstrapped from the inputs' neighbours.
func (p *KNNProgram) ProgramFor(ctx context.Context, inputs module.Inputs) (module.Program, error) {
	neighbours, err := p.Neighbors(ctx, inputs)
	if err != nil {
		return nil, err
	}
	prog, err := p.boot.compile(ctx, p.student, neighbours)
	if err != nil {
		return nil, fmt.Errorf("teleprompt: knn: bootstrap from %d neighbours: %w", len(neighbours), err)
	}
	return prog, nil
}

// Forward finds the inputs' neighbours, bootstraps demos from them and runs
// the resulting program.
func (p *KNNProgram) Forward(ctx context.Context, inputs module.Inputs) (*example.Prediction, error) {
	return module.Traced(ctx, "KNNFewShot", nil, inputs, func(ctx context.Context) (*example.Prediction, error) {
		prog, err := p.ProgramFor(ctx, inputs)
		if err != nil {
			return nil, err
		}
		return prog.Forward(ctx, inputs)
	})
}
