package mipro

import (
	"path/filepath"
	"testing"

	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/teleprompt"
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
