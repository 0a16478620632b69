package openai

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dspex/dspex/core/lm"
)

// Defaults for EmbedderConfig.
const (
	// DefaultEmbeddingBatchSize is how many texts go into one request when
	// EmbedderConfig.BatchSize is 0.
	DefaultEmbeddingBatchSize = 256
	// DefaultEmbeddingConcurrency is how many requests one Embed call keeps
	// in flight when EmbedderConfig.MaxConcurrentBatches is 0.
	DefaultEmbeddingConcurrency = 4
)

// errBatchFailed is the cancellation cause given to the other batches of an
// Embed call when one batch fails.
var errBatchFailed = errors.New("openai: another embedding batch failed")

// EmbedderConfig configures an OpenAI-compatible embeddings client.
// Only Model is required; every other zero value has the default documented
// on its field. The connection fields mean what they mean in Config.
type EmbedderConfig struct {
	// Model is the embedding model, for example "text-embedding-3-small".
	// Required.
	Model string
	// BaseURL is the API root that "/embeddings" is appended to. Default
	// DefaultBaseURL. It must be an absolute http or https URL.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <key>"; it is never logged
	// and never appears in errors. When empty it is read, once, from the
	// environment variable named by APIKeyEnv.
	APIKey string
	// APIKeyEnv names the environment variable holding the API key when
	// APIKey is empty. Default DefaultAPIKeyEnv. When neither yields a
	// key, requests carry no Authorization header.
	APIKeyEnv string
	// Headers are added to every request. An "Authorization" entry replaces
	// the bearer key.
	Headers map[string]string
	// Timeout bounds each request (one batch), from sending to the last byte
	// of the response; a passed timeout is an ErrTimeout. 0 means
	// DefaultTimeout; a negative value means no bound other than the
	// caller's context.
	Timeout time.Duration
	// Dimensions, when positive, is sent as "dimensions" (models that can
	// shorten their vectors, such as text-embedding-3-*), and every vector
	// returned must have that length. 0 leaves the model's own length.
	Dimensions int
	// BatchSize is the most texts sent in one request. Default
	// DefaultEmbeddingBatchSize. (OpenAI accepts at most 2048.)
	BatchSize int
	// MaxConcurrentBatches bounds the requests one Embed call has in flight
	// at once. Default DefaultEmbeddingConcurrency. Concurrent Embed calls
	// each have their own bound.
	MaxConcurrentBatches int
	// HTTPClient sends the requests. nil means a client of its own with a
	// pooled transport, as for Config.HTTPClient.
	HTTPClient *http.Client
}

// Embedder is an Embedder speaking the OpenAI embeddings API
// (POST {base}/embeddings) over net/http, which vLLM, Ollama, llama.cpp,
// LM Studio and the DSPEx simulator also serve. It is built once by
// NewEmbedder and is safe for concurrent use.
//
// It shares the chat client's transport set-up, headers, API-key handling
// and error mapping: every failure is an *Error whose Kind is one of the
// package's sentinels, classified exactly as Client.Complete classifies
// it. Like the chat client it never retries; retrying is a separate layer.
type Embedder struct {
	// conn carries what the chat client and the embedder have in common:
	// the HTTP client, headers, redacted URL, key (for scrubbing) and
	// timeout, and with them the error-mapping methods.
	conn       *Client
	model      string
	endpoint   string
	dimensions int
	batchSize  int
	workers    int
}

var _ lm.Embedder = (*Embedder)(nil)

// NewEmbedder returns an embeddings client for cfg. It fails when
// cfg.Model is empty, cfg.BaseURL is not an absolute http(s) URL, or a
// numeric field is negative. It reads the API key from the environment
// here, once, and never again.
func NewEmbedder(cfg EmbedderConfig) (*Embedder, error) {
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, errors.New("lm: new openai embedder: model is empty")
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"dimensions", cfg.Dimensions}, {"batch size", cfg.BatchSize}, {"max concurrent batches", cfg.MaxConcurrentBatches}} {
		if f.v < 0 {
			return nil, fmt.Errorf("lm: new openai embedder %q: %s %d is negative", cfg.Model, f.name, f.v)
		}
	}
	conn, err := New(Config{
		Model:      cfg.Model,
		BaseURL:    cfg.BaseURL,
		APIKey:     cfg.APIKey,
		APIKeyEnv:  cfg.APIKeyEnv,
		Headers:    cfg.Headers,
		Timeout:    cfg.Timeout,
		HTTPClient: cfg.HTTPClient,
	})
	if err != nil {
		return nil, fmt.Errorf("lm: new openai embedder: %w", err)
	}
	e := &Embedder{
		conn:       conn,
		model:      cfg.Model,
		endpoint:   lm.JoinURL(cmp.Or(cfg.BaseURL, DefaultBaseURL), "/embeddings"),
		dimensions: cfg.Dimensions,
		batchSize:  cfg.BatchSize,
		workers:    cfg.MaxConcurrentBatches,
	}
	if e.batchSize == 0 {
		e.batchSize = DefaultEmbeddingBatchSize
	}
	if e.workers == 0 {
		e.workers = DefaultEmbeddingConcurrency
	}
	return e, nil
}

// EmbeddingModel returns the configured model name.
func (e *Embedder) EmbeddingModel() string { return e.model }

// EmbeddingDimensions returns the configured vector length, 0 when the
// model's own length is used. With EmbeddingModel it is what an embedding
// cache keys on (see EmbeddingCacheKey).
func (e *Embedder) EmbeddingDimensions() int { return e.dimensions }

// Embed returns one vector per text, in the order of texts, and the tokens
// the provider counted (prompt and total; embeddings have no completion
// tokens). Texts are sent in batches of BatchSize, up to
// MaxConcurrentBatches at once; the first batch to fail cancels the others,
// every request has ended by the time Embed returns, and the error is that
// first failure. No texts means no request: nil, zero usage and no error.
//
// Failures are *Error values classified as by Client.Complete (HTTP
// statuses, ErrCanceled, ErrTimeout, ErrConnection). A 2xx answer is an
// ErrBadResponse unless it holds exactly one vector per input, each index
// once, all of one non-zero length (Dimensions, when set). Vectors may come
// as JSON numbers or base64 little-endian float32s.
func (e *Embedder) Embed(ctx context.Context, texts []string) ([][]float32, lm.Usage, error) {
	if ctx == nil {
		return nil, lm.Usage{}, &lm.Error{Kind: lm.ErrBadRequest, Model: e.model, URL: e.conn.URL(), Message: "nil context"}
	}
	if len(texts) == 0 {
		return nil, lm.Usage{}, nil
	}
	if ctx.Err() != nil {
		return nil, lm.Usage{}, e.conn.ContextError(ctx, e.model)
	}
	out := make([][]float32, len(texts))
	batches := (len(texts) + e.batchSize - 1) / e.batchSize
	usages := make([]lm.Usage, batches)
	run := func(ctx context.Context, b int) error {
		lo := b * e.batchSize
		hi := min(lo+e.batchSize, len(texts))
		u, err := e.embedBatch(ctx, texts[lo:hi], out[lo:hi])
		usages[b] = u
		return err
	}

	if batches == 1 {
		if err := run(ctx, 0); err != nil {
			return nil, lm.Usage{}, err
		}
	} else if err := e.runBatches(ctx, batches, run); err != nil {
		return nil, lm.Usage{}, err
	}

	dim := len(out[0])
	for i, v := range out {
		if len(v) != dim {
			return nil, lm.Usage{}, &lm.Error{Kind: lm.ErrBadResponse, Model: e.model, URL: e.conn.URL(),
				Message: fmt.Sprintf("embedding %d has %d dimensions, embedding 0 has %d", i, len(v), dim)}
		}
	}
	var usage lm.Usage
	for _, u := range usages {
		usage = usage.Add(u)
	}
	return out, usage, nil
}

// runBatches runs run for batches 0..n-1 on at most e.workers goroutines,
// all of which have returned when it does. The first error cancels the
// context the others run under and is returned.
func (e *Embedder) runBatches(ctx context.Context, n int, run func(context.Context, int) error) error {
	gctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next     atomic.Int64
		done     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(e.workers, n) {
		wg.Go(func() {
			for {
				b := int(next.Add(1) - 1)
				if b >= n || gctx.Err() != nil {
					return
				}
				if err := run(gctx, b); err != nil {
					errOnce.Do(func() {
						firstErr = err
						cancel(errBatchFailed)
					})
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	// Workers stop before starting a batch once the caller's context has
	// ended, which leaves batches undone but no error behind.
	if done.Load() != int64(n) {
		return e.conn.ContextError(ctx, e.model)
	}
	return nil
}

// embeddingRequest is the JSON body of an embeddings request.
type embeddingRequest struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	Dimensions     int      `json:"dimensions,omitempty"`
	EncodingFormat string   `json:"encoding_format"`
}

// embeddingResponse is the part of an embeddings answer that DSPEx reads.
type embeddingResponse struct {
	Data []struct {
		Index     *int            `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Usage lm.Usage        `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// embedBatch sends one request for texts and writes their vectors into dst
// (len(dst) == len(texts)).
func (e *Embedder) embedBatch(ctx context.Context, texts []string, dst [][]float32) (lm.Usage, error) {
	body, err := json.Marshal(embeddingRequest{Model: e.model, Input: texts, Dimensions: e.dimensions, EncodingFormat: "float"})
	if err != nil {
		return lm.Usage{}, &lm.Error{Kind: lm.ErrBadRequest, Model: e.model, URL: e.conn.URL(), Message: "encode request: " + err.Error(), Err: err}
	}
	callCtx, cancel := e.conn.CallContext(ctx)
	defer cancel()
	httpReq, err := http.NewRequestWithContext(callCtx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		return lm.Usage{}, &lm.Error{Kind: lm.ErrBadRequest, Model: e.model, URL: e.conn.URL(), Message: "build request: " + err.Error(), Err: err}
	}
	httpReq.Header = e.conn.headers.Clone()
	httpRes, err := e.conn.client.Do(httpReq)
	if err != nil {
		return lm.Usage{}, e.conn.callError(ctx, callCtx, e.model, nil, err)
	}
	defer httpRes.Body.Close()
	if httpRes.StatusCode >= 400 {
		return lm.Usage{}, e.conn.statusError(e.model, httpRes)
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer putBuf(buf)
	if _, err := buf.ReadFrom(io.LimitReader(httpRes.Body, maxResponseBody+1)); err != nil {
		return lm.Usage{}, e.conn.callError(ctx, callCtx, e.model, httpRes, err)
	}
	raw := buf.Bytes()
	if len(raw) > maxResponseBody {
		return lm.Usage{}, e.badResponse(httpRes, fmt.Sprintf("response body larger than %d bytes", maxResponseBody), nil)
	}
	return e.parse(raw, httpRes, dst)
}

// parse decodes and checks a 2xx body, filling dst in index order.
func (e *Embedder) parse(raw []byte, httpRes *http.Response, dst [][]float32) (lm.Usage, error) {
	var er embeddingResponse
	if err := json.Unmarshal(raw, &er); err != nil {
		return lm.Usage{}, e.badResponse(httpRes, "decode embeddings: "+err.Error()+": "+e.conn.clip(raw), err)
	}
	if len(er.Data) != len(dst) {
		msg := fmt.Sprintf("%d embeddings for %d inputs", len(er.Data), len(dst))
		// Gateways may answer 200 with an error object.
		if text, ok := lm.ErrorText(er.Error); ok && len(er.Data) == 0 {
			msg += ": " + e.conn.Scrub(text)
		}
		return lm.Usage{}, e.badResponse(httpRes, msg, nil)
	}
	want := e.dimensions
	seen := make([]bool, len(dst))
	for pos, d := range er.Data {
		i := pos // a server that leaves out "index" answers in order
		if d.Index != nil {
			i = *d.Index
		}
		if i < 0 || i >= len(dst) {
			return lm.Usage{}, e.badResponse(httpRes, fmt.Sprintf("embedding index %d outside [0, %d)", i, len(dst)), nil)
		}
		if seen[i] {
			return lm.Usage{}, e.badResponse(httpRes, fmt.Sprintf("embedding index %d appears twice", i), nil)
		}
		seen[i] = true
		v, err := decodeVector(d.Embedding)
		if err != nil {
			return lm.Usage{}, e.badResponse(httpRes, fmt.Sprintf("embedding %d: %v", i, err), err)
		}
		if len(v) == 0 {
			return lm.Usage{}, e.badResponse(httpRes, fmt.Sprintf("embedding %d is empty", i), nil)
		}
		if want == 0 {
			want = len(v)
		}
		if len(v) != want {
			return lm.Usage{}, e.badResponse(httpRes, fmt.Sprintf("embedding %d has %d dimensions, want %d", i, len(v), want), nil)
		}
		dst[i] = v
	}
	return er.Usage, nil
}

// decodeVector reads an embedding given as an array of numbers or, as
// encoding_format "base64" returns it, a base64 string of little-endian
// float32s (some servers send that whatever was asked).
func decodeVector(raw json.RawMessage) ([]float32, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("decode base64 vector: %w", err)
		}
		if len(b)%4 != 0 {
			return nil, fmt.Errorf("base64 vector of %d bytes is not a whole number of float32s", len(b))
		}
		v := float32sFromLE(b)
		return v, checkFinite(v)
	}
	var v []float32
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("decode vector: %w", err)
	}
	return v, nil
}

// checkFinite rejects NaN and infinite components, which JSON numbers cannot
// express but base64 floats can.
func checkFinite(v []float32) error {
	for j, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("component %d is %v", j, x)
		}
	}
	return nil
}

func (e *Embedder) badResponse(httpRes *http.Response, msg string, err error) *lm.Error {
	return &lm.Error{Kind: lm.ErrBadResponse, Model: e.model, URL: e.conn.URL(), StatusCode: httpRes.StatusCode, Message: msg, Err: err}
}

// float32sFromLE reads little-endian float32s (len(b) a multiple of 4), the
// form of base64 vectors.
func float32sFromLE(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}
