package trace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/event"
)

// t0 is the time test events start at.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func tempDB(t testing.TB) string { return filepath.Join(t.TempDir(), "traces.db") }

// openStore opens a store attached to a new bus; both are closed at
// cleanup unless the test closes them first.
func openStore(t testing.TB, path string, opts Options) (*Store, *event.Bus) {
	t.Helper()
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	bus := event.NewBus()
	if err := s.Attach(bus); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		bus.Close()
	})
	return s, bus
}

func closeStore(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func openReader(t testing.TB, path string) *Reader {
	t.Helper()
	r, err := OpenReader(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenReader: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// emitter publishes events of one run with increasing times.
type emitter struct {
	bus   *event.Bus
	run   string
	clock time.Time
	n     int
}

func newEmitter(bus *event.Bus, run string, start time.Time) *emitter {
	return &emitter{bus: bus, run: run, clock: start}
}

func (e *emitter) emit(kind event.Kind, span, parent string, data any) {
	e.clock = e.clock.Add(time.Millisecond)
	e.bus.Publish(event.Event{Kind: kind, Time: e.clock, RunID: e.run, SpanID: span, ParentID: parent, Data: data})
}

// call publishes one module call holding one LM call: 2 spans, 1 LM call,
// 4 events.
func (e *emitter) call(parent string) (module, lm string) {
	e.n++
	module, lm = fmt.Sprintf("%s-m%d", e.run, e.n), fmt.Sprintf("%s-l%d", e.run, e.n)
	in := map[string]any{"question": fmt.Sprintf("q%d", e.n)}
	e.emit(event.ModuleStart, module, parent, &event.ModuleCall{Module: "Predict", Signature: "question -> answer", Inputs: in})
	req := event.LMCall{Model: "gpt-test", Adapter: "chat", Messages: []event.Message{{Role: "system", Content: "sys"}, {Role: "user", Content: "q"}}}
	e.emit(event.LMStart, lm, module, &req)
	resp := req
	resp.Completions = []string{"[[ ## answer ## ]]\n4"}
	resp.PromptTokens, resp.CompletionTokens, resp.CostUSD, resp.CostKnown = 10, 5, 0.001, true
	resp.Latency, resp.Attempts = 2*time.Millisecond, 1
	e.emit(event.LMEnd, lm, module, &resp)
	e.emit(event.ModuleEnd, module, parent, &event.ModuleCall{Module: "Predict", Signature: "question -> answer", Inputs: in,
		Outputs: map[string]any{"answer": "4"}, Duration: 3 * time.Millisecond})
	return module, lm
}

func TestStoreRecordsARun(t *testing.T) {
	path := tempDB(t)
	s, bus := openStore(t, path, Options{})
	e := newEmitter(bus, "run1", t0)
	score, best := 0.5, 0.75
	e.emit(event.RunStart, "root", "", &event.RunInfo{Name: "eval", Program: "qa.yaml", Meta: map[string]any{"data": "dev.jsonl"}})
	e.emit(event.ModuleStart, "cot", "root", &event.ModuleCall{Module: "ChainOfThought", Signature: "question -> answer",
		Inputs: map[string]any{"question": "2+2?"}})
	e.emit(event.LMStart, "lm1", "cot", &event.LMCall{Model: "gpt-test", Adapter: "chat",
		Messages: []event.Message{{Role: "user", Content: "2+2?"}}, Params: map[string]any{"temperature": 0.0}})
	e.emit(event.LMRetry, "lm1", "cot", &event.LMRetryInfo{Model: "gpt-test", Attempt: 1, Error: "429", Wait: time.Second})
	e.emit(event.LMEnd, "lm1", "cot", &event.LMCall{Model: "gpt-test", Adapter: "chat",
		Messages: []event.Message{{Role: "user", Content: "2+2?"}}, Params: map[string]any{"temperature": 0.0},
		Completions: []string{"4", "four"}, FinishReasons: []string{"stop", "length"}, PromptTokens: 7, CompletionTokens: 3, CostUSD: 0.25, CostKnown: true,
		Latency: 1500 * time.Millisecond, QueueWait: 250 * time.Millisecond, Attempts: 2})
	e.emit(event.ParseFailure, "cot", "root", &event.ParseFailureInfo{Adapter: "chat", Error: "no answer", Raw: "??"})
	e.emit(event.ModuleEnd, "cot", "root", &event.ModuleCall{Module: "ChainOfThought", Signature: "question -> answer",
		Inputs: map[string]any{"question": "2+2?"}, Outputs: map[string]any{"answer": "4"}, Duration: 2 * time.Second})
	e.emit(event.EvalExample, "root", "", &event.EvalExampleInfo{Index: 3, Example: map[string]any{"question": "2+2?"},
		Prediction: map[string]any{"answer": "4"}, Score: 1, Duration: time.Second})
	e.emit(event.OptimizerStart, "root", "", &event.OptimizerInfo{Optimizer: "copro"})
	e.emit(event.OptimizerTrial, "root", "", &event.OptimizerTrialInfo{Optimizer: "copro", Trial: 1, Score: &score,
		Candidate: map[string]any{"instructions": "be brief"}})
	e.emit(event.OptimizerNewBest, "root", "", &event.OptimizerTrialInfo{Optimizer: "copro", Trial: 1, Score: &best, BestScore: &best})
	e.emit(event.Progress, "root", "", &event.ProgressInfo{Label: "eval", Done: 1, Total: 1})
	e.emit(event.RunEnd, "root", "", &event.RunInfo{Name: "eval", Program: "qa.yaml", Calls: 1, PromptTokens: 7,
		CompletionTokens: 3, CostUSD: 0.25})
	closeStore(t, s)

	ctx := context.Background()
	r := openReader(t, path)
	runs, err := r.Runs(ctx, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 {
		t.Fatalf("runs = %+v; want 1", runs)
	}
	run := runs[0]
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond).Local() }
	want := Run{
		ID: "run1", Name: "eval", Program: "qa.yaml", Meta: json.RawMessage(`{"data":"dev.jsonl"}`),
		StartedAt: at(1), EndedAt: at(13), UpdatedAt: at(13), Status: "ok",
		Reported: Totals{Calls: 1, PromptTokens: 7, CompletionTokens: 3, CostUSD: 0.25},
		Recorded: Totals{Calls: 1, PromptTokens: 7, CompletionTokens: 3, CostUSD: 0.25},
		Spans:    2,
		// The writing process: this one, alive when it last wrote.
		Pid: os.Getpid(), Host: hostName(),
	}
	if run.HeartbeatAt.IsZero() || run.HeartbeatAt.Before(run.StartedAt) {
		t.Errorf("heartbeat %v; want one at or after the run's start %v", run.HeartbeatAt, run.StartedAt)
	}
	run.HeartbeatAt = time.Time{}
	if diff := cmp.Diff(want, run); diff != "" {
		t.Errorf("run (-want +got):\n%s", diff)
	}
	if got, _ := r.Run(ctx, "run1"); got.ID != "run1" {
		t.Errorf("Run(run1) = %+v", got)
	}

	spans, err := r.Spans(ctx, "run1")
	if err != nil {
		t.Fatal(err)
	}
	wantSpans := []Span{
		{ID: "cot", RunID: "run1", ParentID: "root", Kind: SpanModule, Name: "ChainOfThought", Signature: "question -> answer",
			Inputs: json.RawMessage(`{"question":"2+2?"}`), Outputs: json.RawMessage(`{"answer":"4"}`),
			StartedAt: at(2), EndedAt: at(7), Duration: 2 * time.Second},
		{ID: "lm1", RunID: "run1", ParentID: "cot", Kind: SpanLM, Name: "gpt-test",
			StartedAt: at(3), EndedAt: at(5), Duration: 2 * time.Millisecond},
	}
	if diff := cmp.Diff(wantSpans, spans); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}

	calls, err := r.LMCalls(ctx, LMCallQuery{RunID: "run1"})
	if err != nil {
		t.Fatal(err)
	}
	wantCalls := []LMCall{{
		SpanID: "lm1", RunID: "run1", ParentID: "cot", Model: "gpt-test", Adapter: "chat",
		Messages: []event.Message{{Role: "user", Content: "2+2?"}}, Params: json.RawMessage(`{"temperature":0}`),
		Completions: []string{"4", "four"}, FinishReasons: []string{"stop", "length"}, PromptTokens: 7, CompletionTokens: 3, TotalTokens: 10, CostUSD: 0.25,
		CostKnown: true, LatencyMS: 1500, QueueWaitMS: 250, Attempts: 2, CreatedAt: at(3), EndedAt: at(5),
	}}
	if diff := cmp.Diff(wantCalls, calls); diff != "" {
		t.Errorf("LM calls (-want +got):\n%s", diff)
	}

	events, err := r.Events(ctx, "run1")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.Kind)
	}
	if diff := cmp.Diff([]string{"lm.retry", "adapter.parse_error", "optimizer.start"}, kinds); diff != "" {
		t.Errorf("event kinds (-want +got):\n%s", diff)
	}
	if got := string(events[0].Data); got != `{"model":"gpt-test","attempt":1,"error":"429","wait":1000000000}` {
		t.Errorf("retry data = %s", got)
	}
	if only, _ := r.Events(ctx, "run1", "adapter.parse_error", "lm.breaker"); len(only) != 1 || only[0].SpanID != "cot" {
		t.Errorf("Events filtered by kind = %+v", only)
	}

	evals, err := r.EvalResults(ctx, "run1")
	if err != nil {
		t.Fatal(err)
	}
	if len(evals) != 1 || evals[0].Index != 3 || evals[0].Score != 1 || string(evals[0].Prediction) != `{"answer":"4"}` ||
		evals[0].Duration != time.Second {
		t.Errorf("eval results = %+v", evals)
	}
	trials, err := r.Trials(ctx, "run1")
	if err != nil {
		t.Fatal(err)
	}
	if len(trials) != 2 || trials[0].Kind != TrialEvaluated || *trials[0].Score != 0.5 || trials[0].BestScore != nil ||
		string(trials[0].Candidate) != `{"instructions":"be brief"}` || trials[1].Kind != TrialNewBest || *trials[1].BestScore != 0.75 {
		t.Errorf("trials = %+v", trials)
	}
	if err := r.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestStartAndEndInAnyOrder sends span events in orders a bus with several
// publishers (or a lost event) can produce, one batch per event or all in
// one batch.
func TestStartAndEndInAnyOrder(t *testing.T) {
	mStart := func(ms int) event.Event {
		return event.Event{Kind: event.ModuleStart, Time: t0.Add(time.Duration(ms) * time.Millisecond), RunID: "r", SpanID: "m", ParentID: "p",
			Data: &event.ModuleCall{Module: "Predict", Signature: "q -> a", Inputs: map[string]any{"q": 1}}} // the end has no signature
	}
	mEnd := func(ms int) event.Event {
		return event.Event{Kind: event.ModuleEnd, Time: t0.Add(time.Duration(ms) * time.Millisecond), RunID: "r", SpanID: "m", ParentID: "p",
			Data: &event.ModuleCall{Module: "Predict", Inputs: map[string]any{"q": 1}, Outputs: map[string]any{"a": 2}, Error: "boom", Duration: 5 * time.Millisecond}}
	}
	lStart := func(ms int) event.Event {
		return event.Event{Kind: event.LMStart, Time: t0.Add(time.Duration(ms) * time.Millisecond), RunID: "r", SpanID: "l", ParentID: "m",
			Data: event.LMCall{Model: "gpt", Messages: []event.Message{{Role: "user", Content: "hi"}}}} // a value, not a pointer
	}
	lEnd := func(ms int) event.Event {
		return event.Event{Kind: event.LMEnd, Time: t0.Add(time.Duration(ms) * time.Millisecond), RunID: "r", SpanID: "l", ParentID: "m",
			Data: &event.LMCall{Model: "gpt", Messages: []event.Message{{Role: "user", Content: "hi"}}, Completions: []string{"yo"},
				PromptTokens: 3, CompletionTokens: 2, Latency: 2 * time.Millisecond, CacheHit: true}}
	}
	lEndBare := func(ms int) event.Event { // the response only: the request stays the start's
		ev := lEnd(ms)
		c := *ev.Data.(*event.LMCall)
		c.Messages = nil
		ev.Data = &c
		return ev
	}
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond).Local() }
	for _, tc := range []struct {
		name        string
		events      []event.Event
		wantModule  Span
		wantLMStart time.Time
		wantEnded   bool
	}{
		{
			// The starts' times differ from those the ends' durations give.
			name:   "in order",
			events: []event.Event{mStart(9), lStart(10), lEnd(13), mEnd(15)},
			wantModule: Span{ID: "m", RunID: "r", ParentID: "p", Kind: SpanModule, Name: "Predict", Signature: "q -> a", Inputs: json.RawMessage(`{"q":1}`),
				Outputs: json.RawMessage(`{"a":2}`), Error: "boom", StartedAt: at(9), EndedAt: at(15), Duration: 5 * time.Millisecond},
			wantLMStart: at(10), wantEnded: true,
		},
		{
			name:   "ends first",
			events: []event.Event{lEnd(13), mEnd(15), lStart(10), mStart(9)},
			wantModule: Span{ID: "m", RunID: "r", ParentID: "p", Kind: SpanModule, Name: "Predict", Signature: "q -> a", Inputs: json.RawMessage(`{"q":1}`),
				Outputs: json.RawMessage(`{"a":2}`), Error: "boom", StartedAt: at(9), EndedAt: at(15), Duration: 5 * time.Millisecond},
			wantLMStart: at(10), wantEnded: true,
		},
		{
			name:   "end without the request",
			events: []event.Event{mStart(9), lStart(10), lEndBare(13), mEnd(15)},
			wantModule: Span{ID: "m", RunID: "r", ParentID: "p", Kind: SpanModule, Name: "Predict", Signature: "q -> a", Inputs: json.RawMessage(`{"q":1}`),
				Outputs: json.RawMessage(`{"a":2}`), Error: "boom", StartedAt: at(9), EndedAt: at(15), Duration: 5 * time.Millisecond},
			wantLMStart: at(10), wantEnded: true,
		},
		{
			name:   "ends only",
			events: []event.Event{lEnd(13), mEnd(15)},
			wantModule: Span{ID: "m", RunID: "r", ParentID: "p", Kind: SpanModule, Name: "Predict", Inputs: json.RawMessage(`{"q":1}`),
				Outputs: json.RawMessage(`{"a":2}`), Error: "boom", StartedAt: at(10), EndedAt: at(15), Duration: 5 * time.Millisecond},
			wantLMStart: at(11), wantEnded: true,
		},
		{
			name:   "starts only",
			events: []event.Event{mStart(10), lStart(11)},
			wantModule: Span{ID: "m", RunID: "r", ParentID: "p", Kind: SpanModule, Name: "Predict", Signature: "q -> a", Inputs: json.RawMessage(`{"q":1}`),
				StartedAt: at(10)},
			wantLMStart: at(11),
		},
	} {
		for _, batch := range []int{1, 100} {
			t.Run(fmt.Sprintf("%s/batch %d", tc.name, batch), func(t *testing.T) {
				path := tempDB(t)
				s, bus := openStore(t, path, Options{BatchSize: batch})
				for _, ev := range tc.events {
					bus.Publish(ev)
				}
				closeStore(t, s)
				r := openReader(t, path)
				ctx := context.Background()
				spans, err := r.Spans(ctx, "r")
				if err != nil {
					t.Fatal(err)
				}
				if len(spans) != 2 {
					t.Fatalf("spans = %+v; want 2", spans)
				}
				if diff := cmp.Diff(tc.wantModule, spans[0]); diff != "" {
					t.Errorf("module span (-want +got):\n%s", diff)
				}
				calls, err := r.LMCalls(ctx, LMCallQuery{})
				if err != nil {
					t.Fatal(err)
				}
				if len(calls) != 1 {
					t.Fatalf("calls = %+v", calls)
				}
				c := calls[0]
				if !c.CreatedAt.Equal(tc.wantLMStart) || c.Ended() != tc.wantEnded || len(c.Messages) != 1 || c.ParentID != "m" {
					t.Errorf("call = %+v; want created %v, ended %v", c, tc.wantLMStart, tc.wantEnded)
				}
				if tc.wantEnded && (c.TotalTokens != 5 || !c.CacheHit || len(c.Completions) != 1 || c.LatencyMS != 2) {
					t.Errorf("ended call = %+v", c)
				}
				run, err := r.Run(ctx, "r")
				if err != nil {
					t.Fatalf("the run was never started, yet its row must exist: %v", err)
				}
				if run.Status != "running" || !run.StartedAt.Equal(tc.events[0].Time) && tc.name != "ends first" {
					t.Errorf("run = %+v", run)
				}
			})
		}
	}
}

func TestRunEndWithoutStart(t *testing.T) {
	path := tempDB(t)
	s, bus := openStore(t, path, Options{})
	e := newEmitter(bus, "r", t0)
	e.emit(event.RunEnd, "root", "", &event.RunInfo{Name: "run", Error: "it failed", Calls: 2})
	bus.Publish(event.Event{Kind: event.RunEnd, Time: t0, Data: &event.RunInfo{Name: "run"}}) // no run id: kept as an event
	closeStore(t, s)
	r := openReader(t, path)
	run, err := r.Run(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != "error" || run.Error != "it failed" || run.Name != "run" || run.Reported.Calls != 2 {
		t.Errorf("run = %+v", run)
	}
	if ev, _ := r.Events(context.Background(), ""); len(ev) != 1 || ev[0].Kind != string(event.RunEnd) {
		t.Errorf("events outside runs = %+v", ev)
	}
}

type customPayload struct {
	Answer int `json:"answer"`
}

// panicky is a payload whose JSON encoding panics.
type panicky struct{}

func (panicky) MarshalJSON() ([]byte, error) { panic("boom") }

// TestPanickingPayloadIsSkipped: one bad payload costs its own event only.
func TestPanickingPayloadIsSkipped(t *testing.T) {
	path := tempDB(t)
	s, bus := openStore(t, path, Options{})
	e := newEmitter(bus, "r", t0)
	e.call("")
	e.emit("custom.panic", "", "", panicky{})
	e.call("")
	err := s.Close()
	if err == nil || !strings.Contains(err.Error(), "1 event not stored") || !strings.Contains(err.Error(), "payload panicked: boom") {
		t.Errorf("Close = %v; want it to report the skipped event", err)
	}
	if st := s.Stats(); st.Events != 8 || st.Dropped != 1 {
		t.Errorf("stats = %+v; want 8 events stored, 1 dropped", st)
	}
	r := openReader(t, path)
	if spans, _ := r.Spans(context.Background(), "r"); len(spans) != 4 {
		t.Errorf("%d spans; want 4", len(spans))
	}
}

func TestUnknownPayloadsAreStoredAsEvents(t *testing.T) {
	path := tempDB(t)
	s, bus := openStore(t, path, Options{})
	e := newEmitter(bus, "r", t0)
	e.emit("plugin.restart", "sp", "", &customPayload{Answer: 42})
	e.emit(event.ModuleStart, "m", "", "not a *ModuleCall")
	e.emit(event.BreakerState, "", "", &event.BreakerChange{Name: "gpt", From: "closed", To: "open"})
	e.emit("custom.nil", "", "", nil)
	e.emit("custom.nan", "", "", map[string]any{"x": math.NaN(), "ok": 1, "ch": make(chan int)})
	e.emit(event.ModuleEnd, "m2", "", &event.ModuleCall{Module: "Predict", Inputs: map[string]any{"f": func() {}, "q": "x"}})
	closeStore(t, s)
	if st := s.Stats(); st.Events != 6 || st.Dropped != 0 || st.Err != "" {
		t.Errorf("stats = %+v", st)
	}

	r := openReader(t, path)
	ctx := context.Background()
	events, err := r.Events(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range events {
		got[e.Kind] = string(e.Data)
	}
	want := map[string]string{
		"plugin.restart": `{"answer":42}`,
		"module.start":   `"not a *ModuleCall"`,
		"lm.breaker":     `{"name":"gpt","from":"closed","to":"open"}`,
		"custom.nil":     ``,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("event %s data = %q; want %q", k, got[k], v)
		}
	}
	var nan map[string]any
	if err := json.Unmarshal([]byte(got["custom.nan"]), &nan); err != nil || nan["x"] != "NaN" || nan["ok"] != 1.0 {
		t.Errorf("unencodable values: %s (%v)", got["custom.nan"], err)
	}
	spans, _ := r.Spans(ctx, "r")
	if len(spans) != 1 || !strings.Contains(string(spans[0].Inputs), `"q":"x"`) {
		t.Errorf("span with an unencodable input = %+v", spans)
	}
}

// TestManyPublishers sends 10,000 events from 8 goroutines through a real
// bus, with a small subscription buffer so publishers block on the store.
func TestManyPublishers(t *testing.T) {
	const publishers, callsEach = 8, 10_000 / 8 / 4
	path := tempDB(t)
	s, bus := openStore(t, path, Options{Buffer: 64, BatchSize: 100})
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := newEmitter(bus, fmt.Sprintf("run%d", p), t0)
			for range callsEach {
				e.call("")
			}
		}()
	}
	wg.Wait()
	closeStore(t, s)
	st := s.Stats()
	if st.Events != publishers*callsEach*4 || st.Dropped != 0 {
		t.Fatalf("stats = %+v; want %d events", st, publishers*callsEach*4)
	}
	r := openReader(t, path)
	ctx := context.Background()
	runs, err := r.Runs(ctx, ListOptions{Limit: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != publishers {
		t.Fatalf("%d runs; want %d", len(runs), publishers)
	}
	for _, run := range runs {
		if run.Spans != 2*callsEach || run.Recorded.Calls != callsEach || run.Recorded.PromptTokens != 10*callsEach {
			t.Errorf("run %s: %d spans, totals %+v; want %d spans, %d calls", run.ID, run.Spans, run.Recorded, 2*callsEach, callsEach)
		}
	}
	calls, _ := r.LMCalls(ctx, LMCallQuery{Limit: -1})
	if len(calls) != publishers*callsEach {
		t.Errorf("%d LM calls; want %d", len(calls), publishers*callsEach)
	}
}

func TestProgressIsNotStored(t *testing.T) {
	path := tempDB(t)
	s, bus := openStore(t, path, Options{})
	e := newEmitter(bus, "r", t0)
	for i := range 100 {
		e.emit(event.Progress, "", "", &event.ProgressInfo{Label: "x", Done: i, Total: 100})
	}
	closeStore(t, s)
	if st := s.Stats(); st.Events != 0 {
		t.Errorf("stats = %+v; want no events", st)
	}
	r := openReader(t, path)
	if runs, _ := r.Runs(context.Background(), ListOptions{}); len(runs) != 0 {
		t.Errorf("runs = %+v", runs)
	}
}

func TestCloseFlushesThePartialBatch(t *testing.T) {
	path := tempDB(t)
	s, bus := openStore(t, path, Options{BatchSize: 1000, FlushInterval: time.Hour})
	e := newEmitter(bus, "r", t0)
	for range 5 {
		e.call("")
	}
	if st := s.Stats(); st.Batches != 0 {
		t.Fatalf("committed before Close: %+v", st)
	}
	closeStore(t, s)
	if st := s.Stats(); st.Batches != 1 || st.Events != 20 {
		t.Errorf("stats = %+v; want 1 batch of 20", st)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := s.Attach(event.NewBus()); !errors.Is(err, ErrClosed) {
		t.Errorf("Attach after Close = %v; want ErrClosed", err)
	}
	r := openReader(t, path)
	if spans, _ := r.Spans(context.Background(), "r"); len(spans) != 10 {
		t.Errorf("%d spans; want 10", len(spans))
	}
}

// TestFlushInterval: a batch that never fills is committed after
// FlushInterval, while the store stays open.
func TestFlushInterval(t *testing.T) {
	path := tempDB(t)
	s, bus := openStore(t, path, Options{BatchSize: 1000, FlushInterval: 20 * time.Millisecond})
	newEmitter(bus, "r", t0).call("")
	r := openReader(t, path)
	deadline := time.Now().Add(5 * time.Second)
	for {
		spans, err := r.Spans(context.Background(), "r")
		if err != nil {
			t.Fatal(err)
		}
		if len(spans) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s the reader sees %d spans; stats %+v", len(spans), s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAttachTwice(t *testing.T) {
	s, _ := openStore(t, tempDB(t), Options{})
	if err := s.Attach(event.NewBus()); !errors.Is(err, ErrAttached) {
		t.Errorf("second Attach = %v; want ErrAttached", err)
	}
	closed := event.NewBus()
	closed.Close()
	s2, err := Open(context.Background(), tempDB(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Attach(closed); !errors.Is(err, event.ErrClosed) {
		t.Errorf("Attach to a closed bus = %v; want event.ErrClosed", err)
	}
}

func TestReopenAppends(t *testing.T) {
	path := tempDB(t)
	for i := range 3 {
		s, bus := openStore(t, path, Options{})
		e := newEmitter(bus, fmt.Sprintf("run%d", i), t0.Add(time.Duration(i)*time.Hour))
		e.emit(event.RunStart, "root", "", &event.RunInfo{Name: "run"})
		e.call("root")
		e.emit(event.RunEnd, "root", "", &event.RunInfo{Name: "run"})
		closeStore(t, s)
		bus.Close()
	}
	r := openReader(t, path)
	runs, err := r.Runs(context.Background(), ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, run := range runs {
		ids = append(ids, run.ID)
		if run.Spans != 2 || run.Status != "ok" {
			t.Errorf("run %+v", run)
		}
	}
	if diff := cmp.Diff([]string{"run2", "run1", "run0"}, ids); diff != "" {
		t.Errorf("runs newest first (-want +got):\n%s", diff)
	}
	if runs, _ := r.Runs(context.Background(), ListOptions{Limit: 2}); len(runs) != 2 {
		t.Errorf("Limit 2: %d runs", len(runs))
	}
	if runs, _ := r.Runs(context.Background(), ListOptions{Name: "eval"}); len(runs) != 0 {
		t.Errorf("Name eval: %d runs", len(runs))
	}
}

func TestRunByPrefix(t *testing.T) {
	path := tempDB(t)
	s, bus := openStore(t, path, Options{})
	for _, id := range []string{"abc123", "abd456", "abc", "xyz"} {
		newEmitter(bus, id, t0).emit(event.RunStart, "root", "", &event.RunInfo{Name: "run"})
	}
	closeStore(t, s)
	r := openReader(t, path)
	for _, tc := range []struct {
		id, want string
		err      error
	}{
		{"abc", "abc", nil}, // exact beats prefix
		{"abc1", "abc123", nil},
		{"abd", "abd456", nil},
		{"x", "xyz", nil},
		{"ab", "", ErrAmbiguous},
		{"q", "", ErrNotFound},
		{"", "", ErrNotFound},
	} {
		run, err := r.Run(context.Background(), tc.id)
		if !errors.Is(err, tc.err) || run.ID != tc.want {
			t.Errorf("Run(%q) = %q, %v; want %q, %v", tc.id, run.ID, err, tc.want, tc.err)
		}
		if err != nil {
			t.Logf("Run(%q): %v", tc.id, err)
		}
	}
}

// TestWriteFailureIsReported: when the file cannot be written, the store
// drops the batch, goes on, and says so in Stats and from Close.
func TestWriteFailureIsReported(t *testing.T) {
	path := tempDB(t)
	s, bus := openStore(t, path, Options{})
	s.db.Close() // fault injection: the handle goes away, as after an I/O error
	newEmitter(bus, "r", t0).call("")
	err := s.Close()
	if err == nil || !strings.Contains(err.Error(), "4 events not stored in "+path) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Close = %v; want it to say 4 events were lost, and why", err)
	}
	if st := s.Stats(); st.Dropped != 4 || st.Events != 0 || st.Err == "" {
		t.Errorf("stats = %+v", st)
	}
}

// TestWaitsOutAnotherWriter: while another process holds the file's write
// lock past the busy timeout, the writer retries the batch rather than
// dropping it.
func TestWaitsOutAnotherWriter(t *testing.T) {
	path := tempDB(t)
	s, bus := openStore(t, path, Options{BusyTimeout: 50 * time.Millisecond, FlushInterval: 10 * time.Millisecond})
	other := openDB(path, time.Second, false)
	defer other.Close()
	tx, err := other.Begin() // BEGIN IMMEDIATE: takes the write lock
	if err != nil {
		t.Fatal(err)
	}
	newEmitter(bus, "r", t0).call("")
	time.Sleep(150 * time.Millisecond)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	if st := s.Stats(); st.Events != 4 || st.Dropped != 0 {
		t.Errorf("stats = %+v; want the batch written after the lock was released", st)
	}
}

// durableRecord is a payload that asks to be written at once.
type durableRecord struct{ ID string }

func (*durableRecord) Durable() bool { return true }

// TestDurableEventCommitsAtOnce: with a flush interval far beyond the test,
// an ordinary event stays in the batch, and a durable one commits the batch
// (itself and what came before it) at once.
func TestDurableEventCommitsAtOnce(t *testing.T) {
	path := tempDB(t)
	s, bus := openStore(t, path, Options{BatchSize: 1000, FlushInterval: time.Hour})
	e := newEmitter(bus, "r", t0)
	e.emit(event.RunStart, "r", "", &event.RunInfo{Name: "optimize"})
	e.emit("test.ordinary", "", "", map[string]any{"n": 1})
	r := openReader(t, path)
	events := func() []StoredEvent {
		evs, err := r.Events(context.Background(), "r", "test.ordinary", "test.durable")
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	// The ordinary event waits for a batch that will not fill for an hour.
	time.Sleep(200 * time.Millisecond)
	if got := events(); len(got) != 0 {
		t.Fatalf("an ordinary event was committed before its batch filled: %+v", got)
	}
	e.emit("test.durable", "", "", &durableRecord{ID: "ftjob-1"})
	deadline := time.Now().Add(5 * time.Second)
	for len(events()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s the reader sees %d of 2 events; stats %+v", len(events()), s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
