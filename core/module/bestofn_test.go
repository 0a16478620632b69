package module_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// rolloutSim is a simulator with the LM pointing at it: model is
// recordingLM(OpenAI client), in a Stack with store as its cache when one
// is given. rec sees what passed the cache.
type rolloutSim struct {
	srv   *lmtest.Server
	rec   *recordingLM
	model lm.LM
}

func startRolloutSim(t testing.TB, cfg lmtest.Config, store lm.ResponseStore) *rolloutSim {
	t.Helper()
	srv, err := lmtest.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	client, err := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_NO_KEY"})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingLM{LM: client}
	var model lm.LM = rec
	if store != nil {
		model = lm.NewStack(rec, lm.ExecConfig{Cache: store})
	}
	return &rolloutSim{srv: srv, rec: rec, model: model}
}

// recordingLM records the requests it is sent and the usage of the
// responses.
type recordingLM struct {
	lm.LM
	mu    sync.Mutex
	reqs  []lm.Request
	usage lm.Usage
}

func (r *recordingLM) Complete(ctx context.Context, req *lm.Request) (*lm.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, *req)
	r.mu.Unlock()
	resp, err := r.LM.Complete(ctx, req)
	if err == nil {
		r.mu.Lock()
		r.usage = r.usage.Add(resp.Usage)
		r.mu.Unlock()
	}
	return resp, err
}

func (r *recordingLM) requests() []lm.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

func (r *recordingLM) totalUsage() lm.Usage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.usage
}

// memStore is an in-memory lm.ResponseStore.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) Get(_ context.Context, key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	return slices.Clone(v), ok
}

func (s *memStore) Set(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[key] = slices.Clone(value)
	return nil
}

// answersInTurn scripts the simulator to answer "one", "two", "three", …
// to successive requests, then placeholders.
func answersInTurn(answers ...string) *lmtest.Script {
	s := &lmtest.Script{}
	for _, a := range answers {
		s.Rules = append(s.Rules, lmtest.Rule{Fields: map[string]any{"answer": a}, Times: 1})
	}
	return s
}

// scriptedProgram is a Program whose Forward is fn, with the call number.
// Its clones share the call count.
type scriptedProgram struct {
	calls *atomic.Int32
	fn    func(ctx context.Context, call int, in module.Inputs) (*example.Prediction, error)
}

func newScriptedProgram(fn func(ctx context.Context, call int, in module.Inputs) (*example.Prediction, error)) *scriptedProgram {
	return &scriptedProgram{calls: new(atomic.Int32), fn: fn}
}

func (p *scriptedProgram) Forward(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
	return p.fn(ctx, int(p.calls.Add(1)-1), in)
}
func (p *scriptedProgram) NamedPredictors() []module.NamedPredictor { return nil }
func (p *scriptedProgram) Clone() module.Program                    { return p }

func rewardByAnswer(rewards map[string]float64) module.RewardFunc {
	return module.Reward(func(_ module.Inputs, pred *example.Prediction) float64 { return rewards[pred.String("answer")] })
}

func TestBestOfNAgainstSimulator(t *testing.T) {
	cases := []struct {
		name         string
		rewards      map[string]float64
		wantRequests int
		wantAnswer   string
	}{
		{"threshold met at once", map[string]float64{"one": 1}, 1, "one"},
		{"only the third attempt accepted", map[string]float64{"three": 1}, 3, "three"},
		{"none accepted: the best is returned", map[string]float64{"one": 0.2, "two": 0.9, "three": 0.5}, 3, "two"},
		{"ties keep the earlier attempt", map[string]float64{"one": 0.5, "two": 0.5, "three": 0.5}, 3, "one"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := startRolloutSim(t, lmtest.Config{Script: answersInTurn("one", "two", "three")}, nil)
			ctx := module.WithLM(context.Background(), sim.model)
			// The predictor's own temperature is overridden by the attempts'.
			qa := module.NewPredict(signature.MustParse("question -> answer"), module.WithConfig(lm.Params{Temperature: lm.Float(0)}))
			best := module.NewBestOfN(qa, 3, rewardByAnswer(c.rewards), 1.0)
			pred, err := best.Forward(ctx, module.Inputs{"question": "Count."})
			if err != nil {
				t.Fatal(err)
			}
			if got := pred.String("answer"); got != c.wantAnswer {
				t.Errorf("answer = %q, want %q", got, c.wantAnswer)
			}
			if n := len(sim.srv.Requests()); n != c.wantRequests {
				t.Errorf("server saw %d requests, want %d", n, c.wantRequests)
			}
			reqs := sim.rec.requests()
			for i, r := range reqs {
				if r.Temperature == nil || *r.Temperature != 1.0 {
					t.Errorf("request %d: temperature %v, want 1.0", i, r.Temperature)
				}
				if want := fmt.Sprint(i); r.RolloutID != want {
					t.Errorf("request %d: rollout id %q, want %q", i, r.RolloutID, want)
				}
			}
			if pred.Usage != sim.rec.totalUsage() || pred.Usage.TotalTokens == 0 {
				t.Errorf("usage = %+v, want the attempts' total %+v", pred.Usage, sim.rec.totalUsage())
			}
		})
	}
}

// Distinct rollouts must not collapse into one cache entry, while a repeated
// call reuses the same rollouts (the ids are deterministic).
func TestBestOfNRolloutsBypassTheCache(t *testing.T) {
	sim := startRolloutSim(t, lmtest.Config{Seed: 1}, &memStore{})
	ctx := module.WithLM(context.Background(), sim.model)
	qa := module.NewPredict(signature.MustParse("question -> answer"))
	never := module.Reward(func(module.Inputs, *example.Prediction) float64 { return 0 })
	in := module.Inputs{"question": "Same prompt every time."}

	best := module.NewBestOfN(qa, 3, never, 1)
	if _, err := best.Forward(ctx, in); err != nil {
		t.Fatal(err)
	}
	if n := len(sim.srv.Requests()); n != 3 {
		t.Fatalf("server saw %d requests for 3 rollouts of one prompt, want 3", n)
	}
	if _, err := best.Forward(ctx, in); err != nil {
		t.Fatal(err)
	}
	if n := len(sim.srv.Requests()); n != 3 {
		t.Errorf("repeating the call sent %d more requests, want 0 (cache hits)", n-3)
	}
	// A context with a rollout id of its own samples other rollouts.
	if _, err := best.Forward(module.WithRolloutID(ctx, "7"), in); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range sim.rec.requests() {
		ids = append(ids, r.RolloutID)
	}
	if want := []string{"0", "1", "2", "7", "8", "9"}; !slices.Equal(ids, want) {
		t.Errorf("rollout ids = %v, want %v", ids, want)
	}
	// Control: without rollout ids the same prompt is one cache entry.
	for range 3 {
		if _, err := qa.Forward(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(sim.srv.Requests()); n != 7 {
		t.Errorf("server saw %d requests, want 7 (one for the plain calls)", n)
	}
}

func TestBestOfNFailCount(t *testing.T) {
	boom := func(i int) error { return fmt.Errorf("boom %d", i) }
	cases := []struct {
		name      string
		n         int
		failCount int
		fails     []int // calls that fail
		rewards   map[int]float64
		wantCalls int
		wantErr   error // nil: success
		wantAns   int
	}{
		{"all fail, default fail count: the N-th failure is returned", 3, 0, []int{0, 1, 2}, nil, 3, boom(2), 0},
		{"two attempts all failing run out", 2, 0, []int{0, 1}, nil, 2, module.ErrAttemptsFailed, 0},
		{"fail count 1: the second failure ends the run", 3, 1, []int{0, 1}, nil, 2, boom(1), 0},
		{"fail count 1: a failure after a success still counts", 3, 1, []int{0, 2}, map[int]float64{1: 0.5}, 3, boom(2), 0},
		{"a failure then success", 3, 0, []int{0}, map[int]float64{1: 1}, 2, nil, 1},
		{"failures around the best attempt", 4, 0, []int{0, 2}, map[int]float64{1: 0.4, 3: 0.3}, 4, nil, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prog := newScriptedProgram(func(_ context.Context, call int, _ module.Inputs) (*example.Prediction, error) {
				if slices.Contains(c.fails, call) {
					return nil, boom(call)
				}
				return example.NewPrediction(map[string]any{"answer": call}), nil
			})
			reward := module.Reward(func(_ module.Inputs, p *example.Prediction) float64 {
				i, _ := p.Int("answer")
				return c.rewards[int(i)]
			})
			b := module.NewBestOfN(prog, c.n, reward, 1, module.WithFailCount(c.failCount))
			pred, err := b.Forward(context.Background(), module.Inputs{"q": "x"})
			if got := int(prog.calls.Load()); got != c.wantCalls {
				t.Errorf("calls = %d, want %d", got, c.wantCalls)
			}
			if c.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := pred.Int("answer"); int(got) != c.wantAns {
					t.Errorf("answer = %d, want %d", got, c.wantAns)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, got %v", pred.Map())
			}
			if c.wantErr == module.ErrAttemptsFailed {
				if !errors.Is(err, module.ErrAttemptsFailed) {
					t.Errorf("err = %v, want %v", err, c.wantErr)
				}
				return
			}
			// DSPy raises the failing attempt's own error.
			if !containsErr(err, c.wantErr.Error()) || errors.Is(err, module.ErrAttemptsFailed) {
				t.Errorf("err = %v, want the attempt's %v", err, c.wantErr)
			}
		})
	}
}

func containsErr(err error, text string) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == text {
			return true
		}
	}
	return false
}

func TestBestOfNRewardPanic(t *testing.T) {
	prog := newScriptedProgram(func(_ context.Context, call int, _ module.Inputs) (*example.Prediction, error) {
		return example.NewPrediction(map[string]any{"answer": call}), nil
	})
	panicky := module.Reward(func(_ module.Inputs, p *example.Prediction) float64 {
		if i, _ := p.Int("answer"); i == 0 {
			panic("reward exploded")
		}
		return 1
	})
	t.Run("a panic fails one attempt", func(t *testing.T) {
		pred, err := module.NewBestOfN(prog, 2, panicky, 1).Forward(context.Background(), module.Inputs{})
		if err != nil {
			t.Fatal(err)
		}
		if i, _ := pred.Int("answer"); i != 1 {
			t.Errorf("answer = %d, want 1", i)
		}
	})
	t.Run("panics in every attempt", func(t *testing.T) {
		always := module.Reward(func(module.Inputs, *example.Prediction) float64 { panic(errors.New("always")) })
		_, err := module.NewBestOfN(prog, 1, always, 1).Forward(context.Background(), module.Inputs{})
		var pe *module.PanicError
		if !errors.Is(err, module.ErrRewardPanicked) || !errors.As(err, &pe) || !errors.Is(err, module.ErrAttemptsFailed) {
			t.Fatalf("err = %v", err)
		}
		if fmt.Sprint(pe.Value) != "always" || len(pe.Stack) == 0 {
			t.Errorf("panic error = %+v", pe)
		}
	})
}

func TestBestOfNCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prog := newScriptedProgram(func(ctx context.Context, _ int, _ module.Inputs) (*example.Prediction, error) {
		cancel()
		return nil, ctx.Err()
	})
	_, err := module.NewBestOfN(prog, 5, module.Reward(func(module.Inputs, *example.Prediction) float64 { return 0 }), 1).Forward(ctx, module.Inputs{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if n := prog.calls.Load(); n != 1 {
		t.Errorf("calls = %d after cancellation, want 1", n)
	}
}

func TestBestOfNMisuse(t *testing.T) {
	qa := module.NewPredict(signature.MustParse("q -> a"))
	reward := module.Reward(func(module.Inputs, *example.Prediction) float64 { return 1 })
	for name, b := range map[string]*module.BestOfN{
		"zero N":    module.NewBestOfN(qa, 0, reward, 1),
		"no reward": module.NewBestOfN(qa, 2, nil, 1),
		"no module": module.NewBestOfN(nil, 2, reward, 1),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := b.Forward(context.Background(), module.Inputs{"q": "x"}); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestBestOfNProgram(t *testing.T) {
	reward := module.Reward(func(module.Inputs, *example.Prediction) float64 { return 1 })
	cot := module.NewChainOfThought(signature.MustParse("question -> answer"))
	cases := []struct {
		name string
		prog module.Program
		want []string
	}{
		{"predict", module.NewBestOfN(module.NewPredict(signature.MustParse("q -> a")), 3, reward, 1), []string{"module"}},
		{"chain of thought", module.NewBestOfN(cot, 3, reward, 1), []string{"module.predict"}},
		{"refine", module.NewRefine(cot, 3, reward, 1), []string{"module.predict"}},
		{"nested", module.NewBestOfN(module.NewRefine(cot, 2, reward, 1), 3, reward, 1), []string{"module.module.predict"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var names []string
			for _, np := range c.prog.NamedPredictors() {
				names = append(names, np.Name)
			}
			if !slices.Equal(names, c.want) {
				t.Errorf("names = %v, want %v", names, c.want)
			}
			clone := c.prog.Clone()
			clone.NamedPredictors()[0].Predictor.SetDemos([]example.Example{example.New(map[string]any{"q": "x"})})
			if len(c.prog.NamedPredictors()[0].Predictor.Demos()) != 0 {
				t.Error("the clone shares its predictor with the original")
			}
		})
	}
	b := module.NewBestOfN(cot, 3, reward, 0.5, module.WithFailCount(2))
	c := module.CloneAs(b)
	if c.N != 3 || c.Threshold != 0.5 || c.FailCount != 2 || c.Reward == nil || c.Module == b.Module {
		t.Errorf("clone = %+v", c)
	}
}

func TestBestOfNTraced(t *testing.T) {
	bus := event.NewBus()
	var mu sync.Mutex
	var mods []string
	if _, err := bus.Subscribe(event.SubscribeOptions{Kinds: []event.Kind{event.ModuleStart}}, func(ev event.Event) {
		mu.Lock()
		mods = append(mods, ev.Data.(*event.ModuleCall).Module)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	sim := startRolloutSim(t, lmtest.Config{}, nil)
	ctx := module.WithLM(event.WithBus(context.Background(), bus), sim.model)
	b := module.NewBestOfN(module.NewChainOfThought(signature.MustParse("question -> answer")), 2,
		module.Reward(func(module.Inputs, *example.Prediction) float64 { return 0 }), 1)
	if _, err := b.Forward(ctx, module.Inputs{"question": "q"}); err != nil {
		t.Fatal(err)
	}
	bus.Close()
	want := []string{"BestOfN", "ChainOfThought", "Predict", "ChainOfThought", "Predict"}
	if !slices.Equal(mods, want) {
		t.Errorf("module spans = %v, want %v", mods, want)
	}
}

// BestOfN samples up to three answers at temperature 1.0 and keeps the
// first one-word answer, as in DSPy's documentation.
func ExampleNewBestOfN() {
	srv, _ := lmtest.Start(context.Background(), lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		{Fields: map[string]any{"reasoning": "Belgium's capital.", "answer": "The city of Brussels"}, Times: 1},
		{Fields: map[string]any{"reasoning": "Belgium's capital.", "answer": "Brussels"}},
	}}})
	defer srv.Close()
	model, _ := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "UNSET_KEY"})
	ctx := module.WithLM(context.Background(), model)

	qa := module.NewChainOfThought(signature.MustParse("question -> answer"))
	oneWord := module.Reward(func(_ module.Inputs, pred *example.Prediction) float64 {
		if len(strings.Fields(pred.String("answer"))) == 1 {
			return 1
		}
		return 0
	})
	best := module.NewBestOfN(qa, 3, oneWord, 1.0)
	pred, err := best.Forward(ctx, module.Inputs{"question": "What is the capital of Belgium?"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(pred.String("answer"), len(srv.Requests()))
	// Output: Brussels 2
}
