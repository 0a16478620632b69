package teleprompt_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/teleprompt"
)

// BenchmarkBootstrap compares BootstrapFewShot's wall time bootstrapping
// sequentially (Concurrency 1) and concurrently (8), on the bundled task
// with the simulated LM answering in 50ms, 16 bootstrapped demos wanted.
// Both pick the same demos; it reports each wall time and the speed-up.
func BenchmarkBootstrap(b *testing.B) {
	train, err := example.LoadJSONL(filepath.Join(taskDir, "train.jsonl"), "question")
	if err != nil {
		b.Fatal(err)
	}
	ds, err := lmtest.LoadDatasetFiles([]string{filepath.Join(taskDir, "train.jsonl"), filepath.Join(taskDir, "dev.jsonl")}, lmtest.DatasetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	lat, _ := lmtest.ParseLatency("50ms")
	srv, err := lmtest.Start(context.Background(), lmtest.Config{Dataset: ds, Latency: lat})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	client, _ := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
	ctx := module.WithLM(context.Background(), client)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	wall := map[int]time.Duration{}
	for b.Loop() {
		for _, conc := range []int{1, 8} {
			opt := &teleprompt.BootstrapFewShot{Metric: metric.ExactMatch("answer"), MaxBootstrappedDemos: 16, Concurrency: conc}
			start := time.Now()
			if _, err := opt.Compile(ctx, student, train); err != nil {
				b.Fatal(err)
			}
			wall[conc] += time.Since(start)
		}
	}
	n := float64(b.N)
	b.ReportMetric(wall[1].Seconds()/n, "sequential-s")
	b.ReportMetric(wall[8].Seconds()/n, "concurrent-s")
	b.ReportMetric(float64(wall[1])/float64(wall[8]), "speedup")
}
