package evaluate

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
)

// fakeProg is a Module made of a function.
type fakeProg func(ctx context.Context, in module.Inputs) (*example.Prediction, error)

func (f fakeProg) Forward(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
	return f(ctx, in)
}

// dataset returns n examples {q: i, answer: "a<i>"} with q as the input.
func dataset(n int) []example.Example {
	out := make([]example.Example, n)
	for i := range out {
		out[i] = example.New(map[string]any{"q": i, "answer": fmt.Sprintf("a%d", i)}).WithInputs("q")
	}
	return out
}

func index(in module.Inputs) int { return in["q"].(int) }

// answer answers "a<i>" for even i and "wrong" for odd i, after a delay
// that varies per example so that examples finish out of order.
func answer(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
	i := index(in)
	select {
	case <-time.After(time.Duration((37*i)%11) * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	a := "wrong"
	if i%2 == 0 {
		a = fmt.Sprintf("a%d", i)
	}
	p := example.NewPrediction(map[string]any{"answer": a})
	p.Usage.TotalTokens = 10
	return p, nil
}

// noLeak fails when goroutines started during the test outlive it.
func noLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

func TestResultsInInputOrder(t *testing.T) {
	noLeak(t)
	const n = 60
	var got []*Result
	for range 2 {
		var order []int
		res, err := Run(context.Background(), fakeProg(answer), dataset(n), metric.ExactMatch("answer"), Options{
			Concurrency: 8, Callback: func(er ExampleResult) { order = append(order, er.Index) },
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Results) != n || res.Total != n || res.Scored != n || res.Errors != 0 || res.Skipped != 0 {
			t.Fatalf("counts: %d results, total %d scored %d errors %d skipped %d", len(res.Results), res.Total, res.Scored, res.Errors, res.Skipped)
		}
		for i, er := range res.Results {
			want := float64(1 - i%2)
			if er.Index != i || er.Score != want || er.Example.String("answer") != fmt.Sprintf("a%d", i) {
				t.Fatalf("result %d: index %d score %v example %v", i, er.Index, er.Score, er.Example.Map())
			}
		}
		if inOrder := func() bool {
			for i, x := range order {
				if x != i {
					return false
				}
			}
			return true
		}(); inOrder {
			t.Log("callbacks happened to come in input order")
		}
		if res.Mean != 0.5 || res.Score != 50 || res.Usage.TotalTokens != 10*n || res.Metric != "exact_match" {
			t.Errorf("mean %v score %v usage %+v metric %q", res.Mean, res.Score, res.Usage, res.Metric)
		}
		got = append(got, res)
	}
	for i := range got[0].Results {
		if got[0].Results[i].Score != got[1].Results[i].Score {
			t.Errorf("example %d scored differently across runs", i)
		}
	}
}

func TestMaxErrors(t *testing.T) {
	cases := []struct {
		name       string
		maxErrors  int
		wantStop   bool
		minErrors  int
		allRun     bool
		wantReason string
	}{
		{"default 10", 0, true, 10, false, "program: service down"},
		{"stop at first", 1, true, 1, false, "program: "},
		{"unlimited", -1, false, 100, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			noLeak(t)
			var calls atomic.Int64
			prog := fakeProg(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
				calls.Add(1)
				time.Sleep(time.Millisecond)
				if index(in)%3 == 0 {
					return nil, errors.New("bad input")
				}
				return nil, errors.New("service down")
			})
			res, err := Run(context.Background(), prog, dataset(100), metric.ExactMatch("answer"), Options{Concurrency: 4, MaxErrors: c.maxErrors})
			if res == nil {
				t.Fatalf("no result; err %v", err)
			}
			if res.Errors < c.minErrors || res.Scored != 0 || res.Errors+res.Skipped != 100 {
				t.Errorf("errors %d scored %d skipped %d", res.Errors, res.Scored, res.Skipped)
			}
			if !c.wantStop {
				if err != nil || res.Stopped != nil || res.Skipped != 0 || calls.Load() != 100 {
					t.Fatalf("err %v, stopped %v, skipped %d, calls %d", err, res.Stopped, res.Skipped, calls.Load())
				}
				return
			}
			if !errors.Is(err, ErrMaxErrors) || err != res.Stopped {
				t.Fatalf("err = %v", err)
			}
			var me *MaxErrorsError
			if !errors.As(err, &me) || len(me.Reasons) == 0 || me.Failed != res.Errors {
				t.Fatalf("err = %#v", err)
			}
			if res.Skipped == 0 || calls.Load() >= 100 {
				t.Errorf("skipped %d, calls %d: the run did not stop early", res.Skipped, calls.Load())
			}
			if !strings.Contains(err.Error(), c.wantReason) || !strings.Contains(err.Error(), "examples failed") {
				t.Errorf("error %q lacks %q", err, c.wantReason)
			}
			total := 0
			for _, r := range me.Reasons {
				total += r.Count
			}
			if total != res.Errors {
				t.Errorf("reasons count %d errors, result has %d", total, res.Errors)
			}
			for i := 1; i < len(me.Reasons); i++ {
				if me.Reasons[i].Count > me.Reasons[i-1].Count {
					t.Errorf("reasons not sorted by count: %+v", me.Reasons)
				}
			}
		})
	}
}

func TestReasonsAreBounded(t *testing.T) {
	prog := fakeProg(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
		return nil, fmt.Errorf("failure number %d %s", index(in), strings.Repeat("x", 1000))
	})
	_, err := Run(context.Background(), prog, dataset(20), metric.F1("answer"), Options{Concurrency: 1, MaxErrors: 8})
	var me *MaxErrorsError
	if !errors.As(err, &me) {
		t.Fatalf("err = %v", err)
	}
	if len(me.Reasons) != 5 || me.MoreReasons != 3 || len(err.Error()) > 5*(maxReasonLength+20)+200 {
		t.Errorf("%d reasons, %d more, message of %d bytes", len(me.Reasons), me.MoreReasons, len(err.Error()))
	}
	if !strings.Contains(err.Error(), "and 3 other errors") {
		t.Errorf("error %q", err)
	}
}

func TestFailureScore(t *testing.T) {
	prog := fakeProg(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
		if index(in)%2 == 1 {
			return nil, errors.New("odd")
		}
		return example.NewPrediction(map[string]any{"answer": fmt.Sprintf("a%d", index(in))}), nil
	})
	res, err := Run(context.Background(), prog, dataset(10), metric.ExactMatch("answer"), Options{FailureScore: 0.5, MaxErrors: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Mean != 0.75 || res.Score != 75 || res.Errors != 5 || res.Scored != 5 {
		t.Errorf("mean %v score %v errors %d scored %d", res.Mean, res.Score, res.Errors, res.Scored)
	}
	if er := res.Results[1]; er.Score != 0.5 || er.Err == nil || er.Prediction != nil || er.Err.Error() != "program: odd" {
		t.Errorf("failed example: %+v", er)
	}
}

func TestMissingFieldIsAnError(t *testing.T) {
	prog := fakeProg(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
		return example.NewPrediction(map[string]any{"response": "x"}), nil
	})
	res, err := Run(context.Background(), prog, dataset(3), metric.ExactMatch("answer"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	er := res.Results[0]
	if res.Errors != 3 || !errors.Is(er.Err, metric.ErrMissingField) || er.Prediction == nil {
		t.Fatalf("errors %d, first %+v", res.Errors, er)
	}
	if want := `metric exact_match: the prediction has no field "answer"`; er.Err.Error() != want {
		t.Errorf("error %q, want %q", er.Err, want)
	}
}

func TestPerExampleTimeout(t *testing.T) {
	noLeak(t)
	prog := fakeProg(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
		if index(in) == 2 {
			<-ctx.Done()
			return nil, fmt.Errorf("gave up: %w", ctx.Err())
		}
		if index(in) == 3 {
			<-ctx.Done()
			return nil, errors.New("lm: timeout") // says it its own way
		}
		return example.NewPrediction(map[string]any{"answer": fmt.Sprintf("a%d", index(in))}), nil
	})
	start := time.Now()
	res, err := Run(context.Background(), prog, dataset(6), metric.ExactMatch("answer"), Options{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	if res.Errors != 2 || res.Scored != 4 {
		t.Fatalf("errors %d scored %d", res.Errors, res.Scored)
	}
	for _, i := range []int{2, 3} {
		e := res.Results[i].Err
		if !errors.Is(e, context.DeadlineExceeded) || !strings.HasPrefix(e.Error(), "timed out after 50ms: program: ") {
			t.Errorf("example %d: %v", i, e)
		}
	}
}

func TestCancellation(t *testing.T) {
	noLeak(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var started atomic.Int64
	prog := fakeProg(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
		if started.Add(1) > 20 {
			<-ctx.Done() // hang until cancelled
			return nil, ctx.Err()
		}
		return example.NewPrediction(map[string]any{"answer": "x"}), nil
	})
	var once sync.Once
	done := 0
	res, err := Run(ctx, prog, dataset(1000), metric.ExactMatch("answer"), Options{
		Concurrency: 8,
		Callback: func(ExampleResult) {
			if done++; done == 20 {
				once.Do(func() { time.AfterFunc(20*time.Millisecond, cancel) })
			}
		},
	})
	if !errors.Is(err, context.Canceled) || err != res.Stopped {
		t.Fatalf("err = %v", err)
	}
	if len(res.Results) != 20 || res.Skipped != 980 || res.Errors != 0 {
		t.Errorf("%d results, %d skipped, %d errors", len(res.Results), res.Skipped, res.Errors)
	}
	if res.Mean != 0 {
		t.Errorf("mean %v", res.Mean)
	}

	t.Run("already cancelled", func(t *testing.T) {
		res, err := Run(ctx, prog, dataset(5), metric.ExactMatch("answer"), Options{})
		if !errors.Is(err, context.Canceled) || res.Skipped != 5 || len(res.Results) != 0 {
			t.Errorf("err %v, result %+v", err, res)
		}
	})
}

func TestPanicsAreContained(t *testing.T) {
	ok := fakeProg(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
		return example.NewPrediction(map[string]any{"answer": "x"}), nil
	})
	cases := []struct {
		name   string
		prog   module.Module
		metric metric.Metric
		want   string
	}{
		{"program", fakeProg(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
			panic("nil map")
		}), metric.ExactMatch("answer"), "program panicked: nil map"},
		{"metric", ok, metric.FromFunc("boom", func(context.Context, example.Example, *example.Prediction) (metric.Result, error) {
			panic(errors.New("index out of range"))
		}), "metric boom panicked: index out of range"},
		{"nan score", ok, metric.FromFunc("nan", func(context.Context, example.Example, *example.Prediction) (metric.Result, error) {
			return metric.Result{Score: nanScore()}, nil
		}), "metric nan: score NaN is not a finite number"},
		{"nil prediction", fakeProg(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
			return nil, nil
		}), metric.ExactMatch("answer"), "program: returned no prediction"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			noLeak(t)
			res, err := Run(context.Background(), c.prog, dataset(4), c.metric, Options{MaxErrors: 2, Concurrency: 1})
			if !errors.Is(err, ErrMaxErrors) {
				t.Fatalf("err = %v", err)
			}
			e := res.Results[0].Err
			if e == nil || e.Error() != c.want {
				t.Fatalf("error %q, want %q", e, c.want)
			}
			var pe *PanicError
			if strings.Contains(c.want, "panicked") && (!errors.As(e, &pe) || len(pe.Stack) == 0) {
				t.Errorf("not a *PanicError with a stack: %#v", e)
			}
		})
	}
}

func nanScore() float64 {
	zero := 0.0
	return zero / zero
}

func TestCallbackPanicStopsTheRun(t *testing.T) {
	noLeak(t)
	res, err := Run(context.Background(), fakeProg(answer), dataset(200), metric.ExactMatch("answer"), Options{
		Concurrency: 4,
		Callback:    func(er ExampleResult) { panic("callback bug") },
	})
	var pe *PanicError
	if !errors.As(err, &pe) || pe.What != "callback" || res.Skipped == 0 {
		t.Fatalf("err %v, skipped %d", err, res.Skipped)
	}
}

// A slow consumer must hold back the workers: examples started but not
// yet handed to the Callback never exceed the running ones (Concurrency),
// the channel's (Concurrency) and the one being handed over.
func TestBackpressure(t *testing.T) {
	noLeak(t)
	const conc = 4
	var started, consumed, maxAhead atomic.Int64
	prog := fakeProg(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
		started.Add(1)
		return example.NewPrediction(map[string]any{"answer": "x"}), nil
	})
	_, err := Run(context.Background(), prog, dataset(150), metric.ExactMatch("answer"), Options{
		Concurrency: conc,
		Callback: func(ExampleResult) {
			ahead := started.Load() - consumed.Add(1)
			if ahead > maxAhead.Load() {
				maxAhead.Store(ahead)
			}
			time.Sleep(500 * time.Microsecond)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if maxAhead.Load() > 2*conc || maxAhead.Load() < conc {
		t.Errorf("up to %d examples ahead of the consumer, want between %d and %d", maxAhead.Load(), conc, 2*conc)
	}
}

func TestBadArguments(t *testing.T) {
	prog, m := fakeProg(answer), metric.ExactMatch("answer")
	cases := []struct {
		name   string
		prog   module.Module
		devset []example.Example
		metric metric.Metric
		want   string
	}{
		{"no program", nil, dataset(1), m, "evaluate: no program"},
		{"no metric", prog, dataset(1), nil, "evaluate: no metric"},
		{"no examples", prog, nil, m, "evaluate: no examples"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := Run(context.Background(), c.prog, c.devset, c.metric, Options{})
			if res != nil || err == nil || err.Error() != c.want {
				t.Errorf("got %v, %v", res, err)
			}
		})
	}
}

func TestAllFieldsAreInputsWhenNoneMarked(t *testing.T) {
	var seen module.Inputs
	var mu sync.Mutex
	prog := fakeProg(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
		mu.Lock()
		seen = in
		mu.Unlock()
		return example.NewPrediction(map[string]any{"answer": "x"}), nil
	})
	ex := example.New(map[string]any{"question": "q", "answer": "x"})
	if _, err := Run(context.Background(), prog, []example.Example{ex}, metric.ExactMatch("answer"), Options{}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 {
		t.Errorf("program got %v", seen)
	}
}

func TestEvents(t *testing.T) {
	bus := event.NewBus()
	defer bus.Close()
	var (
		mu     sync.Mutex
		counts = map[event.Kind]int{}
		evals  []event.Event
		starts = map[string]string{} // span id -> module
		fakes  []string              // parent spans of the program's calls
		last   *event.ProgressInfo
	)
	sub, err := bus.Subscribe(event.SubscribeOptions{Buffer: 4096}, func(ev event.Event) {
		mu.Lock()
		defer mu.Unlock()
		counts[ev.Kind]++
		switch ev.Kind {
		case event.EvalExample:
			evals = append(evals, ev)
		case event.ModuleStart:
			starts[ev.SpanID] = ev.Data.(*event.ModuleCall).Module
			if starts[ev.SpanID] == "Fake" {
				fakes = append(fakes, ev.ParentID)
			}
		case event.Progress:
			last = ev.Data.(*event.ProgressInfo)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, root := event.StartRun(event.WithBus(context.Background(), bus))
	const n = 30
	prog := fakeProg(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
		return module.Traced(ctx, "Fake", nil, in, func(ctx context.Context) (*example.Prediction, error) {
			return answer(ctx, in)
		})
	})
	if _, err := Run(ctx, prog, dataset(n), metric.ExactMatch("answer"), Options{Label: "dev", Concurrency: 5}); err != nil {
		t.Fatal(err)
	}
	sub.Close()
	mu.Lock()
	defer mu.Unlock()
	if counts[event.EvalExample] != n || counts[event.Progress] != n+1 || counts[event.ModuleStart] != 2*n+1 || counts[event.ModuleEnd] != 2*n+1 {
		t.Fatalf("counts %v", counts)
	}
	if last.Label != "dev" || last.Done != n || last.Total != n || last.Score == nil || *last.Score != 0.5 {
		t.Errorf("last progress %+v", last)
	}
	var evalSpan string
	for id, name := range starts {
		if name == "Evaluate" {
			evalSpan = id
		}
	}
	seen := map[int]bool{}
	for _, ev := range evals {
		info := ev.Data.(*event.EvalExampleInfo)
		seen[info.Index] = true
		if ev.ParentID != evalSpan || starts[ev.SpanID] != "Example" || ev.RunID != root.RunID {
			t.Fatalf("eval event placed at span %s (%s) parent %s, evaluate span %s", ev.SpanID, starts[ev.SpanID], ev.ParentID, evalSpan)
		}
		if info.Example["answer"] == nil || info.Prediction["answer"] == nil || info.Duration <= 0 {
			t.Errorf("payload %+v", info)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct indexes", len(seen))
	}
	for _, parent := range fakes {
		if starts[parent] != "Example" {
			t.Fatalf("the program's span is a child of %q, not of its example's span", starts[parent])
		}
	}
}
