package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/trace"
)

// tracesT0 is when the test runs start.
var tracesT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// runTracesCLI runs the traces and history commands in-process.
func runTracesCLI(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	s := &streams{in: strings.NewReader(""), out: &out, err: &errb}
	root := &cobra.Command{Use: "dspex", SilenceUsage: true, SilenceErrors: true}
	root.SetOut(&out)
	root.SetErr(&errb)
	root.AddCommand(newTracesCommand(s), newHistoryCommand(s))
	root.SetArgs(args)
	err = root.ExecuteContext(context.Background())
	return out.String(), err
}

func exitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	return 1
}

const longQuestion = "What is the capital of the country whose flag is red with a white cross, and which borders France, Germany, Austria, Italy and Liechtenstein?"

// fillTraces writes two runs through a store: an older "eval" run
// bbbb2222... with one call, and a newer "run" run aaaa1111... with two
// module calls (one failing after a retry and a parse failure).
func fillTraces(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "traces.db")
	store, err := trace.Open(context.Background(), path, trace.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bus := event.NewBus()
	if err := store.Attach(bus); err != nil {
		t.Fatal(err)
	}
	clock := tracesT0
	pub := func(kind event.Kind, run, span, parent string, data any) {
		clock = clock.Add(100 * time.Millisecond)
		bus.Publish(event.Event{Kind: kind, Time: clock, RunID: run, SpanID: span, ParentID: parent, Data: data})
	}
	msgs := []event.Message{
		{Role: "system", Content: "Your input fields are:\n1. `question` (str)\n\n"},
		{Role: "user", Content: "[[ ## question ## ]]\n2+2?"},
	}

	// The older run: an evaluation with one example.
	const old = "bbbb2222cccc3333"
	pub(event.RunStart, old, "r0", "", &event.RunInfo{Name: "eval", Program: "qa.yaml"})
	pub(event.ModuleStart, old, "m0", "r0", &event.ModuleCall{Module: "Predict", Signature: "question -> answer", Inputs: map[string]any{"question": "2+2?"}})
	pub(event.LMStart, old, "l0", "m0", &event.LMCall{Model: "gpt-old", Messages: msgs})
	pub(event.LMEnd, old, "l0", "m0", &event.LMCall{Model: "gpt-old", Messages: msgs, Completions: []string{"[[ ## answer ## ]]\n4"},
		PromptTokens: 20, CompletionTokens: 4, CostUSD: 0.5, CostKnown: true, Latency: 90 * time.Millisecond, Attempts: 1})
	pub(event.ModuleEnd, old, "m0", "r0", &event.ModuleCall{Module: "Predict", Outputs: map[string]any{"answer": "4"}, Duration: 95 * time.Millisecond})
	pub(event.EvalExample, old, "r0", "", &event.EvalExampleInfo{Index: 0, Score: 1})
	pub(event.RunEnd, old, "r0", "", &event.RunInfo{Name: "eval", Program: "qa.yaml", Calls: 1, PromptTokens: 20, CompletionTokens: 4, CostUSD: 0.5})

	// The newer run.
	const run = "aaaa1111dddd4444"
	clock = tracesT0.Add(time.Hour)
	pub(event.RunStart, run, "r1", "", &event.RunInfo{Name: "run", Program: "cot.yaml"})
	pub(event.ModuleStart, run, "m1", "r1", &event.ModuleCall{Module: "ChainOfThought", Signature: "question -> answer",
		Inputs: map[string]any{"question": longQuestion}})
	pub(event.LMQueueWait, run, "l1", "m1", &event.LMWait{Model: "gpt-new", Wait: 30 * time.Millisecond})
	pub(event.LMStart, run, "l1", "m1", &event.LMCall{Model: "gpt-new", Messages: msgs})
	pub(event.LMRetry, run, "l1", "m1", &event.LMRetryInfo{Model: "gpt-new", Attempt: 1, Error: "rate limited (429)", Wait: 2 * time.Second})
	pub(event.LMEnd, run, "l1", "m1", &event.LMCall{Model: "gpt-new", Messages: msgs,
		Completions:  []string{"  [[ ## reasoning ## ]]\nSwitzerland.\n\n[[ ## answer ## ]]\nBern  ", "[[ ## answer ## ]]\nZurich"},
		PromptTokens: 1200, CompletionTokens: 34, CostUSD: 0.0012, CostKnown: true, Latency: 2500 * time.Millisecond, Attempts: 2})
	pub(event.ModuleEnd, run, "m1", "r1", &event.ModuleCall{Module: "ChainOfThought", Outputs: map[string]any{"answer": "Bern"}, Duration: 2600 * time.Millisecond})
	pub(event.ModuleStart, run, "m2", "r1", &event.ModuleCall{Module: "Predict", Signature: "question -> n: int", Inputs: map[string]any{"question": "how many?"}})
	pub(event.LMStart, run, "l2", "m2", &event.LMCall{Model: "gpt-new", Messages: msgs[1:]})
	pub(event.LMEnd, run, "l2", "m2", &event.LMCall{Model: "gpt-new", Messages: msgs[1:], Completions: []string{"many"},
		PromptTokens: 10, CompletionTokens: 1, CacheHit: true, Attempts: 1, Latency: time.Millisecond})
	pub(event.ParseFailure, run, "m2", "r1", &event.ParseFailureInfo{Adapter: "chat", Field: "n", Error: `field n: "many" is not an int`, Raw: "many"})
	pub(event.BreakerState, run, "", "", &event.BreakerChange{Name: "gpt-new", From: "closed", To: "open"})
	pub(event.ModuleEnd, run, "m2", "r1", &event.ModuleCall{Module: "Predict", Error: "parse failed", Duration: 5 * time.Millisecond})
	pub(event.RunEnd, run, "r1", "", &event.RunInfo{Name: "run", Program: "cot.yaml", Error: "1 of 2 inputs failed"})

	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	bus.Close()
	return path
}

func TestTracesList(t *testing.T) {
	path := fillTraces(t)
	out, err := runTracesCLI(t, "traces", "list", "--db", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 runs:\n%s", out)
	}
	for i, want := range [][]string{
		{"ID", "NAME", "STARTED", "DURATION", "STATUS", "SPANS", "LM CALLS", "TOKENS", "COST"},
		{"aaaa1111dddd4444", "run", tracesT0.Add(time.Hour + 100*time.Millisecond).Local().Format("2006-01-02 15:04:05"), "1.3s", "error", "4", "2", "1,245", "$0.0012"},
		{"bbbb2222cccc3333", "eval", tracesT0.Add(100 * time.Millisecond).Local().Format("2006-01-02 15:04:05"), "600ms", "ok", "2", "1", "24", "$0.5000"},
	} {
		for _, field := range want {
			if !strings.Contains(lines[i], field) {
				t.Errorf("line %d %q lacks %q", i, lines[i], field)
			}
		}
	}

	out, err = runTracesCLI(t, "traces", "list", "--db", path, "-n", "1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var runs []map[string]any
	if err := json.Unmarshal([]byte(out), &runs); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if len(runs) != 1 || runs[0]["id"] != "aaaa1111dddd4444" || runs[0]["status"] != "error" || runs[0]["spans"] != 4.0 ||
		runs[0]["duration_ns"] != float64(1300*time.Millisecond) {
		t.Errorf("--json runs = %v", runs)
	}

	out, err = runTracesCLI(t, "traces", "list", "--db", path, "--name", "nothing")
	if err != nil || !strings.HasPrefix(out, "no runs in ") {
		t.Errorf("no runs: %q, %v", out, err)
	}
}

func TestTracesShow(t *testing.T) {
	path := fillTraces(t)
	out, err := runTracesCLI(t, "traces", "show", "aaaa", "--db", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out)
	for _, want := range []string{
		"run       aaaa1111dddd4444\n",
		"program   cot.yaml\n",
		"status    error: 1 of 2 inputs failed\n",
		"LM calls  2 (1 from cache, 0 failed), 1,245 tokens (1,210 prompt, 35 completion), cost $0.0012\n",
		"\nSpans\n  ChainOfThought (question -> answer)  2.6s\n",
		"    outputs: {\"answer\":\"Bern\"}\n",
		"    LM gpt-new  200ms  1,234 tokens (1,200+34)  latency 2.5s  cache miss  2 attempts\n",
		"  Predict (question -> n: int)  5ms\n    inputs:  {\"question\":\"how many?\"}\n    error:   parse failed\n",
		"    LM gpt-new  100ms  11 tokens (10+1)  latency 1ms  cache hit  1 attempt\n",
		"lm.retry             gpt-new attempt 1 failed: rate limited (429); retrying in 2.0s\n",
		"adapter.parse_error  chat adapter: field n: \"many\" is not an int\n",
		"lm.breaker           gpt-new: closed -> open\n",
		"  1 pool queue waits, 30ms in all\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q", want)
		}
	}
	// A long input is cut to one line of lineWidth characters.
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "inputs:") && strings.Contains(l, "capital") {
			v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "inputs:"))
			if utf8.RuneCountInString(v) != lineWidth || !strings.HasSuffix(v, "…") {
				t.Errorf("long input line %q: want %d characters ending in …", v, lineWidth)
			}
		}
	}

	out, err = runTracesCLI(t, "traces", "show", "bbbb", "--db", path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "\nEvaluation\n  1 example, mean score 1.000, 0 errors\n") {
		t.Errorf("eval run output:\n%s", out)
	}

	out, err = runTracesCLI(t, "traces", "show", "aaaa1111dddd4444", "--db", path, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Run     trace.Run           `json:"run"`
		Spans   []trace.Span        `json:"spans"`
		LMCalls []trace.LMCall      `json:"lm_calls"`
		Events  []trace.StoredEvent `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Run.ID != "aaaa1111dddd4444" || len(rec.Spans) != 4 || len(rec.LMCalls) != 2 || len(rec.Events) != 4 ||
		rec.LMCalls[0].SpanID != "l1" || rec.LMCalls[0].Messages[0].Role != "system" {
		t.Errorf("show --json = %+v", rec)
	}
}

func TestTracesExport(t *testing.T) {
	path := fillTraces(t)
	out, err := runTracesCLI(t, "traces", "export", "aaaa", "--db", path, "--format", "jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d %q: %v", i+1, l, err)
		}
		types = append(types, m["type"].(string))
		if m["type"] == "lm_call" && m["span_id"] == "l1" {
			if c := m["completions"].([]any); len(c) != 2 || m["messages"].([]any)[1].(map[string]any)["content"] != "[[ ## question ## ]]\n2+2?" {
				t.Errorf("lm_call line = %s", l)
			}
		}
	}
	want := []string{"run", "span", "span", "span", "span", "lm_call", "lm_call", "event", "event", "event", "event"}
	if diff := cmp.Diff(want, types); diff != "" {
		t.Errorf("line types (-want +got):\n%s", diff)
	}

	_, err = runTracesCLI(t, "traces", "export", "aaaa", "--db", path, "--format", "csv")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), `unsupported --format "csv"`) {
		t.Errorf("--format csv: %v (exit %d); want a usage error", err, exitCode(err))
	}
}

func TestHistory(t *testing.T) {
	path := fillTraces(t)
	out, err := runTracesCLI(t, "history", "--db", path, "-n", "2")
	if err != nil {
		t.Fatal(err)
	}
	stamp := func(d time.Duration) string {
		return tracesT0.Add(time.Hour + d).Local().Format("2006-01-02T15:04:05.000000")
	}
	// The layout of DSPy's pretty_print_history without colours.
	want := "\n\n\n\n" +
		"[" + stamp(400*time.Millisecond) + "] gpt-new, 1,234 tokens (1,200 prompt, 34 completion)\n\n" +
		"System message:\n\nYour input fields are:\n1. `question` (str)\n\n\n" +
		"User message:\n\n[[ ## question ## ]]\n2+2?\n\n\n" +
		"Response:\n\n[[ ## reasoning ## ]]\nSwitzerland.\n\n[[ ## answer ## ]]\nBern\n\n" +
		" \t (and 1 other completions)\n" +
		"\n\n\n\n" +
		"[" + stamp(900*time.Millisecond) + "] gpt-new, 11 tokens (10 prompt, 1 completion), cache hit\n\n" +
		"User message:\n\n[[ ## question ## ]]\n2+2?\n\n\n" +
		"Response:\n\nmany\n\n" +
		"\n\n\n\n"
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}

	out, err = runTracesCLI(t, "history", "--db", path, "--run", "bbbb")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "Response:") != 1 || !strings.Contains(out, "] gpt-old, 24 tokens") {
		t.Errorf("history --run bbbb:\n%s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colours written to a buffer")
	}
}

func TestTracesErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none", "traces.db")
	corrupt := filepath.Join(dir, "corrupt.db")
	if err := os.WriteFile(corrupt, bytes.Repeat([]byte("not a database\n"), 300), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := trace.Open(context.Background(), filepath.Join(dir, "ok.db"), trace.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	good := fillTraces(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"missing database", []string{"traces", "list", "--db", missing}, 1,
			"no trace database at " + missing + " (run a program first, or pass --db)"},
		{"missing database for history", []string{"history", "--db", missing}, 1, "no trace database at " + missing},
		{"corrupt database", []string{"traces", "list", "--db", corrupt}, 1, "trace: open database " + corrupt + ": file is not a database"},
		{"corrupt database show", []string{"traces", "show", "x", "--db", corrupt}, 1, "file is not a database"},
		{"unknown run", []string{"traces", "show", "zzz", "--db", good}, 1, `no run "zzz" in ` + good},
		{"empty run id", []string{"traces", "show", "", "--db", good}, 1, "no run"},
		{"unknown run in history", []string{"history", "--run", "zzz", "--db", good}, 1, `no run "zzz"`},
		{"bad -n", []string{"history", "-n", "0", "--db", good}, 2, "-n must be at least 1"},
		{"show without a run", []string{"traces", "show", "--db", good}, 1, "accepts 1 arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runTracesCLI(t, tc.args...)
			if exitCode(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %v (exit %d); want exit %d and %q", err, exitCode(err), tc.code, tc.msg)
			}
		})
	}
	out, err := runTracesCLI(t, "history", "--db", filepath.Join(dir, "ok.db"))
	if err != nil || !strings.HasPrefix(out, "no LM calls in ") {
		t.Errorf("history of an empty database: %q, %v", out, err)
	}
}

func TestTracesAmbiguousPrefix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traces.db")
	store, err := trace.Open(context.Background(), path, trace.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bus := event.NewBus()
	store.Attach(bus)
	for _, id := range []string{"abc1", "abc2"} {
		bus.Publish(event.Event{Kind: event.RunStart, Time: tracesT0, RunID: id, Data: &event.RunInfo{Name: "run"}})
	}
	store.Close()
	_, err = runTracesCLI(t, "traces", "show", "abc", "--db", path)
	if !errors.Is(err, trace.ErrAmbiguous) || !strings.Contains(err.Error(), "abc1, abc2") {
		t.Errorf("ambiguous prefix: %v", err)
	}
}

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {500 * time.Microsecond, "500µs"}, {350 * time.Millisecond, "350ms"}, {1234 * time.Millisecond, "1.2s"},
		{123 * time.Second, "2m03s"}, {62 * time.Minute, "1h02m"},
	} {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%v) = %q; want %q", tc.d, got, tc.want)
		}
	}
}
