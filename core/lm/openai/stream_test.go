package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
)

// sseEvents renders payloads as "data:" events.
func sseEvents(payloads ...string) string {
	var b strings.Builder
	for _, p := range payloads {
		b.WriteString("data: " + p + "\n\n")
	}
	return b.String()
}

// streamChunk renders one chat.completion.chunk with one choice; finish "" is null.
func streamChunk(index int, content, finish string) string {
	fr := "null"
	if finish != "" {
		fr = fmt.Sprintf("%q", finish)
	}
	return fmt.Sprintf(`{"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"test-model",`+
		`"choices":[{"index":%d,"delta":{"content":%q},"logprobs":null,"finish_reason":%s}]}`, index, content, fr)
}

const (
	roleChunk  = `{"id":"chatcmpl-s","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`
	usageChunk = `{"id":"chatcmpl-s","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`
)

// drainStream collects a stream's deltas and its error, checking that an error
// comes last and only once.
func drainStream(t *testing.T, seq func(func(lm.Delta, error) bool)) ([]lm.Delta, error) {
	t.Helper()
	var deltas []lm.Delta
	var gotErr error
	for d, err := range seq {
		if gotErr != nil {
			t.Fatalf("pair after the error %v: %+v, %v", gotErr, d, err)
		}
		if err != nil {
			gotErr = err
			continue
		}
		deltas = append(deltas, d)
	}
	return deltas, gotErr
}

// collectStream drains a stream into a Response as Collect does. Collect itself
// panics on n > 1 streams whose earlier choices get text after a later one
// appears (it grows a slice of strings.Builder values, which copies them),
// so tests of several choices use this instead.
func collectStream(seq func(func(lm.Delta, error) bool)) (*lm.Response, error) {
	var texts []*strings.Builder
	res := &lm.Response{}
	for d, err := range seq {
		if err != nil {
			return nil, err
		}
		for len(texts) <= d.Index {
			texts = append(texts, new(strings.Builder))
			res.Choices = append(res.Choices, lm.Choice{})
		}
		texts[d.Index].WriteString(d.Text)
		if d.FinishReason != "" {
			res.Choices[d.Index].FinishReason = d.FinishReason
		}
		if d.Usage != nil {
			res.Usage = *d.Usage
		}
	}
	for i, b := range texts {
		res.Choices[i].Text = b.String()
	}
	return res, nil
}

func usageOf(p, c int) *lm.Usage {
	return &lm.Usage{PromptTokens: p, CompletionTokens: c, TotalTokens: p + c}
}

func TestOpenAIStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		ctype   string // "" means text/event-stream
		want    []lm.Delta
		wantErr error
		wantMsg string
	}{
		{
			name: "chunks in order with usage",
			body: sseEvents(roleChunk, streamChunk(0, "Pa", ""), streamChunk(0, "ris", ""), streamChunk(0, ".", ""), streamChunk(0, "", "stop"), usageChunk, "[DONE]"),
			want: []lm.Delta{{Text: "Pa"}, {Text: "ris"}, {Text: "."}, {FinishReason: "stop"}, {Usage: usageOf(12, 3)}},
		},
		{
			name: "n > 1 interleaved",
			body: sseEvents(streamChunk(0, "a", ""), streamChunk(1, "x", ""), streamChunk(1, "y", ""), streamChunk(0, "b", "stop"), streamChunk(1, "", "length"),
				`{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":4,"total_tokens":8}}`, "[DONE]"),
			want: []lm.Delta{{Text: "a"}, {Index: 1, Text: "x"}, {Index: 1, Text: "y"}, {Text: "b", FinishReason: "stop"},
				{Index: 1, FinishReason: "length"}, {Usage: usageOf(4, 4)}},
		},
		{
			name: "two choices in one chunk",
			body: sseEvents(`{"choices":[{"index":0,"delta":{"content":"p"}},{"index":1,"delta":{"content":"q"}}]}`,
				`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"},{"index":1,"delta":{},"finish_reason":"stop"}]}`, "[DONE]"),
			want: []lm.Delta{{Text: "p"}, {Index: 1, Text: "q"}, {FinishReason: "stop"}, {Index: 1, FinishReason: "stop"}},
		},
		{
			name: "no usage",
			body: sseEvents(streamChunk(0, "hi", "stop"), "[DONE]"),
			want: []lm.Delta{{Text: "hi", FinishReason: "stop"}},
		},
		{
			name: "usage on every chunk is yielded once at the end",
			body: sseEvents(`{"choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}`,
				`{"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}`,
				"[DONE]"),
			want: []lm.Delta{{Text: "a"}, {Text: "b", FinishReason: "stop"}, {Usage: usageOf(2, 2)}},
		},
		{
			name: "finished without [DONE]",
			body: sseEvents(streamChunk(0, "hi", ""), streamChunk(0, "", "stop"), usageChunk),
			want: []lm.Delta{{Text: "hi"}, {FinishReason: "stop"}, {Usage: usageOf(12, 3)}},
		},
		{
			name: "comments, event names, CRLF and no space after the colon",
			body: ": keep-alive\r\n\r\nevent: message\r\ndata:" + streamChunk(0, "ok", "stop") + "\r\n\r\nid: 7\r\nretry: 10\r\n\r\ndata:[DONE]\r\n\r\n",
			want: []lm.Delta{{Text: "ok", FinishReason: "stop"}},
		},
		{
			name: "data split over lines",
			body: "data: {\"choices\":[{\"index\":0,\n" + "data: \"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]",
			want: []lm.Delta{{Text: "ok", FinishReason: "stop"}},
		},
		{
			name: "events after [DONE] are ignored",
			body: sseEvents(streamChunk(0, "a", "stop"), "[DONE]", streamChunk(0, "b", "stop"), "{"),
			want: []lm.Delta{{Text: "a", FinishReason: "stop"}},
		},
		{
			name:  "json completion instead of a stream",
			ctype: "application/json",
			body: `{"id":"c","choices":[{"index":1,"message":{"content":"two"},"finish_reason":"stop"},` +
				`{"index":0,"message":{"content":"one"},"finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`,
			want: []lm.Delta{{Text: "one", FinishReason: "length"}, {Index: 1, Text: "two", FinishReason: "stop", Usage: usageOf(1, 2)}},
		},
		{
			name:    "ended early",
			body:    sseEvents(roleChunk, streamChunk(0, "Pa", "")),
			want:    []lm.Delta{{Text: "Pa"}},
			wantErr: lm.ErrConnection, wantMsg: "stream ended early",
		},
		{
			name:    "one of two choices unfinished",
			body:    sseEvents(streamChunk(0, "a", "stop"), streamChunk(1, "b", "")),
			want:    []lm.Delta{{Text: "a", FinishReason: "stop"}, {Index: 1, Text: "b"}},
			wantErr: lm.ErrConnection, wantMsg: "stream ended early",
		},
		{
			name:    "empty body",
			wantErr: lm.ErrConnection, wantMsg: "stream ended early",
		},
		{
			name:    "malformed event",
			body:    sseEvents(streamChunk(0, "a", ""), `{"choices":[{"index":0,`, "[DONE]"),
			want:    []lm.Delta{{Text: "a"}},
			wantErr: lm.ErrBadResponse, wantMsg: "decode stream event",
		},
		{
			name:    "choices of the wrong type",
			body:    sseEvents(`{"choices":"many"}`),
			wantErr: lm.ErrBadResponse,
		},
		{
			name:    "negative choice index",
			body:    sseEvents(streamChunk(-1, "a", "stop"), "[DONE]"),
			wantErr: lm.ErrBadResponse, wantMsg: "out of range",
		},
		{
			name:    "error event",
			body:    sseEvents(streamChunk(0, "a", ""), `{"error":{"message":"model overloaded","type":"server_error","code":"overloaded"}}`),
			want:    []lm.Delta{{Text: "a"}},
			wantErr: lm.ErrServer, wantMsg: "model overloaded (code overloaded)",
		},
		{
			name:    "named error event",
			body:    "event: error\ndata: {\"message\":\"upstream failed\"}\n\n",
			wantErr: lm.ErrServer, wantMsg: "upstream failed",
		},
		{
			name:    "llama.cpp error line",
			body:    "error: {\"code\":500,\"message\":\"slot unavailable\",\"type\":\"server_error\"}\n\n",
			wantErr: lm.ErrServer, wantMsg: "slot unavailable",
		},
		{
			name:    "echoed key is scrubbed",
			body:    sseEvents(`{"error":"bad key ` + testKey + `"}`),
			wantErr: lm.ErrServer, wantMsg: "bad key [redacted]",
		},
		{
			name:    "line too long",
			body:    "data: " + strings.Repeat("x", maxStreamEvent+1) + "\n\n",
			wantErr: lm.ErrBadResponse, wantMsg: "longer than",
		},
		{
			name:    "event too long",
			body:    strings.Repeat("data: "+strings.Repeat("x", 1<<16)+"\n", 17) + "\n",
			wantErr: lm.ErrBadResponse, wantMsg: "longer than",
		},
		{
			name:    "json body that is not a completion",
			ctype:   "application/json",
			body:    `{"error":{"message":"nope"}}`,
			wantErr: lm.ErrBadResponse, wantMsg: "nope",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctype := tt.ctype
			if ctype == "" {
				ctype = "text/event-stream"
			}
			base := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", ctype)
				_, _ = io.WriteString(w, tt.body)
			})
			o := newTestOpenAI(t, Config{BaseURL: base, APIKey: testKey})
			got, err := drainStream(t, o.Stream(t.Context(), userRequest("hi")))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("deltas mismatch (-want +got):\n%s", diff)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("stream error: %v", err)
				}
				return
			}
			e := checkError(t, err, tt.wantErr, "test-model", base)
			if !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("Message = %q, want it to contain %q", e.Message, tt.wantMsg)
			}
			if e.StatusCode != http.StatusOK {
				t.Errorf("StatusCode = %d, want 200", e.StatusCode)
			}
		})
	}
}

func TestOpenAIStreamRequestBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		defaults lm.Params
		req      *lm.Request
		want     string
	}{
		{
			name: "stream with usage",
			req:  &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}, Params: lm.Params{Temperature: lm.Float(0), N: lm.Int(2)}},
			want: `{"model":"test-model","messages":[{"role":"user","content":"hi"}],"temperature":0,"n":2,
				"stream":true,"stream_options":{"include_usage":true}}`,
		},
		{
			name:     "extra cannot turn streaming off",
			defaults: lm.Params{Extra: map[string]any{"stream": false}},
			req:      userRequest("hi"),
			want: `{"model":"test-model","messages":[{"role":"user","content":"hi"}],
				"stream":true,"stream_options":{"include_usage":true}}`,
		},
		{
			name: "extra replaces stream options",
			req: &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}, Params: lm.Params{
				Extra: map[string]any{"stream_options": map[string]any{"include_usage": true, "continuous_usage_stats": true}}}},
			want: `{"model":"test-model","messages":[{"role":"user","content":"hi"}],
				"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan captured, 1)
			base := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got <- captured{path: r.URL.Path, header: r.Header.Clone(), body: b}
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = io.WriteString(w, sseEvents(streamChunk(0, "ok", "stop"), "[DONE]"))
			})
			o := newTestOpenAI(t, Config{BaseURL: base, Params: tt.defaults})
			if _, err := lm.Collect(o.Stream(t.Context(), tt.req)); err != nil {
				t.Fatalf("Stream: %v", err)
			}
			c := <-got
			if c.path != "/v1/chat/completions" {
				t.Errorf("path = %q", c.path)
			}
			if a := c.header.Get("Accept"); a != "text/event-stream" {
				t.Errorf("Accept = %q, want text/event-stream", a)
			}
			var gotBody, wantBody map[string]any
			if err := json.Unmarshal(c.body, &gotBody); err != nil {
				t.Fatalf("request body %s: %v", c.body, err)
			}
			if err := json.Unmarshal([]byte(tt.want), &wantBody); err != nil {
				t.Fatalf("want body: %v", err)
			}
			if diff := cmp.Diff(wantBody, gotBody); diff != "" {
				t.Errorf("request body mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("complete does not stream", func(t *testing.T) {
		t.Parallel()
		base, got := recordingServer(t, http.StatusOK, completionJSON)
		o := newTestOpenAI(t, Config{BaseURL: base})
		if _, err := o.Complete(t.Context(), userRequest("hi")); err != nil {
			t.Fatal(err)
		}
		if c := <-got; bytes.Contains(c.body, []byte("stream")) {
			t.Errorf("Complete body %s mentions stream", c.body)
		}
	})
}

func TestOpenAIStreamHTTPErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		want       error
		retryAfter time.Duration
	}{
		{name: "401", status: 401, want: lm.ErrAuth, body: `{"error":{"message":"bad key"}}`},
		{name: "404", status: 404, want: lm.ErrNotFound},
		{name: "429", status: 429, want: lm.ErrRateLimited, header: map[string]string{"Retry-After": "3"}, retryAfter: 3 * time.Second},
		{name: "400 context", status: 400, want: lm.ErrContextWindow, body: `{"error":{"message":"maximum context length is 8k","code":"context_length_exceeded"}}`},
		{name: "400", status: 400, want: lm.ErrBadRequest},
		{name: "503", status: 503, want: lm.ErrServer, header: map[string]string{"Retry-After-Ms": "20"}, retryAfter: 20 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			o := newTestOpenAI(t, Config{BaseURL: base, APIKey: testKey})
			deltas, err := drainStream(t, o.Stream(t.Context(), userRequest("hi")))
			if len(deltas) != 0 {
				t.Errorf("deltas = %+v, want none", deltas)
			}
			e := checkError(t, err, tt.want, "test-model", base)
			if e.StatusCode != tt.status {
				t.Errorf("StatusCode = %d, want %d", e.StatusCode, tt.status)
			}
			if got := lm.RetryAfter(err); got != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", got, tt.retryAfter)
			}
		})
	}
}

func TestOpenAIStreamInvalidRequests(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		req  *lm.Request
		want error
	}{
		{name: "nil request", ctx: t.Context(), want: lm.ErrBadRequest},
		{name: "unknown role", ctx: t.Context(), req: &lm.Request{Messages: []lm.Message{{Role: "tool", Content: "x"}}}, want: lm.ErrBadRequest},
		{name: "done context", ctx: cancelled, req: userRequest("hi"), want: lm.ErrCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base, hits := hangingServer(t)
			o := newTestOpenAI(t, Config{BaseURL: base})
			_, err := drainStream(t, o.Stream(tt.ctx, tt.req))
			checkError(t, err, tt.want, "test-model", base)
			select {
			case <-hits:
				t.Error("a request reached the server")
			default:
			}
		})
	}
}

// partialStreamServer sends first, flushes, tells started, then does then.
func partialStreamServer(t *testing.T, first string, then func(w http.ResponseWriter, r *http.Request)) (base string, started <-chan struct{}) {
	t.Helper()
	s := make(chan struct{}, 1)
	base = fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, first)
		_ = http.NewResponseController(w).Flush()
		select {
		case s <- struct{}{}:
		default:
		}
		then(w, r)
	})
	return base, s
}

func TestOpenAIStreamMidStreamCut(t *testing.T) {
	t.Parallel()
	base, _ := partialStreamServer(t, sseEvents(streamChunk(0, "Par", "")), func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close() // no terminating chunk: the body breaks off
		}
	})
	o := newTestOpenAI(t, Config{BaseURL: base})
	deltas, err := drainStream(t, o.Stream(t.Context(), userRequest("hi")))
	if diff := cmp.Diff([]lm.Delta{{Text: "Par"}}, deltas); diff != "" {
		t.Errorf("deltas mismatch (-want +got):\n%s", diff)
	}
	checkError(t, err, lm.ErrConnection, "test-model", base)
}

func TestOpenAIStreamConsumerBreak(t *testing.T) {
	t.Parallel()
	closed := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	base, _ := partialStreamServer(t, sseEvents(streamChunk(0, "a", ""), streamChunk(0, "b", "")), func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			close(closed)
		case <-done:
		}
	})
	o := newTestOpenAI(t, Config{BaseURL: base})
	n := 0
	for d, err := range o.Stream(t.Context(), userRequest("hi")) {
		if err != nil {
			t.Fatalf("stream error: %v", err)
		}
		n++
		if d.Text != "a" {
			t.Errorf("first delta = %+v", d)
		}
		break
	}
	if n != 1 {
		t.Fatalf("got %d deltas before break, want 1", n)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not see the connection close after the consumer stopped")
	}
}

func TestOpenAIStreamContext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		timeout time.Duration // Config.Timeout
		ctx     func(t *testing.T) (context.Context, context.CancelFunc)
		cancel  bool // cancel ctx after the first delta
		want    error
		wantCtx error
	}{
		{name: "cancel mid-stream", cancel: true, want: lm.ErrCanceled, wantCtx: context.Canceled,
			ctx: func(t *testing.T) (context.Context, context.CancelFunc) { return context.WithCancel(t.Context()) }},
		{name: "deadline mid-stream", want: lm.ErrTimeout, wantCtx: context.DeadlineExceeded,
			ctx: func(t *testing.T) (context.Context, context.CancelFunc) {
				return context.WithTimeout(t.Context(), 300*time.Millisecond)
			}},
		{name: "configured timeout", timeout: 300 * time.Millisecond, want: lm.ErrTimeout, wantCtx: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			done := make(chan struct{})
			t.Cleanup(func() { close(done) })
			base, _ := partialStreamServer(t, sseEvents(streamChunk(0, "a", "")), func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-done:
				}
			})
			o := newTestOpenAI(t, Config{BaseURL: base, Timeout: tt.timeout})
			ctx, cancel := t.Context(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx(t)
			}
			defer cancel()
			var deltas []lm.Delta
			var gotErr error
			var errAt time.Time
			start := time.Now()
			for d, err := range o.Stream(ctx, userRequest("hi")) {
				if err != nil {
					gotErr, errAt = err, time.Now()
					continue
				}
				deltas = append(deltas, d)
				if tt.cancel {
					cancel()
				}
			}
			if len(deltas) != 1 {
				t.Errorf("deltas = %+v, want the one sent", deltas)
			}
			if elapsed := errAt.Sub(start); elapsed > 3*time.Second {
				t.Errorf("stream ended after %v, want promptly", elapsed)
			}
			checkError(t, gotErr, tt.want, "test-model", base)
			if !errors.Is(gotErr, tt.wantCtx) {
				t.Errorf("errors.Is(err, %v) = false; err = %v", tt.wantCtx, gotErr)
			}
		})
	}
}

// dualModeServer answers from the same choices as a JSON completion or, when
// the body asks for it, as a stream of small pieces.
func dualModeServer(t *testing.T, texts []string) string {
	t.Helper()
	return fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Stream bool `json:"stream"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		usage := map[string]int{"prompt_tokens": 7, "completion_tokens": 11, "total_tokens": 18}
		if !body.Stream {
			var choices []any
			for i, text := range texts {
				choices = append(choices, map[string]any{"index": i, "message": map[string]any{"role": "assistant", "content": text}, "finish_reason": "stop"})
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"id": "c", "model": "test-model", "choices": choices, "usage": usage})
			return
		}
		var events []string
		for i, text := range texts {
			for piece := range strings.SplitAfterSeq(text, " ") {
				events = append(events, streamChunk(i, piece, ""))
			}
			events = append(events, streamChunk(i, "", "stop"))
		}
		u, _ := json.Marshal(map[string]any{"choices": []any{}, "usage": usage})
		events = append(events, string(u), "[DONE]")
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, sseEvents(events...))
	})
}

func TestOpenAIStreamCollectEqualsComplete(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		texts   []string
		collect func(func(func(lm.Delta, error) bool)) (*lm.Response, error)
	}{
		{name: "one choice", texts: []string{"The capital of France is Paris."},
			collect: func(seq func(func(lm.Delta, error) bool)) (*lm.Response, error) { return lm.Collect(seq) }},
		{name: "three choices", texts: []string{"The capital of France is Paris.", "", "Paris, of course — «Paris»!\nNew line."},
			collect: collectStream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := newTestOpenAI(t, Config{BaseURL: dualModeServer(t, tt.texts)})
			req := &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "Capital of France?"}}, Params: lm.Params{N: lm.Int(len(tt.texts))}}
			want, err := o.Complete(t.Context(), req)
			if err != nil {
				t.Fatalf("Complete: %v", err)
			}
			got, err := tt.collect(o.Stream(t.Context(), req))
			if err != nil {
				t.Fatalf("collect(Stream): %v", err)
			}
			if diff := cmp.Diff(want.Choices, got.Choices); diff != "" {
				t.Errorf("choices mismatch (-complete +stream):\n%s", diff)
			}
			if want.Usage != got.Usage {
				t.Errorf("usage: stream %+v, complete %+v", got.Usage, want.Usage)
			}
		})
	}
}

func TestOpenAIStreamSimulator(t *testing.T) {
	t.Parallel()
	sim, err := lmtest.Start(t.Context(), lmtest.Config{Seed: 7})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	o := newTestOpenAI(t, Config{BaseURL: sim.URL(), Model: "dspex-sim"})
	req := &lm.Request{
		Messages: []lm.Message{
			{Role: lm.RoleSystem, Content: "Your input fields are:\n1. `question` (str)\nYour output fields are:\n1. `answer` (str)"},
			{Role: lm.RoleUser, Content: "[[ ## question ## ]]\nWhat is the capital of France?"},
		},
		Params: lm.Params{N: lm.Int(2), Seed: lm.Int64(3)},
	}
	want, err := o.Complete(t.Context(), req)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	var pieces int
	got, err := collectStream(func(yield func(lm.Delta, error) bool) {
		for d, err := range o.Stream(t.Context(), req) {
			pieces++
			if !yield(d, err) {
				return
			}
		}
	})
	if err != nil {
		t.Fatalf("collect(Stream): %v", err)
	}
	if len(want.Choices) != 2 || want.Choices[0].Text == "" {
		t.Fatalf("simulator answered %+v", want)
	}
	if pieces <= len(want.Choices)+1 {
		t.Errorf("stream came in %d pieces, want the text in several", pieces)
	}
	if diff := cmp.Diff(want.Choices, got.Choices); diff != "" {
		t.Errorf("choices mismatch (-complete +stream):\n%s", diff)
	}
	if want.Usage != got.Usage || got.Usage.TotalTokens == 0 {
		t.Errorf("usage: stream %+v, complete %+v", got.Usage, want.Usage)
	}
}

// FuzzOpenAIStreamParsing feeds arbitrary bodies to the stream decoder: it
// must not panic, must yield at most one error, last, and only choice
// indexes Collect can hold.
func FuzzOpenAIStreamParsing(f *testing.F) {
	f.Add([]byte(sseEvents(roleChunk, streamChunk(0, "a", ""), streamChunk(1, "b", "stop"), usageChunk, "[DONE]")))
	f.Add([]byte("event: error\ndata: {\"error\":{\"message\":\"x\"}}\n\n"))
	f.Add([]byte("error: {}\n\ndata: [DONE]"))
	f.Add([]byte("data: {\"choices\":[{\"index\":99999}]}\n\n"))
	f.Add([]byte(": c\r\ndata:{\"choices\":null,\"usage\":null}\r\n\r\n"))
	o := newTestOpenAI(f, Config{BaseURL: "http://127.0.0.1:1/v1", APIKey: testKey})
	f.Fuzz(func(t *testing.T, body []byte) {
		s := &chatStream{o: o, model: "m", status: 200,
			fail: func(err error) *lm.Error { return &lm.Error{Kind: lm.ErrConnection, Err: err} }}
		var sawErr bool
		s.run(bytes.NewReader(body), func(d lm.Delta, err error) bool {
			if sawErr {
				t.Fatalf("pair after an error: %+v, %v", d, err)
			}
			if err != nil {
				sawErr = true
				var e *lm.Error
				if !errors.As(err, &e) || e.Kind == nil {
					t.Fatalf("error %v is not a kinded *Error", err)
				}
				return true
			}
			if d.Index < 0 || d.Index >= lm.MaxStreamChoices {
				t.Fatalf("delta index %d", d.Index)
			}
			return true
		})
	})
}

func ExampleClient_Stream() {
	// A stand-in for an OpenAI-compatible server that streams.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, sseEvents(streamChunk(0, "Par", ""), streamChunk(0, "is.", "stop"),
			`{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`, "[DONE]"))
	}))
	defer srv.Close()

	model, err := New(Config{Model: "llama3", BaseURL: srv.URL + "/v1", APIKeyEnv: "EXAMPLE_UNSET_KEY"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for d, err := range model.Stream(context.Background(), &lm.Request{
		Messages: []lm.Message{{Role: lm.RoleUser, Content: "Capital of France?"}},
	}) {
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		switch {
		case d.Usage != nil:
			fmt.Println("tokens:", d.Usage.TotalTokens)
		case d.FinishReason != "":
			fmt.Printf("%q (%s)\n", d.Text, d.FinishReason)
		default:
			fmt.Printf("%q\n", d.Text)
		}
	}
	// Output:
	// "Par"
	// "is." (stop)
	// tokens: 11
}
