package evaluate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// BenchmarkEvaluate evaluates a Predict program on 2,000 examples against
// the simulator answering each call after exactly 100ms, 256 at a time. The
// ideal wall time is N·L/C = 2000 × 100ms / 256 ≈ 0.78s; it reports
// of-ideal = ideal / actual (goal: at least 0.90) and examples/s. Run with
// -benchtime 1x: one iteration is one whole evaluation.
func BenchmarkEvaluate(b *testing.B) {
	const (
		n           = 2000
		latency     = 100 * time.Millisecond
		concurrency = 256
	)
	lat, err := lmtest.ParseLatency("100ms")
	if err != nil {
		b.Fatal(err)
	}
	model := startSim(b, lmtest.Config{Latency: lat, RecordLimit: -1})
	devset := make([]example.Example, n)
	for i := range devset {
		devset[i] = example.New(map[string]any{"question": fmt.Sprintf("What is %d+%d?", i, i), "answer": fmt.Sprint(2 * i)}).WithInputs("question")
	}
	ctx := module.WithLM(context.Background(), model)
	prog := module.NewPredict(signature.MustParse("question -> answer"))
	m := metric.ExactMatch("answer")
	opts := evaluate.Options{Concurrency: concurrency}

	// Open the client's connections first: a long evaluation pays for
	// them once.
	if _, err := evaluate.Run(ctx, prog, devset[:concurrency], m, opts); err != nil {
		b.Fatal(err)
	}

	ideal := time.Duration(n) * latency / concurrency
	var wall time.Duration
	for b.Loop() {
		start := time.Now()
		res, err := evaluate.Run(ctx, prog, devset, m, opts)
		wall += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if res.Scored != n {
			b.Fatalf("%d of %d scored", res.Scored, n)
		}
	}
	per := wall / time.Duration(b.N)
	b.ReportMetric(ideal.Seconds()/per.Seconds(), "of-ideal")
	b.ReportMetric(float64(n)/per.Seconds(), "examples/s")
}

// BenchmarkEvaluateOverhead is BenchmarkEvaluate with a program that only
// sleeps 100ms (no HTTP, no prompt): what is left of the gap to the ideal
// is the evaluator's own. With 2,000 examples in waves of 256 the best
// possible is 8 waves, 0.8s: of-ideal at most 0.977.
func BenchmarkEvaluateOverhead(b *testing.B) {
	const (
		n           = 2000
		latency     = 100 * time.Millisecond
		concurrency = 256
	)
	devset := make([]example.Example, n)
	for i := range devset {
		devset[i] = example.New(map[string]any{"question": fmt.Sprintf("What is %d+%d?", i, i), "answer": fmt.Sprint(2 * i)}).WithInputs("question")
	}
	prog := sleeper(latency)
	m := metric.ExactMatch("answer")
	ideal := time.Duration(n) * latency / concurrency
	var wall time.Duration
	for b.Loop() {
		start := time.Now()
		res, err := evaluate.Run(context.Background(), prog, devset, m, evaluate.Options{Concurrency: concurrency})
		wall += time.Since(start)
		if err != nil || res.Scored != n {
			b.Fatalf("%v (%d scored)", err, res.Scored)
		}
	}
	per := wall / time.Duration(b.N)
	b.ReportMetric(ideal.Seconds()/per.Seconds(), "of-ideal")
	b.ReportMetric(float64(n)/per.Seconds(), "examples/s")
}

// sleeper is a program that waits d and answers "4".
type sleeper time.Duration

func (s sleeper) Forward(ctx context.Context, _ module.Inputs) (*example.Prediction, error) {
	t := time.NewTimer(time.Duration(s))
	defer t.Stop()
	select {
	case <-t.C:
		return example.NewPrediction(map[string]any{"answer": "4"}), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
