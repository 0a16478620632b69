package mipro

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/program"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/trace"
	"github.com/dspex/dspex/plugins/sampler"
	"github.com/dspex/dspex/plugins/sampler/samplertest"
)

// pluginSampler starts the Python sampler plugin through the bridge host.
func pluginSampler(t *testing.T) (*sampler.Client, *bridge.Plugin) {
	t.Helper()
	c, p, err := sampler.Open(samplertest.Host(t), "")
	if err != nil {
		t.Fatal(err)
	}
	return c, p
}

// On the bundled task, with the real Optuna study, MIPROv2 light beats the
// zero-shot program on the dev split.
func TestMIPROLightBeatsZeroShot(t *testing.T) {
	c, _ := pluginSampler(t)
	train, dev, task, prompt := capitals(t)
	ctx := module.WithLM(t.Context(), task)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	m := metric.ExactMatch("answer")
	res, err := New(Config{Metric: m, Sampler: c, PromptModel: prompt, MinibatchSize: 20}).Compile(ctx, student, train, dev[:60])
	if err != nil {
		t.Fatal(err)
	}
	if res.NumTrials != 10 || !res.Minibatch || res.ValsetSize != 60 {
		t.Errorf("light settings: %d trials, minibatch %v, valset %d", res.NumTrials, res.Minibatch, res.ValsetSize)
	}
	if n := len(res.Trials); n != 1+10+2 {
		t.Errorf("%d trials, want the baseline, 10 sampled and 2 full evaluations", n)
	}
	score := func(p module.Program) float64 {
		r, err := evaluate.Run(ctx, p, dev[60:], m, evaluate.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Score
	}
	base, best := score(student), score(res.Program)
	if best <= base+5 {
		t.Errorf("MIPROv2 light: %.1f on held-out dev, zero-shot %.1f", best, base)
	}
	t.Logf("held-out dev: zero-shot %.1f, MIPROv2 light %.1f (valset %.1f); instruction %q, %d demos",
		base, best, res.Score, res.Program.NamedPredictors()[0].Predictor.Signature().Instructions(),
		len(res.Program.NamedPredictors()[0].Predictor.Demos()))
}

// killer SIGKILLs the plugin on the at-th call of op ("ask" or "tell").
type killer struct {
	Sampler
	plugin *bridge.Plugin
	op     string
	at     int
	mu     sync.Mutex
	n      int
	killed int
}

func (k *killer) maybeKill(t *testing.T, op string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if op != k.op {
		return
	}
	k.n++
	if k.n == k.at {
		if err := syscall.Kill(k.plugin.Pid(), syscall.SIGKILL); err != nil {
			t.Errorf("kill: %v", err)
		}
		k.killed++
	}
}

type killTest struct {
	*killer
	t *testing.T
}

func (k killTest) Ask(ctx context.Context, study string) (sampler.Trial, error) {
	k.maybeKill(k.t, "ask")
	return k.Sampler.Ask(ctx, study)
}

func (k killTest) Tell(ctx context.Context, study string, n int64, v float64, s sampler.State) error {
	k.maybeKill(k.t, "tell")
	return k.Sampler.Tell(ctx, study, n, v, s)
}

func (k killTest) Replay(ctx context.Context, study string, trials []sampler.PastTrial) (int64, error) {
	k.maybeKill(k.t, "replay")
	return k.Sampler.Replay(ctx, study, trials)
}

// fusedKillTest is killTest with the fused calls of its sampler (a
// FusedSampler): a call that carries changes counts each as its op
// ("tell", "replay") before counting itself, and the kill comes before
// the call, so "tell 3" kills the plugin just before the call that
// carries the third tell.
type fusedKillTest struct{ killTest }

func (k fusedKillTest) changes(before []sampler.Op) {
	for _, op := range before {
		k.maybeKill(k.t, string(op.Kind))
	}
}

func (k fusedKillTest) AskAfter(ctx context.Context, study string, before []sampler.Op) (sampler.Trial, error) {
	k.changes(before)
	k.maybeKill(k.t, "ask")
	return k.Sampler.(FusedSampler).AskAfter(ctx, study, before)
}

func (k fusedKillTest) ReplayAfter(ctx context.Context, study string, before []sampler.Op, trials []sampler.PastTrial) (int64, error) {
	k.changes(before)
	if len(trials) > 0 {
		k.maybeKill(k.t, "replay")
	}
	return k.Sampler.(FusedSampler).ReplayAfter(ctx, study, before, trials)
}

// killModes are the two ways the search drives the plugin: each change a
// call of its own (a plain Sampler), and fused calls.
var killModes = []string{"plain", "fused"}

// killSampler wraps k for mode.
func killSampler(mode string, k *killer, t *testing.T) Sampler {
	if mode == "fused" {
		return fusedKillTest{killTest{k, t}}
	}
	return killTest{k, t}
}

// counting counts the round trips to the plugin and the changes fused
// calls carried; as a plain Sampler it hides the fused calls.
type counting struct {
	Sampler
	mu      sync.Mutex
	calls   int
	carried int
}

func (c *counting) count(changes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.carried += changes
}

func (c *counting) CreateStudy(ctx context.Context, cfg sampler.StudyConfig) (string, error) {
	c.count(0)
	return c.Sampler.CreateStudy(ctx, cfg)
}

func (c *counting) Ask(ctx context.Context, study string) (sampler.Trial, error) {
	c.count(0)
	return c.Sampler.Ask(ctx, study)
}

func (c *counting) Tell(ctx context.Context, study string, n int64, v float64, s sampler.State) error {
	c.count(0)
	return c.Sampler.Tell(ctx, study, n, v, s)
}

func (c *counting) Replay(ctx context.Context, study string, trials []sampler.PastTrial) (int64, error) {
	c.count(0)
	return c.Sampler.Replay(ctx, study, trials)
}

type countingFused struct{ *counting }

func (c countingFused) AskAfter(ctx context.Context, study string, before []sampler.Op) (sampler.Trial, error) {
	c.count(len(before))
	return c.Sampler.(FusedSampler).AskAfter(ctx, study, before)
}

func (c countingFused) ReplayAfter(ctx context.Context, study string, before []sampler.Op, trials []sampler.PastTrial) (int64, error) {
	c.count(len(before))
	return c.Sampler.(FusedSampler).ReplayAfter(ctx, study, before, trials)
}

// With a FusedSampler the search tells each trial and adds each full
// evaluation in the round trip of the next ask (the last ones on one
// replay): the same trials, a study left in the same state (the next ask
// of both is the same), in about half the round trips — for trials one at
// a time and in flight, with either RNG rule.
func TestFusedCallsHalveTheRoundTrips(t *testing.T) {
	c, _ := pluginSampler(t)
	train, dev, task, prompt := capitals(t)
	ctx := module.WithLM(t.Context(), task)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	for _, tc := range []struct {
		inFlight int
		rng      string
	}{{1, sampler.RNGTrial}, {3, sampler.RNGTrial}, {1, sampler.RNGContinuous}, {3, sampler.RNGContinuous}} {
		t.Run(fmt.Sprintf("%d in flight, rng %s", tc.inFlight, tc.rng), func(t *testing.T) {
			var runs [2]*Result
			var counts [2]*counting
			var next [2]sampler.Trial
			for i, mode := range []string{"plain", "fused"} {
				counts[i] = &counting{Sampler: c}
				var s Sampler = counts[i]
				if mode == "fused" {
					s = countingFused{counts[i]}
				}
				id := fmt.Sprintf("%s-%d-%s", mode, tc.inFlight, tc.rng)
				cfg := Config{Metric: metric.ExactMatch("answer"), PromptModel: prompt, NumCandidates: 5, NumTrials: 10,
					MinibatchSize: 10, TrialsInFlight: tc.inFlight, Sampler: s, StudyID: id}
				res, err := New(cfg, WithSamplerRNG(tc.rng)).Compile(ctx, student, train[:30], dev[:40])
				if err != nil {
					t.Fatal(err)
				}
				runs[i] = res
				if next[i], err = c.Ask(t.Context(), id); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(runs[0].Trials, runs[1].Trials); diff != "" {
				t.Errorf("fused calls ran other trials (-plain +fused):\n%s", diff)
			}
			if !cmp.Equal(next[0], next[1]) {
				t.Errorf("the studies were left differently: next asks %v and %v", next[0], next[1])
			}
			plain, fused := counts[0], counts[1]
			// Plain: create, 10 asks, 10 tells, the baseline and 2 full
			// evaluations; fused: create, 10 asks, one last replay.
			if plain.calls != 24 || fused.calls != 12 || fused.carried != 12 || plain.carried != 0 {
				t.Errorf("plain: %d calls; fused: %d calls carrying %d changes; want 24, 12 carrying 12", plain.calls, fused.calls, fused.carried)
			}
		})
	}
}

// A SIGKILLed sampler plugin mid-run: the supervisor restarts it, the
// study is rebuilt from the trial log, and the run ends with the same
// complete, unique trial log and best program as an uninterrupted run.
func TestSamplerKilledMidRun(t *testing.T) {
	c, _ := pluginSampler(t)
	train, dev, task, prompt := capitals(t)
	ctx := module.WithLM(t.Context(), task)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	cfg := Config{Metric: metric.ExactMatch("answer"), PromptModel: prompt, NumCandidates: 5, NumTrials: 8, MinibatchSize: 10}
	state := func(p module.Program) string {
		var b bytes.Buffer
		if err := program.SaveState(&b, p); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	for _, tc := range []struct {
		name     string
		inFlight int
		op       string
		at       int
	}{
		{"tell", 1, "tell", 3},
		{"ask with trials in flight", 2, "ask", 4},
		{"adding a full evaluation", 2, "replay", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cfg
			cfg.TrialsInFlight = tc.inFlight
			cfg.Sampler = c
			cfg.StudyID = "ref"
			want, err := New(cfg).Compile(ctx, student, train[:30], dev[:40])
			if err != nil {
				t.Fatal(err)
			}
			for _, mode := range killModes {
				t.Run(mode, func(t *testing.T) {
					// A plugin of its own: the supervisor gives up after 5
					// restarts within a minute.
					c, p := pluginSampler(t)
					k := &killer{Sampler: c, plugin: p, op: tc.op, at: tc.at}
					cfg.Sampler = killSampler(mode, k, t)
					cfg.StudyID = "killed-" + mode
					got, err := New(cfg).Compile(ctx, student, train[:30], dev[:40])
					if err != nil {
						t.Fatal(err)
					}
					if k.killed != 1 || got.Rebuilds < 1 {
						t.Fatalf("killed %d times, %d rebuilds", k.killed, got.Rebuilds)
					}
					seen := map[int64]bool{}
					for i, tr := range got.Trials {
						if tr.Number != int64(i) || seen[tr.Number] {
							t.Errorf("trial %d numbered %d", i, tr.Number)
						}
						seen[tr.Number] = true
					}
					if diff := cmp.Diff(want.Trials, got.Trials); diff != "" {
						t.Errorf("trial log differs from an uninterrupted run:\n%s", diff)
					}
					if want.Score != got.Score || state(want.Program) != state(got.Program) {
						t.Errorf("best program differs: %.2f vs %.2f", want.Score, got.Score)
					}
				})
			}
		})
	}
}

// cancelAt cancels the run at its at-th Ask.
type cancelAt struct {
	Sampler
	at     int
	n      int
	cancel func()
}

func (c *cancelAt) Ask(ctx context.Context, study string) (sampler.Trial, error) {
	c.n++
	if c.n == c.at {
		c.cancel()
	}
	return c.Sampler.Ask(ctx, study)
}

// trialEvents runs Compile with a bus and returns its result, the trials
// read back from its optimizer.trial events (as the trace store keeps
// them) and its error.
func trialEvents(t *testing.T, ctx context.Context, opt *Optimizer, student module.Program, train, val []example.Example) (*Result, []Trial, error) {
	t.Helper()
	bus := event.NewBus()
	var mu sync.Mutex
	var trials []Trial
	if _, err := bus.Subscribe(event.SubscribeOptions{Name: "log", Kinds: []event.Kind{event.OptimizerTrial}}, func(e event.Event) {
		info := e.Data.(*event.OptimizerTrialInfo)
		raw, err := json.Marshal(info.Candidate)
		if err != nil {
			t.Error(err)
			return
		}
		tr, ok := TrialFromRecord(info.Trial, raw, *info.Score, info.Minibatch)
		if !ok {
			t.Errorf("trial event %s is not a MIPROv2 trial", raw)
			return
		}
		mu.Lock()
		trials = append(trials, tr)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	res, err := opt.Compile(event.WithBus(ctx, bus), student, train, val)
	bus.Close()
	mu.Lock()
	defer mu.Unlock()
	return res, trials, err
}

// An interrupted run resumed from its trial events (kept by the trace
// store) evaluates only what is
// left and ends as an uninterrupted run.
func TestResumeFromTrialEvents(t *testing.T) {
	c, _ := pluginSampler(t)
	train, dev, task, prompt := capitals(t)
	ctx := module.WithLM(t.Context(), task)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	cfg := Config{Metric: metric.ExactMatch("answer"), Sampler: c, PromptModel: prompt, NumCandidates: 5, NumTrials: 8, MinibatchSize: 10, TrialsInFlight: 2}
	want, wantEvents, err := trialEvents(t, ctx, New(cfg), student, train[:30], dev[:40])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.Trials, wantEvents); diff != "" {
		t.Errorf("trials read back from events differ from the log:\n%s", diff)
	}

	// The interrupted run, recorded by the trace store, and its trials
	// read back as `dspex optimize --resume` reads them.
	path := filepath.Join(t.TempDir(), "trace.db")
	store, err := trace.Open(ctx, path, trace.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bus := event.NewBus()
	if err := store.Attach(bus); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(event.WithBus(ctx, bus))
	defer cancel()
	cctx, span := event.StartRun(cctx)
	event.Publish(cctx, event.RunStart, span, &event.RunInfo{Name: "optimize"})
	cut := cfg
	cut.Sampler = &cancelAt{Sampler: c, at: 6, cancel: cancel}
	_, err = New(cut).Compile(cctx, student, train[:30], dev[:40])
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	event.Publish(context.WithoutCancel(cctx), event.RunEnd, span, &event.RunInfo{Name: "optimize", Error: err.Error()})
	bus.Close()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	reader, err := trace.OpenReader(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	stored, err := reader.Trials(ctx, span.RunID)
	if err != nil {
		t.Fatal(err)
	}
	var logged []Trial
	for _, tr := range stored {
		if tr.Kind != trace.TrialEvaluated || tr.Score == nil {
			continue
		}
		if lt, ok := TrialFromRecord(tr.Trial, tr.Candidate, *tr.Score, tr.Minibatch); ok {
			logged = append(logged, lt)
		}
	}
	if len(logged) < 3 || len(logged) >= len(want.Trials) {
		t.Fatalf("interrupted run: %d trials stored", len(logged))
	}

	resumed := cfg
	resumed.Resume = logged
	got, err := New(resumed).Compile(ctx, student, train[:30], dev[:40])
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, tr := range got.Trials {
		if tr.Resumed {
			n++
			got.Trials[i].Resumed = false
		}
	}
	if n != len(logged) {
		t.Errorf("%d trials resumed, %d logged", n, len(logged))
	}
	if diff := cmp.Diff(want.Trials, got.Trials); diff != "" {
		t.Errorf("the resumed run's trials differ from an uninterrupted run's:\n%s", diff)
	}
	if got.Score != want.Score {
		t.Errorf("best %.2f, uninterrupted %.2f", got.Score, want.Score)
	}

	for _, log := range [][]Trial{
		{{Number: 0, Kind: Sampled, Params: map[string]int{}}},
		append(slices.Clone(want.Trials), Trial{Number: int64(len(want.Trials)), Kind: Sampled, Params: want.Trials[1].Params}),
	} {
		bad := cfg
		bad.Resume = log
		if _, err := New(bad).Compile(ctx, student, train[:30], dev[:40]); !errors.Is(err, ErrResume) {
			t.Errorf("a log of another optimization: %v, want ErrResume", err)
		}
	}
}
