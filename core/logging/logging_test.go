package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dspex/dspex/core/event"
)

// sample publishes one event of each severity class on bus: a run start
// (info), a module start and an LM start and end (debug), a retry (warn),
// a failed LM call (error) and a run end (info).
func sample(bus *event.Bus, runErr string) {
	run := event.Span{RunID: "0123456789abcdef", SpanID: "fedcba9876543210"}
	mod := event.Span{RunID: run.RunID, SpanID: "1111111122222222", ParentID: run.SpanID}
	lm := event.Span{RunID: run.RunID, SpanID: "3333333344444444", ParentID: mod.SpanID}
	pub := func(k event.Kind, s event.Span, data any) {
		bus.Publish(event.Event{Kind: k, Time: time.Now(), RunID: s.RunID, SpanID: s.SpanID, ParentID: s.ParentID, Data: data})
	}
	call := event.LMCall{Model: "gpt-4o-mini", Messages: []event.Message{{Role: "user", Content: "SECRET PROMPT"}}}
	pub(event.RunStart, run, &event.RunInfo{Name: "run"})
	pub(event.ModuleStart, mod, &event.ModuleCall{Module: "Predict", Signature: "q -> a", Inputs: map[string]any{"q": "hi"}})
	pub(event.LMStart, lm, &call)
	done := call
	done.PromptTokens, done.CompletionTokens, done.Latency, done.CostUSD, done.CostKnown = 12, 3, 250*time.Millisecond, 0.001, true
	done.QueueWait, done.RateLimitWait = 40*time.Millisecond, 20*time.Millisecond
	done.Completions = []string{"SECRET ANSWER"}
	pub(event.LMEnd, lm, &done)
	pub(event.LMRetry, lm, &event.LMRetryInfo{Model: call.Model, Attempt: 1, Error: "429", Wait: time.Second})
	failed := call
	failed.Error, failed.ErrorKind = "server error", "server"
	pub(event.LMEnd, lm, &failed)
	pub(event.RunEnd, run, &event.RunInfo{Name: "run", Calls: 2, PromptTokens: 12, Error: runErr})
}

// logLines runs sample through a logger with opts and returns the
// decoded JSON lines.
func logLines(t *testing.T, opts Options) []map[string]any {
	t.Helper()
	return logLinesEnd(t, opts, "")
}

// logLinesEnd is logLines with the sample run ending in runErr.
func logLinesEnd(t *testing.T, opts Options, runErr string) []map[string]any {
	t.Helper()
	var buf bytes.Buffer
	opts.JSON = true
	l := New(&buf, opts)
	bus := event.NewBus()
	if err := l.Attach(bus); err != nil {
		t.Fatal(err)
	}
	sample(bus, runErr)
	bus.Close()
	l.Close()
	var lines []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestLevels(t *testing.T) {
	tests := []struct {
		level string
		want  []string // messages, in order
	}{
		{"", []string{"run started", "lm retry", "lm call failed", "run finished"}},
		{"info", []string{"run started", "lm retry", "lm call failed", "run finished"}},
		{"bogus", []string{"run started", "lm retry", "lm call failed", "run finished"}},
		{"warn", []string{"lm retry", "lm call failed"}},
		{"error", []string{"lm call failed"}},
		{"debug", []string{"run started", "module start", "lm call", "lm done", "lm retry", "lm call failed", "run finished"}},
		{"TRACE", []string{"run started", "module start", "lm call", "lm done", "lm retry", "lm call failed", "run finished"}},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			var got []string
			for _, l := range logLines(t, Options{Level: tt.level}) {
				got = append(got, l["@message"].(string))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("messages %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorsReportedLogsFailuresAtInfo(t *testing.T) {
	for _, tt := range []struct {
		level string
		want  []string
	}{
		{"warn", []string{"lm retry"}},
		{"info", []string{"run started", "lm retry", "lm call failed", "run failed"}},
	} {
		var got []string
		for _, l := range logLinesEnd(t, Options{Level: tt.level, ErrorsReported: true}, "1 of 1 inputs failed") {
			got = append(got, l["@message"].(string))
			if l["@message"] == "lm call failed" && l["@level"] != "info" {
				t.Errorf("lm call failed at %v, want info", l["@level"])
			}
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("level %s: messages %q, want %q", tt.level, got, tt.want)
		}
	}
	var got []string
	for _, l := range logLinesEnd(t, Options{Level: "warn"}, "1 of 1 inputs failed") {
		got = append(got, l["@message"].(string))
	}
	if want := "lm retry|lm call failed|run failed"; strings.Join(got, "|") != want {
		t.Errorf("without ErrorsReported: messages %q, want %s", got, want)
	}
}

func TestJSONIsNotHTMLEscaped(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, Options{Level: "warn", JSON: true})
	bus := event.NewBus()
	if err := l.Attach(bus); err != nil {
		t.Fatal(err)
	}
	bus.Publish(event.Event{Kind: event.LMRetry, Time: time.Now(), Data: &event.LMRetryInfo{Model: "m", Attempt: 1, Error: "predict q -> a: <b>&"}})
	bus.Close()
	l.Close()
	if !strings.Contains(buf.String(), `predict q -> a: <b>&`) {
		t.Errorf("log line %s escapes the error text", buf.String())
	}
}

func TestJSONFields(t *testing.T) {
	lines := logLines(t, Options{Level: "debug", Name: "test"})
	byMsg := map[string]map[string]any{}
	for _, l := range lines {
		byMsg[l["@message"].(string)] = l
		if l["@module"] != "test" {
			t.Errorf("%v: @module %v, want test", l["@message"], l["@module"])
		}
		for _, secret := range []string{"SECRET PROMPT", "SECRET ANSWER"} {
			for k, v := range l {
				if s, ok := v.(string); ok && strings.Contains(s, secret) {
					t.Errorf("debug line %q has %s in %s", l["@message"], secret, k)
				}
			}
		}
	}
	done := byMsg["lm done"]
	for k, want := range map[string]any{
		"@level": "debug", "run": "01234567", "span": "33333333", "parent": "11111111", "model": "gpt-4o-mini",
		"prompt_tokens": 12.0, "completion_tokens": 3.0, "latency": "250ms", "cache_hit": false, "cost_usd": 0.001,
		"queue_wait": "40ms", "rate_limit_wait": "20ms",
	} {
		if done[k] != want {
			t.Errorf("lm done %s = %v, want %v", k, done[k], want)
		}
	}
	if got := byMsg["lm call failed"]; got["@level"] != "error" || got["error"] != "server error" || got["error_kind"] != "server" {
		t.Errorf("lm call failed line %v", got)
	}
	if got := byMsg["lm retry"]["@level"]; got != "warn" {
		t.Errorf("lm retry level %v, want warn", got)
	}
	if got := byMsg["run started"]["@level"]; got != "info" {
		t.Errorf("run started level %v, want info", got)
	}
}

func TestTraceIncludesContent(t *testing.T) {
	lines := logLines(t, Options{Level: "trace"})
	var call, done map[string]any
	for _, l := range lines {
		switch l["@message"] {
		case "lm call":
			call = l
		case "lm done":
			done = l
		}
	}
	if s, _ := call["messages"].(string); !strings.Contains(s, "user: SECRET PROMPT") {
		t.Errorf("trace lm call messages = %q", s)
	}
	if s, _ := done["completions"].(string); s != "SECRET ANSWER" {
		t.Errorf("trace lm done completions = %q", s)
	}
}

func TestTextFormat(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, Options{})
	bus := event.NewBus()
	if err := l.Attach(bus); err != nil {
		t.Fatal(err)
	}
	sample(bus, "")
	bus.Close()
	l.Close()
	out := buf.String()
	for _, want := range []string{"[INFO]  dspex: run started: run=01234567", "[WARN]  dspex: lm retry:", "[ERROR] dspex: lm call failed:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestWaitLevel(t *testing.T) {
	tests := []struct {
		wait time.Duration
		want int // lines at warn level
	}{
		{500 * time.Millisecond, 0},
		{SlowWait + time.Millisecond, 1},
	}
	for _, tt := range tests {
		t.Run(tt.wait.String(), func(t *testing.T) {
			var buf bytes.Buffer
			l := New(&buf, Options{Level: "warn"})
			bus := event.NewBus()
			if err := l.Attach(bus); err != nil {
				t.Fatal(err)
			}
			bus.Publish(event.Event{Kind: event.LMRateLimitWait, Time: time.Now(), Data: &event.LMWait{Model: "m", Wait: tt.wait}})
			bus.Close()
			l.Close()
			if got := strings.Count(buf.String(), "lm rate limit wait"); got != tt.want {
				t.Errorf("%d warn lines, want %d:\n%s", got, tt.want, buf.String())
			}
		})
	}
}

// gate is a writer that blocks until opened.
type gate struct {
	open chan struct{}
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func TestBurstDoesNotBlock(t *testing.T) {
	g := &gate{open: make(chan struct{})}
	l := New(g, Options{Level: "info", Buffer: 8})
	bus := event.NewBus()
	if err := l.Attach(bus); err != nil {
		t.Fatal(err)
	}
	const n = 10_000
	start := time.Now()
	for i := range n {
		bus.Publish(event.Event{Kind: event.RunStart, Time: time.Now(), RunID: event.NewID(), Data: &event.RunInfo{Name: "burst", Meta: map[string]any{"i": i}}})
	}
	// The writer is stuck, so every publish past the buffer must drop
	// rather than wait.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("publishing %d events to a stuck logger took %s", n, d)
	}
	close(g.open)
	bus.Close()
	l.Close()
	out := g.buf.String()
	if !strings.Contains(out, "log events dropped") {
		t.Fatalf("no drop report in:\n%s", out)
	}
	if lines := strings.Count(out, "run started"); lines >= n || lines == 0 {
		t.Errorf("%d run lines for %d events with a buffer of 8", lines, n)
	}
}

func TestSubscriberProblemIsError(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, Options{Level: "error", JSON: true})
	bus := event.NewBus()
	if err := l.Attach(bus); err != nil {
		t.Fatal(err)
	}
	// A subscriber that panics is reported to the others.
	broken, err := bus.Subscribe(event.SubscribeOptions{Name: "broken", Kinds: []event.Kind{event.RunStart}},
		func(event.Event) { panic("boom") })
	if err != nil {
		t.Fatal(err)
	}
	bus.Publish(event.Event{Kind: event.RunStart, Time: time.Now(), Data: &event.RunInfo{Name: "x"}})
	// Closing the broken subscriber first makes sure its report has reached
	// the logger before the logger drains.
	broken.Close()
	l.Close()
	bus.Close()
	var m map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &m); err != nil {
		t.Fatalf("want one JSON line, got %q: %v", buf.String(), err)
	}
	if m["@level"] != "error" || m["subscriber"] != "broken" {
		t.Errorf("line %v, want an error about subscriber broken", m)
	}
}

func TestAttachAfterClose(t *testing.T) {
	l := New(nil, Options{})
	l.Close()
	l.Close()
	if err := l.Attach(event.NewBus()); err != ErrClosed {
		t.Errorf("Attach after Close: %v, want ErrClosed", err)
	}
}

// An answer cut off at max_tokens is a warning, worded as DSPy words it.
func TestTruncationWarning(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, Options{Level: "warn"})
	bus := event.NewBus()
	if err := l.Attach(bus); err != nil {
		t.Fatal(err)
	}
	full := &event.LMCall{Model: "m", Completions: []string{"all of it"}, FinishReasons: []string{"stop"}}
	cut := &event.LMCall{Model: "m", Params: map[string]any{"max_tokens": 64, "temperature": 0.0},
		Completions: []string{"all of it", "half of"}, FinishReasons: []string{"stop", "length"}}
	bus.Publish(event.Event{Kind: event.LMEnd, Time: time.Now(), Data: full})
	bus.Publish(event.Event{Kind: event.LMEnd, Time: time.Now(), Data: cut})
	bus.Close()
	l.Close()
	out := buf.String()
	if got := strings.Count(out, "LM response was truncated"); got != 1 {
		t.Fatalf("%d truncation warnings, want 1:\n%s", got, out)
	}
	for _, want := range []string{"[WARN]", "exceeding max_tokens=64.", "consider passing a larger max_tokens",
		"increasing the temperature (currently 0)", `finish_reasons="stop,length"`} {
		if !strings.Contains(out, want) {
			t.Errorf("warning lacks %q:\n%s", want, out)
		}
	}
}

func TestDemoKeysWarning(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, Options{})
	bus := event.NewBus()
	if err := l.Attach(bus); err != nil {
		t.Fatal(err)
	}
	// The same keys in the same signature (an optimizer's copies of one
	// predictor) are written once; other keys are written too.
	for _, keys := range [][]string{{"source", "id"}, {"source", "id"}, {"topic"}} {
		bus.Publish(event.Event{Kind: event.DemoExtraKeys, Time: time.Now(), RunID: "0123456789abcdef",
			Data: &event.DemoKeysInfo{Signature: "question -> answer", Demo: 2, Keys: keys}})
	}
	bus.Close()
	l.Close()
	out := buf.String()
	for _, want := range []string{"[WARN]  dspex: demo has keys the signature lacks", `keys="source, id"`, "demo=2", `signature="question -> answer"`, "keys=topic"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "demo has keys"); n != 2 {
		t.Errorf("%d warnings, want 2 (one per signature and keys):\n%s", n, out)
	}
}
