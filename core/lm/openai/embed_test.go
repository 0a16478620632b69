package openai_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
)

// embedUnsetKeyEnv names an environment variable the tests never set, so
// that a developer's OPENAI_API_KEY stays out of these tests.
const embedUnsetKeyEnv = "DSPEX_TEST_UNSET_EMBED_KEY"

const embedTestKey = "sk-embed-secret-0123456789"

var embedKinds = []error{
	lm.ErrAuth, lm.ErrNotFound, lm.ErrRateLimited, lm.ErrContextWindow, lm.ErrBadRequest,
	lm.ErrServer, lm.ErrTimeout, lm.ErrCanceled, lm.ErrConnection, lm.ErrBadResponse,
}

// embedReq is what a fake server reads of an embeddings request.
type embedReq struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	Dimensions     *int     `json:"dimensions"`
	EncodingFormat string   `json:"encoding_format"`
}

type embedItem struct {
	Index     *int `json:"index,omitempty"`
	Embedding any  `json:"embedding"`
}

// embedServer starts a 127.0.0.1 server with handler h and returns its base
// URL ("…/v1").
func embedServer(t testing.TB, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

func readEmbedReq(t testing.TB, r *http.Request) embedReq {
	t.Helper()
	var req embedReq
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		t.Errorf("decode request: %v", err)
	}
	return req
}

// writeEmbeddings answers with items and a usage of one token per input.
func writeEmbeddings(w http.ResponseWriter, items []embedItem) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"object": "list",
		"data":   items,
		"model":  "emb",
		"usage":  map[string]int{"prompt_tokens": len(items), "total_tokens": len(items)},
	})
}

func idx(i int) *int { return &i }

// indexVectors answers text "tN" with the vector [N, 1], items in reverse
// order, so that the client must reorder them by index.
func indexVectors(t testing.TB, req embedReq) []embedItem {
	items := make([]embedItem, len(req.Input))
	for i, text := range req.Input {
		n, err := strconv.Atoi(strings.TrimPrefix(text, "t"))
		if err != nil {
			t.Errorf("unexpected input %q", text)
		}
		items[len(items)-1-i] = embedItem{Index: idx(i), Embedding: []float32{float32(n), 1}}
	}
	return items
}

func numberedTexts(n int) []string {
	texts := make([]string, n)
	for i := range texts {
		texts[i] = "t" + strconv.Itoa(i)
	}
	return texts
}

func newTestEmbedder(t testing.TB, cfg openai.EmbedderConfig) *openai.Embedder {
	t.Helper()
	if cfg.Model == "" {
		cfg.Model = "emb"
	}
	if cfg.APIKeyEnv == "" {
		cfg.APIKeyEnv = embedUnsetKeyEnv
	}
	e, err := openai.NewEmbedder(cfg)
	if err != nil {
		t.Fatalf("NewOpenAIEmbedder: %v", err)
	}
	return e
}

// checkEmbedError asserts err is an *lm.Error of exactly the kind want that
// does not reveal the test key.
func checkEmbedError(t *testing.T, err error, want error) *lm.Error {
	t.Helper()
	var e *lm.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *lm.Error", err, err)
	}
	for _, k := range embedKinds {
		if got := errors.Is(err, k); got != (k == want) {
			t.Errorf("errors.Is(err, %v) = %v; err = %v", k, got, err)
		}
	}
	if e.Model != "emb" {
		t.Errorf("Model = %q, want %q", e.Model, "emb")
	}
	if strings.Contains(err.Error(), embedTestKey) {
		t.Errorf("error %q reveals the API key", err)
	}
	return e
}

func TestNewOpenAIEmbedder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     openai.EmbedderConfig
		wantErr string
	}{
		{"defaults", openai.EmbedderConfig{Model: "emb"}, ""},
		{"empty model", openai.EmbedderConfig{Model: " "}, "model is empty"},
		{"relative url", openai.EmbedderConfig{Model: "emb", BaseURL: "/v1"}, "not an absolute http or https url"},
		{"ftp url", openai.EmbedderConfig{Model: "emb", BaseURL: "ftp://host/v1"}, "not an absolute http or https url"},
		{"negative dimensions", openai.EmbedderConfig{Model: "emb", Dimensions: -1}, "dimensions -1 is negative"},
		{"negative batch", openai.EmbedderConfig{Model: "emb", BatchSize: -2}, "batch size -2 is negative"},
		{"negative concurrency", openai.EmbedderConfig{Model: "emb", MaxConcurrentBatches: -3}, "max concurrent batches -3 is negative"},
		{"url credentials hidden", openai.EmbedderConfig{Model: "emb", BaseURL: "gopher://user:" + embedTestKey + "@host"}, "not an absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.APIKeyEnv = embedUnsetKeyEnv
			e, err := openai.NewEmbedder(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if e.EmbeddingModel() != tt.cfg.Model {
					t.Errorf("EmbeddingModel = %q", e.EmbeddingModel())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), embedTestKey) {
				t.Errorf("error %q reveals credentials", err)
			}
		})
	}
}

func TestOpenAIEmbedderRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  openai.EmbedderConfig
		want string // request body
	}{
		{"plain", openai.EmbedderConfig{}, `{"model":"emb","input":["t0","t1"],"encoding_format":"float"}`},
		{"dimensions", openai.EmbedderConfig{Dimensions: 2}, `{"model":"emb","input":["t0","t1"],"dimensions":2,"encoding_format":"float"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				mu     sync.Mutex
				path   string
				header http.Header
				body   []byte
			)
			base := embedServer(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				path, header, body = r.URL.Path, r.Header.Clone(), b
				mu.Unlock()
				var req embedReq
				_ = json.Unmarshal(b, &req)
				writeEmbeddings(w, indexVectors(t, req))
			})
			cfg := tt.cfg
			cfg.BaseURL = base + "/" // a trailing slash is dropped
			cfg.APIKey = embedTestKey
			cfg.Headers = map[string]string{"X-Team": "retrieval"}
			e := newTestEmbedder(t, cfg)
			vecs, usage, err := e.Embed(t.Context(), []string{"t0", "t1"})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([][]float32{{0, 1}, {1, 1}}, vecs); diff != "" {
				t.Errorf("vectors (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(lm.Usage{PromptTokens: 2, TotalTokens: 2}, usage); diff != "" {
				t.Errorf("usage (-want +got):\n%s", diff)
			}
			mu.Lock()
			defer mu.Unlock()
			if path != "/v1/embeddings" {
				t.Errorf("path = %q", path)
			}
			if string(body) != tt.want {
				t.Errorf("body = %s\nwant   %s", body, tt.want)
			}
			for k, want := range map[string]string{
				"Authorization": "Bearer " + embedTestKey,
				"Content-Type":  "application/json",
				"X-Team":        "retrieval",
			} {
				if got := header.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			if !strings.HasPrefix(header.Get("User-Agent"), "dspex/") {
				t.Errorf("User-Agent = %q", header.Get("User-Agent"))
			}
		})
	}
}

func TestOpenAIEmbedderEmptyInput(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	base := embedServer(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	e := newTestEmbedder(t, openai.EmbedderConfig{BaseURL: base})
	for _, texts := range [][]string{nil, {}} {
		vecs, usage, err := e.Embed(t.Context(), texts)
		if vecs != nil || usage != (lm.Usage{}) || err != nil {
			t.Errorf("Embed(%#v) = %v, %v, %v; want nil, zero usage, nil", texts, vecs, usage, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests sent for no texts", n)
	}
}

// TestOpenAIEmbedderBatchOrder sends 600 texts in batches of 256 and
// answers the batches in reverse order of arrival, each with its items
// reversed.
func TestOpenAIEmbedderBatchOrder(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		sizes   []int
		arrived = make(chan struct{}, 3)
	)
	release := [3]chan struct{}{make(chan struct{}), make(chan struct{}), make(chan struct{})}
	answered := make(chan int, 3)
	base := embedServer(t, func(w http.ResponseWriter, r *http.Request) {
		req := readEmbedReq(t, r)
		b := 0
		if n, err := strconv.Atoi(strings.TrimPrefix(req.Input[0], "t")); err == nil {
			b = n / 256
		}
		mu.Lock()
		sizes = append(sizes, len(req.Input))
		mu.Unlock()
		arrived <- struct{}{}
		select {
		case <-release[b]:
		case <-r.Context().Done():
			return
		}
		writeEmbeddings(w, indexVectors(t, req))
		answered <- b
	})
	e := newTestEmbedder(t, openai.EmbedderConfig{BaseURL: base})
	go func() {
		for range 3 {
			<-arrived
		}
		// All three batches are in flight: answer the last first.
		for b := 2; b >= 0; b-- {
			close(release[b])
			<-answered
		}
	}()
	texts := numberedTexts(600)
	vecs, usage, err := e.Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(vecs) != len(texts) {
		t.Fatalf("%d vectors for %d texts", len(vecs), len(texts))
	}
	for i, v := range vecs {
		if len(v) != 2 || v[0] != float32(i) {
			t.Fatalf("vector %d = %v, want [%d 1]", i, v, i)
		}
	}
	if want := (lm.Usage{PromptTokens: 600, TotalTokens: 600}); usage != want {
		t.Errorf("usage = %+v, want %+v", usage, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) != 3 {
		t.Fatalf("%d requests, want 3", len(sizes))
	}
	total := 0
	for _, s := range sizes {
		if s != 256 && s != 88 {
			t.Errorf("batch of %d texts", s)
		}
		total += s
	}
	if total != 600 {
		t.Errorf("batches hold %d texts, want 600", total)
	}
}

func TestOpenAIEmbedderConcurrencyBound(t *testing.T) {
	t.Parallel()
	var inFlight, peak, requests atomic.Int32
	base := embedServer(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		requests.Add(1)
		req := readEmbedReq(t, r)
		time.Sleep(2 * time.Millisecond)
		writeEmbeddings(w, indexVectors(t, req))
	})
	e := newTestEmbedder(t, openai.EmbedderConfig{BaseURL: base, BatchSize: 3, MaxConcurrentBatches: 2})
	vecs, _, err := e.Embed(t.Context(), numberedTexts(29))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vecs {
		if v[0] != float32(i) {
			t.Fatalf("vector %d = %v", i, v)
		}
	}
	if n := requests.Load(); n != 10 {
		t.Errorf("%d requests, want 10", n)
	}
	if p := peak.Load(); p > 2 {
		t.Errorf("%d requests in flight at once, want at most 2", p)
	}
}

// TestOpenAIEmbedderBatchFailureCancels fails one batch while the others
// hang: Embed must return that failure promptly, and the hanging requests
// must be cancelled.
func TestOpenAIEmbedderBatchFailureCancels(t *testing.T) {
	t.Parallel()
	var hung sync.WaitGroup
	hung.Add(2)
	cancelled := make(chan struct{}, 2)
	base := embedServer(t, func(w http.ResponseWriter, r *http.Request) {
		req := readEmbedReq(t, r)
		if req.Input[0] == "t2" {
			hung.Wait() // fail only once both others are in flight
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"error":{"message":"boom"}}`)
			return
		}
		hung.Done()
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(30 * time.Second):
		}
	})
	e := newTestEmbedder(t, openai.EmbedderConfig{BaseURL: base, BatchSize: 2, MaxConcurrentBatches: 3})
	start := time.Now()
	_, _, err := e.Embed(t.Context(), numberedTexts(6))
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("Embed took %s after a batch failed", el)
	}
	if got := checkEmbedError(t, err, lm.ErrServer); got.Message != "boom" {
		t.Errorf("Message = %q, want the failing batch's", got.Message)
	}
	for range 2 {
		select {
		case <-cancelled:
		case <-time.After(10 * time.Second):
			t.Fatal("a hanging batch was not cancelled")
		}
	}
}

func TestOpenAIEmbedderHTTPErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		want       error
		retryAfter time.Duration
	}{
		{"unauthorized", 401, nil, `{"error":{"message":"bad key ` + embedTestKey + `"}}`, lm.ErrAuth, 0},
		{"not found", 404, nil, `{"error":{"message":"no such model"}}`, lm.ErrNotFound, 0},
		{"rate limited", 429, map[string]string{"Retry-After": "3"}, `{"error":{"message":"slow down"}}`, lm.ErrRateLimited, 3 * time.Second},
		{"too long", 400, nil, `{"error":{"message":"This model's maximum context length is 8192 tokens"}}`, lm.ErrContextWindow, 0},
		{"bad request", 400, nil, `{"error":{"message":"input must not be empty"}}`, lm.ErrBadRequest, 0},
		{"server", 503, map[string]string{"Retry-After-Ms": "250"}, `overloaded`, lm.ErrServer, 250 * time.Millisecond},
		{"request timeout", 408, nil, ``, lm.ErrTimeout, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := embedServer(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			e := newTestEmbedder(t, openai.EmbedderConfig{BaseURL: base, APIKey: embedTestKey})
			_, _, err := e.Embed(t.Context(), []string{"a"})
			got := checkEmbedError(t, err, tt.want)
			if got.StatusCode != tt.status {
				t.Errorf("StatusCode = %d, want %d", got.StatusCode, tt.status)
			}
			if got.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %s, want %s", got.RetryAfter, tt.retryAfter)
			}
			if got.URL != base {
				t.Errorf("URL = %q, want %q", got.URL, base)
			}
		})
	}
}

func TestOpenAIEmbedderCancellation(t *testing.T) {
	t.Parallel()
	hanging := func(t *testing.T) (string, <-chan struct{}) {
		hit := make(chan struct{}, 8)
		done := make(chan struct{})
		base := embedServer(t, func(w http.ResponseWriter, r *http.Request) {
			hit <- struct{}{}
			select {
			case <-r.Context().Done():
			case <-done:
			}
		})
		t.Cleanup(func() { close(done) })
		return base, hit
	}
	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		base, hit := hanging(t)
		e := newTestEmbedder(t, openai.EmbedderConfig{BaseURL: base, BatchSize: 1})
		ctx, cancel := context.WithCancel(t.Context())
		go func() { <-hit; cancel() }()
		_, _, err := e.Embed(ctx, []string{"a", "b", "c"})
		checkEmbedError(t, err, lm.ErrCanceled)
	})
	t.Run("deadline", func(t *testing.T) {
		t.Parallel()
		base, _ := hanging(t)
		e := newTestEmbedder(t, openai.EmbedderConfig{BaseURL: base})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, _, err := e.Embed(ctx, []string{"a"})
		checkEmbedError(t, err, lm.ErrTimeout)
	})
	t.Run("configured timeout", func(t *testing.T) {
		t.Parallel()
		base, _ := hanging(t)
		e := newTestEmbedder(t, openai.EmbedderConfig{BaseURL: base, Timeout: 50 * time.Millisecond})
		_, _, err := e.Embed(t.Context(), []string{"a"})
		checkEmbedError(t, err, lm.ErrTimeout)
	})
	t.Run("done before call", func(t *testing.T) {
		t.Parallel()
		base, hit := hanging(t)
		e := newTestEmbedder(t, openai.EmbedderConfig{BaseURL: base})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, _, err := e.Embed(ctx, []string{"a"})
		checkEmbedError(t, err, lm.ErrCanceled)
		if len(hit) != 0 {
			t.Error("a request was sent with a done context")
		}
	})
}

func base64Vector(v ...float32) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return base64.StdEncoding.EncodeToString(b)
}

func TestOpenAIEmbedderResponses(t *testing.T) {
	t.Parallel()
	const two = `{"data":[%s],"usage":{"prompt_tokens":2,"total_tokens":2}}`
	tests := []struct {
		name    string
		dims    int
		batch   int    // BatchSize; 0 means default
		body    string // answer to every request; %s-free
		bodies  func(req embedReq) string
		want    [][]float32
		wantMsg string // for ErrBadResponse
	}{
		{name: "in order", body: fmt.Sprintf(two, `{"index":0,"embedding":[1,2]},{"index":1,"embedding":[3,4]}`),
			want: [][]float32{{1, 2}, {3, 4}}},
		{name: "reordered", body: fmt.Sprintf(two, `{"index":1,"embedding":[3,4]},{"index":0,"embedding":[1,2]}`),
			want: [][]float32{{1, 2}, {3, 4}}},
		{name: "no index means in order", body: fmt.Sprintf(two, `{"embedding":[1,2]},{"embedding":[3,4]}`),
			want: [][]float32{{1, 2}, {3, 4}}},
		{name: "base64", body: fmt.Sprintf(two, `{"index":0,"embedding":"`+base64Vector(1, 2)+`"},{"index":1,"embedding":"`+base64Vector(3, 4)+`"}`),
			want: [][]float32{{1, 2}, {3, 4}}},
		{name: "dimensions honoured", dims: 2, body: fmt.Sprintf(two, `{"index":0,"embedding":[1,2]},{"index":1,"embedding":[3,4]}`),
			want: [][]float32{{1, 2}, {3, 4}}},
		{name: "not json", body: `<html>oops</html>`, wantMsg: "decode embeddings"},
		{name: "too few", body: fmt.Sprintf(two, `{"index":0,"embedding":[1,2]}`), wantMsg: "1 embeddings for 2 inputs"},
		{name: "too many", body: fmt.Sprintf(two, `{"index":0,"embedding":[1,2]},{"index":1,"embedding":[3,4]},{"index":2,"embedding":[5,6]}`), wantMsg: "3 embeddings for 2 inputs"},
		{name: "error object", body: `{"error":{"message":"upstream failed","code":"502"}}`, wantMsg: "0 embeddings for 2 inputs: upstream failed (code 502)"},
		{name: "index out of range", body: fmt.Sprintf(two, `{"index":0,"embedding":[1,2]},{"index":2,"embedding":[3,4]}`), wantMsg: "index 2 outside [0, 2)"},
		{name: "negative index", body: fmt.Sprintf(two, `{"index":-1,"embedding":[1,2]},{"index":1,"embedding":[3,4]}`), wantMsg: "index -1 outside"},
		{name: "duplicate index", body: fmt.Sprintf(two, `{"index":1,"embedding":[1,2]},{"index":1,"embedding":[3,4]}`), wantMsg: "index 1 appears twice"},
		{name: "unequal lengths", body: fmt.Sprintf(two, `{"index":0,"embedding":[1,2]},{"index":1,"embedding":[3,4,5]}`), wantMsg: "embedding 1 has 3 dimensions, want 2"},
		{name: "empty vector", body: fmt.Sprintf(two, `{"index":0,"embedding":[]},{"index":1,"embedding":[]}`), wantMsg: "embedding 0 is empty"},
		{name: "null vector", body: fmt.Sprintf(two, `{"index":0,"embedding":null},{"index":1,"embedding":[1]}`), wantMsg: "embedding 0 is empty"},
		{name: "not numbers", body: fmt.Sprintf(two, `{"index":0,"embedding":["a"]},{"index":1,"embedding":[1]}`), wantMsg: "embedding 0: decode vector"},
		{name: "overflows float32", body: fmt.Sprintf(two, `{"index":0,"embedding":[1e39]},{"index":1,"embedding":[1]}`), wantMsg: "embedding 0: decode vector"},
		{name: "bad base64", body: fmt.Sprintf(two, `{"index":0,"embedding":"!!"},{"index":1,"embedding":[1]}`), wantMsg: "decode base64 vector"},
		{name: "ragged base64", body: fmt.Sprintf(two, `{"index":0,"embedding":"AAAAAAA="},{"index":1,"embedding":[1]}`), wantMsg: "not a whole number of float32s"},
		{name: "nan base64", body: fmt.Sprintf(two, `{"index":0,"embedding":"`+base64Vector(float32(math.NaN()))+`"},{"index":1,"embedding":[1]}`), wantMsg: "component 0 is NaN"},
		{name: "dimensions ignored", dims: 3, body: fmt.Sprintf(two, `{"index":0,"embedding":[1,2]},{"index":1,"embedding":[3,4]}`), wantMsg: "embedding 0 has 2 dimensions, want 3"},
		{name: "batches disagree", batch: 1, bodies: func(req embedReq) string {
			if req.Input[0] == "a" {
				return `{"data":[{"index":0,"embedding":[1,2]}]}`
			}
			return `{"data":[{"index":0,"embedding":[1,2,3]}]}`
		}, wantMsg: "embedding 1 has 3 dimensions, embedding 0 has 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := embedServer(t, func(w http.ResponseWriter, r *http.Request) {
				req := readEmbedReq(t, r)
				body := tt.body
				if tt.bodies != nil {
					body = tt.bodies(req)
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, body)
			})
			e := newTestEmbedder(t, openai.EmbedderConfig{BaseURL: base, Dimensions: tt.dims, BatchSize: tt.batch})
			vecs, _, err := e.Embed(t.Context(), []string{"a", "b"})
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, vecs); diff != "" {
					t.Errorf("vectors (-want +got):\n%s", diff)
				}
				return
			}
			got := checkEmbedError(t, err, lm.ErrBadResponse)
			if !strings.Contains(got.Message, tt.wantMsg) {
				t.Errorf("Message = %q, want it to contain %q", got.Message, tt.wantMsg)
			}
			if vecs != nil {
				t.Errorf("vectors returned with an error: %v", vecs)
			}
		})
	}
}

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return dot / math.Sqrt(na*nb)
}

// TestOpenAIEmbedderSimulator embeds through the DSPEx simulator: vectors
// are deterministic, batching does not change them, and texts sharing
// words are closer than texts that share none.
func TestOpenAIEmbedderSimulator(t *testing.T) {
	t.Parallel()
	srv, err := lmtest.Start(t.Context(), lmtest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	texts := []string{
		"The cat sat on the mat.",
		"A cat sat on a mat!",
		"Quarterly revenue grew in emerging markets.",
		"Revenue in emerging markets grew this quarter.",
		"Photosynthesis turns light into sugar.",
	}
	whole := newTestEmbedder(t, openai.EmbedderConfig{BaseURL: srv.URL()})
	first, usage, err := whole.Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if usage.PromptTokens <= 0 || usage.TotalTokens != usage.PromptTokens {
		t.Errorf("usage = %+v", usage)
	}
	if len(first) != len(texts) || len(first[0]) != lmtest.DefaultEmbeddingDims {
		t.Fatalf("got %d vectors of %d dimensions", len(first), len(first[0]))
	}
	again, _, err := whole.Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("second call differs (-first +second):\n%s", diff)
	}
	batched := newTestEmbedder(t, openai.EmbedderConfig{BaseURL: srv.URL(), BatchSize: 2, MaxConcurrentBatches: 2})
	split, _, err := batched.Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, split); diff != "" {
		t.Errorf("batched call differs (-whole +batched):\n%s", diff)
	}
	for _, pair := range [][3]int{{0, 1, 2}, {0, 1, 4}, {2, 3, 0}, {2, 3, 4}} {
		near, far := cosine(first[pair[0]], first[pair[1]]), cosine(first[pair[0]], first[pair[2]])
		if near <= far {
			t.Errorf("cos(%q, %q) = %.3f, not above cos(%q, %q) = %.3f",
				texts[pair[0]], texts[pair[1]], near, texts[pair[0]], texts[pair[2]], far)
		}
	}
	short := newTestEmbedder(t, openai.EmbedderConfig{BaseURL: srv.URL(), Dimensions: 16})
	vecs, _, err := short.Embed(t.Context(), texts[:1])
	if err != nil {
		t.Fatal(err)
	}
	if len(vecs[0]) != 16 {
		t.Errorf("Dimensions 16 gave %d dimensions", len(vecs[0]))
	}
}
