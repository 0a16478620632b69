package module_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// moduleFunc adapts a function to module.Module.
type moduleFunc func(ctx context.Context, in module.Inputs) (*example.Prediction, error)

func (f moduleFunc) Forward(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
	return f(ctx, in)
}

// echoItems returns n items whose module answers with the item's index
// after a delay that shrinks with it, so later items tend to finish first.
func echoItems(n int, m module.Module) []module.ParallelItem {
	items := make([]module.ParallelItem, n)
	for i := range items {
		items[i] = module.ParallelItem{Module: m, Inputs: module.Inputs{"i": i, "n": n}}
	}
	return items
}

var echo = moduleFunc(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
	i, n := in["i"].(int), in["n"].(int)
	select {
	case <-time.After(time.Duration(n-i) * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return example.NewPrediction(map[string]any{"i": i}), nil
})

func TestParallelDefaults(t *testing.T) {
	got := module.NewParallel(module.ParallelOptions{}).Options()
	if got.Concurrency != 8 || got.MaxErrors != 10 || got.Timeout != 0 || got.ReturnFailed {
		t.Errorf("defaults = %+v, want DSPy's 8 threads and 10 errors", got)
	}
}

func TestParallelKeepsOrder(t *testing.T) {
	preds, errs, err := module.NewParallel(module.ParallelOptions{Concurrency: 4, ReturnFailed: true}).Run(context.Background(), echoItems(20, echo))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range preds {
		if errs[i] != nil {
			t.Fatalf("item %d: %v", i, errs[i])
		}
		if got, _ := p.Int("i"); int(got) != i {
			t.Errorf("preds[%d] is item %d's", i, got)
		}
	}
}

func TestParallelBoundsConcurrency(t *testing.T) {
	for _, limit := range []int{1, 3, 8} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			var running, peak atomic.Int32
			m := moduleFunc(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
				n := running.Add(1)
				defer running.Add(-1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				// Wait until the pool is full, so that a pool smaller than
				// the limit is caught too.
				for deadline := time.Now().Add(2 * time.Second); peak.Load() < int32(limit) && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
				return example.NewPrediction(map[string]any{"ok": true}), nil
			})
			if _, _, err := module.NewParallel(module.ParallelOptions{Concurrency: limit}).Run(context.Background(), echoItems(30, m)); err != nil {
				t.Fatal(err)
			}
			if p := peak.Load(); p != int32(limit) {
				t.Errorf("peak concurrency %d, want the limit %d", p, limit)
			}
		})
	}
}

func TestParallelErrors(t *testing.T) {
	failOdd := moduleFunc(func(_ context.Context, in module.Inputs) (*example.Prediction, error) {
		if i := in["i"].(int); i%2 == 1 {
			return nil, fmt.Errorf("odd %d", i)
		}
		return example.NewPrediction(map[string]any{"ok": true}), nil
	})
	failAll := moduleFunc(func(_ context.Context, in module.Inputs) (*example.Prediction, error) {
		return nil, errors.New("nope")
	})
	cases := []struct {
		name        string
		opts        module.ParallelOptions
		m           module.Module
		items       int
		wantMax     bool // stopped for errors
		wantFailed  int
		wantSkipped int
		wantSuccess int
	}{
		{"failures below the limit are reported per item", module.ParallelOptions{Concurrency: 2, ReturnFailed: true}, failOdd, 10, false, 5, 0, 5},
		{"the limit stops the run", module.ParallelOptions{Concurrency: 1, MaxErrors: 3, ReturnFailed: true}, failAll, 10, true, 3, 7, 0},
		{"a limit of 1 stops at the first error", module.ParallelOptions{Concurrency: 1, MaxErrors: 1, ReturnFailed: true}, failOdd, 10, true, 1, 8, 1},
		{"no limit", module.ParallelOptions{Concurrency: 4, MaxErrors: -1, ReturnFailed: true}, failAll, 30, false, 30, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			preds, errs, err := module.NewParallel(c.opts).Run(context.Background(), echoItems(c.items, c.m))
			if got := errors.Is(err, module.ErrParallelMaxErrors); got != c.wantMax {
				t.Fatalf("err = %v, want max-errors stop: %v", err, c.wantMax)
			}
			if !c.wantMax && err != nil {
				t.Fatal(err)
			}
			var failed, skipped, ok int
			for i := range preds {
				switch {
				case errs[i] == nil:
					if preds[i] == nil {
						t.Errorf("item %d: no prediction and no error", i)
					}
					ok++
				case errors.Is(errs[i], module.ErrParallelSkipped):
					skipped++
				default:
					if preds[i] != nil {
						t.Errorf("item %d: a prediction with error %v", i, errs[i])
					}
					failed++
				}
			}
			if failed != c.wantFailed || skipped != c.wantSkipped || ok != c.wantSuccess {
				t.Errorf("failed %d, skipped %d, ok %d; want %d, %d, %d", failed, skipped, ok, c.wantFailed, c.wantSkipped, c.wantSuccess)
			}
		})
	}
	t.Run("without ReturnFailed only predictions come back", func(t *testing.T) {
		preds, errs, err := module.NewParallel(module.ParallelOptions{}).Run(context.Background(), echoItems(4, failOdd))
		if err != nil || errs != nil || preds[1] != nil || preds[0] == nil {
			t.Errorf("preds %v, errs %v, err %v", preds, errs, err)
		}
	})
}

func TestParallelTimeout(t *testing.T) {
	slowOdd := moduleFunc(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
		if in["i"].(int)%2 == 1 {
			<-ctx.Done()
			return nil, fmt.Errorf("gave up: %w", ctx.Err())
		}
		return example.NewPrediction(map[string]any{"ok": true}), nil
	})
	start := time.Now()
	preds, errs, err := module.NewParallel(module.ParallelOptions{Concurrency: 4, Timeout: 30 * time.Millisecond, ReturnFailed: true}).
		Run(context.Background(), echoItems(8, slowOdd))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	for i := range preds {
		if i%2 == 1 && !errors.Is(errs[i], context.DeadlineExceeded) {
			t.Errorf("item %d: err = %v, want a deadline", i, errs[i])
		}
		if i%2 == 0 && (errs[i] != nil || preds[i] == nil) {
			t.Errorf("item %d: err = %v", i, errs[i])
		}
	}
}

func TestParallelCancellation(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	var started atomic.Int32
	block := moduleFunc(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
		if started.Add(1) == 3 {
			cancel()
		}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	done := make(chan struct{})
	var (
		preds []*example.Prediction
		errs  []error
		err   error
	)
	go func() {
		defer close(done)
		preds, errs, err = module.NewParallel(module.ParallelOptions{Concurrency: 3, ReturnFailed: true}).Run(ctx, echoItems(50, block))
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if n := started.Load(); n != 3 {
		t.Errorf("%d items started, want 3 (no new work after cancellation)", n)
	}
	skipped := 0
	for i := range preds {
		if errors.Is(errs[i], module.ErrParallelSkipped) {
			skipped++
		}
	}
	if skipped != 47 {
		t.Errorf("%d items skipped, want 47", skipped)
	}
	// Every goroutine Run started has returned.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines before, %d after", before, n)
	}
}

func TestParallelContainsPanics(t *testing.T) {
	m := moduleFunc(func(_ context.Context, in module.Inputs) (*example.Prediction, error) {
		if in["i"].(int) == 2 {
			panic("module exploded")
		}
		return example.NewPrediction(map[string]any{"ok": true}), nil
	})
	items := echoItems(5, m)
	items = append(items, module.ParallelItem{Inputs: module.Inputs{}})
	preds, errs, err := module.NewParallel(module.ParallelOptions{ReturnFailed: true}).Run(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	var pe *module.PanicError
	if !errors.As(errs[2], &pe) || pe.Value != "module exploded" || preds[2] != nil {
		t.Errorf("item 2: err = %v", errs[2])
	}
	if errs[5] == nil {
		t.Error("an item without a module did not fail")
	}
	for _, i := range []int{0, 1, 3, 4} {
		if errs[i] != nil || preds[i] == nil {
			t.Errorf("item %d: err = %v", i, errs[i])
		}
	}
}

func TestParallelAgainstSimulator(t *testing.T) {
	sim := startRolloutSim(t, lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		{Match: "Spain", Fields: map[string]any{"answer": "Madrid"}},
		{Match: "3 * 4", Fields: map[string]any{"answer": "12"}},
		{Match: "Hamlet", Fields: map[string]any{"answer": "William Shakespeare"}},
	}}}, nil)
	ctx := module.WithLM(context.Background(), sim.model)
	qa := module.NewPredict(signature.MustParse("question -> answer"))
	questions := []string{"What is the capital of Spain?", "What is 3 * 4?", "Who wrote Hamlet?"}
	var items []module.ParallelItem
	for _, q := range questions {
		items = append(items, module.ParallelItem{Module: qa, Inputs: module.Inputs{"question": q}})
	}
	preds, _, err := module.NewParallel(module.ParallelOptions{Concurrency: 3}).Run(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"Madrid", "12", "William Shakespeare"} {
		if preds[i] == nil || preds[i].String("answer") != want {
			t.Errorf("item %d: %v, want %q", i, preds[i], want)
		}
	}
}

func ExampleParallel_Run() {
	srv, _ := lmtest.Start(context.Background(), lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		{Match: "Spain", Fields: map[string]any{"answer": "Madrid"}},
		{Match: "Hamlet", Fields: map[string]any{"answer": "William Shakespeare"}},
	}}})
	defer srv.Close()
	model, _ := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "UNSET_KEY"})
	ctx := module.WithLM(context.Background(), model)

	qa := module.NewPredict(signature.MustParse("question -> answer"))
	items := []module.ParallelItem{
		{Module: qa, Inputs: module.Inputs{"question": "What is the capital of Spain?"}},
		{Module: qa, Inputs: module.Inputs{"question": "Who wrote Hamlet?"}},
	}
	preds, _, err := module.NewParallel(module.ParallelOptions{Concurrency: 2}).Run(ctx, items)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range preds {
		fmt.Println(p.String("answer"))
	}
	// Output:
	// Madrid
	// William Shakespeare
}
