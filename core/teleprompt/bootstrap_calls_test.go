package teleprompt_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/teleprompt"
)

// simStack starts the simulator on the bundled task (with the given
// faults) behind a default lm.Stack without retries or breaker, so that
// every call is one request.
func simStack(t *testing.T, faults ...string) (context.Context, []example.Example, *lmtest.Server) {
	t.Helper()
	train, err := example.LoadJSONL(filepath.Join(taskDir, "train.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := lmtest.LoadDatasetFiles([]string{filepath.Join(taskDir, "train.jsonl"), filepath.Join(taskDir, "dev.jsonl")}, lmtest.DatasetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := lmtest.Config{Dataset: ds}
	for _, f := range faults {
		fault, err := lmtest.ParseFault(f)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Faults = append(cfg.Faults, fault)
	}
	srv, err := lmtest.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	client, err := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
	if err != nil {
		t.Fatal(err)
	}
	stack := lm.NewStack(client, lm.ExecConfig{Retry: lm.RetryConfig{MaxAttempts: 1}, Breaker: lm.BreakerConfig{Failures: -1}})
	return module.WithLM(context.Background(), stack), train, srv
}

// A concurrent bootstrap sends exactly the requests a sequential one does:
// an example starts only while the successes found plus the runs in flight
// are fewer than the demos wanted, so every run is one the sequential pass
// makes too.
func TestBootstrapConcurrentSendsNoExtraCalls(t *testing.T) {
	student := module.NewPredict(signature.MustParse("question -> answer"))
	requests := map[int]int64{}
	for _, conc := range []int{1, 8} {
		ctx, train, srv := simStack(t)
		stats := &teleprompt.BootstrapStats{}
		ctx = teleprompt.WithBootstrapStats(ctx, stats)
		opt := &teleprompt.BootstrapFewShot{Metric: metric.ExactMatch("answer"), MaxBootstrappedDemos: 4, MaxLabeledDemos: 8, Concurrency: conc}
		if _, err := opt.Compile(ctx, student, train); err != nil {
			t.Fatal(err)
		}
		requests[conc] = srv.Stats().Requests
		tot := stats.Totals()
		if int64(tot.Calls) != requests[conc] || tot.ExtraCalls != 0 || tot.Bootstraps != 1 {
			t.Errorf("concurrency %d: stats %+v, server saw %d requests; want calls = requests and no extra", conc, tot, requests[conc])
		}
	}
	if requests[8] != requests[1] {
		t.Errorf("concurrent bootstrap sent %d requests, sequential %d: want the same", requests[8], requests[1])
	}
}

// A sequential pass stops at the MaxErrors-th failed run. With one round
// per example a concurrent bootstrap makes exactly those calls; with more,
// an example in flight may fail again after that point, and the calls the
// sequential pass would not have made are counted as extra.
func TestBootstrapErrorsStopPoint(t *testing.T) {
	for _, rounds := range []int{1, 2} {
		ctx, train, srv := simStack(t, "500")
		stats := &teleprompt.BootstrapStats{}
		ctx = teleprompt.WithBootstrapStats(ctx, stats)
		student := module.NewPredict(signature.MustParse("question -> answer"))
		opt := &teleprompt.BootstrapFewShot{Metric: metric.ExactMatch("answer"), MaxBootstrappedDemos: 8, MaxErrors: 5, MaxRounds: rounds, Concurrency: 8}
		_, err := opt.Compile(ctx, student, train)
		if !errors.Is(err, teleprompt.ErrTooManyErrors) {
			t.Fatalf("rounds %d: err = %v, want ErrTooManyErrors", rounds, err)
		}
		tot := stats.Totals()
		reqs := srv.Stats().Requests
		// Every call fails, so a sequential pass makes 5 calls and stops.
		if tot.ExtraCalls != tot.Calls-5 || reqs > int64(tot.Calls) || reqs < 5 {
			t.Errorf("rounds %d: stats %+v, server saw %d requests; want extra = calls - 5", rounds, tot, reqs)
		}
		if rounds == 1 && (tot.Calls != 5 || reqs != 5) {
			t.Errorf("one round: %d calls, %d requests; want the sequential pass's 5", tot.Calls, reqs)
		}
	}
}
