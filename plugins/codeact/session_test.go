package codeact_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/tool"
	"github.com/dspex/dspex/plugins/codeact"
	"github.com/dspex/dspex/plugins/codeact/codeacttest"
)

type itemArgs struct {
	Item string `json:"item" desc:"the item's name"`
}

// plainItem is itemArgs without a description, as DSPy sees a parameter
// with no arg_desc.
type plainItem struct {
	Item string `json:"item"`
}

func (a itemArgs) item() string  { return a.Item }
func (a plainItem) item() string { return a.Item }

// shopTools are two Go tools: a price list and a stock count.
func shopTools(t testing.TB) []*tool.Tool { return shopToolsOf[itemArgs](t) }

func shopToolsOf[A interface{ item() string }](t testing.TB) []*tool.Tool {
	t.Helper()
	prices := map[string]int{"apple": 3, "pear": 5}
	stock := map[string]int{"apple": 7, "pear": 2}
	price, err := tool.New("price", "Returns the price of one item in euros.", func(_ context.Context, a A) (any, error) {
		p, ok := prices[a.item()]
		if !ok {
			return nil, errors.New("no such item: " + a.item())
		}
		return p, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	quantity, err := tool.New("quantity", "Returns how many of an item are in stock.", func(_ context.Context, a A) (any, error) {
		return stock[a.item()], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return []*tool.Tool{price, quantity}
}

func TestSessionRunsCodeWithTools(t *testing.T) {
	pool := codeacttest.Pool(t, codeact.Config{})
	ctx := t.Context()
	s, err := pool.NewSession(ctx, shopTools(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	obs, err := s.Execute(ctx, "total = price('apple') * quantity(item='apple')\nprint('total', total)")
	if err != nil {
		t.Fatal(err)
	}
	if obs.Error != nil || obs.Stdout != "total 21\n" || obs.ToolCalls != 2 {
		t.Fatalf("observation %+v", obs)
	}
	// The namespace persists.
	obs, err = s.Execute(ctx, "total + 1")
	if err != nil || obs.Value != "22" || obs.Output() != "22" {
		t.Fatalf("observation %+v, %v", obs, err)
	}
	obs, err = s.Execute(ctx, "SUBMIT(answer=total, note='ünï')")
	if err != nil || !obs.Submitted {
		t.Fatalf("observation %+v, %v", obs, err)
	}
	if got, want := obs.Output(), `{"answer": 21, "note": "\u00fcn\u00ef"}`; got != want {
		t.Errorf("Output() = %s, want %s", got, want)
	}
	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	obs, _ = s.Execute(ctx, "total")
	if obs.Error == nil || obs.Error.Type != "NameError" {
		t.Errorf("after Reset: %+v", obs)
	}
}

func TestToolErrorsAndWrongArgumentsAreClearObservations(t *testing.T) {
	pool := codeacttest.Pool(t, codeact.Config{})
	ctx := t.Context()
	s, err := pool.NewSession(ctx, shopTools(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct{ code, typ, msg string }{
		{"price('plum')", "ToolError", "tool price: no such item: plum"},
		{"price(3)", "ToolError", `tool price: argument "item": expected str, got number 3`},
		{"price(colour='red')", "TypeError", "price() got an unexpected keyword argument 'colour' (its arguments: item)"},
		{"price()", "TypeError", "price() missing required argument(s): item"},
		{"price('a', 'b')", "TypeError", "price() takes 1 positional argument(s) but 2 were given"},
	} {
		obs, err := s.Execute(ctx, tc.code)
		if err != nil {
			t.Fatal(err)
		}
		if obs.Error == nil || obs.Error.Type != tc.typ || !strings.Contains(obs.Error.Message, tc.msg) {
			t.Errorf("%s: error %+v, want %s containing %q", tc.code, obs.Error, tc.typ, tc.msg)
		}
		if obs.KilledBy != "" || obs.StateLost {
			t.Errorf("%s: a tool error must not cost the interpreter: %+v", tc.code, obs)
		}
	}
}

func TestTimeoutAndCrashRestartTheInterpreter(t *testing.T) {
	pool := codeacttest.Pool(t, codeact.Config{Timeout: 500 * time.Millisecond})
	ctx := t.Context()
	s, err := pool.NewSession(ctx, shopTools(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct{ name, code, killedBy, typ string }{
		{"timeout", "while True:\n    try:\n        pass\n    except BaseException:\n        pass", codeact.KilledByTimeout, "ExecutionTimeout"},
		{"stuck in C", "import time\ntime.sleep(30)", codeact.KilledByTimeout, "ExecutionTimeout"},
		{"exit", "import os\nos._exit(3)", codeact.KilledByCrash, "InterpreterCrash"},
		{"segfault", "import ctypes\nctypes.string_at(0)", codeact.KilledByCrash, "InterpreterCrash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Execute(ctx, "x = 41"); err != nil {
				t.Fatal(err)
			}
			before := s.Interpreter()
			pid := before.Pid()
			obs, err := s.Execute(ctx, tc.code)
			if err != nil {
				t.Fatal(err)
			}
			if obs.KilledBy != tc.killedBy || !obs.StateLost || obs.Error == nil || obs.Error.Type != tc.typ {
				t.Fatalf("observation %+v (error %+v)", obs, obs.Error)
			}
			if !strings.Contains(obs.ErrorText(), codeact.StateLostNote) {
				t.Errorf("ErrorText %q does not tell the LM the state was lost", obs.ErrorText())
			}
			after := s.Interpreter()
			if after == before || after.Pid() == pid {
				t.Errorf("the session is still on %s (pid %d)", before.Name(), pid)
			}
			// The new interpreter is fresh, and works.
			obs, err = s.Execute(ctx, "x")
			if err != nil || obs.Error == nil || obs.Error.Type != "NameError" {
				t.Fatalf("after restart: %+v, %v", obs, err)
			}
			obs, err = s.Execute(ctx, "price('pear')")
			if err != nil || obs.Value != "5" {
				t.Fatalf("after restart: %+v, %v", obs, err)
			}
		})
	}
}

// With LazyRestart a session whose interpreter was discarded starts no
// fresh one until it runs code again.
func TestLazyRestart(t *testing.T) {
	pool := codeacttest.Pool(t, codeact.Config{Warm: -1, Max: 1, LazyRestart: true})
	ctx := t.Context()
	s, err := pool.NewSession(ctx, shopTools(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Execute(ctx, "x = 1"); err != nil {
		t.Fatal(err)
	}
	obs, err := s.Execute(ctx, "import os\nos._exit(3)")
	if err != nil || obs.KilledBy != codeact.KilledByCrash || !obs.StateLost {
		t.Fatalf("%+v, %v", obs, err)
	}
	if it := s.Interpreter(); it != nil {
		t.Fatalf("the session moved to %s at once", it.Name())
	}
	if err := s.Reset(ctx); err != nil {
		t.Fatalf("reset with no interpreter: %v", err)
	}
	obs, err = s.Execute(ctx, "price('pear') + (1 if 'x' in dir() else 0)")
	if err != nil || obs.Value != "5" || obs.StateLost || s.Interpreter() == nil {
		t.Fatalf("the next execution: %+v, %v", obs, err)
	}
}

func TestLimitsDiscardTheInterpreter(t *testing.T) {
	pool := codeacttest.Pool(t, codeact.Config{Session: codeact.SessionOptions{MaxOutputBytes: 100, OutputLimitBytes: 10000}})
	ctx := t.Context()
	s, err := pool.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	obs, err := s.Execute(ctx, "print('x' * 150)")
	if err != nil || !obs.Truncated || len(obs.Stdout) != 100 || obs.StateLost {
		t.Fatalf("a capped print: %+v, %v", obs, err)
	}
	before := s.Interpreter()
	obs, err = s.Execute(ctx, "while True:\n    print('flood' * 100)")
	if err != nil || obs.KilledBy != codeact.KilledByOutput || !obs.StateLost {
		t.Fatalf("a flood: %+v, %v", obs, err)
	}
	if s.Interpreter() == before {
		t.Error("the interpreter that hit the output limit was kept")
	}
}

func TestCancelledExecutionDiscardsTheInterpreter(t *testing.T) {
	pool := codeacttest.Pool(t, codeact.Config{})
	s, err := pool.NewSession(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	it := s.Interpreter()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := s.Execute(ctx, "import time\ntime.sleep(20)"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %s", d)
	}
	if it.Broken() == "" {
		t.Error("an interpreter left running code is not marked broken")
	}
}

func TestPoolReusesCleanInterpretersAndBoundsThem(t *testing.T) {
	pool := codeacttest.Pool(t, codeact.Config{Max: 2, Warm: 1})
	ctx := t.Context()
	a, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := pool.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a third Acquire with Max 2: %v", err)
	}
	pool.Release(a)
	c, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c != a {
		t.Errorf("a clean interpreter was not reused")
	}
	pool.Release(b)
	pool.Release(c)
	if err := pool.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Acquire(ctx); !errors.Is(err, codeact.ErrClosed) {
		t.Errorf("Acquire after Close: %v", err)
	}
}

func TestExecutionEvents(t *testing.T) {
	pool := codeacttest.Pool(t, codeact.Config{})
	bus := event.NewBus()
	var mu sync.Mutex
	var got []event.Event
	sub, err := bus.Subscribe(event.SubscribeOptions{Kinds: []event.Kind{codeact.ExecuteStart, codeact.ExecuteEnd, codeact.ToolCallEnd}},
		func(e event.Event) { mu.Lock(); got = append(got, e); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	ctx := event.WithBus(t.Context(), bus)
	s, err := pool.NewSession(ctx, shopTools(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Execute(ctx, "price('apple') + price(item='plum')"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	sub.Close()
	mu.Lock()
	defer mu.Unlock()
	var kinds []event.Kind
	for _, e := range got {
		kinds = append(kinds, e.Kind)
	}
	want := []event.Kind{codeact.ExecuteStart, codeact.ToolCallEnd, codeact.ToolCallEnd, codeact.ExecuteEnd}
	if strings.Join(kindStrings(kinds), ",") != strings.Join(kindStrings(want), ",") {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	end := got[3].Data.(*codeact.ExecutionInfo)
	if end.Outcome != "error" || end.ErrorType != "ToolError" || end.ToolCalls != 2 {
		t.Errorf("end %+v", end)
	}
	call := got[2].Data.(*codeact.ToolCallInfo)
	if call.Tool != "price" || call.Error == "" || call.Args != `{"item": "plum"}` {
		t.Errorf("tool call %+v", call)
	}
	if got[1].ParentID != got[0].SpanID && got[1].SpanID != got[0].SpanID {
		t.Errorf("the tool call is not inside the execution's span: %+v / %+v", got[1], got[0])
	}
}

func kindStrings(ks []event.Kind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

// More sessions than interpreters: each waits for one, none shares one.
func TestConcurrentSessionsShareABoundedPool(t *testing.T) {
	pool := codeacttest.Pool(t, codeact.Config{Max: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Go(func() {
			s, err := pool.NewSession(t.Context(), shopTools(t))
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			code := fmt.Sprintf("n = %d\nimport time\ntime.sleep(0.05)\nn * price('apple')", i)
			obs, err := s.Execute(t.Context(), code)
			if err == nil && obs.Value != fmt.Sprint(3*i) {
				err = fmt.Errorf("session %d: %+v", i, obs)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
