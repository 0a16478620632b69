package mipro

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/teleprompt"
	"github.com/dspex/dspex/core/trace"
)

// On the bundled task, with one simulator in dataset mode as both the task
// and the prompt model (its proposer behaviour writes the instructions),
// MIPROv2 light with its default seed beats BootstrapFewShot with DSPy's
// defaults, which beats the zero-shot program, on the dev split. The
// figures are docs/optimizers.md's.
func TestMIPROBeatsBootstrapOnCapitals(t *testing.T) {
	c, _ := pluginSampler(t)
	train, dev, _, _ := capitals(t)
	ds, err := lmtest.LoadDatasetFiles([]string{filepath.Join(taskDir, "train.jsonl"), filepath.Join(taskDir, "dev.jsonl")}, lmtest.DatasetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := lmtest.NewServer(t, lmtest.WithDataset(ds))
	ctx := module.WithLM(t.Context(), newLM(t, srv))
	student := module.NewPredict(signature.MustParse("question -> answer"))
	m := metric.ExactMatch("answer")
	score := func(p module.Program) float64 {
		t.Helper()
		r, err := evaluate.Run(ctx, p, dev, m, evaluate.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Score
	}

	base := score(student)
	boot, err := (&teleprompt.BootstrapFewShot{Metric: m}).Compile(ctx, student, train)
	if err != nil {
		t.Fatal(err)
	}
	bootScore := score(boot)
	res, err := New(Config{Metric: m, Sampler: c}).Compile(ctx, student, train, nil)
	if err != nil {
		t.Fatal(err)
	}
	miproScore := score(res.Program)
	for _, p := range res.Proposals {
		if p.Fallback != "" {
			t.Errorf("proposal %d kept the original instruction: %s", p.Index, p.Fallback)
		}
		t.Logf("proposal %d (tip %s): %q", p.Index, p.Tip, p.Instruction)
	}
	best := res.Program.NamedPredictors()[0].Predictor
	t.Logf("dev: zero-shot %.1f, BootstrapFewShot %.1f, MIPROv2 light %.1f (valset %.1f, %d trials); instruction %q, %d demos",
		base, bootScore, miproScore, res.Score, len(res.Trials), best.Signature().Instructions(), len(best.Demos()))
	for _, tr := range res.Trials {
		t.Logf("trial %d %s %v: %.1f", tr.Number, tr.Kind, tr.Params, tr.Score)
	}
	if !(miproScore > bootScore && bootScore > base) {
		t.Errorf("dev: MIPROv2 %.1f, BootstrapFewShot %.1f, zero-shot %.1f; want MIPROv2 > BootstrapFewShot > zero-shot", miproScore, bootScore, base)
	}
}

// Each demo set built and each instruction proposed is an event of its own
// kind, kept by the trace store as a row of the run's events and read back
// in candidate order.
func TestCandidateEventsInTraceStore(t *testing.T) {
	train, dev, task, prompt := capitals(t)
	ctx := module.WithLM(t.Context(), task)
	path := filepath.Join(t.TempDir(), "trace.db")
	store, err := trace.Open(ctx, path, trace.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bus := event.NewBus()
	if err := store.Attach(bus); err != nil {
		t.Fatal(err)
	}
	rctx, span := event.StartRun(event.WithBus(ctx, bus))
	event.Publish(rctx, event.RunStart, span, &event.RunInfo{Name: "optimize"})
	student := module.NewPredict(signature.MustParse("question -> answer"))
	res, err := New(Config{Metric: metric.ExactMatch("answer"), Sampler: &fakeSampler{}, PromptModel: prompt,
		NumCandidates: 4, NumTrials: 3, MinibatchSize: 10}).Compile(rctx, student, train[:20], dev[:30])
	if err != nil {
		t.Fatal(err)
	}
	event.Publish(context.WithoutCancel(rctx), event.RunEnd, span, &event.RunInfo{Name: "optimize"})
	bus.Close()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	reader, err := trace.OpenReader(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	sets, err := reader.Events(ctx, span.RunID, string(event.OptimizerDemoSet))
	if err != nil {
		t.Fatal(err)
	}
	var gotSets []event.OptimizerDemoSetInfo
	for _, e := range sets {
		var info event.OptimizerDemoSetInfo
		if err := json.Unmarshal(e.Data, &info); err != nil {
			t.Fatalf("demo set row %s: %v", e.Data, err)
		}
		gotSets = append(gotSets, info)
	}
	if len(gotSets) != len(res.DemoSets[0]) || len(gotSets) != 4 {
		t.Fatalf("%d demo set rows, %d demo sets", len(gotSets), len(res.DemoSets[0]))
	}
	for i, info := range gotSets {
		want := event.OptimizerDemoSetInfo{Optimizer: Name, Predictor: student.NamedPredictors()[0].Name, Index: i,
			Source: []string{"zero_shot", "labeled", "bootstrap", "bootstrap_shuffled"}[i]}
		if got := info; got.Optimizer != want.Optimizer || got.Predictor != want.Predictor || got.Index != want.Index || got.Source != want.Source {
			t.Errorf("demo set row %d: %+v, want %+v", i, got, want)
		}
		if len(info.Demos) != len(res.DemoSets[0][i]) {
			t.Errorf("demo set %d: %d demos stored, %d built", i, len(info.Demos), len(res.DemoSets[0][i]))
		}
		for j, d := range info.Demos {
			q, _ := res.DemoSets[0][i][j].Get("question")
			if d.(map[string]any)["question"] != q {
				t.Errorf("demo set %d demo %d: %v, want question %v", i, j, d, q)
			}
		}
	}

	props, err := reader.Events(ctx, span.RunID, string(event.OptimizerInstruction))
	if err != nil {
		t.Fatal(err)
	}
	var got, want []event.OptimizerInstructionInfo
	for _, e := range props {
		var info event.OptimizerInstructionInfo
		if err := json.Unmarshal(e.Data, &info); err != nil {
			t.Fatalf("instruction row %s: %v", e.Data, err)
		}
		got = append(got, info)
	}
	for _, p := range res.Proposals {
		want = append(want, event.OptimizerInstructionInfo{Optimizer: Name, Predictor: student.NamedPredictors()[0].Name,
			Index: p.Index, Instruction: p.Instruction, Tip: p.Tip, RolloutID: p.RolloutID, Fallback: p.Fallback})
	}
	if diff := cmp.Diff(want, got); diff != "" || len(got) != 4 {
		t.Errorf("instruction rows (-proposals +stored):\n%s", diff)
	}
}

// MaxErrors -1 (the CLI's --max-errors -1) never stops for errors, in
// bootstrapping or in the trials; the default stops at 10.
func TestMaxErrorsUnlimited(t *testing.T) {
	train, dev, task, prompt := capitals(t)
	ctx := module.WithLM(t.Context(), task)
	exact := metric.ExactMatch("answer")
	// Only capitals can be scored: every other example is a failure.
	m := metric.FromFunc("capitals_only", func(ctx context.Context, ex example.Example, pred *example.Prediction) (metric.Result, error) {
		if topic, _ := ex.Get("topic"); topic != "capital" {
			return metric.Result{}, errors.New("not a capital")
		}
		return exact.Score(ctx, ex, pred)
	})
	student := module.NewPredict(signature.MustParse("question -> answer"))
	cfg := Config{Metric: m, Sampler: &fakeSampler{}, PromptModel: prompt, NumCandidates: 3, NumTrials: 2, MinibatchSize: 10}

	capped, err := New(cfg).Compile(ctx, student, train[:30], dev[:30])
	stopped := err != nil
	if err == nil {
		for _, tr := range capped.Trials {
			stopped = stopped || strings.Contains(tr.Error, "too many errors")
		}
	}
	if !stopped {
		t.Error("the default MaxErrors did not stop anything")
	}

	cfg.MaxErrors = -1
	res, err := New(cfg).Compile(ctx, student, train[:30], dev[:30])
	if err != nil {
		t.Fatalf("MaxErrors -1: %v", err)
	}
	for _, tr := range res.Trials {
		if tr.Error != "" {
			t.Errorf("MaxErrors -1: trial %d failed: %s", tr.Number, tr.Error)
		}
	}
}

// slowOn is a task LM that never answers (until its context ends) a prompt
// whose last message asks one of the given questions.
type slowOn struct {
	lm.LM
	questions []example.Example
}

func (s slowOn) Complete(ctx context.Context, req *lm.Request) (*lm.Response, error) {
	last := req.Messages[len(req.Messages)-1].Content
	for _, ex := range s.questions {
		if q, _ := ex.Get("question"); strings.Contains(last, q.(string)) {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Minute):
			}
		}
	}
	return s.LM.Complete(ctx, req)
}

// Config.Timeout (the CLI's --timeout) bounds each example of every trial:
// with a task model that hangs on the validation questions, each trial's
// examples time out and the trial fails, instead of the run hanging.
func TestTimeoutBoundsTrials(t *testing.T) {
	train, dev, task, prompt := capitals(t)
	val := dev[:20]
	ctx := module.WithLM(t.Context(), slowOn{LM: task, questions: val})
	student := module.NewPredict(signature.MustParse("question -> answer"))
	start := time.Now()
	res, err := New(Config{Metric: metric.ExactMatch("answer"), Sampler: &fakeSampler{}, PromptModel: prompt,
		NumCandidates: 3, NumTrials: 2, MinibatchSize: 10, Timeout: 50 * time.Millisecond}).Compile(ctx, student, train[:20], val)
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed > 20*time.Second {
		t.Errorf("the run took %v", elapsed)
	}
	if len(res.Trials) < 3 {
		t.Fatalf("%d trials", len(res.Trials))
	}
	for _, tr := range res.Trials {
		if tr.Score != 0 || !strings.Contains(tr.Error, "timed out after 50ms") {
			t.Errorf("trial %d: score %.1f, error %q; want a failed evaluation that timed out", tr.Number, tr.Score, tr.Error)
		}
	}
	if _, ok := res.Program.(*module.Predict); !ok {
		t.Errorf("the optimized program is a %T, want the student's type", res.Program)
	}
}
