package teleprompt_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/teleprompt"
)

const taskDir = "../../examples/capitals"

// capitals starts the simulator in dataset mode on the bundled task and
// returns a context using it, the task's train and dev sets, and the server.
func capitals(t testing.TB) (context.Context, []example.Example, []example.Example, *lmtest.Server) {
	t.Helper()
	train, err := example.LoadJSONL(filepath.Join(taskDir, "train.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := example.LoadJSONL(filepath.Join(taskDir, "dev.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := lmtest.LoadDatasetFiles([]string{filepath.Join(taskDir, "train.jsonl"), filepath.Join(taskDir, "dev.jsonl")}, lmtest.DatasetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := lmtest.Start(context.Background(), lmtest.Config{Dataset: ds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	client, err := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
	if err != nil {
		t.Fatal(err)
	}
	return module.WithLM(context.Background(), client), train, dev, srv
}

func score(t testing.TB, ctx context.Context, p module.Module, dev []example.Example) float64 {
	t.Helper()
	res, err := evaluate.Run(ctx, p, dev, metric.ExactMatch("answer"), evaluate.Options{Concurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	return res.Score
}

func TestLabeledFewShot(t *testing.T) {
	_, train, _, _ := capitals(t)
	student := module.NewChainOfThought(signature.MustParse("question -> answer"))
	a, _ := (&teleprompt.LabeledFewShot{K: 5}).Compile(context.Background(), student, train)
	b, _ := (&teleprompt.LabeledFewShot{K: 5}).Compile(context.Background(), student, train)
	da, db := a.NamedPredictors()[0].Predictor.Demos(), b.NamedPredictors()[0].Predictor.Demos()
	if len(da) != 5 || len(student.Predict.Demos()) != 0 {
		t.Fatalf("demos %d, student demos %d", len(da), len(student.Predict.Demos()))
	}
	for i := range da {
		if da[i].String("question") != db[i].String("question") {
			t.Fatal("sampling is not deterministic")
		}
	}
	c, _ := (&teleprompt.LabeledFewShot{K: 3, NoSample: true}).Compile(context.Background(), student, train)
	if d := c.NamedPredictors()[0].Predictor.Demos(); d[0].String("question") != train[0].String("question") {
		t.Error("NoSample does not take the first examples")
	}
}

// With at most one bootstrapped and one demo in all, the student gets
// exactly one demo: the trace of the first training example the teacher
// answers correctly.
func TestBootstrapOneOne(t *testing.T) {
	ctx, train, _, srv := capitals(t)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	opt := &teleprompt.BootstrapFewShot{Metric: metric.ExactMatch("answer"), MaxBootstrappedDemos: 1, MaxLabeledDemos: 1, Concurrency: 4}
	compiled, err := opt.Compile(ctx, student, train)
	if err != nil {
		t.Fatal(err)
	}
	demos := compiled.NamedPredictors()[0].Predictor.Demos()
	if len(demos) != 1 {
		t.Fatalf("%d demos, want 1", len(demos))
	}
	// Find the first training example the same teacher answers correctly.
	teacher, _ := (&teleprompt.LabeledFewShot{K: 1}).Compile(ctx, student, train)
	first := -1
	for i, ex := range train {
		tp := teacher.Clone()
		np := tp.NamedPredictors()[0].Predictor
		var kept []example.Example
		for _, d := range np.Demos() {
			if d.String("question") != ex.String("question") {
				kept = append(kept, d)
			}
		}
		np.SetDemos(kept)
		pred, err := tp.Forward(ctx, ex.Inputs())
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := metric.ExactMatch("answer").Score(ctx, ex, pred); r.Score == 1 {
			first = i
			break
		}
	}
	if first < 0 {
		t.Fatal("no training example passes")
	}
	d := demos[0]
	if d.String("question") != train[first].String("question") || d.String("answer") != train[first].String("answer") {
		t.Errorf("demo %v, want the first passing example %v (index %d)", d.Map(), train[first].Map(), first)
	}
	if aug, _ := d.Bool("augmented"); !aug {
		t.Error("bootstrapped demo not marked augmented")
	}
	// DSPy builds the demo as Example(augmented=True, **inputs, **outputs),
	// and a saved program keeps that key order.
	if got := strings.Join(d.Keys(), ","); got != "augmented,question,answer" {
		t.Errorf("demo keys %s, want augmented,question,answer", got)
	}
	_ = srv
}

// Bootstrapping concurrently picks the same demos as a sequential pass.
func TestBootstrapConcurrentEqualsSequential(t *testing.T) {
	ctx, train, _, _ := capitals(t)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	var got [][]string
	for _, conc := range []int{1, 8} {
		opt := &teleprompt.BootstrapFewShot{Metric: metric.ExactMatch("answer"), MaxBootstrappedDemos: 4, MaxLabeledDemos: 8, Concurrency: conc}
		p, err := opt.Compile(ctx, student, train)
		if err != nil {
			t.Fatal(err)
		}
		var qs []string
		for _, d := range p.NamedPredictors()[0].Predictor.Demos() {
			qs = append(qs, d.String("question"))
		}
		got = append(got, qs)
	}
	if len(got[0]) != 8 || len(got[0]) != len(got[1]) {
		t.Fatalf("demos: %v vs %v", got[0], got[1])
	}
	for i := range got[0] {
		if got[0][i] != got[1][i] {
			t.Fatalf("concurrent bootstrap differs from sequential at %d:\n%v\n%v", i, got[0], got[1])
		}
	}
}

// A run cut short by a cancelled context reports the cancellation, not the
// failures of the runs the cancellation broke.
func TestBootstrapCancelledIsNotTooManyErrors(t *testing.T) {
	ctx, train, _, _ := capitals(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cancels := metric.FromFunc("cancels", func(ctx context.Context, _ example.Example, _ *example.Prediction) (metric.Result, error) {
		cancel()
		return metric.Result{}, ctx.Err()
	})
	student := module.NewPredict(signature.MustParse("question -> answer"))
	opt := &teleprompt.BootstrapFewShot{Metric: cancels, MaxErrors: 1, Concurrency: 1}
	_, err := opt.Compile(ctx, student, train)
	if !errors.Is(err, context.Canceled) || errors.Is(err, teleprompt.ErrTooManyErrors) {
		t.Errorf("err = %v, want the context's cancellation", err)
	}
}

// On the bundled simulated task both optimizers raise the dev score over
// the zero-shot baseline (the simulator is deterministic, so the test is).
func TestOptimizersRaiseScore(t *testing.T) {
	ctx, train, dev, _ := capitals(t)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	base := score(t, ctx, student, dev)

	boot, err := (&teleprompt.BootstrapFewShot{Metric: metric.ExactMatch("answer")}).Compile(ctx, student, train)
	if err != nil {
		t.Fatal(err)
	}
	bootScore := score(t, ctx, boot, dev)
	if bootScore <= base+5 {
		t.Errorf("BootstrapFewShot: %.1f, baseline %.1f", bootScore, base)
	}

	rs := &teleprompt.RandomSearch{Metric: metric.ExactMatch("answer"), NumCandidates: 3, Valset: train[:30],
		Eval: evaluate.Options{Concurrency: 16}}
	res, err := rs.Search(ctx, student, train)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{-3, -2, -1, 0, 1, 2}; len(res.Seeds) != len(want) {
		t.Fatalf("seeds %v, want %v", res.Seeds, want)
	}
	if n := len(res.Candidates[0].Program.NamedPredictors()[0].Predictor.Demos()); n != 0 {
		t.Errorf("zero-shot baseline has %d demos", n)
	}
	for _, d := range res.Candidates[1].Program.NamedPredictors()[0].Predictor.Demos() {
		if d.Has("augmented") {
			t.Error("the labeled-only baseline has a bootstrapped demo")
		}
	}
	rsScore := score(t, ctx, res.Best.Program, dev)
	if rsScore <= base+5 {
		t.Errorf("random search: %.1f, baseline %.1f", rsScore, base)
	}
	t.Logf("dev score: baseline %.1f, bootstrap %.1f, random search %.1f (best seed score %.1f)", base, bootScore, rsScore, res.Best.Score)
}

func TestRandomSearchStopAtScoreAndResume(t *testing.T) {
	ctx, train, _, srv := capitals(t)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	stop := 0.0
	rs := &teleprompt.RandomSearch{Metric: metric.ExactMatch("answer"), NumCandidates: 4, Valset: train[:20], StopAtScore: &stop}
	res, err := rs.Search(ctx, student, train)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Candidates) != 1 {
		t.Fatalf("stop_at_score 0 evaluated %d candidates", len(res.Candidates))
	}

	// A full search, then the same search resumed from its records: no
	// candidate is bootstrapped or evaluated again.
	rs = &teleprompt.RandomSearch{Metric: metric.ExactMatch("answer"), NumCandidates: 2, Valset: train[:20]}
	first, err := rs.Search(ctx, student, train)
	if err != nil {
		t.Fatal(err)
	}
	resume := map[string]teleprompt.Finished{}
	for i, c := range first.Candidates {
		rec := teleprompt.CandidateRecord(c.ID, c.Program, false)
		b, _ := jsonMarshal(rec)
		id, f, ok := teleprompt.FinishedFromRecord(b, c.Score)
		if !ok || id != teleprompt.CandidateID(first.Seeds[i]) {
			t.Fatalf("record %d does not read back", i)
		}
		resume[id] = f
	}
	before := srv.Stats().Requests
	rs.Resume = resume
	again, err := rs.Search(ctx, student, train)
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.Stats().Requests - before; n != 0 {
		t.Errorf("the resumed search made %d LM calls", n)
	}
	if again.Best.Score != first.Best.Score || again.Best.ID != first.Best.ID {
		t.Errorf("resumed best %s %.1f, first %s %.1f", again.Best.ID, again.Best.Score, first.Best.ID, first.Best.Score)
	}
	for _, c := range again.Candidates {
		if !c.Resumed {
			t.Errorf("candidate %s was not resumed", c.ID)
		}
	}
	// The record keeps each demo's key order, so a resumed candidate sends
	// the same prompts.
	demoKeys := func(p module.Program) (keys []string) {
		for _, d := range p.NamedPredictors()[0].Predictor.Demos() {
			keys = append(keys, strings.Join(d.Keys(), ","))
		}
		return keys
	}
	if diff := cmp.Diff(demoKeys(first.Best.Program), demoKeys(again.Best.Program)); diff != "" {
		t.Errorf("demo keys changed across resume (-first +resumed):\n%s", diff)
	}
}
