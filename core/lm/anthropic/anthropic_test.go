package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/lm"
)

// unsetAnthropicKeyEnv names an environment variable the tests never set.
const unsetAnthropicKeyEnv = "DSPEX_TEST_UNSET_ANTHROPIC_KEY"

const messageJSON = `{"id":"msg_01","type":"message","role":"assistant","model":"claude-test-20260101",` +
	`"content":[{"type":"text","text":"Paris."}],"stop_reason":"end_turn","stop_sequence":null,` +
	`"usage":{"input_tokens":12,"output_tokens":3}}`

// anthropicServer starts a 127.0.0.1 server whose handler is h and returns
// its base URL (the API root, without /v1).
func anthropicServer(t testing.TB, h http.HandlerFunc) string {
	t.Helper()
	return strings.TrimSuffix(fakeServer(t, h), "/v1")
}

// anthropicRecorder answers every request with status and body (JSON)
// and hands what it saw to the returned channel.
func anthropicRecorder(t testing.TB, status int, body string) (string, <-chan captured) {
	t.Helper()
	got := make(chan captured, 1)
	base := anthropicServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case got <- captured{path: r.URL.Path, header: r.Header.Clone(), body: b}:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
	return base, got
}

func newTestAnthropic(t testing.TB, cfg Config) *Client {
	t.Helper()
	if cfg.Model == "" {
		cfg.Model = "claude-test"
	}
	if cfg.APIKeyEnv == "" {
		cfg.APIKeyEnv = unsetAnthropicKeyEnv
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfg       Config
		wantErr   string
		wantURL   string
		wantMax   int
		wantTOut  time.Duration
		wantModel string
	}{
		{name: "defaults", cfg: Config{Model: "claude-x"}, wantURL: "https://api.anthropic.com",
			wantMax: DefaultMaxTokens, wantTOut: DefaultTimeout, wantModel: "claude-x"},
		{name: "url without credentials", cfg: Config{Model: "m", BaseURL: "http://user:hunter2@127.0.0.1:9/?key=hunter2#f",
			MaxTokens: 100, Timeout: -1}, wantURL: "http://127.0.0.1:9", wantMax: 100, wantTOut: -1, wantModel: "m"},
		{name: "empty model", cfg: Config{}, wantErr: "model is empty"},
		{name: "unparsable url", cfg: Config{Model: "m", BaseURL: "http://user:hunter2@[::1"}, wantErr: "parse base url"},
		{name: "relative url", cfg: Config{Model: "m", BaseURL: "api.anthropic.com"}, wantErr: "not an absolute http or https url"},
		{name: "negative max tokens", cfg: Config{Model: "m", MaxTokens: -1}, wantErr: "max tokens -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.APIKeyEnv = unsetAnthropicKeyEnv
			a, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q reveals the url's password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if a.Model() != tt.wantModel || a.URL() != tt.wantURL || a.maxTokens != tt.wantMax || a.Timeout() != tt.wantTOut {
				t.Errorf("got model %q url %q max %d timeout %v, want %q %q %d %v",
					a.Model(), a.URL(), a.maxTokens, a.Timeout(), tt.wantModel, tt.wantURL, tt.wantMax, tt.wantTOut)
			}
		})
	}
}

func TestAnthropicRequestBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		req  *lm.Request
		want string // JSON body
	}{
		{
			name: "system and messages",
			req: &lm.Request{Messages: []lm.Message{
				{Role: lm.RoleSystem, Content: "Be brief."},
				{Role: lm.RoleUser, Content: "Capital of France?"},
				{Role: lm.RoleAssistant, Content: "Paris."},
				{Role: lm.RoleSystem, Content: "Answer in English."},
				{Role: lm.RoleUser, Content: "And Italy?"},
			}},
			want: `{"model":"claude-test","max_tokens":4096,
				"system":[{"type":"text","text":"Be brief.\n\nAnswer in English."}],
				"messages":[
					{"role":"user","content":[{"type":"text","text":"Capital of France?"}]},
					{"role":"assistant","content":[{"type":"text","text":"Paris."}]},
					{"role":"user","content":[{"type":"text","text":"And Italy?"}]}]}`,
		},
		{
			name: "runs of one role are merged, empty messages left out",
			req: &lm.Request{Messages: []lm.Message{
				{Role: lm.RoleUser, Content: "a"},
				{Role: lm.RoleUser, Content: ""},
				{Role: lm.RoleUser, Content: "b"},
				{Role: lm.RoleAssistant, Content: "c"},
				{Role: lm.RoleAssistant, Content: "d"},
			}},
			want: `{"model":"claude-test","max_tokens":4096,"messages":[
				{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
				{"role":"assistant","content":[{"type":"text","text":"c"},{"type":"text","text":"d"}]}]}`,
		},
		{
			name: "params: max tokens, stop; temperature, top p, seed and formats not sent",
			req: &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}, RolloutID: "rollout-7f3a",
				ResponseFormat: &lm.ResponseFormat{Type: "json_object"},
				Params:         lm.Params{MaxTokens: lm.Int(256), Stop: []string{"\n\n", "END"}, Temperature: lm.Float(0.7), TopP: lm.Float(0.9), Seed: lm.Int64(4), N: lm.Int(1)}},
			want: `{"model":"claude-test","max_tokens":256,"stop_sequences":["\n\n","END"],
				"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`,
		},
		{
			name: "defaults from config, request wins",
			cfg: Config{MaxTokens: 1000, Params: lm.Params{Stop: []string{"x"}, MaxTokens: lm.Int(50),
				Extra: map[string]any{"metadata": map[string]any{"user_id": "u1"}, "b": 2}}},
			req: &lm.Request{Model: "claude-other", Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}},
				Params: lm.Params{MaxTokens: lm.Int(60), Extra: map[string]any{"b": 3}}},
			want: `{"model":"claude-other","max_tokens":60,"stop_sequences":["x"],"metadata":{"user_id":"u1"},"b":3,
				"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`,
		},
		{
			name: "config max tokens",
			cfg:  Config{MaxTokens: 1000},
			req:  userRequest("hi"),
			want: `{"model":"claude-test","max_tokens":1000,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`,
		},
		{
			name: "extra fields win, stream excepted",
			req: &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}, Params: lm.Params{MaxTokens: lm.Int(10),
				Extra: map[string]any{"max_tokens": 30, "temperature": 0.2, "stream": true, "a.b": 1}}},
			want: `{"model":"claude-test","max_tokens":30,"temperature":0.2,"a.b":1,
				"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`,
		},
		{
			name: "older api version gets temperature and top p",
			cfg:  Config{Headers: map[string]string{"Anthropic-Version": "2023-06-01"}},
			req:  &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}, Params: lm.Params{Temperature: lm.Float(0), TopP: lm.Float(0.5)}},
			want: `{"model":"claude-test","max_tokens":4096,"temperature":0,"top_p":0.5,
				"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`,
		},
		{
			name: "developer role is system",
			req:  &lm.Request{Messages: []lm.Message{{Role: "developer", Content: "sys"}, {Role: lm.RoleUser, Content: "hi"}}},
			want: `{"model":"claude-test","max_tokens":4096,"system":[{"type":"text","text":"sys"}],
				"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base, got := anthropicRecorder(t, http.StatusOK, messageJSON)
			cfg := tt.cfg
			cfg.BaseURL = base
			a := newTestAnthropic(t, cfg)
			if _, err := a.Complete(t.Context(), tt.req); err != nil {
				t.Fatalf("Complete: %v", err)
			}
			c := <-got
			if c.path != "/v1/messages" {
				t.Errorf("path = %q, want /v1/messages", c.path)
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
			if bytes.Contains(c.body, []byte("rollout-7f3a")) {
				t.Errorf("request body %s carries the rollout id", c.body)
			}
		})
	}
}

func TestAnthropicHeaders(t *testing.T) {
	// Not parallel: subtests set environment variables.
	const keyEnv = "DSPEX_TEST_ANTHROPIC_KEY"
	tests := []struct {
		name    string
		env     map[string]string
		cfg     Config
		wantKey string            // "" for no x-api-key
		want    map[string]string // other headers
	}{
		{name: "no key sends none", cfg: Config{}},
		{name: "explicit key", cfg: Config{APIKey: testKey}, wantKey: testKey},
		{name: "key from env", env: map[string]string{keyEnv: " sk-ant-env\n"}, cfg: Config{APIKeyEnv: keyEnv}, wantKey: "sk-ant-env"},
		{name: "explicit key beats env", env: map[string]string{keyEnv: "sk-ant-env"}, cfg: Config{APIKey: testKey, APIKeyEnv: keyEnv}, wantKey: testKey},
		{
			name: "the sdk's environment is ignored",
			env: map[string]string{
				"ANTHROPIC_API_KEY": "sk-ant-default-env", "ANTHROPIC_AUTH_TOKEN": "tok-env",
				"ANTHROPIC_BASE_URL": "http://127.0.0.1:1", "ANTHROPIC_CUSTOM_HEADERS": "X-Leak: yes",
				"ANTHROPIC_PROFILE": "nope", "ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE": "content",
			},
			cfg:  Config{},
			want: map[string]string{"X-Leak": ""},
		},
		{
			name:    "custom headers replace the version",
			cfg:     Config{APIKey: testKey, Headers: map[string]string{"anthropic-version": "2023-06-01", "anthropic-beta": "b1", "X-Title": "dspex"}},
			wantKey: testKey,
			want:    map[string]string{"Anthropic-Version": "2023-06-01", "Anthropic-Beta": "b1", "X-Title": "dspex"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(keyEnv, "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			base, got := anthropicRecorder(t, http.StatusOK, messageJSON)
			cfg := tt.cfg
			cfg.BaseURL = base
			if cfg.APIKeyEnv == "" {
				cfg.APIKeyEnv = unsetAnthropicKeyEnv
			}
			a := newTestAnthropic(t, cfg)
			t.Setenv(keyEnv, "sk-changed-later") // read once, in New
			if _, err := a.Complete(t.Context(), userRequest("hi")); err != nil {
				t.Fatalf("Complete: %v", err)
			}
			c := <-got
			key, present := c.header["X-Api-Key"]
			switch {
			case tt.wantKey == "" && present:
				t.Errorf("x-api-key = %q, want no header", key)
			case tt.wantKey != "" && c.header.Get("X-Api-Key") != tt.wantKey:
				t.Errorf("x-api-key = %q, want %q", c.header.Get("X-Api-Key"), tt.wantKey)
			}
			if auth, ok := c.header["Authorization"]; ok {
				t.Errorf("Authorization = %q, want none (the key goes in x-api-key)", auth)
			}
			if v := c.header.Get("Anthropic-Version"); v == "" {
				t.Error("no anthropic-version header")
			} else if _, pinned := tt.want["Anthropic-Version"]; !pinned && v < anthropicSamplingCutoff {
				t.Errorf("anthropic-version = %q, want the SDK's (%s or later)", v, anthropicSamplingCutoff)
			}
			if ua := c.header.Get("User-Agent"); ua != lm.UserAgent {
				t.Errorf("User-Agent = %q, want %q", ua, lm.UserAgent)
			}
			if ct := c.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			for k, v := range tt.want {
				if got := c.header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			for k := range c.header {
				if strings.HasPrefix(k, "X-Stainless-") || strings.HasPrefix(strings.ToLower(k), "traceparent") {
					t.Errorf("request carries SDK header %s", k)
				}
			}
		})
	}
}

func TestAnthropicResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  *lm.Request
		body string
		want *lm.Response
	}{
		{
			name: "one text block",
			req:  userRequest("Capital of France?"),
			body: messageJSON,
			want: &lm.Response{ID: "msg_01", Model: "claude-test-20260101",
				Choices: []lm.Choice{{Text: "Paris.", FinishReason: "stop"}},
				Usage:   lm.Usage{PromptTokens: 12, CompletionTokens: 3, TotalTokens: 15}},
		},
		{
			name: "text blocks concatenated, others skipped, cache tokens counted",
			req:  userRequest("hi"),
			body: `{"id":"msg_02","type":"message","role":"assistant","model":"claude-test",
				"content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"Hello, "},
				{"type":"tool_use","id":"t","name":"f","input":{}},{"type":"text","text":"world."}],
				"stop_reason":"max_tokens","stop_sequence":null,
				"usage":{"input_tokens":5,"cache_creation_input_tokens":100,"cache_read_input_tokens":20,"output_tokens":9}}`,
			want: &lm.Response{ID: "msg_02", Model: "claude-test",
				Choices: []lm.Choice{{Text: "Hello, world.", FinishReason: "length"}},
				Usage:   lm.Usage{PromptTokens: 125, CompletionTokens: 9, TotalTokens: 134}},
		},
		{
			name: "stop sequence, no model",
			req:  &lm.Request{Model: "claude-asked", Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}},
			body: `{"type":"message","content":[{"type":"text","text":"ok"}],"stop_reason":"stop_sequence","stop_sequence":"END","usage":{"input_tokens":1,"output_tokens":1}}`,
			want: &lm.Response{Model: "claude-asked", Choices: []lm.Choice{{Text: "ok", FinishReason: "stop"}},
				Usage: lm.Usage{PromptTokens: 1, CompletionTokens: 1, TotalTokens: 2}},
		},
		{
			name: "empty content",
			req:  userRequest("hi"),
			body: `{"id":"m","model":"claude-test","content":[],"stop_reason":"refusal","usage":{"input_tokens":1,"output_tokens":0}}`,
			want: &lm.Response{ID: "m", Model: "claude-test", Choices: []lm.Choice{{FinishReason: "content_filter"}},
				Usage: lm.Usage{PromptTokens: 1, TotalTokens: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base, _ := anthropicRecorder(t, http.StatusOK, tt.body)
			a := newTestAnthropic(t, Config{BaseURL: base})
			got, err := a.Complete(t.Context(), tt.req)
			if err != nil {
				t.Fatalf("Complete: %v", err)
			}
			if got.Latency <= 0 {
				t.Errorf("Latency = %v, want > 0", got.Latency)
			}
			got.Latency = 0
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("response mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFinishReason(t *testing.T) {
	t.Parallel()
	for stop, want := range map[string]string{
		"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "model_context_window_exceeded": "length",
		"refusal": "content_filter", "tool_use": "tool_calls", "pause_turn": "pause_turn", "": "",
	} {
		if got := finishReason(stop); got != want {
			t.Errorf("finishReason(%q) = %q, want %q", stop, got, want)
		}
	}
}

// anthropicErr renders Anthropic's error body.
func anthropicErr(typ, msg string) string {
	return fmt.Sprintf(`{"type":"error","error":{"type":%q,"message":%q},"request_id":"req_1"}`, typ, msg)
}

func TestAnthropicHTTPErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		header      map[string]string
		body        string
		contentType string // "" means application/json
		want        error
		wantMsg     string
		retryAfter  time.Duration
	}{
		{name: "401", status: 401, want: lm.ErrAuth, body: anthropicErr("authentication_error", "invalid x-api-key"),
			wantMsg: "invalid x-api-key (authentication_error)"},
		{name: "403", status: 403, want: lm.ErrAuth, body: anthropicErr("permission_error", "no access")},
		{name: "echoed key is scrubbed", status: 401, want: lm.ErrAuth, body: anthropicErr("authentication_error", "bad key "+testKey),
			wantMsg: "bad key [redacted]"},
		{name: "404", status: 404, want: lm.ErrNotFound, body: anthropicErr("not_found_error", "model: claude-nope"), wantMsg: "model: claude-nope"},
		{name: "429 retry-after", status: 429, want: lm.ErrRateLimited, header: map[string]string{"Retry-After": "12"},
			body: anthropicErr("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"), retryAfter: 12 * time.Second},
		{name: "429 retry-after-ms", status: 429, want: lm.ErrRateLimited, header: map[string]string{"retry-after-ms": "1500", "Retry-After": "2"},
			body: anthropicErr("rate_limit_error", "slow down"), retryAfter: 1500 * time.Millisecond},
		{name: "400 prompt too long", status: 400, want: lm.ErrContextWindow,
			body:    anthropicErr("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
			wantMsg: "prompt is too long: 210000 tokens > 200000 maximum (invalid_request_error)"},
		{name: "400 context limit", status: 400, want: lm.ErrContextWindow,
			body: anthropicErr("invalid_request_error", "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, decrease input length or `max_tokens` and try again")},
		{name: "400 other", status: 400, want: lm.ErrBadRequest, body: anthropicErr("invalid_request_error", "temperature: Extra inputs are not permitted"),
			wantMsg: "temperature: Extra inputs are not permitted"},
		{name: "402 billing", status: 402, want: lm.ErrBadRequest, body: anthropicErr("billing_error", "credit balance too low")},
		{name: "408", status: 408, want: lm.ErrTimeout},
		{name: "413 request too large", status: 413, want: lm.ErrBadRequest, body: anthropicErr("request_too_large", "Request exceeds the maximum allowed number of bytes.")},
		{name: "422 prompt too long (gateway)", status: 422, want: lm.ErrContextWindow,
			body: anthropicErr("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum")},
		{name: "500", status: 500, want: lm.ErrServer, body: anthropicErr("api_error", "Internal server error"), wantMsg: "Internal server error"},
		{name: "529 overloaded", status: 529, want: lm.ErrServer, header: map[string]string{"Retry-After": "3"},
			body: anthropicErr("overloaded_error", "Overloaded"), wantMsg: "Overloaded (overloaded_error)", retryAfter: 3 * time.Second},
		{name: "502 html", status: 502, want: lm.ErrServer, body: "<html>Bad Gateway</html>", contentType: "text/html", wantMsg: "<html>Bad Gateway</html>"},
		{name: "500 empty", status: 500, want: lm.ErrServer},
		{name: "long message is bounded", status: 400, want: lm.ErrBadRequest, body: anthropicErr("invalid_request_error", strings.Repeat("é", 5000))},
		{name: "200 malformed json", status: 200, want: lm.ErrBadResponse, body: `{"id":"msg","content":[{`},
		{name: "200 not json", status: 200, want: lm.ErrBadResponse, body: "hello", contentType: "text/plain"},
		{name: "200 no content", status: 200, want: lm.ErrBadResponse, body: `{"id":"msg","type":"message"}`, wantMsg: "no content"},
		{name: "200 content wrong type", status: 200, want: lm.ErrBadResponse, body: `{"content":"many"}`},
		{name: "200 error object", status: 200, want: lm.ErrBadResponse, body: anthropicErr("api_error", "upstream broke"), wantMsg: "upstream broke"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := anthropicServer(t, func(w http.ResponseWriter, r *http.Request) {
				ct := tt.contentType
				if ct == "" {
					ct = "application/json"
				}
				w.Header().Set("Content-Type", ct)
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			a := newTestAnthropic(t, Config{BaseURL: base, APIKey: testKey})
			res, err := a.Complete(t.Context(), userRequest("hi"))
			if err == nil {
				t.Fatalf("Complete = %+v, want error %v", res, tt.want)
			}
			e := checkError(t, err, tt.want, "claude-test", base)
			if e.StatusCode != tt.status {
				t.Errorf("StatusCode = %d, want %d", e.StatusCode, tt.status)
			}
			if got := lm.RetryAfter(err); got != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", got, tt.retryAfter)
			}
			if tt.wantMsg != "" && !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("Message = %q, want it to contain %q", e.Message, tt.wantMsg)
			}
			if len(e.Message) > maxErrorMessage+len("…") {
				t.Errorf("Message is %d bytes, want at most %d", len(e.Message), maxErrorMessage)
			}
			if strings.Contains(err.Error(), "127.0.0.1") && e.Err != nil {
				t.Errorf("error %q keeps the SDK's error, which prints the request", err)
			}
		})
	}
}

func TestAnthropicNoRetries(t *testing.T) {
	t.Parallel()
	for _, status := range []int{429, 500, 529} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			base, _ := anthropicRecorder(t, status, anthropicErr("overloaded_error", "Overloaded"))
			ct := &countingTransport{}
			a := newTestAnthropic(t, Config{BaseURL: base, HTTPClient: &http.Client{Transport: ct}})
			_, err := a.Complete(t.Context(), userRequest("hi"))
			if !lm.Retryable(err) {
				t.Errorf("error %v is not retryable", err)
			}
			ct.mu.Lock()
			defer ct.mu.Unlock()
			if ct.n != 1 {
				t.Errorf("custom client carried %d requests, want exactly 1 (no SDK retries)", ct.n)
			}
		})
	}
}

func TestAnthropicTransportErrors(t *testing.T) {
	t.Parallel()
	refused := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		return "http://" + addr
	}
	hangUp := func(t *testing.T) string {
		return anthropicServer(t, func(w http.ResponseWriter, r *http.Request) {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close()
			}
		})
	}
	truncated := func(t *testing.T) string {
		return anthropicServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "1000")
			_, _ = io.WriteString(w, `{"id":"msg",`)
		})
	}
	hanging := func(t *testing.T) string {
		base, _ := hangingServer(t)
		return strings.TrimSuffix(base, "/v1")
	}
	tests := []struct {
		name    string
		server  func(t *testing.T) string
		timeout time.Duration
		ctx     func(t *testing.T) context.Context
		want    error
		wantCtx error
	}{
		{name: "ctx deadline", server: hanging, want: lm.ErrTimeout, wantCtx: context.DeadlineExceeded,
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			}},
		{name: "ctx cancel", server: hanging, want: lm.ErrCanceled, wantCtx: context.Canceled,
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(t.Context())
				time.AfterFunc(50*time.Millisecond, cancel)
				t.Cleanup(cancel)
				return ctx
			}},
		{name: "configured timeout", server: hanging, timeout: 50 * time.Millisecond, want: lm.ErrTimeout, wantCtx: context.DeadlineExceeded},
		{name: "connection refused", server: refused, want: lm.ErrConnection},
		{name: "connection closed without response", server: hangUp, want: lm.ErrConnection},
		{name: "truncated body", server: truncated, want: lm.ErrConnection},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := tt.server(t)
			a := newTestAnthropic(t, Config{BaseURL: base, APIKey: testKey, Timeout: tt.timeout})
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx(t)
			}
			start := time.Now()
			_, err := a.Complete(ctx, userRequest("hi"))
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("Complete took %v, want it to return promptly", elapsed)
			}
			checkError(t, err, tt.want, "claude-test", base)
			if tt.wantCtx != nil && !errors.Is(err, tt.wantCtx) {
				t.Errorf("errors.Is(err, %v) = false; err = %v", tt.wantCtx, err)
			}
		})
	}
}

func TestAnthropicLargeMaxTokens(t *testing.T) {
	t.Parallel()
	// The SDK refuses non-streaming requests whose max_tokens suggests more
	// than ten minutes of output unless a timeout is set; Timeout decides.
	for _, timeout := range []time.Duration{0, -1} {
		base, got := anthropicRecorder(t, http.StatusOK, messageJSON)
		a := newTestAnthropic(t, Config{BaseURL: base, MaxTokens: 64000, Timeout: timeout})
		if _, err := a.Complete(t.Context(), userRequest("hi")); err != nil {
			t.Fatalf("Complete with timeout %v: %v", timeout, err)
		}
		if c := <-got; !bytes.Contains(c.body, []byte(`"max_tokens":64000`)) {
			t.Errorf("body %s", c.body)
		}
	}
}

func TestAnthropicInvalidRequests(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		req     *lm.Request
		want    error
		wantMsg string
	}{
		{name: "nil request", want: lm.ErrBadRequest, wantMsg: "nil context or request"},
		{name: "unknown role", req: &lm.Request{Messages: []lm.Message{{Role: "tool", Content: "x"}}}, want: lm.ErrBadRequest, wantMsg: `unknown role "tool"`},
		{name: "n > 1", req: &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "x"}}, Params: lm.Params{N: lm.Int(3)}},
			want: lm.ErrBadRequest, wantMsg: "n > 1 is not supported by the Anthropic Messages API"},
		{name: "n = 0", req: &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "x"}}, Params: lm.Params{N: lm.Int(0)}},
			want: lm.ErrBadRequest, wantMsg: "n must be 1"},
		{name: "system only", req: &lm.Request{Messages: []lm.Message{{Role: lm.RoleSystem, Content: "x"}, {Role: lm.RoleUser}}},
			want: lm.ErrBadRequest, wantMsg: "no user or assistant message"},
		{name: "unencodable extra", req: &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "x"}},
			Params: lm.Params{Extra: map[string]any{"f": make(chan int)}}}, want: lm.ErrBadRequest, wantMsg: `extra field "f"`},
		{name: "done context", ctx: cancelled, req: userRequest("hi"), want: lm.ErrCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base, hits := hangingServer(t)
			base = strings.TrimSuffix(base, "/v1")
			a := newTestAnthropic(t, Config{BaseURL: base})
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			_, err := a.Complete(ctx, tt.req)
			e := checkError(t, err, tt.want, "claude-test", base)
			if !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("Message = %q, want it to contain %q", e.Message, tt.wantMsg)
			}
			_, serr := drainStream(t, a.Stream(ctx, tt.req))
			checkError(t, serr, tt.want, "claude-test", base)
			select {
			case <-hits:
				t.Error("an invalid request reached the server")
			default:
			}
		})
	}
}

// anthropicEvent renders one server-sent event of the Messages API.
func anthropicEvent(typ, data string) string { return "event: " + typ + "\ndata: " + data + "\n\n" }

func anthropicMessageStart(input int) string {
	return anthropicEvent("message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_s","type":"message","role":"assistant",`+
		`"content":[],"model":"claude-test","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":1}}}`, input))
}

func anthropicBlockStart(i int, typ string) string {
	block := `{"type":"text","text":""}`
	if typ == "thinking" {
		block = `{"type":"thinking","thinking":"","signature":""}`
	}
	return anthropicEvent("content_block_start", fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":%s}`, i, block))
}

func anthropicTextDelta(i int, text string) string {
	return anthropicEvent("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":%q}}`, i, text))
}

func anthropicBlockStop(i int) string {
	return anthropicEvent("content_block_stop", fmt.Sprintf(`{"type":"content_block_stop","index":%d}`, i))
}

func anthropicMessageDelta(stop string, output int) string {
	return anthropicEvent("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":%q,"stop_sequence":null},"usage":{"output_tokens":%d}}`, stop, output))
}

var (
	anthropicMessageStop = anthropicEvent("message_stop", `{"type":"message_stop"}`)
	anthropicPing        = anthropicEvent("ping", `{"type":"ping"}`)
)

// anthropicStreamServer streams body, flushed event by event.
func anthropicStreamServer(t *testing.T, body string, got chan<- captured) string {
	t.Helper()
	return anthropicServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if got != nil {
			select {
			case got <- captured{path: r.URL.Path, header: r.Header.Clone(), body: b}:
			default:
			}
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		for ev := range strings.SplitAfterSeq(body, "\n\n") {
			_, _ = io.WriteString(w, ev)
			_ = rc.Flush()
		}
	})
}

func TestAnthropicStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		want    []lm.Delta
		wantErr error
		wantMsg string
	}{
		{
			name: "events in order",
			body: anthropicMessageStart(25) + anthropicBlockStart(0, "text") + anthropicPing + anthropicTextDelta(0, "Par") + anthropicTextDelta(0, "is") +
				anthropicTextDelta(0, ".") + anthropicBlockStop(0) + anthropicMessageDelta("end_turn", 15) + anthropicMessageStop,
			want: []lm.Delta{{Text: "Par"}, {Text: "is"}, {Text: "."}, {FinishReason: "stop", Usage: usageOf(25, 15)}},
		},
		{
			name: "thinking skipped, two text blocks, max tokens",
			body: anthropicMessageStart(4) + anthropicBlockStart(0, "thinking") +
				anthropicEvent("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}`) +
				anthropicBlockStop(0) + anthropicBlockStart(1, "text") + anthropicTextDelta(1, "a") + anthropicBlockStop(1) + anthropicBlockStart(2, "text") + anthropicTextDelta(2, "b") +
				anthropicBlockStop(2) + anthropicMessageDelta("max_tokens", 8) + anthropicMessageStop,
			want: []lm.Delta{{Text: "a"}, {Text: "b"}, {FinishReason: "length", Usage: usageOf(4, 8)}},
		},
		{
			name: "cumulative input tokens in message_delta",
			body: anthropicMessageStart(3) + anthropicBlockStart(0, "text") + anthropicTextDelta(0, "x") + anthropicBlockStop(0) +
				anthropicEvent("message_delta", `{"type":"message_delta","delta":{"stop_reason":"stop_sequence"},"usage":{"input_tokens":30,"cache_read_input_tokens":5,"output_tokens":2}}`) +
				anthropicMessageStop,
			want: []lm.Delta{{Text: "x"}, {FinishReason: "stop", Usage: usageOf(35, 2)}},
		},
		{
			name: "ends after the stop reason without message_stop",
			body: anthropicMessageStart(2) + anthropicBlockStart(0, "text") + anthropicTextDelta(0, "x") + anthropicBlockStop(0) + anthropicMessageDelta("end_turn", 1),
			want: []lm.Delta{{Text: "x"}, {FinishReason: "stop", Usage: usageOf(2, 1)}},
		},
		{
			name:    "ended early",
			body:    anthropicMessageStart(2) + anthropicBlockStart(0, "text") + anthropicTextDelta(0, "x"),
			want:    []lm.Delta{{Text: "x"}},
			wantErr: lm.ErrConnection, wantMsg: "stream ended early",
		},
		{
			name:    "overloaded error event",
			body:    anthropicMessageStart(2) + anthropicBlockStart(0, "text") + anthropicTextDelta(0, "x") + anthropicEvent("error", anthropicErr("overloaded_error", "Overloaded")),
			want:    []lm.Delta{{Text: "x"}},
			wantErr: lm.ErrServer, wantMsg: "Overloaded (overloaded_error)",
		},
		{
			name:    "rate limit error event",
			body:    anthropicEvent("error", anthropicErr("rate_limit_error", "slow down")),
			wantErr: lm.ErrRateLimited,
		},
		{
			name:    "context window error event",
			body:    anthropicEvent("error", anthropicErr("invalid_request_error", "prompt is too long: 300000 tokens > 200000 maximum")),
			wantErr: lm.ErrContextWindow,
		},
		{
			name:    "malformed event",
			body:    anthropicMessageStart(2) + anthropicBlockStart(0, "text") + anthropicTextDelta(0, "x") + anthropicEvent("content_block_delta", `{"type":"content_block_delta",`),
			want:    []lm.Delta{{Text: "x"}},
			wantErr: lm.ErrBadResponse,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := anthropicStreamServer(t, tt.body, nil)
			a := newTestAnthropic(t, Config{BaseURL: base, APIKey: testKey})
			got, err := drainStream(t, a.Stream(t.Context(), userRequest("hi")))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("deltas mismatch (-want +got):\n%s", diff)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("stream error: %v", err)
				}
				return
			}
			e := checkError(t, err, tt.wantErr, "claude-test", base)
			if !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("Message = %q, want it to contain %q", e.Message, tt.wantMsg)
			}
		})
	}
}

func TestAnthropicStreamRequest(t *testing.T) {
	t.Parallel()
	got := make(chan captured, 1)
	base := anthropicStreamServer(t, anthropicMessageStart(1)+anthropicBlockStart(0, "text")+anthropicTextDelta(0, "ok")+anthropicMessageDelta("end_turn", 1)+anthropicMessageStop, got)
	a := newTestAnthropic(t, Config{BaseURL: base, APIKey: testKey})
	req := &lm.Request{Messages: []lm.Message{{Role: lm.RoleSystem, Content: "sys"}, {Role: lm.RoleUser, Content: "hi"}},
		Params: lm.Params{Extra: map[string]any{"stream": false}}}
	if _, err := lm.Collect(a.Stream(t.Context(), req)); err != nil {
		t.Fatalf("Stream: %v", err)
	}
	c := <-got
	var body map[string]any
	if err := json.Unmarshal(c.body, &body); err != nil {
		t.Fatalf("body %s: %v", c.body, err)
	}
	want := map[string]any{"model": "claude-test", "max_tokens": 4096.0, "stream": true,
		"system":   []any{map[string]any{"type": "text", "text": "sys"}},
		"messages": []any{map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": "hi"}}}}}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("body mismatch (-want +got):\n%s", diff)
	}
	if c.path != "/v1/messages" || c.header.Get("X-Api-Key") != testKey {
		t.Errorf("path %q, x-api-key %q", c.path, c.header.Get("X-Api-Key"))
	}
}

func TestAnthropicStreamHTTPError(t *testing.T) {
	t.Parallel()
	base := anthropicServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "4")
		w.WriteHeader(529)
		_, _ = io.WriteString(w, anthropicErr("overloaded_error", "Overloaded"))
	})
	a := newTestAnthropic(t, Config{BaseURL: base})
	deltas, err := drainStream(t, a.Stream(t.Context(), userRequest("hi")))
	if len(deltas) != 0 {
		t.Errorf("deltas = %+v", deltas)
	}
	e := checkError(t, err, lm.ErrServer, "claude-test", base)
	if e.StatusCode != 529 || e.RetryAfter != 4*time.Second {
		t.Errorf("StatusCode %d, RetryAfter %v; want 529, 4s", e.StatusCode, e.RetryAfter)
	}
}

// anthropicPartialServer sends first, flushes, then does then.
func anthropicPartialServer(t *testing.T, first string, then func(w http.ResponseWriter, r *http.Request)) string {
	t.Helper()
	base, _ := partialStreamServer(t, first, then)
	return strings.TrimSuffix(base, "/v1")
}

func TestAnthropicStreamMidStreamCut(t *testing.T) {
	t.Parallel()
	base := anthropicPartialServer(t, anthropicMessageStart(3)+anthropicBlockStart(0, "text")+anthropicTextDelta(0, "Par"), func(w http.ResponseWriter, r *http.Request) {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
		}
	})
	a := newTestAnthropic(t, Config{BaseURL: base})
	deltas, err := drainStream(t, a.Stream(t.Context(), userRequest("hi")))
	if diff := cmp.Diff([]lm.Delta{{Text: "Par"}}, deltas); diff != "" {
		t.Errorf("deltas mismatch (-want +got):\n%s", diff)
	}
	checkError(t, err, lm.ErrConnection, "claude-test", base)
}

func TestAnthropicStreamConsumerBreak(t *testing.T) {
	t.Parallel()
	closed := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	base := anthropicPartialServer(t, anthropicMessageStart(3)+anthropicBlockStart(0, "text")+anthropicTextDelta(0, "a")+anthropicTextDelta(0, "b"),
		func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
				close(closed)
			case <-done:
			}
		})
	a := newTestAnthropic(t, Config{BaseURL: base})
	n := 0
	for d, err := range a.Stream(t.Context(), userRequest("hi")) {
		if err != nil || d.Text != "a" {
			t.Fatalf("first pair = %+v, %v", d, err)
		}
		n++
		break
	}
	if n != 1 {
		t.Fatalf("got %d deltas, want 1", n)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not see the connection close after the consumer stopped")
	}
}

func TestAnthropicStreamContext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		timeout time.Duration
		cancel  bool
		want    error
	}{
		{name: "cancel mid-stream", cancel: true, want: lm.ErrCanceled},
		{name: "configured timeout", timeout: 300 * time.Millisecond, want: lm.ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			done := make(chan struct{})
			t.Cleanup(func() { close(done) })
			base := anthropicPartialServer(t, anthropicMessageStart(3)+anthropicBlockStart(0, "text")+anthropicTextDelta(0, "a"), func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-done:
				}
			})
			a := newTestAnthropic(t, Config{BaseURL: base, Timeout: tt.timeout})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var deltas []lm.Delta
			var gotErr error
			start := time.Now()
			for d, err := range a.Stream(ctx, userRequest("hi")) {
				if err != nil {
					gotErr = err
					continue
				}
				deltas = append(deltas, d)
				if tt.cancel {
					cancel()
				}
			}
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("stream ended after %v, want promptly", elapsed)
			}
			if len(deltas) != 1 {
				t.Errorf("deltas = %+v, want the one sent", deltas)
			}
			checkError(t, gotErr, tt.want, "claude-test", base)
		})
	}
}

func TestAnthropicStreamCollectEqualsComplete(t *testing.T) {
	t.Parallel()
	const text = "The capital of France is Paris — «Paris»!\nNew line."
	base := anthropicServer(t, func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Stream bool `json:"stream"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		if !body.Stream {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"id": "msg", "type": "message", "role": "assistant", "model": "claude-test",
				"content": []any{map[string]any{"type": "text", "text": text}}, "stop_reason": "end_turn",
				"usage": map[string]any{"input_tokens": 9, "output_tokens": 14}})
			return
		}
		var b strings.Builder
		b.WriteString(anthropicMessageStart(9) + anthropicBlockStart(0, "text"))
		for piece := range strings.SplitAfterSeq(text, " ") {
			b.WriteString(anthropicTextDelta(0, piece))
		}
		b.WriteString(anthropicBlockStop(0) + anthropicMessageDelta("end_turn", 14) + anthropicMessageStop)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, b.String())
	})
	a := newTestAnthropic(t, Config{BaseURL: base})
	want, err := a.Complete(t.Context(), userRequest("Capital of France?"))
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	got, err := lm.Collect(a.Stream(t.Context(), userRequest("Capital of France?")))
	if err != nil {
		t.Fatalf("Collect(Stream): %v", err)
	}
	if diff := cmp.Diff(want.Choices, got.Choices); diff != "" {
		t.Errorf("choices mismatch (-complete +stream):\n%s", diff)
	}
	if want.Usage != got.Usage {
		t.Errorf("usage: stream %+v, complete %+v", got.Usage, want.Usage)
	}
}

func TestAnthropicConcurrent(t *testing.T) {
	t.Parallel()
	base := anthropicServer(t, func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Messages []struct {
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
			} `json:"messages"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"content": []any{map[string]any{"type": "text", "text": body.Messages[0].Content[0].Text}},
			"stop_reason": "end_turn", "usage": map[string]any{"input_tokens": 1, "output_tokens": 1}})
	})
	a := newTestAnthropic(t, Config{BaseURL: base})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 4 {
				want := strings.Repeat("x", g+1) + strings.Repeat("y", i)
				res, err := a.Complete(t.Context(), userRequest(want))
				if err != nil {
					t.Errorf("Complete: %v", err)
					return
				}
				if res.Text() != want {
					t.Errorf("Text = %q, want %q", res.Text(), want)
				}
			}
		})
	}
	wg.Wait()
}

func ExampleNew() {
	// A stand-in for the Messages API.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, messageJSON)
	}))
	defer srv.Close()

	model, err := New(Config{
		Model:     "claude-sonnet-4-5",
		BaseURL:   srv.URL,
		APIKeyEnv: "EXAMPLE_UNSET_KEY", // normally ANTHROPIC_API_KEY
		MaxTokens: 1024,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := model.Complete(context.Background(), &lm.Request{Messages: []lm.Message{
		{Role: lm.RoleSystem, Content: "Answer in one word."},
		{Role: lm.RoleUser, Content: "Capital of France?"},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Text(), res.Choices[0].FinishReason, res.Usage.TotalTokens)

	_, err = model.Complete(context.Background(), &lm.Request{
		Messages: []lm.Message{{Role: lm.RoleUser, Content: "Capital of France?"}},
		Params:   lm.Params{N: lm.Int(3)},
	})
	fmt.Println(errors.Is(err, lm.ErrBadRequest))
	// Output:
	// Paris. stop 15
	// true
}

// The client sends its requests to the base URL's path with its query kept
// (a gateway's key, say).
func TestKeepsTheBaseQuery(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	base := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Path + "?" + r.URL.RawQuery
		http.Error(w, `{"error": {"message": "no"}}`, http.StatusBadRequest)
	})
	a, err := New(Config{Model: "m", BaseURL: strings.TrimSuffix(base, "/v1") + "/api?key=X", APIKeyEnv: unsetAnthropicKeyEnv})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = a.Complete(context.Background(), userRequest("hi"))
	if p, want := <-got, "/api/v1/messages?key=X"; p != want {
		t.Errorf("request went to %q, want %q", p, want)
	}
}
