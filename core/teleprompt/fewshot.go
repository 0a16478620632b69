package teleprompt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/pyrand"
	"github.com/dspex/dspex/core/signature"
)

// sample returns random.Random-style rng.sample(items, min(k, len(items))):
// k items without replacement, in the order drawn, consuming exactly what
// Python consumes.
func sample[T any](rng *pyrand.Rand, items []T, k int) []T {
	out, _ := pyrand.Sample(rng, items, max(0, min(k, len(items)))) // cannot fail: 0 ≤ k ≤ len(items)
	return out
}

// LabeledFewShot gives every predictor K labeled training examples as
// demos, sampled with a fixed seed (DSPy's LabeledFewShot). With the
// default seed it draws what DSPy draws: one random.Random(0) whose
// sample(trainset, min(K, len(trainset))) gives each predictor its demos,
// predictor after predictor.
type LabeledFewShot struct {
	// K is how many demos each predictor gets; default 16.
	K int
	// NoSample takes the first K examples instead of a random sample.
	NoSample bool
	// Seed seeds the sampling (a CPython random.Random(Seed)); default 0,
	// the seed DSPy always uses.
	Seed int64
}

var _ Optimizer = (*LabeledFewShot)(nil)

// Name returns "LabeledFewShot".
func (*LabeledFewShot) Name() string { return "LabeledFewShot" }

// k is K with its default.
func (o *LabeledFewShot) k() int {
	if o.K <= 0 {
		return 16
	}
	return o.K
}

// Compile returns a copy of student with labeled demos.
func (o *LabeledFewShot) Compile(ctx context.Context, student module.Program, trainset []example.Example) (module.Program, error) {
	publishStart(ctx, o.Name(), map[string]any{"k": o.k(), "sample": !o.NoSample, "seed": o.Seed})
	out, err := o.compile(ctx, student, trainset)
	publishEnd(ctx, o.Name(), nil, err)
	return out, err
}

// BootstrapFewShot runs a teacher program over the training set and keeps
// the traces of the runs the metric accepts as demos ("bootstrapped"
// demos), topped up with labeled examples (DSPy's BootstrapFewShot).
//
// Examples are bootstrapped concurrently, yet the demos chosen are those a
// sequential pass would choose: the first MaxBootstrappedDemos successes in
// training-set order.
//
// Concurrency never costs calls a sequential pass (DSPy's) would not make:
// a sequential pass runs an example only while it has fewer successes than
// MaxBootstrappedDemos, so an example is started only when the successes
// known so far plus the runs still in flight (each of which might succeed)
// are fewer than MaxBootstrappedDemos. Every example started is then one
// the sequential pass runs too, whatever the runs in flight turn out to
// be; the bootstrapping ends with nothing in flight. The speed-up is thus
// at most the demos still needed (and Concurrency). Likewise a sequential
// pass stops when failed runs reach MaxErrors, so an example starts only
// when the failures so far plus the runs in flight are fewer than
// MaxErrors. With MaxRounds 1 (the default) no call is ever made that the
// sequential pass would not make. With more rounds, an example in flight
// may fail several times; when that stops the bootstrapping, the rounds
// and runs the sequential pass would not have reached are counted as extra
// calls (BootstrapStats), cancelled ones included.
type BootstrapFewShot struct {
	// Metric scores the teacher's prediction for a training example.
	Metric metric.Metric
	// MetricThreshold, when set, is the score a run must reach to be kept;
	// otherwise any score above 0 is kept.
	MetricThreshold *float64
	// MaxBootstrappedDemos bounds the bootstrapped demos per predictor;
	// default 4.
	MaxBootstrappedDemos int
	// MaxLabeledDemos bounds all demos per predictor (labeled examples fill
	// what bootstrapping left); default 16; negative means none.
	MaxLabeledDemos int
	// MaxRounds is how many attempts an example gets; rounds after the
	// first use a fresh rollout id at temperature 1.0. Default 1.
	MaxRounds int
	// MaxErrors stops bootstrapping with an error after this many failed
	// runs; default 10.
	MaxErrors int
	// Teacher runs the examples; default a LabeledFewShot copy of the
	// student (when MaxLabeledDemos > 0), else a copy of the student.
	Teacher module.Program
	// TeacherLM, when set, is the LM the teacher's calls use.
	TeacherLM lm.LM
	// Concurrency bounds examples bootstrapped at once; default 8.
	Concurrency int
	// Seed replaces DSPy's fixed seed 0 in the three generators it seeds:
	// the teacher's LabeledFewShot, the shuffle of the examples not
	// bootstrapped and the labeled top-up sample; default 0, DSPy's.
	Seed int64
}

var _ Optimizer = (*BootstrapFewShot)(nil)

// Name returns "BootstrapFewShot".
func (*BootstrapFewShot) Name() string { return "BootstrapFewShot" }

// ErrTooManyErrors is returned when bootstrapping runs fail MaxErrors times.
var ErrTooManyErrors = errors.New("teleprompt: too many errors while bootstrapping")

func (o *BootstrapFewShot) defaults() BootstrapFewShot {
	c := *o
	if c.MaxBootstrappedDemos <= 0 {
		c.MaxBootstrappedDemos = 4
	}
	if c.MaxLabeledDemos == 0 {
		c.MaxLabeledDemos = 16
	}
	if c.MaxLabeledDemos < 0 {
		c.MaxLabeledDemos = 0
	}
	if c.MaxRounds <= 0 {
		c.MaxRounds = 1
	}
	if c.MaxErrors <= 0 {
		c.MaxErrors = 10
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	return c
}

func (o *BootstrapFewShot) config() map[string]any {
	c := o.defaults()
	cfg := map[string]any{
		"max_bootstrapped_demos": c.MaxBootstrappedDemos, "max_labeled_demos": c.MaxLabeledDemos,
		"max_rounds": c.MaxRounds, "max_errors": c.MaxErrors, "seed": c.Seed,
	}
	if c.MetricThreshold != nil {
		cfg["metric_threshold"] = *c.MetricThreshold
	}
	if c.Metric != nil {
		cfg["metric"] = c.Metric.Name()
	}
	return cfg
}

// Compile bootstraps demos for a copy of student.
func (o *BootstrapFewShot) Compile(ctx context.Context, student module.Program, trainset []example.Example) (module.Program, error) {
	publishStart(ctx, o.Name(), o.config())
	stats := &BootstrapStats{}
	out, err := o.compile(WithBootstrapStats(ctx, stats), student, trainset)
	tot := stats.Totals()
	bootstrapStatsFrom(ctx).add(tot)
	publishEndExtra(ctx, o.Name(), nil, err, tot.ExtraCalls)
	return out, err
}

func (o *BootstrapFewShot) compile(ctx context.Context, student module.Program, trainset []example.Example) (module.Program, error) {
	c := o.defaults()
	if c.Metric == nil {
		return nil, ErrNoMetric
	}
	out := resetCopy(student)
	teacher := c.Teacher
	if teacher == nil {
		teacher = student
	}
	teacher = teacher.Clone()
	if c.Teacher == nil && c.MaxLabeledDemos > 0 {
		lf := &LabeledFewShot{K: c.MaxLabeledDemos, Seed: c.Seed}
		var err error
		if teacher, err = lf.compile(ctx, resetCopy(teacher), trainset); err != nil {
			return nil, err
		}
	}
	studentNames := namesOf(out)
	teacherNames := namesOf(teacher)
	if !slices.Equal(studentNames, teacherNames) {
		return nil, fmt.Errorf("teleprompt: student and teacher must have the same structure: predictors %v and %v", studentNames, teacherNames)
	}

	traces, bootstrapped, err := c.bootstrap(ctx, teacher, trainset)
	if err != nil {
		return nil, err
	}

	// The examples not bootstrapped, shuffled, fill the rest as labeled
	// demos. As in DSPy, the shuffle and the samples use two generators of
	// the same seed, and every predictor samples from the whole shuffled
	// list.
	var raw []example.Example
	for i, ex := range trainset {
		if !bootstrapped[i] {
			raw = append(raw, ex)
		}
	}
	pyrand.Shuffle(pyrand.New(c.Seed), raw)
	rng := pyrand.New(c.Seed)
	for _, np := range out.NamedPredictors() {
		augmented := traces[np.Name]
		if len(augmented) > c.MaxBootstrappedDemos {
			augmented = augmented[:c.MaxBootstrappedDemos]
		}
		labeled := sample(rng, raw, c.MaxLabeledDemos-len(augmented))
		np.Predictor.SetDemos(append(slices.Clone(augmented), labeled...))
	}
	return out, nil
}

// compile for LabeledFewShot without events (used inside other optimizers).
func (o *LabeledFewShot) compile(_ context.Context, student module.Program, trainset []example.Example) (module.Program, error) {
	k := o.k()
	out := resetCopy(student)
	rng := pyrand.New(o.Seed)
	for _, np := range out.NamedPredictors() {
		switch {
		case len(trainset) == 0:
		case o.NoSample:
			np.Predictor.SetDemos(trainset[:min(k, len(trainset))])
		default:
			np.Predictor.SetDemos(sample(rng, trainset, k))
		}
	}
	return out, nil
}

func namesOf(p module.Program) []string {
	var names []string
	for _, np := range p.NamedPredictors() {
		names = append(names, np.Name)
	}
	return names
}

// outcome is one training example's bootstrapping result.
type outcome struct {
	ok     bool
	traces map[string][]example.Example
	errs   int
	err    error
	// calls counts LM calls made (through metered LMs: lm.Stack), and
	// rounds each round's calls and whether it failed with an error.
	calls  int
	rounds []roundCost
}

type roundCost struct {
	calls  int
	failed bool
}

// callsAfter counts the calls of the rounds after the one that makes errs
// failures of this example's (0: all of them).
func (o *outcome) callsAfter(errs int) int {
	n := 0
	for _, r := range o.rounds {
		if errs <= 0 {
			n += r.calls
			continue
		}
		if r.failed {
			errs--
		}
	}
	return n
}

// BootstrapStats counts what bootstrapping cost, over every bootstrap run
// under a context that carries it (WithBootstrapStats): BootstrapFewShot
// and the bootstraps inside RandomSearch and KNNFewShot. Safe for
// concurrent use.
type BootstrapStats struct {
	mu sync.Mutex
	t  BootstrapTotals
}

// BootstrapTotals are the sums of a BootstrapStats.
type BootstrapTotals struct {
	// Bootstraps counts bootstrapping passes over a training set; Runs
	// the examples the teacher was started on.
	Bootstraps, Runs int
	// Calls counts the teacher's LM calls, through metered LMs (an
	// lm.Stack); ExtraCalls those of them a sequential pass would not
	// have made: calls of runs past the point where it stops, cancelled
	// or not (only MaxErrors can cause them).
	Calls, ExtraCalls int
}

// Totals returns the sums so far.
func (s *BootstrapStats) Totals() BootstrapTotals {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t
}

func (s *BootstrapStats) add(t BootstrapTotals) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t.Bootstraps += t.Bootstraps
	s.t.Runs += t.Runs
	s.t.Calls += t.Calls
	s.t.ExtraCalls += t.ExtraCalls
}

type bootstrapStatsKey struct{}

// WithBootstrapStats returns a context whose bootstraps add to s.
func WithBootstrapStats(ctx context.Context, s *BootstrapStats) context.Context {
	return context.WithValue(ctx, bootstrapStatsKey{}, s)
}

func bootstrapStatsFrom(ctx context.Context) *BootstrapStats {
	s, _ := ctx.Value(bootstrapStatsKey{}).(*BootstrapStats)
	return s
}

// bootstrap runs the teacher over the training set concurrently and returns
// the demos of the first MaxBootstrappedDemos successes in training-set
// order, by predictor name, and which examples they came from.
func (c BootstrapFewShot) bootstrap(parent context.Context, teacher module.Program, trainset []example.Example) (map[string][]example.Example, map[int]bool, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	results := make([]*outcome, len(trainset))
	// finished marks the results whose completion was received from done,
	// so reading them is ordered after their worker's write.
	finished := make([]bool, len(trainset))
	done := make(chan int, c.Concurrency)
	// successes counts prefix successes; found counts every finished
	// success, in the prefix or after it. Since examples start in order,
	// each one started follows all that finished.
	// failures counts the failed runs of every finished example.
	launched, inflight, prefix, successes, found, errs, failures := 0, 0, 0, 0, 0, 0, 0
	enough, tooMany := false, false
	defer func() {
		t := BootstrapTotals{Bootstraps: 1, Runs: launched}
		for i, r := range results {
			if r == nil || !finished[i] {
				continue
			}
			t.Calls += r.calls
			switch {
			case !tooMany || i < prefix-1:
			case i == prefix-1: // the example whose failure stopped the pass
				t.ExtraCalls += r.callsAfter(c.MaxErrors - (errs - r.errs))
			default:
				t.ExtraCalls += r.calls
			}
		}
		bootstrapStatsFrom(parent).add(t)
	}()
	for {
		for !enough && ctx.Err() == nil && inflight < c.Concurrency && found+inflight < c.MaxBootstrappedDemos &&
			failures+inflight < c.MaxErrors && launched < len(trainset) {
			i := launched
			launched++
			inflight++
			go func() {
				results[i] = c.bootstrapOne(ctx, teacher, trainset[i])
				done <- i
			}()
		}
		if inflight == 0 {
			break
		}
		j := <-done
		finished[j] = true
		inflight--
		if results[j].ok {
			found++
		}
		failures += results[j].errs
		// Walk the finished prefix in order, as a sequential pass would.
		for !enough && errs < c.MaxErrors && prefix < launched && finished[prefix] {
			r := results[prefix]
			errs += r.errs
			if r.ok {
				successes++
				enough = successes >= c.MaxBootstrappedDemos
			}
			prefix++
		}
		progress(parent, "bootstrap", prefix, len(trainset))
		if errs >= c.MaxErrors && !enough {
			tooMany = true
			cancel()
			for ; inflight > 0; inflight-- {
				finished[<-done] = true
			}
			var last error
			for _, r := range results[:prefix] {
				if r.err != nil {
					last = r.err
				}
			}
			return nil, nil, fmt.Errorf("%w: %d failed runs (last: %v)", ErrTooManyErrors, errs, last)
		}
		if enough {
			// Nothing is in flight: a run starts only while it could be
			// needed. The wait is kept for safety's sake.
			cancel()
			for ; inflight > 0; inflight-- {
				finished[<-done] = true
			}
			break
		}
	}
	if err := parent.Err(); err != nil && !enough {
		return nil, nil, err
	}
	traces := map[string][]example.Example{}
	chosen := map[int]bool{}
	for i := 0; i < prefix; i++ {
		r := results[i]
		if r == nil || !r.ok {
			continue
		}
		chosen[i] = true
		for name, ds := range r.traces {
			traces[name] = append(traces[name], ds...)
		}
	}
	return traces, chosen, nil
}

// bootstrapOne runs the teacher on one example, up to MaxRounds times.
func (c BootstrapFewShot) bootstrapOne(ctx context.Context, teacher module.Program, ex example.Example) *outcome {
	out := &outcome{}
	calls := lm.NewTracker()
	ctx = lm.WithTracker(ctx, calls)
	defer func() {
		out.calls = calls.Total().Calls
		if len(out.rounds) > 0 {
			r := &out.rounds[len(out.rounds)-1]
			r.calls = out.calls - r.calls // it held the calls before the round
		}
	}()
	t := teacher.Clone()
	names := map[*module.Predict]string{}
	for _, np := range t.NamedPredictors() {
		names[np.Predictor] = np.Name
		// A teacher must not see the very example it answers.
		np.Predictor.SetDemos(slices.DeleteFunc(np.Predictor.Demos(), func(d example.Example) bool { return sameExample(d, ex) }))
	}
	for round := 0; round < c.MaxRounds; round++ {
		if ctx.Err() != nil {
			return out
		}
		if n := len(out.rounds); n > 0 {
			out.rounds[n-1].calls = calls.Total().Calls - out.rounds[n-1].calls
		}
		out.rounds = append(out.rounds, roundCost{calls: calls.Total().Calls})
		rec := &module.Recorder{}
		rctx := module.WithRecorder(ctx, rec)
		if c.TeacherLM != nil {
			rctx = module.WithLM(rctx, c.TeacherLM)
		}
		if round > 0 {
			rctx = module.WithParams(module.WithRolloutID(rctx, strconv.Itoa(round)), lm.Params{Temperature: lm.Float(1.0)})
		}
		pred, err := t.Forward(rctx, ex.Inputs())
		if err != nil {
			if ctx.Err() == nil {
				out.errs++
				out.err = err
				out.rounds[len(out.rounds)-1].failed = true
			}
			continue
		}
		res, err := c.Metric.Score(ctx, ex, pred)
		if err != nil {
			if ctx.Err() == nil {
				out.errs++
				out.err = err
				out.rounds[len(out.rounds)-1].failed = true
			}
			continue
		}
		ok := res.Score > 0
		if c.MetricThreshold != nil {
			ok = res.Score >= *c.MetricThreshold
		}
		if !ok {
			continue
		}
		out.ok = true
		out.traces = demosFromTrace(rec.Steps(), names)
		return out
	}
	return out
}

// demosFromTrace turns a successful run's predictor calls into demos, one
// per predictor: when a predictor ran several times, DSPy keeps the last
// call half the time and an earlier one otherwise, drawing from a
// generator seeded by the calls' demos (traceSeed).
func demosFromTrace(steps []module.TraceStep, names map[*module.Predict]string) map[string][]example.Example {
	parts := map[string][]traceParts{}
	for _, s := range steps {
		name, ok := names[s.Predictor]
		if !ok {
			continue
		}
		parts[name] = append(parts[name], tracePartsOf(s))
	}
	by := map[string][]example.Example{}
	for name, ps := range parts {
		ds := make([]example.Example, len(ps))
		for i, p := range ps {
			ds[i] = p.demo()
		}
		if len(ds) > 1 {
			// DSPy: demos = [rng.choice(demos[:-1]) if rng.random() < 0.5 else demos[-1]]
			rng := pyrand.NewBytes([]byte(traceSeed(ps)))
			if rng.Random() < 0.5 {
				i, _ := rng.Choice(len(ds) - 1) // len(ds)-1 ≥ 1
				ds = ds[i : i+1]
			} else {
				ds = ds[len(ds)-1:]
			}
		}
		by[name] = ds
	}
	return by
}

// traceSeed is the str seed of the generator that picks one of a
// predictor's several demos from one run: DSPy's Hasher.hash(tuple(demos)),
// the SHA-256 hex digest of the demos' pickle (dspyTraceHash). A pickle
// depends on which values are the same Python object, which values alone
// do not say; dspyTraceHash follows DSPy's Predict for fields of strings,
// numbers, booleans and None. For other field values (lists, objects) the
// seed is the SHA-256 hex digest of the demos as Python-style JSON, which
// depends on the demos alone too, but is not DSPy's (docs/optimizers.md).
func traceSeed(ps []traceParts) string {
	if h, ok := dspyTraceHash(ps); ok {
		return h
	}
	objs := make([]any, len(ps))
	for i, p := range ps {
		objs[i] = p.demo().Object()
	}
	sum := sha256.Sum256([]byte(pyjson.Dumps(objs, -1)))
	return hex.EncodeToString(sum[:])
}

// tracePartsOf splits a call into the inputs and outputs DSPy builds its
// demo from. They are Go maps, so each part follows the predictor's
// signature order (the order DSPy's modules pass and parse them in), then
// any other keys sorted.
func tracePartsOf(s module.TraceStep) traceParts {
	var sigFields []signature.Field
	if s.Predictor != nil {
		sigFields = s.Predictor.Signature().Fields()
	}
	ordered := func(m map[string]any) []kv {
		var out []kv
		done := map[string]bool{}
		for _, f := range sigFields {
			if v, ok := m[f.Name]; ok && !done[f.Name] {
				out = append(out, kv{f.Name, v})
				done[f.Name] = true
			}
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !done[k] {
				out = append(out, kv{k, m[k]})
			}
		}
		return out
	}
	return traceParts{inputs: ordered(s.Inputs), outputs: ordered(s.Outputs)}
}

// demo is DSPy's dspy.Example(augmented=True, **inputs, **outputs): the
// flag, the inputs, then the outputs.
func (p traceParts) demo() example.Example {
	obj := example.Object{{Key: "augmented", Value: true}}
	for _, f := range p.inputs {
		obj = obj.Set(f.key, f.value)
	}
	for _, f := range p.outputs {
		obj = obj.Set(f.key, f.value)
	}
	return example.FromObject(obj)
}

// sameExample compares two examples' fields.
func sameExample(a, b example.Example) bool {
	return pyjson.Dumps(a.Map(), -1) == pyjson.Dumps(b.Map(), -1)
}
