package mipro

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/bridge"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyrand"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/plugins/sampler"
)

var taskDir = filepath.Join("..", "..", "examples", "capitals")

// newLM is the one place the tests build an LM client: an OpenAI-compatible
// client of a simulator.
func newLM(t testing.TB, srv *lmtest.Server) lm.LM {
	t.Helper()
	client, err := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// capitals loads the bundled task and returns a task model (the simulator
// in dataset mode) and a prompt model (a scripted simulator whose
// proposals carry the skill model's instruction cues; the "high stakes"
// tip gets an empty, unusable proposal).
func capitals(t testing.TB) (train, dev []example.Example, task, prompt lm.LM) {
	t.Helper()
	train, err := example.LoadJSONL(filepath.Join(taskDir, "train.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	dev, err = example.LoadJSONL(filepath.Join(taskDir, "dev.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := lmtest.LoadDatasetFiles([]string{filepath.Join(taskDir, "train.jsonl"), filepath.Join(taskDir, "dev.jsonl")}, lmtest.DatasetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	taskSrv := lmtest.NewServer(t, lmtest.WithDataset(ds))
	promptSrv := lmtest.NewServer(t, lmtest.WithScript(&lmtest.Script{Rules: []lmtest.Rule{
		{Match: "high stakes", Fields: map[string]any{"proposed_instruction": ""}},
		{Match: "persona", Fields: map[string]any{"proposed_instruction": "You are a quiz champion. Think carefully, then give only the answer: the exact name or capital, in as few words as possible."}},
		{Match: "proposed_instruction", Fields: map[string]any{"proposed_instruction": "Proposed Instruction: Give only the answer, one or two words, exactly as a quiz expects."}},
	}}))
	return train, dev, newLM(t, taskSrv), newLM(t, promptSrv)
}

// Plan says what Compile will do, and refuses what Compile refuses before
// its first LM call.
func TestPlan(t *testing.T) {
	train, dev, _, _ := capitals(t)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	for _, tc := range []struct {
		name       string
		cfg        Config
		train, val []example.Example
		want       Plan
		err        error
	}{
		{"light without a valset", Config{}, train, nil,
			Plan{Auto: Light, NumTrials: 10, InstructionCandidates: 3, DemoSetCandidates: 6, Minibatch: true, MinibatchSize: 35, FullEvalSteps: 5, TrainSize: len(train) - len(train)*8/10, ValSize: len(train) * 8 / 10, Seed: 9}, nil},
		{"light on 40: no minibatches", Config{Seed: 3}, train, dev[:40],
			Plan{Auto: Light, NumTrials: 10, InstructionCandidates: 3, DemoSetCandidates: 6, MinibatchSize: 35, FullEvalSteps: 5, TrainSize: len(train), ValSize: 40, Seed: 3}, nil},
		{"zero-shot off", Config{ZeroShot: true, NumCandidates: 4, NumTrials: 7, MinibatchSize: 10}, train, dev[:20],
			Plan{Auto: Off, NumTrials: 7, InstructionCandidates: 4, ZeroShot: true, Minibatch: true, MinibatchSize: 10, FullEvalSteps: 5, TrainSize: len(train), ValSize: 20, Seed: 9}, nil},
		{"minibatch too large", Config{NumCandidates: 4, NumTrials: 7}, train, dev[:20], Plan{}, ErrConfig},
		{"trials without candidates", Config{NumTrials: 7}, train, nil, Plan{}, ErrConfig},
		{"one example", Config{}, train[:1], nil, Plan{}, ErrData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := New(tc.cfg).Plan(student, tc.train, tc.val)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Plan: %v, want %v", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNumTrialsAndAutoSettings(t *testing.T) {
	for _, tc := range []struct {
		auto             Auto
		preds            int
		zeroShot         bool
		trials, ins, dem int
	}{
		{Light, 1, false, 10, 3, 6},
		{Light, 1, true, 9, 6, 6},
		{Medium, 1, false, 18, 6, 12},
		{Heavy, 2, false, 33, 9, 18},
		{Light, 3, false, 31, 3, 6},
	} {
		t.Run(fmt.Sprintf("%s/%d/%v", tc.auto, tc.preds, tc.zeroShot), func(t *testing.T) {
			s, err := New(Config{Auto: tc.auto, ZeroShot: tc.zeroShot}).settings(tc.preds)
			if err != nil {
				t.Fatal(err)
			}
			if s.numTrials != tc.trials || s.numInstruct != tc.ins || s.numDemos != tc.dem {
				t.Errorf("trials %d, instructions %d, demo sets %d; want %d, %d, %d", s.numTrials, s.numInstruct, s.numDemos, tc.trials, tc.ins, tc.dem)
			}
		})
	}
	s, err := New(Config{}).settings(1)
	if err != nil || s.auto != Light || s.seed != 9 || s.minibatchSize != 35 || s.fullEvalSteps != 5 || s.maxBoot != 4 || s.maxLabeled != 4 {
		t.Errorf("zero Config: %+v, %v", s, err)
	}
	for _, bad := range []Config{
		{Auto: Light, NumCandidates: 5},
		{Auto: Off, NumCandidates: 5},
		{Auto: Off, NumTrials: 5},
		{Auto: "huge"},
	} {
		if _, err := New(bad).settings(1); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", bad, err)
		}
	}
	if s, err := New(Config{NumCandidates: 4, NumTrials: 7}).settings(1); err != nil || s.auto != Off || s.numTrials != 7 {
		t.Errorf("candidates and trials without Auto: %+v, %v", s, err)
	}
}

func exs(n int) []example.Example {
	out := make([]example.Example, n)
	for i := range out {
		out[i] = example.New(map[string]any{"question": strconv.Itoa(i), "answer": "a"}).WithInputs("question")
	}
	return out
}

func TestSplit(t *testing.T) {
	train, val, err := Split(exs(10), nil)
	if err != nil || len(train) != 2 || len(val) != 8 || train[0].String("question") != "0" || val[0].String("question") != "2" {
		t.Errorf("split of 10: %d/%d, %v", len(train), len(val), err)
	}
	train, val, err = Split(exs(2), nil)
	if err != nil || len(train) != 1 || len(val) != 1 {
		t.Errorf("split of 2: %d/%d, %v", len(train), len(val), err)
	}
	for _, tc := range []struct{ train, val []example.Example }{{nil, nil}, {exs(1), nil}, {exs(3), []example.Example{}}} {
		if _, _, err := Split(tc.train, tc.val); !errors.Is(err, ErrData) {
			t.Errorf("Split(%d, %v): %v, want ErrData", len(tc.train), tc.val, err)
		}
	}
}

func TestStripPrefixAndRepr(t *testing.T) {
	for in, want := range map[string]string{
		"Proposed Instruction: Answer briefly.":     "Answer briefly.",
		`** Summary: "The data is quiz questions."`: "The data is quiz questions.",
		"Answer: a: b":                   "a: b",
		"no prefix here":                 "no prefix here",
		"one two three four five six: x": "one two three four five six: x",
	} {
		if got := stripPrefix(in); got != want {
			t.Errorf("stripPrefix(%q) = %q, want %q", in, got, want)
		}
	}
	e := example.FromObject(example.Object{{Key: "question", Value: "Who's there?"}, {Key: "answer", Value: "me"}, {Key: "dspy_uuid", Value: "x"}}).WithInputs("question")
	want := `[Example({'question': "Who's there?", 'answer': 'me'}) (input_keys={'question'})]`
	if got := examplesRepr([]example.Example{e}); got != want {
		t.Errorf("repr\n got %s\nwant %s", got, want)
	}
}

// fakeSampler is an in-process study that picks uniformly at random (or,
// with outside, answers an index outside the space).
type fakeSampler struct {
	mu      sync.Mutex
	rng     *pyrand.Rand
	space   []sampler.Param
	n       int64
	outside bool
}

func (f *fakeSampler) CreateStudy(_ context.Context, cfg sampler.StudyConfig) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rng, f.space, f.n = pyrand.New(cfg.Seed), cfg.Space, 0
	return cfg.ID, nil
}

func (f *fakeSampler) Ask(context.Context, string) (sampler.Trial, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := sampler.Params{}
	for _, prm := range f.space {
		i, _ := f.rng.Randint(0, len(prm.Choices)-1)
		if f.outside {
			i = len(prm.Choices)
		}
		p[prm.Name] = sampler.ChoiceValue(strconv.Itoa(i))
	}
	f.n++
	return sampler.Trial{Number: f.n - 1, Params: p}, nil
}

func (f *fakeSampler) Tell(context.Context, string, int64, float64, sampler.State) error { return nil }

func (f *fakeSampler) Replay(_ context.Context, _ string, trials []sampler.PastTrial) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n += int64(len(trials))
	return f.n, nil
}

func (f *fakeSampler) Rebuild(ctx context.Context, cfg sampler.StudyConfig, history []sampler.PastTrial) error {
	if _, err := f.CreateStudy(ctx, cfg); err != nil {
		return err
	}
	_, err := f.Replay(ctx, cfg.ID, history)
	return err
}

func TestSearchWithFakeSampler(t *testing.T) {
	train, dev, task, prompt := capitals(t)
	ctx := module.WithLM(t.Context(), task)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	opt := New(Config{Metric: metric.ExactMatch("answer"), Sampler: &fakeSampler{}, PromptModel: prompt,
		NumCandidates: 4, NumTrials: 7, MinibatchSize: 10, TrialsInFlight: 2})
	res, err := opt.Compile(ctx, student, train[:20], dev[:30])
	if err != nil {
		t.Fatal(err)
	}
	// Baseline, trials 1-5, a full evaluation, trials 7-8, a full evaluation.
	var kinds []TrialKind
	for i, tr := range res.Trials {
		if tr.Number != int64(i) {
			t.Errorf("trial %d numbered %d", i, tr.Number)
		}
		kinds = append(kinds, tr.Kind)
	}
	want := []TrialKind{Baseline, Sampled, Sampled, Sampled, Sampled, Sampled, FullEval, Sampled, Sampled, FullEval}
	if !cmp.Equal(kinds, want) {
		t.Errorf("trial kinds %v, want %v", kinds, want)
	}
	if len(res.Instructions) != 1 || len(res.Instructions[0]) != 4 || res.Instructions[0][0] != student.Signature().Instructions() {
		t.Errorf("instructions %q", res.Instructions)
	}
	if len(res.DemoSets) != 1 || len(res.DemoSets[0]) != 4 || len(res.DemoSets[0][0]) != 0 {
		t.Errorf("demo sets %d", len(res.DemoSets[0]))
	}
	if res.Trials[1].BatchSize != 10 || !res.Trials[1].Minibatch || res.Trials[6].BatchSize != 30 {
		t.Errorf("batch sizes: %+v", res.Trials)
	}
	if res.Score < res.Trials[0].Score {
		t.Errorf("best %.1f below the baseline %.1f", res.Score, res.Trials[0].Score)
	}
	if len(student.Demos()) != 0 {
		t.Error("the student was changed")
	}
	// The shared random.Random(9) draws as DSPy's: one shuffled demo set,
	// then a tip and a rollout id per proposal (values from CPython).
	var drawn []string
	for _, p := range res.Proposals {
		drawn = append(drawn, p.Tip+" "+p.RolloutID)
		t.Logf("proposal %+v", p)
	}
	if want := []string{"creative 180848161", "creative 55119493", "none 142190875", "high_stakes 936008044"}; !cmp.Equal(drawn, want) {
		t.Errorf("tips and rollout ids %q, want %q", drawn, want)
	}
	if p := res.Proposals[3]; p.Fallback == "" || p.Instruction != student.Signature().Instructions() {
		t.Errorf("an empty proposal: %+v, want the original instruction and a recorded fallback", p)
	}
	t.Logf("summary %q; trials %+v", res.DatasetSummary, res.Trials)

	// One trial at a time, with a sampler that ignores the history, the
	// run is the same: concurrent demo sets, proposals and trials change
	// nothing.
	seq, err := New(Config{Metric: metric.ExactMatch("answer"), Sampler: &fakeSampler{}, PromptModel: prompt,
		NumCandidates: 4, NumTrials: 7, MinibatchSize: 10}).Compile(ctx, student, train[:20], dev[:30])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(res.Trials, seq.Trials); diff != "" {
		t.Errorf("trials in flight changed the trials:\n%s", diff)
	}
	if !cmp.Equal(res.Instructions, seq.Instructions) || fmt.Sprint(res.DemoSets) != fmt.Sprint(seq.DemoSets) {
		t.Error("the candidates differ between two runs")
	}
}

func TestBadInput(t *testing.T) {
	train, dev, task, prompt := capitals(t)
	ctx := module.WithLM(t.Context(), task)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	base := Config{Metric: metric.ExactMatch("answer"), Sampler: &fakeSampler{}, PromptModel: prompt, NumCandidates: 3, NumTrials: 4, MinibatchSize: 5}
	for _, tc := range []struct {
		name       string
		cfg        func(*Config)
		train, val []example.Example
		want       error
	}{
		{"empty trainset", nil, nil, dev[:10], ErrData},
		{"one example, no valset", nil, train[:1], nil, ErrData},
		{"minibatch larger than valset", func(c *Config) { c.MinibatchSize = 50 }, train[:10], dev[:10], ErrConfig},
		{"no metric", func(c *Config) { c.Metric = nil }, train[:10], dev[:10], ErrConfig},
		{"space too small", func(c *Config) { c.ZeroShot, c.NumCandidates = true, 1 }, train[:10], dev[:10], ErrSpace},
		{"sampler outside the space", func(c *Config) { c.Sampler = &fakeSampler{outside: true} }, train[:10], dev[:10], ErrSampler},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			_, err := New(cfg).Compile(ctx, student, tc.train, tc.val)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// Every trial is an optimizer event with its kind, parameters and state,
// bracketed by start and end; without minibatches (an auto mode with a
// validation set of 50 or fewer, as DSPy) every trial is a full
// evaluation and the best is updated as they come; zero-shot searches
// instructions only.
func TestEventsZeroShotAndFullTrials(t *testing.T) {
	train, dev, task, prompt := capitals(t)
	bus := event.NewBus()
	t.Cleanup(bus.Close)
	var mu sync.Mutex
	var got []event.Event
	if _, err := bus.Subscribe(event.SubscribeOptions{Name: "test", Kinds: []event.Kind{event.OptimizerStart, event.OptimizerTrial, event.OptimizerNewBest, event.OptimizerEnd}}, func(e event.Event) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e)
	}); err != nil {
		t.Fatal(err)
	}
	ctx := event.WithBus(module.WithLM(t.Context(), task), bus)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	res, err := New(Config{Metric: metric.ExactMatch("answer"), Sampler: &fakeSampler{}, PromptModel: prompt, ZeroShot: true}).
		Compile(ctx, student, train[:20], dev[:30])
	if err != nil {
		t.Fatal(err)
	}
	if res.Minibatch || res.NumTrials != 9 || len(res.Trials) != 10 || res.DemoSets != nil || len(res.Instructions[0]) != 6 {
		t.Fatalf("zero-shot light on 30: minibatch %v, %d trials, %d logged, demo sets %v, %d instructions",
			res.Minibatch, res.NumTrials, len(res.Trials), res.DemoSets != nil, len(res.Instructions[0]))
	}
	best := res.Trials[0].Score
	for _, tr := range res.Trials[1:] {
		if tr.Kind != Sampled || tr.Minibatch || len(tr.Params) != 1 {
			t.Errorf("trial %+v", tr)
		}
		best = max(best, tr.Score)
	}
	if res.Score != best {
		t.Errorf("best %.2f, the trials' best %.2f", res.Score, best)
	}
	bus.Close()
	mu.Lock()
	defer mu.Unlock()
	var trials, bests int
	for _, e := range got {
		switch e.Kind {
		case event.OptimizerTrial:
			info := e.Data.(*event.OptimizerTrialInfo)
			if info.Optimizer != Name || info.Score == nil || info.Candidate["kind"] == nil || info.Candidate["state"] == nil {
				t.Errorf("trial event %+v", info)
			}
			trials++
		case event.OptimizerNewBest:
			bests++
		}
	}
	if len(got) < 2 || got[0].Kind != event.OptimizerStart || got[len(got)-1].Kind != event.OptimizerEnd || trials != 10 || bests < 1 {
		t.Errorf("events: %d in all, %d trials, %d new bests", len(got), trials, bests)
	}
}

// failing is a sampler whose every call fails with err, after calling
// hook on the at-th Ask.
type failing struct {
	fakeSampler
	err  error
	at   int
	n    int
	hook func()
}

func (f *failing) Ask(ctx context.Context, s string) (sampler.Trial, error) {
	f.n++
	if f.n == f.at && f.hook != nil {
		f.hook()
	}
	if f.err != nil {
		return sampler.Trial{}, f.err
	}
	return f.fakeSampler.Ask(ctx, s)
}

// A plugin that stays down ends the run after SamplerRetry with the
// bridge's error; a cancelled context ends it at once with the context's.
func TestSamplerDownAndCancel(t *testing.T) {
	train, dev, task, prompt := capitals(t)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	base := Config{Metric: metric.ExactMatch("answer"), PromptModel: prompt, NumCandidates: 3, NumTrials: 4, MinibatchSize: 5}

	cfg := base
	cfg.Sampler = &failing{err: &sampler.Error{Op: "ask", Err: bridge.ErrPluginDown}}
	cfg.SamplerRetry = 100 * time.Millisecond
	start := time.Now()
	_, err := New(cfg).Compile(module.WithLM(t.Context(), task), student, train[:10], dev[:10])
	if !errors.Is(err, bridge.ErrPluginDown) || time.Since(start) > 10*time.Second {
		t.Errorf("plugin down: %v after %v, want bridge.ErrPluginDown after about 100ms", err, time.Since(start))
	}

	ctx, cancel := context.WithCancel(module.WithLM(t.Context(), task))
	defer cancel()
	cfg = base
	cfg.Sampler = &failing{at: 3, hook: cancel}
	if _, err := New(cfg).Compile(ctx, student, train[:10], dev[:10]); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
}

// DSPy's defaults on the whole task without a valset: the last 80% of the
// 163 examples validate (130), light samples 100 of them, so minibatches of
// 35 with a full evaluation after trials 5 and 10.
func TestLightDefaultsOnTheWholeTask(t *testing.T) {
	train, dev, task, prompt := capitals(t)
	all := append(slices.Clone(train), dev...)
	res, err := New(Config{Metric: metric.ExactMatch("answer"), Sampler: &fakeSampler{}, PromptModel: prompt}).
		Compile(module.WithLM(t.Context(), task), module.NewPredict(signature.MustParse("question -> answer")), all, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ValsetSize != 100 || !res.Minibatch || res.NumTrials != 10 || len(res.Trials) != 13 ||
		res.Trials[1].BatchSize != 35 || res.Trials[6].Kind != FullEval || res.Trials[12].Kind != FullEval {
		t.Errorf("valset %d, minibatch %v, %d trials: %+v", res.ValsetSize, res.Minibatch, res.NumTrials, res.Trials)
	}
	if len(res.Instructions[0]) != 3 || len(res.DemoSets[0]) != 6 {
		t.Errorf("%d instructions, %d demo sets; want 3 and 6", len(res.Instructions[0]), len(res.DemoSets[0]))
	}
}

// The proposer's task demos: up to 3 bootstrapped demos, from the chosen
// set, then the sets after it, then those before, as DSPy's
// create_example_string writes them ("Question: Q?\nAnswer: A").
func TestTaskDemos(t *testing.T) {
	sig := signature.MustParse("question -> answer")
	demo := func(q string, boot bool) example.Example {
		obj := example.Object{{Key: "question", Value: q}, {Key: "answer", Value: "A" + q}}
		if boot {
			obj = append(example.Object{{Key: "augmented", Value: true}}, obj...)
		}
		return example.FromObject(obj).WithInputs("question")
	}
	sets := [][]example.Example{
		{demo("0", true)},
		{demo("1", true), demo("1b", false)},
		{demo("2", true), demo("2b", true)},
		{demo("3", true)},
	}
	want := "Question: 2\nAnswer: A2\n\nQuestion: 2b\nAnswer: A2b\n\nQuestion: 3\nAnswer: A3\n\n"
	if got := taskDemos(sig, sets, 2); got != want {
		t.Errorf("taskDemos(2) = %q, want %q", got, want)
	}
	if got := taskDemos(sig, sets, 0); got != "No task demos provided." {
		t.Errorf("taskDemos(0) = %q", got)
	}
	if got := taskDemos(sig, [][]example.Example{nil, {demo("x", false)}}, 1); got != "No task demos provided." {
		t.Errorf("taskDemos without bootstrapped demos = %q", got)
	}
}
