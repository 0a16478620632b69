package serve_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/cmd/dspex/internal/serve"
	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/config"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// A prediction through the server, the real OpenAI client and the
// simulator: outputs in signature order with reasoning first, the request
// id header, and one request event whose span is the parent of the
// module's span.
func TestPredictRoundTrip(t *testing.T) {
	model, _ := startSim(t, lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		{Match: "capital of France", Fields: map[string]any{"reasoning": "Paris is the capital.", "answer": "Paris", "confidence": 0.9}},
	}}})
	sig := signature.MustParse("question -> answer, confidence: float")
	bus := event.NewBus()
	events := collect(t, bus)
	rs := startServer(t, serve.Config{Program: module.NewChainOfThought(sig), Signature: sig}, model, bus)

	res := do(newClient(1), http.MethodPost, rs.url+"/v1/predict", []byte(`{"question": "What is the capital of France?"}`))
	if res.err != nil || res.status != http.StatusOK {
		t.Fatalf("status %d, err %v, body %s", res.status, res.err, res.body)
	}
	if want := `{"reasoning": "Paris is the capital.", "answer": "Paris", "confidence": 0.9}` + "\n"; string(res.body) != want {
		t.Errorf("body = %q, want %q", res.body, want)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	reqID := res.header.Get(serve.RequestIDHeader)
	if reqID == "" {
		t.Fatal("no request id header")
	}
	if err := rs.stop(); err != nil {
		t.Fatal(err)
	}
	bus.Close()

	var req *event.HTTPRequestInfo
	var reqSpan string
	cotParent := ""
	for _, ev := range events.all() {
		switch d := ev.Data.(type) {
		case *event.HTTPRequestInfo:
			req, reqSpan = d, ev.SpanID
		case *event.ModuleCall:
			if ev.Kind == event.ModuleStart && d.Module == "ChainOfThought" {
				cotParent = ev.ParentID
			}
		}
	}
	if req == nil {
		t.Fatal("no http.request event")
	}
	if req.Method != "POST" || req.Path != "/v1/predict" || req.Status != 200 || req.Duration <= 0 || req.Error != "" {
		t.Errorf("request event = %+v", req)
	}
	if reqSpan != reqID || cotParent != reqID {
		t.Errorf("request span %q, header %q, module parent %q: the module should run inside the request's span", reqSpan, reqID, cotParent)
	}
}

// Bad requests are refused before the program runs, each with its status,
// error type and a message naming the problem.
func TestBadRequests(t *testing.T) {
	model, sim := startSim(t, lmtest.Config{})
	sig := signature.MustParse("question, hint: str | None -> answer")
	rs := startServer(t, serve.Config{Program: module.NewPredict(sig), Signature: sig, MaxBodyBytes: 256}, model, nil)
	client := newClient(1)
	cases := []struct {
		name       string
		method     string
		path       string
		body       string
		status     int
		errType    string
		msg        string
		fields     []string
		allow      string
		reachesLM  bool
		wantOutput string
	}{
		{name: "malformed", body: `{"question": `, status: 400, errType: serve.ErrorTypeInvalidRequest, msg: "malformed JSON"},
		{name: "not JSON", body: `question=hi`, status: 400, errType: serve.ErrorTypeInvalidRequest, msg: "malformed JSON"},
		{name: "trailing data", body: `{"question": "a"} {"question": "b"}`, status: 400, errType: serve.ErrorTypeInvalidRequest, msg: "unexpected data after the object"},
		{name: "array", body: `["a"]`, status: 400, errType: serve.ErrorTypeInvalidRequest, msg: "got an array"},
		{name: "string", body: `"what?"`, status: 400, errType: serve.ErrorTypeInvalidRequest, msg: "got a string"},
		{name: "null", body: `null`, status: 400, errType: serve.ErrorTypeInvalidRequest, msg: "got null"},
		{name: "empty", body: ``, status: 400, errType: serve.ErrorTypeInvalidRequest, msg: "empty request body; expected a JSON object of the input fields (question, hint)"},
		{name: "oversized", body: `{"question": "` + strings.Repeat("x", 300) + `"}`, status: 413, errType: serve.ErrorTypeTooLarge, msg: "larger than 256 bytes"},
		{name: "missing field", body: `{"hint": "think"}`, status: 400, errType: serve.ErrorTypeInvalidRequest, msg: `missing input field "question"`, fields: []string{"question"}},
		{name: "unknown fields", body: `{"question": "a", "foo": 1, "bar": 2}`, status: 400, errType: serve.ErrorTypeInvalidRequest,
			msg: `unknown input fields "bar", "foo"; the inputs are: question, hint`, fields: []string{"bar", "foo"}},
		{name: "output field as input", body: `{"question": "a", "answer": "b"}`, status: 400, errType: serve.ErrorTypeInvalidRequest, msg: `unknown input field "answer"`, fields: []string{"answer"}},
		{name: "misspelt field", body: `{"questoin": "a"}`, status: 400, errType: serve.ErrorTypeInvalidRequest,
			msg: `unknown input field "questoin"; did you mean "question"?`, fields: []string{"questoin"}},
		{name: "number for a str field", body: `{"question": 123}`, status: 400, errType: serve.ErrorTypeInvalidRequest,
			msg: `input field "question": expected str, got number 123`, fields: []string{"question"}},
		{name: "object for an optional str field", body: `{"question": "a", "hint": {"x": 1}}`, status: 400, errType: serve.ErrorTypeInvalidRequest,
			msg: `input field "hint": expected str, got object {"x": 1}`, fields: []string{"hint"}},
		{name: "optional left out", body: `{"question": "a"}`, status: 200, reachesLM: true},
		{name: "get predict", method: "GET", path: "/v1/predict", status: 405, errType: serve.ErrorTypeMethodNotAllowed, msg: "GET /v1/predict is not allowed; use POST", allow: "POST"},
		{name: "post program", method: "POST", path: "/v1/program", body: `{}`, status: 405, errType: serve.ErrorTypeMethodNotAllowed, allow: "GET, HEAD"},
		{name: "unknown path", method: "GET", path: "/v1/chat/completions", status: 404, errType: serve.ErrorTypeNotFound, msg: "no endpoint /v1/chat/completions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method, path := c.method, c.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/v1/predict"
			}
			before := sim.Stats().Requests
			res := do(client, method, rs.url+path, []byte(c.body))
			if res.err != nil {
				t.Fatal(res.err)
			}
			if res.status != c.status {
				t.Fatalf("status %d, want %d; body %s", res.status, c.status, res.body)
			}
			if got := sim.Stats().Requests - before; (got > 0) != c.reachesLM {
				t.Errorf("%d LM requests made", got)
			}
			if ct := res.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if c.allow != "" && res.header.Get("Allow") != c.allow {
				t.Errorf("Allow = %q, want %q", res.header.Get("Allow"), c.allow)
			}
			if c.status == 200 {
				return
			}
			e := res.errorBody(t)
			if e.Error.Type != c.errType || !strings.Contains(e.Error.Message, c.msg) {
				t.Errorf("error = %+v, want type %q and a message containing %q", e.Error, c.errType, c.msg)
			}
			if diff := cmp.Diff(c.fields, e.Error.Fields); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
		})
	}
}

// Program errors map to statuses that say whose fault they were, with
// Retry-After when the LM gave one.
func TestProgramErrors(t *testing.T) {
	sig := signature.MustParse("question -> answer")
	cases := []struct {
		name       string
		err        error
		status     int
		errType    string
		retryAfter string
	}{
		{"rate limited", &lm.Error{Kind: lm.ErrRateLimited, StatusCode: 429, RetryAfter: 3 * time.Second}, 503, serve.ErrorTypeLMUnavailable, "3"},
		{"rate limited without wait", &lm.Error{Kind: lm.ErrRateLimited, StatusCode: 429}, 503, serve.ErrorTypeLMUnavailable, ""},
		{"breaker open", fmt.Errorf("predict: %w", &lm.Error{Kind: lm.ErrBreakerOpen, RetryAfter: 29500 * time.Millisecond}), 503, serve.ErrorTypeLMUnavailable, "30"},
		{"breaker open without wait", fmt.Errorf("predict: %w", &lm.Error{Kind: lm.ErrBreakerOpen}), 503, serve.ErrorTypeLMUnavailable, "1"},
		{"LM queue full", fmt.Errorf("predict: %w", &lm.Error{Kind: lm.ErrQueueFull}), 503, serve.ErrorTypeLMUnavailable, "1"},
		{"LM timeout", &lm.Error{Kind: lm.ErrTimeout}, 504, serve.ErrorTypeTimeout, ""},
		{"parse error", fmt.Errorf("predict: %w", &adapter.ParseError{Adapter: "ChatAdapter", Raw: "gibberish"}), 502, serve.ErrorTypeParse, ""},
		{"LM server error", &lm.Error{Kind: lm.ErrServer, StatusCode: 500}, 502, serve.ErrorTypeLM, ""},
		{"LM auth", &lm.Error{Kind: lm.ErrAuth, StatusCode: 401}, 500, serve.ErrorTypeInternal, ""},
		{"other", errors.New("something broke"), 500, serve.ErrorTypeInternal, ""},
	}
	client := newClient(1)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prog := funcProgram(func(context.Context, module.Inputs) (*example.Prediction, error) { return nil, c.err })
			rs := startServer(t, serve.Config{Program: prog, Signature: sig}, nil, nil)
			res := do(client, http.MethodPost, rs.url+"/v1/predict", []byte(`{"question": "q"}`))
			if res.err != nil || res.status != c.status {
				t.Fatalf("status %d (want %d), err %v, body %s", res.status, c.status, res.err, res.body)
			}
			e := res.errorBody(t)
			// The client gets the kind of failure and the request id, never
			// the error's own text (see TestLMErrorsAreSanitised).
			suffix := "under request id " + res.header.Get(serve.RequestIDHeader)
			if e.Error.Type != c.errType || !strings.HasSuffix(e.Error.Message, suffix) {
				t.Errorf("error = %+v, want type %q, message ending %q", e.Error, c.errType, suffix)
			}
			if got := res.header.Get("Retry-After"); got != c.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, c.retryAfter)
			}
		})
	}
}

// The same mapping from the simulator's faults through the real client.
func TestSimulatorFaults(t *testing.T) {
	sig := signature.MustParse("question -> answer, n: int")
	cases := []struct {
		fault      string
		timeout    time.Duration
		status     int
		errType    string
		retryAfter string
	}{
		{"429:retry_after=2s", 0, 503, serve.ErrorTypeLMUnavailable, "2"},
		{"500", 0, 502, serve.ErrorTypeLM, ""},
		{"truncated", 0, 502, serve.ErrorTypeParse, ""},
		{"hang", 300 * time.Millisecond, 504, serve.ErrorTypeTimeout, ""},
	}
	client := newClient(1)
	for _, c := range cases {
		t.Run(c.fault, func(t *testing.T) {
			f, err := lmtest.ParseFault(c.fault)
			if err != nil {
				t.Fatal(err)
			}
			model, _ := startSim(t, lmtest.Config{Faults: []lmtest.Fault{f}})
			rs := startServer(t, serve.Config{Program: module.NewPredict(sig), Signature: sig, RequestTimeout: c.timeout}, model, nil)
			res := do(client, http.MethodPost, rs.url+"/v1/predict", []byte(`{"question": "q"}`))
			if res.err != nil || res.status != c.status {
				t.Fatalf("status %d (want %d), err %v, body %s", res.status, c.status, res.err, res.body)
			}
			if e := res.errorBody(t); e.Error.Type != c.errType {
				t.Errorf("error = %+v, want type %q", e.Error, c.errType)
			}
			if got := res.header.Get("Retry-After"); got != c.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, c.retryAfter)
			}
			if c.timeout > 0 && res.took > c.timeout+2*time.Second {
				t.Errorf("a %s request timeout answered after %s", c.timeout, res.took)
			}
		})
	}
}

// Once the endpoint's breaker opens, requests get 503 with Retry-After:
// how long the breaker stays open.
func TestBreakerOpenRetryAfter(t *testing.T) {
	sig := signature.MustParse("question -> answer")
	f, err := lmtest.ParseFault("500")
	if err != nil {
		t.Fatal(err)
	}
	model, _ := startSim(t, lmtest.Config{Faults: []lmtest.Fault{f}})
	guarded := lm.NewBreaker(model, "sim", lm.BreakerConfig{Failures: 1, OpenTimeout: config.Duration(42 * time.Second)}, nil)
	rs := startServer(t, serve.Config{Program: module.NewPredict(sig), Signature: sig}, guarded, nil)
	client := newClient(1)
	if res := do(client, http.MethodPost, rs.url+"/v1/predict", []byte(`{"question": "q"}`)); res.status != 502 {
		t.Fatalf("first request: status %d, want 502; body %s", res.status, res.body)
	}
	res := do(client, http.MethodPost, rs.url+"/v1/predict", []byte(`{"question": "q"}`))
	if res.status != 503 {
		t.Fatalf("second request: status %d, want 503; body %s", res.status, res.body)
	}
	if got := res.header.Get("Retry-After"); got != "42" && got != "41" {
		t.Errorf("Retry-After = %q, want the breaker's 42s open time", got)
	}
}

// A program that panics fails only its own request: the server answers 500
// and goes on serving, with every slot released.
func TestPanicContained(t *testing.T) {
	model, _ := startSim(t, lmtest.Config{})
	sig := signature.MustParse("question -> answer")
	inner := module.NewPredict(sig)
	prog := funcProgram(func(ctx context.Context, in module.Inputs) (*example.Prediction, error) {
		if in["question"] == "boom" {
			panic("boom")
		}
		return inner.Forward(ctx, in)
	})
	bus := event.NewBus()
	events := collect(t, bus)
	rs := startServer(t, serve.Config{Program: prog, Signature: sig, MaxConcurrent: 2, MaxQueue: -1}, model, bus)
	client := newClient(2)
	// More panics than slots: a leaked slot would turn later requests into 429s.
	for i := range 5 {
		res := do(client, http.MethodPost, rs.url+"/v1/predict", []byte(`{"question": "boom"}`))
		if res.err != nil || res.status != 500 {
			t.Fatalf("panic %d: status %d, err %v", i, res.status, res.err)
		}
		if e := res.errorBody(t); e.Error.Type != serve.ErrorTypeInternal || strings.Contains(e.Error.Message, "goroutine") {
			t.Errorf("panic answer = %+v", e.Error)
		}
	}
	res := do(client, http.MethodPost, rs.url+"/v1/predict", []byte(`{"question": "fine"}`))
	if res.err != nil || res.status != 200 {
		t.Fatalf("after the panics: status %d, err %v, body %s", res.status, res.err, res.body)
	}
	if st := rs.srv.Stats(); st.Running != 0 || st.Refused != 0 {
		t.Errorf("stats after the panics = %+v", st)
	}
	if err := rs.stop(); err != nil {
		t.Fatal(err)
	}
	bus.Close()
	panics := 0
	for _, ev := range events.all() {
		if d, ok := ev.Data.(*event.HTTPRequestInfo); ok && d.Status == 500 {
			panics++
			if d.Error != "panic: boom" || !strings.Contains(d.Stack, "goroutine") {
				t.Errorf("panic event = %q, stack %.200q", d.Error, d.Stack)
			}
		}
	}
	if panics != 5 {
		t.Errorf("%d panic events, want 5", panics)
	}
}

func TestProgramEndpoint(t *testing.T) {
	sig := signature.MustParse("question, hints: list[str] | None -> answer, confidence: float").
		WithInstructions("Answer the question.")
	sig, err := sig.WithDesc("question", "what the user asks")
	if err != nil {
		t.Fatal(err)
	}
	cot := module.NewChainOfThought(sig, module.WithDemos(example.New(map[string]any{"question": "q", "answer": "a"})))
	rs := startServer(t, serve.Config{Program: cot, Signature: sig}, nil, nil)
	res := do(newClient(1), http.MethodGet, rs.url+"/v1/program", nil)
	if res.err != nil || res.status != 200 {
		t.Fatalf("status %d, err %v", res.status, res.err)
	}
	var got serve.ProgramInfo
	if err := json.Unmarshal(res.body, &got); err != nil {
		t.Fatal(err)
	}
	want := serve.ProgramInfo{
		Module:       "chain_of_thought",
		Signature:    "question, hints: list[str] | None -> answer, confidence: float",
		Instructions: "Answer the question.",
		Inputs: []serve.FieldInfo{
			{Name: "question", Type: "str", Description: "what the user asks"},
			{Name: "hints", Type: "list[str] | None", Optional: true},
		},
		Outputs: []serve.FieldInfo{{Name: "answer", Type: "str"}, {Name: "confidence", Type: "float"}},
		Predictors: []serve.PredictorInfo{{Name: "predict", Signature: "question, hints: list[str] | None -> reasoning, answer, confidence: float",
			Instructions: "Answer the question.", Demos: 1}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/v1/program (-want +got):\n%s", diff)
	}
}

func TestHealthz(t *testing.T) {
	sig := signature.MustParse("q -> a")
	rs := startServer(t, serve.Config{Program: module.NewPredict(sig), Signature: sig}, nil, nil)
	for _, method := range []string{"GET", "HEAD"} {
		res := do(newClient(1), method, rs.url+"/healthz", nil)
		if res.err != nil || res.status != 200 {
			t.Fatalf("%s: status %d, err %v", method, res.status, res.err)
		}
		if method == "GET" && string(res.body) != `{"status":"ok","running":0,"waiting":0}`+"\n" {
			t.Errorf("body = %q", res.body)
		}
	}
}

// A client that goes away cancels its prediction.
func TestClientCancellation(t *testing.T) {
	sig := signature.MustParse("q -> a")
	canceled := make(chan error, 1)
	prog := funcProgram(func(ctx context.Context, _ module.Inputs) (*example.Prediction, error) {
		select {
		case <-ctx.Done():
			canceled <- ctx.Err()
			return nil, ctx.Err()
		case <-time.After(20 * time.Second):
			canceled <- nil
			return nil, errors.New("not canceled")
		}
	})
	bus := event.NewBus()
	events := collect(t, bus)
	rs := startServer(t, serve.Config{Program: prog, Signature: sig}, nil, bus)
	client := &http.Client{Timeout: 100 * time.Millisecond}
	if res := do(client, http.MethodPost, rs.url+"/v1/predict", []byte(`{"q": "x"}`)); res.err == nil {
		t.Fatalf("the request should have timed out on the client, got %d", res.status)
	}
	select {
	case err := <-canceled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("program context ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the program was not cancelled when its client went away")
	}
	if err := rs.stop(); err != nil {
		t.Fatal(err)
	}
	bus.Close()
	for _, ev := range events.all() {
		if d, ok := ev.Data.(*event.HTTPRequestInfo); ok && (d.Status != 499 || d.ErrorType != serve.ErrorTypeCanceled) {
			t.Errorf("request event = %+v, want status 499", d)
		}
	}
}

func TestNewConfig(t *testing.T) {
	sig := signature.MustParse("q -> a")
	prog := module.NewPredict(sig)
	bad := []struct {
		name string
		cfg  serve.Config
		want string
	}{
		{"no program", serve.Config{Signature: sig}, "serve: config has no program"},
		{"no signature", serve.Config{Program: prog}, "serve: config has no signature"},
		{"negative concurrency", serve.Config{Program: prog, Signature: sig, MaxConcurrent: -1}, "max concurrent must not be negative"},
		{"negative timeout", serve.Config{Program: prog, Signature: sig, RequestTimeout: -time.Second}, "request timeout must not be negative"},
		{"negative body", serve.Config{Program: prog, Signature: sig, MaxBodyBytes: -1}, "max body bytes must not be negative"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			if _, err := serve.New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
	s, err := serve.New(serve.Config{Program: prog, Signature: sig, MaxConcurrent: 8})
	if err != nil {
		t.Fatal(err)
	}
	got := s.Config()
	if got.MaxQueue != 8 || got.RequestTimeout != serve.DefaultRequestTimeout || got.MaxBodyBytes != serve.DefaultMaxBodyBytes ||
		got.RetryAfter != serve.DefaultRetryAfter || got.DrainTimeout != serve.DefaultRequestTimeout+serve.DefaultDrainGrace || got.Module != "predict" {
		t.Errorf("defaults = %+v", got)
	}
}

// A request body is read as Python's json.loads reads it: the prompt shows
// nested objects in the body's key order and integers with every digit,
// as DSPy's prompt for the same input does.
func TestPredictKeepsKeyOrderAndBigIntegers(t *testing.T) {
	model, _ := startSim(t, lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		{Match: "zeta", Fields: map[string]any{"answer": "ok"}},
	}}})
	sig := signature.MustParse("data: dict, n: int -> answer")
	bus := event.NewBus()
	events := collect(t, bus)
	rs := startServer(t, serve.Config{Program: module.NewPredict(sig), Signature: sig}, model, bus)
	body := `{"n": 12345678901234567890, "data": {"zeta": 1, "alpha": {"y": [1.0, -98765432109876543210], "x": null}}}`
	res := do(newClient(1), http.MethodPost, rs.url+"/v1/predict", []byte(body))
	if res.err != nil || res.status != http.StatusOK {
		t.Fatalf("status %d, err %v, body %s", res.status, res.err, res.body)
	}
	if err := rs.stop(); err != nil {
		t.Fatal(err)
	}
	bus.Close()
	var prompt string
	for _, ev := range events.all() {
		if c, ok := ev.Data.(*event.LMCall); ok && ev.Kind == event.LMStart {
			prompt = c.Messages[len(c.Messages)-1].Content
		}
	}
	for _, want := range []string{
		"[[ ## data ## ]]\n{\"zeta\": 1, \"alpha\": {\"y\": [1.0, -98765432109876543210], \"x\": null}}",
		"[[ ## n ## ]]\n12345678901234567890",
	} {
		if !strings.Contains(prompt, want) {
			t.Errorf("prompt lacks %q:\n%s", want, prompt)
		}
	}
}
