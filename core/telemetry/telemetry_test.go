package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/dspex/dspex/core/event"
)

// keepExporter is an in-memory exporter whose spans survive Shutdown (the
// tracetest one forgets them), so tests can read them after Close.
type keepExporter struct{ *tracetest.InMemoryExporter }

func (keepExporter) Shutdown(context.Context) error { return nil }

// newTestExporter returns an exporter attached to a fresh bus, and the
// in-memory span store behind it.
func newTestExporter(t *testing.T, opts Options) (*Exporter, *event.Bus, *tracetest.InMemoryExporter) {
	t.Helper()
	mem := tracetest.NewInMemoryExporter()
	opts.SpanExporter = keepExporter{mem}
	e, err := NewExporter(context.Background(), opts)
	if err != nil {
		t.Fatalf("NewExporter: %v", err)
	}
	bus := event.NewBus()
	if err := e.Attach(bus); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	return e, bus, mem
}

// finish closes the bus (draining the subscription) and the exporter, and
// returns the spans by name.
func finish(t *testing.T, e *Exporter, bus *event.Bus, mem *tracetest.InMemoryExporter) map[string]tracetest.SpanStub {
	t.Helper()
	bus.Close()
	if err := e.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	spans := map[string]tracetest.SpanStub{}
	for _, s := range mem.GetSpans() {
		if _, dup := spans[s.Name]; dup {
			t.Fatalf("two spans named %q", s.Name)
		}
		spans[s.Name] = s
	}
	return spans
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

// tree publishes a ChainOfThought run: run → ChainOfThought → Predict → LM
// call (with one retry), each event one millisecond after the last, and
// returns the run's spans and the start time.
type tree struct {
	run, cot, predict, lm event.Span
	t0                    time.Time
}

func publishTree(bus *event.Bus, name, lmErr string) tree {
	tr := tree{t0: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	tr.run = event.Span{RunID: event.NewID(), SpanID: event.NewID()}
	tr.cot = event.Span{RunID: tr.run.RunID, SpanID: event.NewID(), ParentID: tr.run.SpanID}
	tr.predict = event.Span{RunID: tr.run.RunID, SpanID: event.NewID(), ParentID: tr.cot.SpanID}
	tr.lm = event.Span{RunID: tr.run.RunID, SpanID: event.NewID(), ParentID: tr.predict.SpanID}
	step := 0
	pub := func(k event.Kind, s event.Span, data any) {
		bus.Publish(event.Event{Kind: k, Time: tr.t0.Add(time.Duration(step) * time.Millisecond),
			RunID: s.RunID, SpanID: s.SpanID, ParentID: s.ParentID, Data: data})
		step++
	}
	sig := "question -> answer"
	in := map[string]any{"question": "What is 2+2?"}
	pub(event.RunStart, tr.run, &event.RunInfo{Name: name, Program: "qa.yaml"})
	pub(event.ModuleStart, tr.cot, &event.ModuleCall{Module: "ChainOfThought", Signature: sig, Inputs: in})
	pub(event.ModuleStart, tr.predict, &event.ModuleCall{Module: "Predict", Signature: "question -> reasoning, answer", Inputs: in})
	call := event.LMCall{Model: "openai/gpt-4o-mini", Adapter: "chat",
		Messages: []event.Message{{Role: "user", Content: "What is 2+2?"}},
		Params:   map[string]any{"temperature": 0.7, "max_tokens": 256, "seed": int64(1) << 60}}
	pub(event.LMStart, tr.lm, &call)
	pub(event.LMRetry, tr.lm, &event.LMRetryInfo{Model: call.Model, Attempt: 1, Error: "rate limited", Wait: 500 * time.Millisecond})
	end := call
	end.Attempts = 2
	if lmErr != "" {
		end.Error, end.ErrorKind = lmErr, "timeout"
	} else {
		end.Completions = []string{"[[ ## answer ## ]]\n4"}
		end.PromptTokens, end.CompletionTokens = 120, 30
		end.CostUSD, end.CostKnown = 0.0012, true
	}
	pub(event.LMEnd, tr.lm, &end)
	predEnd := &event.ModuleCall{Module: "Predict", Signature: "question -> reasoning, answer", Inputs: in,
		Outputs: map[string]any{"reasoning": "2+2=4", "answer": "4"}}
	cotEnd := &event.ModuleCall{Module: "ChainOfThought", Signature: sig, Inputs: in, Outputs: map[string]any{"answer": "4"}}
	runEnd := &event.RunInfo{Name: name, Calls: 1, PromptTokens: 120, CompletionTokens: 30, CostUSD: 0.0012}
	if lmErr != "" {
		predEnd.Outputs, predEnd.Error = nil, lmErr
		cotEnd.Outputs, cotEnd.Error = nil, lmErr
		runEnd.Error = lmErr
	}
	pub(event.ModuleEnd, tr.predict, predEnd)
	pub(event.ModuleEnd, tr.cot, cotEnd)
	pub(event.RunEnd, tr.run, runEnd)
	return tr
}

func TestExporterSpanTree(t *testing.T) {
	e, bus, mem := newTestExporter(t, Options{})
	tr := publishTree(bus, "run", "")
	spans := finish(t, e, bus, mem)

	names := []string{"dspex.run run", "ChainOfThought question -> answer", "Predict question -> reasoning, answer", "chat openai/gpt-4o-mini"}
	if len(spans) != len(names) {
		t.Fatalf("got %d spans, want %d: %v", len(spans), len(names), spans)
	}
	ids := []event.Span{tr.run, tr.cot, tr.predict, tr.lm}
	wantTrace := traceIDFor(tr.run.RunID, "")
	for i, name := range names {
		s, ok := spans[name]
		if !ok {
			t.Fatalf("no span %q; have %v", name, spans)
		}
		if got := s.SpanContext.TraceID(); got != wantTrace {
			t.Errorf("%s: trace id %s, want %s (one trace per run)", name, got, wantTrace)
		}
		if got, want := s.SpanContext.SpanID().String(), ids[i].SpanID; got != want {
			t.Errorf("%s: span id %s, want the event's %s", name, got, want)
		}
		if i == 0 {
			if s.Parent.IsValid() {
				t.Errorf("run span has parent %s", s.Parent.SpanID())
			}
		} else if got, want := s.Parent.SpanID().String(), ids[i-1].SpanID; got != want {
			t.Errorf("%s: parent %s, want %s", name, got, want)
		}
		if s.Status.Code == codes.Error {
			t.Errorf("%s: error status %q", name, s.Status.Description)
		}
		if a := attrs(s); a["dspex.run_id"].AsString() != tr.run.RunID {
			t.Errorf("%s: dspex.run_id %q", name, a["dspex.run_id"].AsString())
		}
	}

	lm := spans["chat openai/gpt-4o-mini"]
	if lm.SpanKind != trace.SpanKindClient {
		t.Errorf("LM span kind %v, want client", lm.SpanKind)
	}
	if want := tr.t0.Add(3 * time.Millisecond); !lm.StartTime.Equal(want) {
		t.Errorf("LM span start %v, want the event's %v", lm.StartTime, want)
	}
	if want := tr.t0.Add(5 * time.Millisecond); !lm.EndTime.Equal(want) {
		t.Errorf("LM span end %v, want the event's %v", lm.EndTime, want)
	}
	a := attrs(lm)
	for key, want := range map[attribute.Key]any{
		"gen_ai.operation.name":      "chat",
		"gen_ai.provider.name":       "openai",
		"gen_ai.system":              "openai",
		"gen_ai.request.model":       "openai/gpt-4o-mini",
		"gen_ai.response.model":      "openai/gpt-4o-mini",
		"gen_ai.usage.input_tokens":  int64(120),
		"gen_ai.usage.output_tokens": int64(30),
		"gen_ai.request.temperature": 0.7,
		"gen_ai.request.max_tokens":  int64(256),
		"gen_ai.request.seed":        int64(1) << 60,
		"dspex.cache_hit":            false,
		"dspex.attempts":             int64(2),
		"dspex.cost_usd":             0.0012,
	} {
		if got := a[key].AsInterface(); got != want {
			t.Errorf("LM attribute %s = %v (%T), want %v (%T)", key, got, got, want, want)
		}
	}
	if len(lm.Events) != 1 || lm.Events[0].Name != string(event.LMRetry) {
		t.Fatalf("LM span events %v, want one %s", lm.Events, event.LMRetry)
	}
	if want := tr.t0.Add(4 * time.Millisecond); !lm.Events[0].Time.Equal(want) {
		t.Errorf("retry event at %v, want %v", lm.Events[0].Time, want)
	}

	cot := attrs(spans["ChainOfThought question -> answer"])
	if got := cot["dspex.module"].AsString(); got != "ChainOfThought" {
		t.Errorf("dspex.module = %q", got)
	}
	if got := cot["dspex.signature"].AsString(); got != "question -> answer" {
		t.Errorf("dspex.signature = %q", got)
	}
	if got := cot["dspex.inputs"].AsString(); got != `{"question":"What is 2+2?"}` {
		t.Errorf("dspex.inputs = %q", got)
	}
	if got := cot["dspex.outputs"].AsString(); got != `{"answer":"4"}` {
		t.Errorf("dspex.outputs = %q", got)
	}
	run := attrs(spans["dspex.run run"])
	if got := run["dspex.usage.prompt_tokens"].AsInt64(); got != 120 {
		t.Errorf("run prompt tokens %d, want 120", got)
	}
}

func TestExporterErrorStatus(t *testing.T) {
	e, bus, mem := newTestExporter(t, Options{})
	publishTree(bus, "eval", "context deadline exceeded")
	spans := finish(t, e, bus, mem)
	for _, name := range []string{"dspex.run eval", "ChainOfThought question -> answer", "chat openai/gpt-4o-mini"} {
		s := spans[name]
		if s.Status.Code != codes.Error || s.Status.Description != "context deadline exceeded" {
			t.Errorf("%s: status %v %q, want error", name, s.Status.Code, s.Status.Description)
		}
	}
	a := attrs(spans["chat openai/gpt-4o-mini"])
	if got := a["error.type"].AsString(); got != "timeout" {
		t.Errorf("error.type = %q, want timeout", got)
	}
	if _, ok := a["gen_ai.response.model"]; ok {
		t.Error("failed call has gen_ai.response.model")
	}
	if got := attrs(spans["ChainOfThought question -> answer"])["error.type"].AsString(); got != "_OTHER" {
		t.Errorf("module error.type = %q, want _OTHER", got)
	}
}

func TestExporterOneTracePerRun(t *testing.T) {
	e, bus, mem := newTestExporter(t, Options{})
	a := publishTree(bus, "a", "")
	b := publishTree(bus, "b", "")
	bus.Close()
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	traces := map[trace.TraceID]int{}
	for _, s := range mem.GetSpans() {
		traces[s.SpanContext.TraceID()]++
	}
	if len(traces) != 2 || traces[traceIDFor(a.run.RunID, "")] != 4 || traces[traceIDFor(b.run.RunID, "")] != 4 {
		t.Errorf("spans per trace %v, want 4 in each of 2", traces)
	}
}

func TestExporterMissedStart(t *testing.T) {
	e, bus, mem := newTestExporter(t, Options{})
	end := time.Date(2025, 1, 1, 0, 0, 1, 0, time.UTC)
	run, parent, span := event.NewID(), event.NewID(), event.NewID()
	bus.Publish(event.Event{Kind: event.LMEnd, Time: end, RunID: run, SpanID: span, ParentID: parent,
		Data: &event.LMCall{Model: "claude-sonnet-4-5", Latency: 300 * time.Millisecond, PromptTokens: 5}})
	spans := finish(t, e, bus, mem)
	s, ok := spans["chat claude-sonnet-4-5"]
	if !ok {
		t.Fatalf("no LM span: %v", spans)
	}
	if got := s.Parent.SpanID().String(); got != parent {
		t.Errorf("parent %s, want %s", got, parent)
	}
	if s.SpanContext.TraceID() != traceIDFor(run, "") {
		t.Errorf("trace %s, want the run's", s.SpanContext.TraceID())
	}
	if want := end.Add(-300 * time.Millisecond); !s.StartTime.Equal(want) {
		t.Errorf("start %v, want end minus latency %v", s.StartTime, want)
	}
	if got := attrs(s)["gen_ai.provider.name"].AsString(); got != "anthropic" {
		t.Errorf("provider %q, want anthropic", got)
	}
}

func TestExporterBoundsOpenSpans(t *testing.T) {
	e, bus, mem := newTestExporter(t, Options{MaxOpenSpans: 2})
	run := event.NewID()
	for _, m := range []string{"A", "B", "C"} {
		bus.Publish(event.Event{Kind: event.ModuleStart, Time: time.Now(), RunID: run, SpanID: event.NewID(),
			Data: &event.ModuleCall{Module: m}})
	}
	// Nothing ends until the third start evicts A; wait for that before
	// Close, which ends whatever is still open.
	deadline := time.Now().Add(5 * time.Second)
	for len(mem.GetSpans()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no span evicted with three open and a bound of two")
		}
		time.Sleep(time.Millisecond)
		if err := e.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(mem.GetSpans()); n != 1 {
		t.Fatalf("%d spans ended early, want 1", n)
	}
	if got := mem.GetSpans()[0]; got.Name != "A" || !attrs(got)["dspex.incomplete"].AsBool() {
		t.Errorf("evicted %q (incomplete=%v), want A marked incomplete", got.Name, attrs(got)["dspex.incomplete"].AsBool())
	}
	spans := finish(t, e, bus, mem)
	for _, name := range []string{"B", "C"} {
		if !attrs(spans[name])["dspex.incomplete"].AsBool() {
			t.Errorf("%s: not ended as incomplete on Close", name)
		}
	}
}

func TestExporterAttachAfterClose(t *testing.T) {
	e, bus, _ := newTestExporter(t, Options{})
	defer bus.Close()
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Attach(event.NewBus()); err != ErrClosed {
		t.Errorf("Attach after Close: %v, want ErrClosed", err)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := NewExporter(context.Background(), Options{}); err == nil {
		t.Error("NewExporter without a span exporter succeeded")
	}
}

func TestEnabledByEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    bool
		wantErr bool
	}{
		{name: "nothing set"},
		{name: "endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, want: true},
		{name: "traces endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x/v1/traces"}, want: true},
		{name: "exporter otlp", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: true},
		{name: "exporter none wins over endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}},
		{name: "sdk disabled", env: map[string]string{"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "otlp"}},
		{name: "sdk disabled false", env: map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, want: true},
		{name: "unsupported exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := enabledByEnv(func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("enabledByEnv = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// clearOTelEnv unsets, for the test, the variables FromEnv looks at.
func clearOTelEnv(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
}

func TestFromEnvOffByDefault(t *testing.T) {
	clearOTelEnv(t)
	e, on, err := FromEnv(context.Background())
	if e != nil || on || err != nil {
		t.Errorf("FromEnv with no configuration = %v, %v, %v; want off", e, on, err)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	if _, on, err := FromEnv(context.Background()); on || err == nil {
		t.Errorf("FromEnv with grpc = %v, %v; want an error", on, err)
	}
}

func TestFromEnvExportsOTLP(t *testing.T) {
	clearOTelEnv(t)
	type post struct {
		method, path, contentType string
		body                      []byte
	}
	var (
		mu    sync.Mutex
		posts []post
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		posts = append(posts, post{r.Method, r.URL.Path, r.Header.Get("Content-Type"), body})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "dspex-test")

	ctx := context.Background()
	e, on, err := FromEnv(ctx)
	if err != nil || !on {
		t.Fatalf("FromEnv = %v, %v; want on", on, err)
	}
	bus := event.NewBus()
	if err := e.Attach(bus); err != nil {
		t.Fatal(err)
	}
	publishTree(bus, "run", "")
	bus.Close()
	if err := e.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(posts) == 0 {
		t.Fatal("collector received nothing")
	}
	var names []string
	for _, p := range posts {
		if p.method != http.MethodPost || p.path != "/v1/traces" || p.contentType != "application/x-protobuf" {
			t.Errorf("got %s %s (%s), want POST /v1/traces (application/x-protobuf)", p.method, p.path, p.contentType)
			continue
		}
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(p.body, &req); err != nil {
			t.Fatalf("decode OTLP request: %v", err)
		}
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					service = kv.GetValue().GetStringValue()
				}
			}
			if service != "dspex-test" {
				t.Errorf("service.name %q, want OTEL_SERVICE_NAME's dspex-test", service)
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					names = append(names, s.Name)
				}
			}
		}
	}
	if len(names) != 4 {
		t.Errorf("exported spans %q, want the run's 4", names)
	}
}

func TestProviderOf(t *testing.T) {
	tests := []struct {
		model  string
		params map[string]any
		want   string
	}{
		{model: "gpt-4o-mini", want: "openai"},
		{model: "openai/gpt-4o", want: "openai"},
		{model: "anthropic/claude-3-5-haiku", want: "anthropic"},
		{model: "claude-sonnet-4-5", want: "anthropic"},
		{model: "gemini/gemini-2.0-flash", want: "gcp.gemini"},
		{model: "meta-llama/Llama-3.1-8B", want: "openai"},
		{model: "ollama/llama3", want: "openai"},
		{model: "whatever", params: map[string]any{"provider": "Anthropic"}, want: "anthropic"},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			if got := providerOf(tt.model, tt.params); got != tt.want {
				t.Errorf("providerOf(%q) = %q, want %q", tt.model, got, tt.want)
			}
		})
	}
}

func TestTruncateBytes(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdefghij", 6, "abc…"},
		{"ééééé", 6, "é…"}, // never splits a rune
	}
	for _, tt := range tests {
		if got := truncateBytes(tt.in, tt.n); got != tt.want || len(got) > tt.n {
			t.Errorf("truncateBytes(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestSpanIDFor(t *testing.T) {
	if got := spanIDFor("00f067aa0ba902b7").String(); got != "00f067aa0ba902b7" {
		t.Errorf("spanIDFor kept %s, want the hex id itself", got)
	}
	for _, id := range []string{"", "not-hex-at-all!!", "0000000000000000"} {
		if !spanIDFor(id).IsValid() {
			t.Errorf("spanIDFor(%q) is not a valid span id", id)
		}
	}
}
