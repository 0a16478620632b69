package finetune_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/program"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/trace"
	"github.com/dspex/dspex/plugins/finetune"
	"github.com/dspex/dspex/plugins/finetune/finetunetest"
)

var taskDir = filepath.Join("..", "..", "examples", "capitals")

// The golden's task (testdata/golden/gen_dspy_finetune.py): NTRAIN and
// DEMOS.
const goldenTrain, goldenDemos = 20, 2

// fixture is the simulated task: the simulator in dataset mode with its
// fine-tuning API (jobs stepping every step), the task model, the golden's
// student and training set, and held-out dev examples.
type fixture struct {
	srv     *lmtest.Server
	model   lm.LM
	student *module.Predict
	train   []example.Example
	heldOut []example.Example
}

func newFixture(t *testing.T, step time.Duration) *fixture {
	t.Helper()
	ds, err := lmtest.LoadDatasetFiles([]string{filepath.Join(taskDir, "train.jsonl"), filepath.Join(taskDir, "dev.jsonl")}, lmtest.DatasetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := lmtest.NewServer(t, lmtest.WithDataset(ds), lmtest.WithFineTuneStep(step))
	model, err := openai.New(openai.Config{Model: lmtest.DefaultModel, BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
	if err != nil {
		t.Fatal(err)
	}
	train, err := example.LoadJSONL(filepath.Join(taskDir, "train.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := example.LoadJSONL(filepath.Join(taskDir, "dev.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	student := module.NewPredict(signature.MustParse("question -> answer"), module.WithDemos(dev[:goldenDemos]...))
	return &fixture{srv: srv, model: model, student: student, train: train[:goldenTrain], heldOut: dev[goldenDemos : goldenDemos+60]}
}

func (f *fixture) backend(baseURL string) finetune.Backend {
	return finetune.Backend{Name: finetune.BackendOpenAI, Options: map[string]string{"base_url": baseURL, "poll_interval": "0.05"}}
}

func (f *fixture) score(t *testing.T, ctx context.Context, p module.Program) float64 {
	t.Helper()
	r, err := evaluate.Run(ctx, p, f.heldOut, metric.ExactMatch("answer"), evaluate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Score
}

// traced returns a context whose events go to a real trace store (a file
// in a temporary directory) under run id, and a function that closes the
// store and reads back the run's job records.
func traced(t *testing.T, ctx context.Context, runID string) (context.Context, func() []finetune.JobRecord) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "traces.db")
	store, err := trace.Open(ctx, path, trace.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bus := event.NewBus()
	if err := store.Attach(bus); err != nil {
		t.Fatal(err)
	}
	ctx, _ = event.ContinueRun(event.WithBus(ctx, bus), runID)
	var once sync.Once
	var recs []finetune.JobRecord
	read := func() []finetune.JobRecord {
		once.Do(func() {
			bus.Close()
			if err := store.Close(); err != nil {
				t.Fatal(err)
			}
			r, err := trace.OpenReader(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			evs, err := r.Events(context.Background(), runID, string(finetune.JobKind))
			if err != nil {
				t.Fatal(err)
			}
			recs = finetune.JobsFromEvents(evs)
		})
		return recs
	}
	t.Cleanup(func() { read() })
	return ctx, read
}

func golden(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", "finetune.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBootstrapFinetuneEndToEnd: on the simulated task, BootstrapFinetune
// bootstraps the student, writes the training file DSPy writes (the
// golden), runs the job through the real Python plugin against the
// simulated fine-tuning API, and returns the student on the new model,
// which scores higher on held-out data than the untuned student. The saved
// state records the model, and a program loaded from it uses it.
func TestBootstrapFinetuneEndToEnd(t *testing.T) {
	c, _, err := finetune.Open(finetunetest.Host(t), "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, 50*time.Millisecond)
	ctx, records := traced(t, module.WithLM(t.Context(), f.model), "run-e2e")
	res, err := finetune.NewOptimizer(finetune.Config{Metric: metric.ExactMatch("answer"), Trainer: c,
		Backend: f.backend(f.srv.URL()), RunID: "run-e2e"}).Compile(ctx, f.student, f.train)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.Data["lm:"+lmtest.DefaultModel], golden(t); !bytes.Equal(got, want) {
		t.Errorf("the training file is not DSPy's (golden): %d bytes, want %d", len(got), len(want))
	}
	if len(res.Jobs) != 1 {
		t.Fatalf("%d jobs, want 1 (multitask: one per LM)", len(res.Jobs))
	}
	j := res.Jobs[0]
	if j.State != finetune.StateSucceeded || !strings.HasPrefix(j.FineTunedModel, "ft:"+lmtest.DefaultModel+":") {
		t.Fatalf("job %+v", j)
	}
	tuned := res.Program.NamedPredictors()[0].Predictor
	if m := tuned.LM(); m == nil || m.Model() != j.FineTunedModel {
		t.Fatalf("the tuned predictor's LM is %v, want the model %s", m, j.FineTunedModel)
	}
	if st := f.srv.Stats(); st.FineTuneJobs != 1 || st.Files != 1 {
		t.Errorf("simulator: %d jobs, %d files; want 1 and 1", st.FineTuneJobs, st.Files)
	}
	jobs := f.srv.FineTuneJobs()
	if len(jobs) != 1 || jobs[0].ID != j.JobID || jobs[0].Examples != j.Examples {
		t.Errorf("simulator's jobs %+v, ours %+v", jobs, j)
	}
	base, after := f.score(t, ctx, f.student), f.score(t, ctx, res.Program)
	if after <= base {
		t.Errorf("held-out score: tuned %.1f, untuned %.1f", after, base)
	}
	t.Logf("held-out: untuned %.1f, tuned %.1f (%s, %d examples, %d correct)", base, after, j.FineTunedModel, jobs[0].Examples, jobs[0].CorrectExamples)

	// The saved program records the model; loaded (as dspex run --state
	// loads it), it calls the model through the context's endpoint.
	path := filepath.Join(t.TempDir(), "tuned.json")
	if err := program.SaveStateFile(path, res.Program); err != nil {
		t.Fatal(err)
	}
	models, err := finetune.StateModels(path)
	if err != nil {
		t.Fatal(err)
	}
	loaded := module.NewPredict(signature.MustParse("question -> answer"))
	if err := program.LoadStateFile(path, loaded); err != nil {
		t.Fatal(err)
	}
	finetune.UseModels(loaded, models, lmtest.DefaultModel)
	if m := loaded.LM(); m == nil || m.Model() != j.FineTunedModel {
		t.Fatalf("loaded state: LM %v, want %s (models %v)", m, j.FineTunedModel, models)
	}
	if s := f.score(t, ctx, loaded); s != after {
		t.Errorf("the loaded program scores %.1f, the tuned one %.1f", s, after)
	}

	// The trace store holds the job: id, backend, options, base model,
	// predictors, state.
	recs := records()
	if len(recs) != 1 {
		t.Fatalf("stored records %+v", recs)
	}
	r := recs[0]
	if r.JobID != j.JobID || r.State != finetune.StateSucceeded || r.Backend != finetune.BackendOpenAI ||
		r.BaseModel != lmtest.DefaultModel || r.Options["base_url"] != f.srv.URL() || r.FineTunedModel != j.FineTunedModel ||
		r.IdempotencyKey == "" || len(r.Predictors) != 1 {
		t.Errorf("stored record %+v, job %+v", r, j)
	}
}

// killer SIGKILLs the plugin's process once, at the first event of a
// running job, while the optimizer watches it.
type killer struct {
	finetune.Trainer
	p      *bridge.Plugin
	once   sync.Once
	killed atomic.Bool
	jobID  atomic.Value
}

func (k *killer) WatchJob(ctx context.Context, b finetune.Backend, id string, fn func(finetune.JobEvent) error) (finetune.JobEvent, error) {
	return k.Trainer.WatchJob(ctx, b, id, func(ev finetune.JobEvent) error {
		if ev.State == finetune.StateRunning || ev.State == finetune.StateQueued {
			k.once.Do(func() {
				k.jobID.Store(id)
				if pid := k.p.Pid(); pid > 0 && syscall.Kill(pid, syscall.SIGKILL) == nil {
					k.killed.Store(true)
				}
			})
		}
		return fn(ev)
	})
}

// TestPluginKilledMidJob: the plugin is SIGKILLed while the job runs; the
// supervisor restarts it, the job is looked up by id and followed to the
// end, and the simulator never sees a second job.
func TestPluginKilledMidJob(t *testing.T) {
	c, p, err := finetune.Open(finetunetest.Host(t), "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, 300*time.Millisecond)
	k := &killer{Trainer: c, p: p}
	ctx := module.WithLM(t.Context(), f.model)
	res, err := finetune.NewOptimizer(finetune.Config{Metric: metric.ExactMatch("answer"), Trainer: k,
		Backend: f.backend(f.srv.URL()), RunID: "run-kill"}).Compile(ctx, f.student, f.train)
	if err != nil {
		t.Fatal(err)
	}
	if !k.killed.Load() {
		t.Fatal("the plugin was not killed mid-job")
	}
	if st := p.Status(); st.Restarts < 1 {
		t.Errorf("plugin status %+v: no restart", st)
	}
	j := res.Jobs[0]
	if id, _ := k.jobID.Load().(string); j.JobID != id || j.State != finetune.StateSucceeded || j.FineTunedModel == "" {
		t.Errorf("job %+v; the killed watch followed %q", j, id)
	}
	if st := f.srv.Stats(); st.FineTuneJobs != 1 || st.Files != 1 {
		t.Errorf("simulator: %d jobs, %d files; want 1 and 1 (no second job)", st.FineTuneJobs, st.Files)
	}
}

// switchable is the provider's network edge: a proxy to the simulator that
// can be cut (every connection dropped) and restored.
type switchable struct {
	*httptest.Server
	down atomic.Bool
}

func newSwitchable(t *testing.T, target string) *switchable {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = ""
	s := &switchable{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// cutter cuts the provider at a running job's first event.
type cutter struct {
	finetune.Trainer
	edge *switchable
	once sync.Once
}

func (c *cutter) WatchJob(ctx context.Context, b finetune.Backend, id string, fn func(finetune.JobEvent) error) (finetune.JobEvent, error) {
	return c.Trainer.WatchJob(ctx, b, id, func(ev finetune.JobEvent) error {
		if ev.State == finetune.StateRunning || ev.State == finetune.StateQueued {
			c.once.Do(func() { c.edge.down.Store(true) })
		}
		return fn(ev)
	})
}

// TestProviderUnreachableThenResume: the provider becomes unreachable
// mid-job; the run fails with a clear error that keeps the job id, which
// the trace store holds. A resumed run (the same run id, the records read
// back from the store) follows that job by id once the provider is back,
// and no second job is created.
func TestProviderUnreachableThenResume(t *testing.T) {
	c, _, err := finetune.Open(finetunetest.Host(t), "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, 200*time.Millisecond)
	edge := newSwitchable(t, f.srv.URL())
	base := edge.URL + "/v1"
	ctx, records := traced(t, module.WithLM(t.Context(), f.model), "run-resume")
	b := f.backend(base)
	b.Options["max_retries"] = "1" // the plugin's retries, before it answers UNAVAILABLE
	cfg := finetune.Config{Metric: metric.ExactMatch("answer"), Trainer: &cutter{Trainer: c, edge: edge},
		Backend: b, RunID: "run-resume", PluginRetry: 3 * time.Second}
	_, err = finetune.NewOptimizer(cfg).Compile(ctx, f.student, f.train)
	if err == nil {
		t.Fatal("the run succeeded with its provider unreachable")
	}
	recs := records()
	if len(recs) != 1 || recs[0].JobID == "" {
		t.Fatalf("stored records %+v", recs)
	}
	if !errors.Is(err, finetune.ErrUnavailable) || !strings.Contains(err.Error(), recs[0].JobID) {
		t.Errorf("error %v: want ErrUnavailable naming job %s", err, recs[0].JobID)
	}
	if !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("error %v does not name the provider", err)
	}
	edge.down.Store(false)
	cfg.Trainer, cfg.Resume = c, recs
	res, err := finetune.NewOptimizer(cfg).Compile(module.WithLM(t.Context(), f.model), f.student, f.train)
	if err != nil {
		t.Fatal(err)
	}
	if j := res.Jobs[0]; j.JobID != recs[0].JobID || j.State != finetune.StateSucceeded {
		t.Errorf("resumed job %+v, stored %+v", j, recs[0])
	}
	if !res.Resumed || len(res.Traces) != 0 {
		t.Errorf("the resumed run bootstrapped again (%d traces) instead of following its job", len(res.Traces))
	}
	if st := f.srv.Stats(); st.FineTuneJobs != 1 {
		t.Errorf("simulator: %d jobs, want 1 (the resumed run followed the stored job)", st.FineTuneJobs)
	}
	// Without the records, the same run id asks for the same job again:
	// the idempotency key finds it at the provider.
	cfg.Resume = nil
	again, err := finetune.NewOptimizer(cfg).Compile(module.WithLM(t.Context(), f.model), f.student, f.train)
	if err != nil {
		t.Fatal(err)
	}
	if again.Jobs[0].JobID != recs[0].JobID || f.srv.Stats().FineTuneJobs != 1 {
		t.Errorf("rerun without records: job %s, simulator %d jobs", again.Jobs[0].JobID, f.srv.Stats().FineTuneJobs)
	}
	// A resumed run whose bootstrap made other data (an LM that is not
	// deterministic: here, another idempotency key) still follows the job
	// it started for that LM.
	cfg.RunID = "run-resume-other"
	cfg.Resume = []finetune.JobRecord{{Key: recs[0].Key, IdempotencyKey: "dspex-other-data", JobID: recs[0].JobID, State: finetune.StateRunning}}
	other, err := finetune.NewOptimizer(cfg).Compile(module.WithLM(t.Context(), f.model), f.student, f.train)
	if err != nil {
		t.Fatal(err)
	}
	if other.Jobs[0].JobID != recs[0].JobID || f.srv.Stats().FineTuneJobs != 1 {
		t.Errorf("resume by the job's key: job %s, simulator %d jobs", other.Jobs[0].JobID, f.srv.Stats().FineTuneJobs)
	}
}

// TestNoPassingTraces: when no run passes the metric there is nothing to
// train on: a clear error, and the provider sees no file and no job.
func TestNoPassingTraces(t *testing.T) {
	c, _, err := finetune.Open(finetunetest.Host(t), "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, 50*time.Millisecond)
	never := metric.FromFunc("never", func(context.Context, example.Example, *example.Prediction) (metric.Result, error) {
		return metric.Result{Score: 0}, nil
	})
	_, err = finetune.NewOptimizer(finetune.Config{Metric: never, Trainer: c, Backend: f.backend(f.srv.URL())}).
		Compile(module.WithLM(t.Context(), f.model), f.student, f.train)
	if !errors.Is(err, finetune.ErrNoData) || !strings.Contains(err.Error(), "no job was started") {
		t.Fatalf("error %v, want ErrNoData saying no job was started", err)
	}
	if st := f.srv.Stats(); st.FineTuneJobs != 0 || st.Files != 0 {
		t.Errorf("simulator: %d jobs, %d files; want none", st.FineTuneJobs, st.Files)
	}
}

// TestJobFails: a job the provider fails (the simulator fails a job whose
// suffix is "fail") ends the run with the provider's error.
func TestJobFails(t *testing.T) {
	c, _, err := finetune.Open(finetunetest.Host(t), "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, 50*time.Millisecond)
	b := f.backend(f.srv.URL())
	b.Options["suffix"] = lmtest.FailSuffix
	res, err := finetune.NewOptimizer(finetune.Config{Metric: metric.ExactMatch("answer"), Trainer: c, Backend: b, RunID: "run-fail"}).
		Compile(module.WithLM(t.Context(), f.model), f.student, f.train)
	if !errors.Is(err, finetune.ErrJob) || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("error %v, want ErrJob (failed)", err)
	}
	if res == nil || len(res.Jobs) != 1 || res.Jobs[0].State != finetune.StateFailed || res.Jobs[0].Error == "" {
		t.Errorf("result %+v", res)
	}
}

// TestProviderRejectsFile: a training file that is not chat JSONL is
// refused by the provider, and the plugin says so (ErrInvalid with the
// provider's message); no job is created.
func TestProviderRejectsFile(t *testing.T) {
	c, _, err := finetune.Open(finetunetest.Host(t), "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, 50*time.Millisecond)
	_, err = c.StartJob(t.Context(), finetune.JobRequest{BaseModel: lmtest.DefaultModel, TrainingJSONL: []byte("{\"prompt\": \"x\"}\n"),
		Backend: f.backend(f.srv.URL()), IdempotencyKey: "reject-1"})
	if !errors.Is(err, finetune.ErrInvalid) || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("error %v, want ErrInvalid naming line 1", err)
	}
	if st := f.srv.Stats(); st.FineTuneJobs != 0 {
		t.Errorf("simulator: %d jobs, want 0", st.FineTuneJobs)
	}
}

// TestBackendByConfiguration: the backend is chosen by configuration
// alone. The local backend without its packages (transformers, torch)
// answers FAILED_PRECONDITION naming the extra to install, after the
// training data was made and before any job: nothing reaches the
// simulated provider.
func TestBackendByConfiguration(t *testing.T) {
	python, pythonPath := finetunetest.Python(t)
	if finetunetest.Imports(python, pythonPath, "import transformers, torch") {
		t.Skip("this Python has transformers and torch: the local backend is available (make test-finetune-local tests it)")
	}
	c, _, err := finetune.Open(finetunetest.Host(t), "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, 50*time.Millisecond)
	modelDir := t.TempDir()
	b := finetune.Backend{Name: finetune.BackendLocal, Options: map[string]string{"output_dir": t.TempDir()}}
	_, err = finetune.NewOptimizer(finetune.Config{Metric: metric.ExactMatch("answer"), Trainer: c, Backend: b, BaseModel: modelDir, RunID: "run-local"}).
		Compile(module.WithLM(t.Context(), f.model), f.student, f.train)
	if !errors.Is(err, finetune.ErrPrecondition) || !strings.Contains(err.Error(), "pip install 'dspex_plugins[finetune-local]'") {
		t.Fatalf("error %v, want ErrPrecondition naming the finetune-local extra", err)
	}
	if st := f.srv.Stats(); st.FineTuneJobs != 0 || st.Files != 0 {
		t.Errorf("simulator: %d jobs, %d files; want none", st.FineTuneJobs, st.Files)
	}
}

// TestCancelCancelsJob: cancelling the run's context cancels the job at
// the provider.
func TestCancelCancelsJob(t *testing.T) {
	c, _, err := finetune.Open(finetunetest.Host(t), "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, time.Second)
	ctx, cancel := context.WithCancel(module.WithLM(t.Context(), f.model))
	defer cancel()
	tr := &canceller{Trainer: c, cancel: cancel}
	_, err = finetune.NewOptimizer(finetune.Config{Metric: metric.ExactMatch("answer"), Trainer: tr, Backend: f.backend(f.srv.URL()), RunID: "run-cancel"}).
		Compile(ctx, f.student, f.train)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		jobs := f.srv.FineTuneJobs()
		if len(jobs) == 1 && jobs[0].Status == lmtest.JobCancelled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("simulator's jobs %+v: not cancelled", jobs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// canceller cancels the run at a job's first event.
type canceller struct {
	finetune.Trainer
	cancel context.CancelFunc
}

func (c *canceller) WatchJob(ctx context.Context, b finetune.Backend, id string, fn func(finetune.JobEvent) error) (finetune.JobEvent, error) {
	return c.Trainer.WatchJob(ctx, b, id, func(ev finetune.JobEvent) error {
		c.cancel()
		return fn(ev)
	})
}

// twoStep is a program of two predictors: a draft, then the answer.
func twoStep(t *testing.T) module.Program {
	t.Helper()
	p, err := module.NewPipeline(
		module.Step{Name: "draft", Program: module.NewPredict(signature.MustParse("question -> draft"))},
		module.Step{Name: "final", Program: module.NewPredict(signature.MustParse("question, draft -> answer"))},
	)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestJobsPerLMOrPredictor: multitask (the default) trains one job on
// every call of both predictors and gives both its model; PerPredictor
// trains one job per predictor on that predictor's calls alone.
func TestJobsPerLMOrPredictor(t *testing.T) {
	c, _, err := finetune.Open(finetunetest.Host(t), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, per := range []bool{false, true} {
		name := "multitask"
		if per {
			name = "per predictor"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, 50*time.Millisecond)
			ctx := module.WithLM(t.Context(), f.model)
			res, err := finetune.NewOptimizer(finetune.Config{Metric: metric.ExactMatch("answer"), Trainer: c,
				Backend: f.backend(f.srv.URL()), RunID: "run-" + name, PerPredictor: per}).Compile(ctx, twoStep(t), f.train)
			if err != nil {
				t.Fatal(err)
			}
			passed := res.Passed()
			if passed == 0 {
				t.Fatal("no trace passed")
			}
			preds := res.Program.NamedPredictors()
			if len(preds) != 2 {
				t.Fatalf("%d predictors", len(preds))
			}
			count := func(data []byte, field string) int {
				return bytes.Count(data, []byte(`[[ ## `+field+` ## ]]\n{`+field+`}`))
			}
			if !per {
				if len(res.Jobs) != 1 || res.Jobs[0].Examples != 2*passed || len(res.Jobs[0].Predictors) != 2 {
					t.Fatalf("jobs %+v for %d passing traces", res.Jobs, passed)
				}
				data := res.Data[res.Jobs[0].Key]
				if count(data, "draft") != 2*passed {
					t.Errorf("the file's system messages describe draft %d times, want %d (both predictors' calls)", count(data, "draft"), 2*passed)
				}
				for _, np := range preds {
					if np.Predictor.LM().Model() != res.Jobs[0].FineTunedModel {
						t.Errorf("%s on %s, want %s", np.Name, np.Predictor.LM().Model(), res.Jobs[0].FineTunedModel)
					}
				}
				if st := f.srv.Stats(); st.FineTuneJobs != 1 {
					t.Errorf("simulator: %d jobs, want 1", st.FineTuneJobs)
				}
				return
			}
			if len(res.Jobs) != 2 {
				t.Fatalf("jobs %+v, want one per predictor", res.Jobs)
			}
			for i, j := range res.Jobs {
				if j.Key != "predictor:"+preds[i].Name || j.Examples != passed || preds[i].Predictor.LM().Model() != j.FineTunedModel {
					t.Errorf("job %+v for predictor %s on %s", j, preds[i].Name, preds[i].Predictor.LM().Model())
				}
			}
			if res.Jobs[0].FineTunedModel == res.Jobs[1].FineTunedModel {
				t.Error("both predictors got the same model")
			}
			// Each file holds its own predictor's calls only.
			outputs := func(field string) []byte { return []byte("Your output fields are:\\n1. `" + field + "`") }
			for key, field := range map[string]string{"predictor:draft": "draft", "predictor:final": "answer"} {
				other := map[string]string{"draft": "answer", "answer": "draft"}[field]
				if n, m := bytes.Count(res.Data[key], outputs(field)), bytes.Count(res.Data[key], outputs(other)); n != passed || m != 0 {
					t.Errorf("%s: %d calls producing %s (want %d), %d producing %s (want 0)", key, n, field, passed, m, other)
				}
			}
			if st := f.srv.Stats(); st.FineTuneJobs != 2 {
				t.Errorf("simulator: %d jobs, want 2", st.FineTuneJobs)
			}
		})
	}
}

// tinyModel builds, in the directory argv[1], a 2-layer GPT-2 with random
// weights and a byte-level BPE tokenizer trained on a few chat lines, with
// room for the training file's longest conversation (the system message
// and demos make it a few thousand tokens of this tokenizer).
const tinyModel = `
import sys, tokenizers, torch, transformers
special = {"unk_token": "[UNK]", "pad_token": "[PAD]", "eos_token": "<eos>"}
tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=special["unk_token"]))
tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = tokenizers.decoders.ByteLevel()
trainer = tokenizers.trainers.BpeTrainer(vocab_size=400, special_tokens=list(special.values()),
    initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
tok.train_from_iterator(["[[ ## question ## ]]\nWhat is the capital of France?\n\n[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"], trainer)
tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, **special)
torch.manual_seed(0)
config = transformers.GPT2Config(vocab_size=len(tokenizer), n_positions=4096, n_embd=32, n_layer=2, n_head=2,
    bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
transformers.GPT2LMHeadModel(config).save_pretrained(sys.argv[1])
tokenizer.save_pretrained(sys.argv[1])
`

// TestLocalBackendTrains switches the same optimization to the local
// backend by configuration alone: the plugin fine-tunes a tiny model
// directory (built here, randomly initialised: nothing is downloaded) with
// transformers on the training file, and the student's predictor gets the
// saved model. Needs a Python with the finetune-local extra (DSPEX_PYTHON,
// e.g. the virtualenv make test-finetune-local makes); skipped otherwise.
func TestLocalBackendTrains(t *testing.T) {
	python, pythonPath := finetunetest.Python(t)
	if !finetunetest.Imports(python, pythonPath, "import transformers, torch, tokenizers") {
		t.Skip("no transformers and torch in " + python + " (make test-finetune-local makes a virtualenv with them; point DSPEX_PYTHON at it)")
	}
	c, _, err := finetune.Open(finetunetest.HostWith(t, "import dspex_plugins.finetune"), "")
	if err != nil {
		t.Fatal(err)
	}
	modelDir := filepath.Join(t.TempDir(), "tiny")
	mk := exec.Command(python, "-c", tinyModel, modelDir)
	mk.Env = append(os.Environ(), "PYTHONPATH="+pythonPath)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("build the tiny model: %v\n%s", err, out)
	}
	f := newFixture(t, 50*time.Millisecond)
	out := t.TempDir()
	b := finetune.Backend{Name: finetune.BackendLocal, Options: map[string]string{"output_dir": out, "max_steps": "3", "poll_interval": "0.1"}}
	res, err := finetune.NewOptimizer(finetune.Config{Metric: metric.ExactMatch("answer"), Trainer: c, Backend: b, BaseModel: modelDir, RunID: "run-local"}).
		Compile(module.WithLM(t.Context(), f.model), f.student, f.train)
	if err != nil {
		t.Fatal(err)
	}
	j := res.Jobs[0]
	if j.State != finetune.StateSucceeded || j.Backend != finetune.BackendLocal || j.BaseModel != modelDir {
		t.Fatalf("job %+v", j)
	}
	if _, err := os.Stat(filepath.Join(j.FineTunedModel, "config.json")); err != nil || !strings.HasPrefix(j.FineTunedModel, out) {
		t.Errorf("the tuned model %q is not a saved model under %s: %v", j.FineTunedModel, out, err)
	}
	if m := res.Program.NamedPredictors()[0].Predictor.LM(); m == nil || m.Model() != j.FineTunedModel {
		t.Errorf("the tuned predictor's model is %v, want %s", m, j.FineTunedModel)
	}
	if st := f.srv.Stats(); st.FineTuneJobs != 0 || st.Files != 0 {
		t.Errorf("the simulated provider got %d jobs and %d files from a local run", st.FineTuneJobs, st.Files)
	}
}
