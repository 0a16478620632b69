package teleprompt_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/teleprompt"
)

// BenchmarkOptimizers runs BootstrapFewShot (16 bootstrapped demos wanted)
// and BootstrapFewShotWithRandomSearch (3 shuffled candidates after the 3
// baselines, 4 demos at most, the first 16 dev examples as the validation
// set) on the bundled task, through the default execution layers (no
// cache), the simulator answering every call in 50 ms; each concurrently
// with its default settings (8 examples bootstrapped at once, 16
// evaluated at once) and sequentially (1 and 1), alternating. It reports
// each run's wall time (-s) and the LM requests the simulator received
// (-calls: every request that reached it, cancelled in flight or not;
// -cancelled: those whose caller left before the answer),
// and the speed-ups.
//
//	go test ./core/teleprompt -run '^$' -bench BenchmarkOptimizers -benchtime 1x
func BenchmarkOptimizers(b *testing.B) {
	train, err := example.LoadJSONL(filepath.Join(taskDir, "train.jsonl"), "question")
	if err != nil {
		b.Fatal(err)
	}
	dev, err := example.LoadJSONL(filepath.Join(taskDir, "dev.jsonl"), "question")
	if err != nil {
		b.Fatal(err)
	}
	ds, err := lmtest.LoadDatasetFiles([]string{filepath.Join(taskDir, "train.jsonl"), filepath.Join(taskDir, "dev.jsonl")}, lmtest.DatasetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := lmtest.Start(context.Background(), lmtest.Config{Dataset: ds, Latency: lmtest.Latency{Dist: lmtest.LatencyFixed, Value: 50 * time.Millisecond}, RecordLimit: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	client, err := openai.New(openai.Config{Model: lmtest.DefaultModel, BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := module.WithLM(context.Background(), lm.NewStack(client, lm.ExecConfig{}))
	sig := signature.MustParse("question -> answer")
	m := metric.ExactMatch("answer")

	type run struct {
		name string
		opt  teleprompt.Optimizer
	}
	randomSearch := func(conc int) *teleprompt.RandomSearch {
		return &teleprompt.RandomSearch{Metric: m, MaxBootstrappedDemos: 4, NumCandidates: 3, Valset: dev[:16],
			Concurrency: conc, Eval: evaluate.Options{Concurrency: conc}}
	}
	runs := []run{
		{"bootstrap", &teleprompt.BootstrapFewShot{Metric: m, MaxBootstrappedDemos: 16}},
		{"bootstrap-seq", &teleprompt.BootstrapFewShot{Metric: m, MaxBootstrappedDemos: 16, Concurrency: 1}},
		{"random", randomSearch(0)},
		{"random-seq", randomSearch(1)},
	}
	wall := map[string]time.Duration{}
	calls := map[string]int64{}
	cancelled := map[string]int64{}
	for b.Loop() {
		for _, r := range runs {
			before := srv.Stats().Requests
			start := time.Now()
			if _, err := r.opt.Compile(ctx, module.NewPredict(sig), train); err != nil {
				b.Fatalf("%s: %v", r.name, err)
			}
			wall[r.name] += time.Since(start)
			calls[r.name] += srv.Stats().Requests - before
			// Let the simulator finish recording requests whose caller
			// left, then count those (answered with no status).
			time.Sleep(100 * time.Millisecond)
			for _, rec := range srv.Requests() {
				if rec.Seq > uint64(before) && rec.Status == 0 {
					cancelled[r.name]++
				}
			}
		}
	}
	n := float64(b.N)
	for _, r := range runs {
		b.ReportMetric(wall[r.name].Seconds()/n, r.name+"-s")
		b.ReportMetric(float64(calls[r.name])/n, r.name+"-calls")
		b.ReportMetric(float64(cancelled[r.name])/n, r.name+"-cancelled")
	}
	b.ReportMetric(float64(wall["bootstrap-seq"])/float64(wall["bootstrap"]), "bootstrap-speedup")
	b.ReportMetric(float64(wall["random-seq"])/float64(wall["random"]), "random-speedup")
}
