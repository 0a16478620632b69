package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/providertest"
	"github.com/google/go-cmp/cmp"
)

// unsetKeyEnv names an environment variable the tests never set, so that a
// developer's OPENAI_API_KEY does not leak into tests that expect no key.
const unsetKeyEnv = "DSPEX_TEST_UNSET_OPENAI_KEY"

const testKey = "sk-test-secret-0123456789"

const completionJSON = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"test-model-0125",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`

// captured is what a fake server saw of one request.
type captured struct {
	path   string
	header http.Header
	body   []byte
}

// fakeServer starts a 127.0.0.1 server whose handler is h and returns its
// base URL ("…/v1").
func fakeServer(t testing.TB, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

// recordingServer answers every request with status and body and hands the
// last request it saw to the returned channel.
func recordingServer(t testing.TB, status int, body string) (string, <-chan captured) {
	t.Helper()
	got := make(chan captured, 1)
	base := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
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

func newTestOpenAI(t testing.TB, cfg Config) *Client {
	t.Helper()
	if cfg.Model == "" {
		cfg.Model = "test-model"
	}
	if cfg.APIKeyEnv == "" {
		cfg.APIKeyEnv = unsetKeyEnv
	}
	o, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return o
}

func userRequest(text string) *lm.Request {
	return &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: text}}}
}

func TestNewOpenAI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		cfg        Config
		wantErr    string
		wantModel  string
		wantFormat lm.ResponseFormatMode
		wantURL    string
	}{
		{name: "defaults", cfg: Config{Model: "gpt-4o-mini"}, wantModel: "gpt-4o-mini", wantFormat: lm.ResponseFormatJSONSchema,
			wantURL: "https://api.openai.com/v1"},
		{name: "url without credentials", cfg: Config{Model: "m", BaseURL: "http://user:hunter2@127.0.0.1:8000/v1/?key=hunter2#x"},
			wantModel: "m", wantFormat: lm.ResponseFormatNone, wantURL: "http://127.0.0.1:8000/v1"},
		{name: "auto, json mode only", cfg: Config{Model: "gpt-3.5-turbo", ResponseFormat: lm.ResponseFormatAuto}, wantModel: "gpt-3.5-turbo", wantFormat: lm.ResponseFormatJSONObject},
		{name: "json_schema for an unknown model", cfg: Config{Model: "m", ResponseFormat: lm.ResponseFormatJSONSchema}, wantModel: "m", wantFormat: lm.ResponseFormatJSONSchema},
		{name: "json_object", cfg: Config{Model: "gpt-4o", ResponseFormat: lm.ResponseFormatJSONObject}, wantModel: "gpt-4o", wantFormat: lm.ResponseFormatJSONObject},
		{name: "none for a known model", cfg: Config{Model: "gpt-4o", ResponseFormat: lm.ResponseFormatNone}, wantModel: "gpt-4o", wantFormat: lm.ResponseFormatNone},
		{name: "unknown mode", cfg: Config{Model: "m", ResponseFormat: "xml"}, wantErr: `unknown response format mode "xml"`},
		{name: "empty model", cfg: Config{BaseURL: "http://127.0.0.1:1/v1"}, wantErr: "model is empty"},
		{name: "blank model", cfg: Config{Model: "  "}, wantErr: "model is empty"},
		{name: "unparsable url", cfg: Config{Model: "m", BaseURL: "http://user:hunter2@[::1/v1"}, wantErr: "parse base url"},
		{name: "no scheme", cfg: Config{Model: "m", BaseURL: "localhost:8000/v1"}, wantErr: "not an absolute http or https url"},
		{name: "relative", cfg: Config{Model: "m", BaseURL: "/v1"}, wantErr: "not an absolute http or https url"},
		{name: "other scheme", cfg: Config{Model: "m", BaseURL: "ftp://user:hunter2@example.com/v1"}, wantErr: "not an absolute http or https url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.APIKeyEnv = unsetKeyEnv
			o, err := New(tt.cfg)
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
			if got := o.Model(); got != tt.wantModel {
				t.Errorf("Model() = %q, want %q", got, tt.wantModel)
			}
			if got := lm.ResponseFormatFor(o); got != tt.wantFormat {
				t.Errorf("ResponseFormatFor = %q, want %q", got, tt.wantFormat)
			}
			if tt.wantURL != "" && o.URL() != tt.wantURL {
				t.Errorf("url = %q, want %q", o.URL(), tt.wantURL)
			}
		})
	}
}

func TestOpenAIRequestBody(t *testing.T) {
	t.Parallel()
	schema := json.RawMessage(`{"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"], "additionalProperties": false}`)
	tests := []struct {
		name     string
		defaults lm.Params
		req      *lm.Request
		want     string // JSON body
	}{
		{
			name: "messages only",
			req: &lm.Request{Messages: []lm.Message{
				{Role: lm.RoleSystem, Content: "Be brief."},
				{Role: lm.RoleUser, Content: "Capital of France?"},
				{Role: lm.RoleAssistant, Content: "Paris."},
				{Role: lm.RoleUser, Content: "And Italy?"},
			}},
			want: `{"model":"test-model","messages":[
				{"role":"system","content":"Be brief."},
				{"role":"user","content":"Capital of France?"},
				{"role":"assistant","content":"Paris."},
				{"role":"user","content":"And Italy?"}]}`,
		},
		{
			name: "every param",
			req: &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}, Params: lm.Params{
				Temperature: lm.Float(0.7), MaxTokens: lm.Int(256), TopP: lm.Float(0.9), N: lm.Int(3),
				Stop: []string{"\n\n", "END"}, Seed: lm.Int64(42),
			}},
			want: `{"model":"test-model","messages":[{"role":"user","content":"hi"}],
				"temperature":0.7,"max_tokens":256,"top_p":0.9,"n":3,"stop":["\n\n","END"],"seed":42}`,
		},
		{
			name:     "request params win over defaults",
			defaults: lm.Params{Temperature: lm.Float(0), MaxTokens: lm.Int(1000), Stop: []string{"x"}, Extra: map[string]any{"a": 1, "b": 2}},
			req: &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}, Params: lm.Params{
				Temperature: lm.Float(1), Extra: map[string]any{"b": 3},
			}},
			want: `{"model":"test-model","messages":[{"role":"user","content":"hi"}],
				"temperature":1,"max_tokens":1000,"stop":["x"],"a":1,"b":3}`,
		},
		{
			name: "zero temperature is sent",
			req:  &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}, Params: lm.Params{Temperature: lm.Float(0)}},
			want: `{"model":"test-model","messages":[{"role":"user","content":"hi"}],"temperature":0}`,
		},
		{
			name: "model override",
			req:  &lm.Request{Model: "other-model", Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}},
			want: `{"model":"other-model","messages":[{"role":"user","content":"hi"}]}`,
		},
		{
			name: "extra fields, nested and overriding",
			req: &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}, Params: lm.Params{
				MaxTokens: lm.Int(10),
				Extra: map[string]any{
					"chat_template_kwargs":  map[string]any{"enable_thinking": false},
					"max_completion_tokens": 20,
					"max_tokens":            30,
				},
			}},
			want: `{"model":"test-model","messages":[{"role":"user","content":"hi"}],
				"max_tokens":30,"chat_template_kwargs":{"enable_thinking":false},"max_completion_tokens":20}`,
		},
		{
			name: "json object",
			req: &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}},
				ResponseFormat: &lm.ResponseFormat{Type: "json_object"}},
			want: `{"model":"test-model","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}`,
		},
		{
			name: "json schema",
			req: &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}},
				ResponseFormat: &lm.ResponseFormat{Type: "json_schema", Name: "qa", Schema: schema, Strict: true}},
			want: `{"model":"test-model","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema",
				"json_schema":{"name":"qa","strict":true,"schema":{"type":"object",
				"properties":{"answer":{"type":"string"}},"required":["answer"],"additionalProperties":false}}}}`,
		},
		{
			name: "json schema without name",
			req: &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}},
				ResponseFormat: &lm.ResponseFormat{Type: "json_schema", Schema: json.RawMessage(`{"type":"object"}`)}},
			want: `{"model":"test-model","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema",
				"json_schema":{"name":"response","schema":{"type":"object"}}}}`,
		},
		{
			name: "empty format type is no format",
			req:  &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}, ResponseFormat: &lm.ResponseFormat{}},
			want: `{"model":"test-model","messages":[{"role":"user","content":"hi"}]}`,
		},
		{
			name: "rollout id is not sent",
			req:  &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}, RolloutID: "rollout-7f3a"},
			want: `{"model":"test-model","messages":[{"role":"user","content":"hi"}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base, got := recordingServer(t, http.StatusOK, completionJSON)
			o := newTestOpenAI(t, Config{BaseURL: base, Params: tt.defaults})
			if _, err := o.Complete(t.Context(), tt.req); err != nil {
				t.Fatalf("Complete: %v", err)
			}
			c := <-got
			if c.path != "/v1/chat/completions" {
				t.Errorf("path = %q, want /v1/chat/completions", c.path)
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
			// The schema goes out with its key order: the comparison above
			// cannot see order.
			if rf := tt.req.ResponseFormat; rf != nil && len(rf.Schema) > 0 {
				var compact bytes.Buffer
				if err := json.Compact(&compact, rf.Schema); err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(c.body, compact.Bytes()) {
					t.Errorf("request body %s does not carry the schema %s in its order", c.body, compact.Bytes())
				}
			}
			if tt.req.RolloutID != "" && bytes.Contains(c.body, []byte(tt.req.RolloutID)) {
				t.Errorf("request body %s carries the rollout id", c.body)
			}
		})
	}
}

func TestOpenAIDefaultsNotShared(t *testing.T) {
	t.Parallel()
	base, got := recordingServer(t, http.StatusOK, completionJSON)
	extra := map[string]any{"a": 1}
	o := newTestOpenAI(t, Config{BaseURL: base, Params: lm.Params{Extra: extra}})
	extra["a"] = 2 // the caller's map changing later must not change requests
	if _, err := o.Complete(t.Context(), userRequest("hi")); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if c := <-got; !bytes.Contains(c.body, []byte(`"a":1`)) {
		t.Errorf("request body %s, want \"a\":1", c.body)
	}
}

func TestOpenAIHeaders(t *testing.T) {
	// Not parallel: subtests set environment variables.
	const keyEnv = "DSPEX_TEST_OPENAI_KEY"
	tests := []struct {
		name     string
		env      string // value of keyEnv, "" for unset
		cfg      Config
		wantAuth string // "" for no Authorization header
		want     map[string]string
	}{
		{name: "no key sends no authorization", cfg: Config{APIKeyEnv: unsetKeyEnv}},
		{name: "explicit key", cfg: Config{APIKey: testKey}, wantAuth: "Bearer " + testKey},
		{name: "key from env", env: "sk-from-env", cfg: Config{APIKeyEnv: keyEnv}, wantAuth: "Bearer sk-from-env"},
		{name: "explicit key beats env", env: "sk-from-env", cfg: Config{APIKey: testKey, APIKeyEnv: keyEnv}, wantAuth: "Bearer " + testKey},
		{name: "empty env is no key", env: "", cfg: Config{APIKeyEnv: keyEnv}},
		{name: "env key is trimmed", env: " sk-from-env\n", cfg: Config{APIKeyEnv: keyEnv}, wantAuth: "Bearer sk-from-env"},
		{
			name:     "custom headers",
			cfg:      Config{APIKey: testKey, Headers: map[string]string{"HTTP-Referer": "https://dspex.dev", "X-Title": "dspex"}},
			wantAuth: "Bearer " + testKey,
			want:     map[string]string{"Http-Referer": "https://dspex.dev", "X-Title": "dspex", "Content-Type": "application/json"},
		},
		{
			name:     "authorization header replaces key",
			cfg:      Config{APIKey: testKey, Headers: map[string]string{"Authorization": "Basic abc"}},
			wantAuth: "Basic abc",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(keyEnv, tt.env)
			base, got := recordingServer(t, http.StatusOK, completionJSON)
			cfg := tt.cfg
			cfg.BaseURL = base
			o := newTestOpenAI(t, cfg)
			t.Setenv(keyEnv, "sk-changed-later") // read once, in New
			if _, err := o.Complete(t.Context(), userRequest("hi")); err != nil {
				t.Fatalf("Complete: %v", err)
			}
			c := <-got
			auth, present := c.header["Authorization"]
			switch {
			case tt.wantAuth == "" && present:
				t.Errorf("Authorization = %q, want no header", auth)
			case tt.wantAuth != "" && c.header.Get("Authorization") != tt.wantAuth:
				t.Errorf("Authorization = %q, want %q", c.header.Get("Authorization"), tt.wantAuth)
			}
			for k, v := range tt.want {
				if got := c.header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			for k := range c.header {
				if strings.HasPrefix(k, "X-Stainless-") {
					t.Errorf("request carries SDK telemetry header %s", k)
				}
			}
		})
	}
}

// countingTransport counts the requests it carries.
type countingTransport struct {
	mu sync.Mutex
	n  int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func TestOpenAIHTTPClient(t *testing.T) {
	t.Parallel()
	base, _ := recordingServer(t, http.StatusInternalServerError, `{"error":{"message":"overloaded"}}`)
	ct := &countingTransport{}
	o := newTestOpenAI(t, Config{BaseURL: base, HTTPClient: &http.Client{Transport: ct}})
	_, err := o.Complete(t.Context(), userRequest("hi"))
	checkError(t, err, lm.ErrServer, "test-model", base)
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.n != 1 {
		t.Errorf("custom client carried %d requests, want exactly 1 (no SDK retries)", ct.n)
	}
}

func TestOpenAIResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  *lm.Request
		body string
		want *lm.Response
	}{
		{
			name: "one choice",
			req:  userRequest("Capital of France?"),
			body: completionJSON,
			want: &lm.Response{ID: "chatcmpl-1", Model: "test-model-0125",
				Choices: []lm.Choice{{Text: "Paris.", FinishReason: "stop"}},
				Usage:   lm.Usage{PromptTokens: 12, CompletionTokens: 3, TotalTokens: 15}},
		},
		{
			name: "n choices in index order",
			req:  &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}, Params: lm.Params{N: lm.Int(3)}},
			body: `{"id":"c2","model":"test-model","choices":[
				{"index":2,"message":{"role":"assistant","content":"two"},"finish_reason":"length"},
				{"index":0,"message":{"role":"assistant","content":"zero"},"finish_reason":"stop"},
				{"index":1,"message":{"role":"assistant","content":null,"refusal":"no"},"finish_reason":"content_filter"}],
				"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14}}`,
			want: &lm.Response{ID: "c2", Model: "test-model",
				Choices: []lm.Choice{{Text: "zero", FinishReason: "stop"}, {Text: "", FinishReason: "content_filter"}, {Text: "two", FinishReason: "length"}},
				Usage:   lm.Usage{PromptTokens: 5, CompletionTokens: 9, TotalTokens: 14}},
		},
		{
			name: "missing model and usage",
			req:  &lm.Request{Model: "asked-model", Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}},
			body: `{"choices":[{"message":{"content":"ok"}}]}`,
			want: &lm.Response{Model: "asked-model", Choices: []lm.Choice{{Text: "ok"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base, _ := recordingServer(t, http.StatusOK, tt.body)
			o := newTestOpenAI(t, Config{BaseURL: base})
			got, err := o.Complete(t.Context(), tt.req)
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

// checkError asserts err is an *lm.Error of kind want, matching no other
// kind, that names the model and base URL and does not reveal testKey.
func checkError(t *testing.T, err error, want error, model, base string) *lm.Error {
	t.Helper()
	return providertest.CheckError(t, err, want, model, base, testKey)
}

func TestOpenAIHTTPErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		header      map[string]string
		body        string
		want        error
		wantMsg     string
		retryAfter  time.Duration
		retrySlack  time.Duration // accepted shortfall of retryAfter (HTTP dates)
		wantStatus  int           // 0 means status
		contentType string        // "" means application/json
	}{
		{name: "401", status: 401, want: lm.ErrAuth, wantMsg: "Incorrect API key provided: sk-test-***6789.",
			body: `{"error":{"message":"Incorrect API key provided: sk-test-***6789.","type":"invalid_request_error","code":"invalid_api_key"}}`},
		{name: "403", status: 403, want: lm.ErrAuth, body: `{"error":{"message":"forbidden"}}`, wantMsg: "forbidden"},
		{name: "echoed key is scrubbed", status: 401, want: lm.ErrAuth, wantMsg: "bad key [redacted]",
			body: `{"error":"bad key ` + testKey + `"}`},
		{name: "404 ollama", status: 404, want: lm.ErrNotFound, body: `{"error":"model \"x\" not found, try pulling it first"}`,
			wantMsg: `model "x" not found, try pulling it first`},
		{name: "429 retry-after seconds", status: 429, want: lm.ErrRateLimited, header: map[string]string{"Retry-After": "7"},
			body: `{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}`, wantMsg: "Rate limit reached",
			retryAfter: 7 * time.Second},
		{name: "429 retry-after-ms", status: 429, want: lm.ErrRateLimited,
			header: map[string]string{"retry-after-ms": "250", "Retry-After": "1"}, retryAfter: 250 * time.Millisecond},
		{name: "429 retry-after date", status: 429, want: lm.ErrRateLimited,
			header:     map[string]string{"Retry-After": time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)},
			retryAfter: 30 * time.Second, retrySlack: 10 * time.Second},
		{name: "429 retry-after past date", status: 429, want: lm.ErrRateLimited,
			header: map[string]string{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}},
		{name: "429 retry-after garbage", status: 429, want: lm.ErrRateLimited, header: map[string]string{"Retry-After": "soon"}},
		{name: "400 openai context length", status: 400, want: lm.ErrContextWindow,
			body:    `{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`,
			wantMsg: "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. (code context_length_exceeded)"},
		{name: "400 vllm context length", status: 400, want: lm.ErrContextWindow,
			body:    `{"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}`,
			wantMsg: "This model's maximum context length is 4096 tokens."},
		{name: "400 llama.cpp context size", status: 400, want: lm.ErrContextWindow,
			body: `{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}`},
		{name: "413 too many tokens", status: 413, want: lm.ErrContextWindow, body: "Too many tokens in request", contentType: "text/plain",
			wantMsg: "Too many tokens in request"},
		{name: "422 context window", status: 422, want: lm.ErrContextWindow, body: `{"detail":"prompt exceeds the context window"}`,
			wantMsg: "prompt exceeds the context window"},
		{name: "413 other", status: 413, want: lm.ErrBadRequest, body: "payload too large", contentType: "text/plain"},
		{name: "422 validation", status: 422, want: lm.ErrBadRequest,
			body: `{"detail":[{"loc":["body","messages"],"msg":"field required"}]}`, wantMsg: "field required"},
		{name: "400 other", status: 400, want: lm.ErrBadRequest,
			body:    `{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","code":null}}`,
			wantMsg: "Invalid value for 'temperature'"},
		{name: "408", status: 408, want: lm.ErrTimeout},
		{name: "409", status: 409, want: lm.ErrBadRequest},
		{name: "500", status: 500, want: lm.ErrServer, body: `{"error":{"message":"The server had an error"}}`, wantMsg: "The server had an error"},
		{name: "503 retry-after", status: 503, want: lm.ErrServer, header: map[string]string{"Retry-After": "2"}, retryAfter: 2 * time.Second},
		{name: "502 html", status: 502, want: lm.ErrServer, body: "<html><body>Bad Gateway</body></html>", contentType: "text/html",
			wantMsg: "<html><body>Bad Gateway</body></html>"},
		{name: "500 empty body", status: 500, want: lm.ErrServer},
		{name: "long message is bounded", status: 400, want: lm.ErrBadRequest, body: `{"error":"` + strings.Repeat("é", 5000) + `"}`},
		{name: "200 malformed json", status: 200, want: lm.ErrBadResponse, body: `{"id":"x","choices":[{`},
		{name: "200 not json", status: 200, want: lm.ErrBadResponse, body: "hello", contentType: "text/plain"},
		{name: "200 no choices", status: 200, want: lm.ErrBadResponse, body: `{"id":"x","choices":[]}`, wantMsg: "no choices"},
		{name: "200 choices wrong type", status: 200, want: lm.ErrBadResponse, body: `{"choices":"many"}`},
		{name: "200 error object", status: 200, want: lm.ErrBadResponse,
			body: `{"error":{"message":"Provider returned error","code":502}}`, wantMsg: "Provider returned error (code 502)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
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
			o := newTestOpenAI(t, Config{BaseURL: base, APIKey: testKey})
			res, err := o.Complete(t.Context(), userRequest("hi"))
			if err == nil {
				t.Fatalf("Complete = %+v, want error %v", res, tt.want)
			}
			e := checkError(t, err, tt.want, "test-model", base)
			wantStatus := tt.wantStatus
			if wantStatus == 0 {
				wantStatus = tt.status
			}
			if e.StatusCode != wantStatus {
				t.Errorf("StatusCode = %d, want %d", e.StatusCode, wantStatus)
			}
			if got := lm.RetryAfter(err); got > tt.retryAfter || got < tt.retryAfter-tt.retrySlack {
				t.Errorf("RetryAfter = %v, want %v (slack %v)", got, tt.retryAfter, tt.retrySlack)
			}
			if tt.wantMsg != "" && !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("Message = %q, want it to contain %q", e.Message, tt.wantMsg)
			}
			if len(e.Message) > maxErrorMessage+len("…") {
				t.Errorf("Message is %d bytes, want at most %d", len(e.Message), maxErrorMessage)
			}
		})
	}
}

// hangingServer accepts requests and never answers them until the client
// goes away or the test ends. hits counts requests.
func hangingServer(t *testing.T) (base string, hits <-chan struct{}) {
	t.Helper()
	done := make(chan struct{})
	h := make(chan struct{}, 16)
	base = fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case h <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-done:
		}
	})
	t.Cleanup(func() { close(done) }) // runs before the server's Close
	return base, h
}

func TestOpenAITransportErrors(t *testing.T) {
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
		return "http://" + addr + "/v1"
	}
	hangUp := func(t *testing.T) string {
		return fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		})
	}
	truncated := func(t *testing.T) string {
		return fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "1000")
			_, _ = io.WriteString(w, `{"id":"x",`)
		})
	}
	hanging := func(t *testing.T) string { base, _ := hangingServer(t); return base }

	tests := []struct {
		name    string
		server  func(t *testing.T) string
		timeout time.Duration // Config.Timeout
		ctx     func(t *testing.T) context.Context
		want    error
		wantCtx error // the context error also matched, if any
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
			o := newTestOpenAI(t, Config{BaseURL: base, APIKey: testKey, Timeout: tt.timeout})
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx(t)
			}
			start := time.Now()
			_, err := o.Complete(ctx, userRequest("hi"))
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("Complete took %v, want it to return promptly", elapsed)
			}
			checkError(t, err, tt.want, "test-model", base)
			if tt.wantCtx != nil && !errors.Is(err, tt.wantCtx) {
				t.Errorf("errors.Is(err, %v) = false; err = %v", tt.wantCtx, err)
			}
		})
	}
}

func TestOpenAIDoneContextSendsNothing(t *testing.T) {
	t.Parallel()
	base, hits := hangingServer(t)
	o := newTestOpenAI(t, Config{BaseURL: base})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := o.Complete(ctx, userRequest("hi"))
	checkError(t, err, lm.ErrCanceled, "test-model", base)
	select {
	case <-hits:
		t.Error("a request reached the server after the context was cancelled")
	default:
	}
}

func TestOpenAIInvalidRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		req     *lm.Request
		wantMsg string
	}{
		{name: "nil request", wantMsg: "nil context or request"},
		{name: "unknown role", req: &lm.Request{Messages: []lm.Message{{Role: "tool", Content: "x"}}}, wantMsg: `unknown role "tool"`},
		{name: "unknown format", req: &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "x"}},
			ResponseFormat: &lm.ResponseFormat{Type: "xml"}}, wantMsg: `unknown response format type "xml"`},
		{name: "unencodable extra", req: &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "x"}},
			Params: lm.Params{Extra: map[string]any{"f": make(chan int)}}}, wantMsg: `encode request: extra field "f"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base, hits := hangingServer(t)
			o := newTestOpenAI(t, Config{BaseURL: base})
			_, err := o.Complete(t.Context(), tt.req)
			e := checkError(t, err, lm.ErrBadRequest, "test-model", base)
			if !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("Message = %q, want it to contain %q", e.Message, tt.wantMsg)
			}
			select {
			case <-hits:
				t.Error("an invalid request reached the server")
			default:
			}
		})
	}
}

func TestOpenAIConcurrent(t *testing.T) {
	t.Parallel()
	base := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Messages []lm.Message `json:"messages"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"content": body.Messages[0].Content}}},
		})
	})
	o := newTestOpenAI(t, Config{BaseURL: base, Params: lm.Params{Temperature: lm.Float(0)}})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 8 {
				want := strings.Repeat("x", g) + strings.Repeat("y", i)
				res, err := o.Complete(t.Context(), userRequest(want))
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

// BenchmarkOpenAIComplete compares Complete with a bare net/http POST of the
// same body to the same local server, to show the client's own overhead.
func BenchmarkOpenAIComplete(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, completionJSON)
	}))
	b.Cleanup(srv.Close)
	req := &lm.Request{
		Messages: []lm.Message{
			{Role: lm.RoleSystem, Content: "Answer questions with short factoid answers."},
			{Role: lm.RoleUser, Content: "What is the capital of France?"},
		},
		Params: lm.Params{Temperature: lm.Float(0), MaxTokens: lm.Int(64)},
	}
	body := []byte(`{"messages":[{"content":"Answer questions with short factoid answers.","role":"system"},` +
		`{"content":"What is the capital of France?","role":"user"}],"model":"test-model","max_tokens":64,"temperature":0}`)

	b.Run("raw", func(b *testing.B) {
		client := &http.Client{Transport: lm.NewTransport()}
		ctx := b.Context()
		b.ReportAllocs()
		for b.Loop() {
			hr, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			hr.Header.Set("Content-Type", "application/json")
			hr.Header.Set("Authorization", "Bearer "+testKey)
			res, err := client.Do(hr)
			if err != nil {
				b.Fatal(err)
			}
			raw, err := io.ReadAll(res.Body)
			_ = res.Body.Close()
			if err != nil || res.StatusCode != http.StatusOK {
				b.Fatal(res.StatusCode, err)
			}
			var cr chatResponse
			if err := json.Unmarshal(raw, &cr); err != nil || len(cr.Choices) != 1 {
				b.Fatal(err)
			}
		}
	})
	b.Run("openai", func(b *testing.B) {
		o := newTestOpenAI(b, Config{BaseURL: srv.URL + "/v1", APIKey: testKey})
		ctx := b.Context()
		b.ReportAllocs()
		for b.Loop() {
			res, err := o.Complete(ctx, req)
			if err != nil || res.Text() != "Paris." {
				b.Fatal(err)
			}
		}
	})
}

// FuzzOpenAIResponseParsing feeds arbitrary bodies to the success and error
// parsers: they must not panic and must always yield a kind.
func FuzzOpenAIResponseParsing(f *testing.F) {
	f.Add(200, []byte(completionJSON), "")
	f.Add(200, []byte(`{"choices":[{"index":-1},{"index":9}]}`), "")
	f.Add(200, []byte(`{"error":{"message":"x","code":502}}`), "")
	f.Add(400, []byte(`{"error":{"message":"maximum context length","code":"context_length_exceeded"}}`), "")
	f.Add(429, []byte(`{"error":"slow down"}`), "Tue, 01 Jan 2030 00:00:00 GMT")
	f.Add(503, []byte(`{"detail":[1,2]}`), "1e9")
	f.Add(500, []byte("\xff\xfe"), "-1")
	o := newTestOpenAI(f, Config{BaseURL: "http://127.0.0.1:1/v1", APIKey: testKey})
	f.Fuzz(func(t *testing.T, status int, body []byte, retry string) {
		res := &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {retry}},
			Body: io.NopCloser(bytes.NewReader(body))}
		if status >= 400 {
			e := o.statusError("m", res)
			if e.Kind == nil || e.RetryAfter < 0 {
				t.Fatalf("statusError = %+v", e)
			}
			return
		}
		r, err := o.parse("m", body, res)
		if err == nil && len(r.Choices) == 0 {
			t.Fatal("parse succeeded with no choices")
		}
		if err != nil && !errors.Is(err, lm.ErrBadResponse) {
			t.Fatalf("parse error %v is not ErrBadResponse", err)
		}
	})
}

// maxErrorMessage is the most bytes of provider text an *lm.Error keeps
// (lm.Endpoint.Scrub's bound).
const maxErrorMessage = 1024

// Chat and embedding clients send their requests to the base
// URL's path with its query kept.
func TestClientsKeepTheBaseQuery(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.Path+"?"+r.URL.RawQuery)
		mu.Unlock()
		http.Error(w, `{"error": {"message": "no"}}`, http.StatusBadRequest)
	}))
	defer srv.Close()
	base := srv.URL + "/v1?key=X"
	ctx := context.Background()
	req := &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}}

	chat, err := New(Config{Model: "m", BaseURL: base, APIKeyEnv: unsetKeyEnv})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = chat.Complete(ctx, req)
	emb, err := NewEmbedder(EmbedderConfig{Model: "m", BaseURL: base, APIKeyEnv: unsetKeyEnv})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _ = emb.Embed(ctx, []string{"hi"})

	mu.Lock()
	defer mu.Unlock()
	want := []string{"/v1/chat/completions?key=X", "/v1/embeddings?key=X"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("requests went to %q, want %q", got, want)
	}
}
