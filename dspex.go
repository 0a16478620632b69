// Package dspex is the front door for Go programs: one call gives an LM
// endpoint with the full execution stack that the dspex command uses, and
// the context helpers that carry it to modules.
//
//	model, err := dspex.NewLM("http://127.0.0.1:8000/v1", "my-model")
//	if err != nil { ... }
//	defer model.Close()
//	ctx = dspex.WithLM(ctx, model)
//	qa := module.NewChainOfThought(signature.MustParse("question -> answer"))
//	pred, err := qa.Forward(ctx, dspex.Inputs{"question": "What is the capital of France?"})
//
// The base URL is always given: an OpenAI-compatible server (vLLM, Ollama,
// llama.cpp, LM Studio, OpenRouter, dspex mock-lm) or OpenAIBaseURL for
// OpenAI itself, so that no program talks to a public endpoint by accident.
//
// By default an LM has, outermost first: usage and cost metering, an
// in-memory response cache, collapse of identical in-flight requests, a
// concurrency pool that lets the caller's concurrency through (1024 calls
// at once, a bounded queue behind them), retries with backoff that honour
// Retry-After, and a circuit breaker — the layers of core/lm, with the
// defaults documented there. Options change them; Bare gives the plain
// client with no layers at all, as an explicit choice.
//
// Everything here is a thin layer over the core packages (core/lm,
// core/module, core/cache): programs that need more control use those
// directly.
package dspex

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"time"

	"github.com/dspex/dspex/core/cache"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/module"
)

// OpenAIBaseURL is the base URL of OpenAI's own API, for NewLM.
const OpenAIBaseURL = openai.DefaultBaseURL

// Inputs are a module's named input values.
type Inputs = module.Inputs

// WithLM returns a context whose module calls use model (unless a
// predictor holds an LM of its own, which wins, as in DSPy).
func WithLM(ctx context.Context, model lm.LM) context.Context {
	return module.WithLM(ctx, model)
}

// WithParams returns a context whose LM calls use p (temperature,
// max_tokens, …), merged over the LM's own defaults.
func WithParams(ctx context.Context, p lm.Params) context.Context {
	return module.WithParams(ctx, p)
}

// LM is an OpenAI-compatible endpoint and model with its execution layers.
// It is an lm.LM, an lm.Streamer and an lm.ResponseFormatter; Close
// releases the response cache. Safe for concurrent use.
type LM struct {
	top interface {
		lm.LM
		lm.Streamer
		lm.ResponseFormatter
	}
	cache *cache.Cache
}

var (
	_ lm.LM                = (*LM)(nil)
	_ lm.Streamer          = (*LM)(nil)
	_ lm.ResponseFormatter = (*LM)(nil)
)

// Model returns the model requests go to.
func (m *LM) Model() string { return m.top.Model() }

// Complete sends one chat completion request through the layers.
func (m *LM) Complete(ctx context.Context, req *lm.Request) (*lm.Response, error) {
	return m.top.Complete(ctx, req)
}

// Stream sends one request and yields the answer as it arrives.
func (m *LM) Stream(ctx context.Context, req *lm.Request) iter.Seq2[lm.Delta, error] {
	return m.top.Stream(ctx, req)
}

// ResponseFormat is what the JSON adapter asks this endpoint for.
func (m *LM) ResponseFormat() lm.ResponseFormatMode { return m.top.ResponseFormat() }

// Close releases what the LM holds (the response cache). Calls after
// Close still work, without the cache's disk tier.
func (m *LM) Close() error {
	if m.cache == nil {
		return nil
	}
	return m.cache.Close()
}

// Stack returns the execution layers (pool statistics, breaker state), or
// nil for a Bare LM.
func (m *LM) Stack() *lm.Stack {
	s, _ := m.top.(*lm.Stack)
	return s
}

// Option changes how NewLM builds an LM.
type Option func(*options)

type options struct {
	client    openai.Config
	exec      lm.ExecConfig
	noCache   bool
	cachePath string
	bare      bool
}

// WithAPIKey sets the API key sent as a bearer token (default: the
// OPENAI_API_KEY variable; none when it is unset).
func WithAPIKey(key string) Option { return func(o *options) { o.client.APIKey = key } }

// WithAPIKeyEnv names the variable the API key is read from.
func WithAPIKeyEnv(name string) Option { return func(o *options) { o.client.APIKeyEnv = name } }

// WithHeaders adds HTTP headers to every request.
func WithHeaders(h map[string]string) Option { return func(o *options) { o.client.Headers = h } }

// WithTimeout bounds each request (default openai.DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.client.Timeout = d } }

// WithDefaults sets the sampling settings every request starts from.
func WithDefaults(p lm.Params) Option { return func(o *options) { o.client.Params = p } }

// WithResponseFormat chooses what the JSON adapter asks the server for
// (default lm.ResponseFormatAuto: decided from the model name, as DSPy
// does).
func WithResponseFormat(m lm.ResponseFormatMode) Option {
	return func(o *options) { o.client.ResponseFormat = m }
}

// WithHTTPClient sends requests through c.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client.HTTPClient = c } }

// WithPool bounds the calls in flight and the callers waiting (default:
// 1024 and 1024, so that the caller's concurrency decides).
func WithPool(p lm.PoolConfig) Option { return func(o *options) { o.exec.Pool = p } }

// WithRateLimit limits requests and tokens per minute (default none).
func WithRateLimit(r lm.RateLimitConfig) Option { return func(o *options) { o.exec.RateLimit = r } }

// WithRetry sets the retry policy (default lm.RetryConfig's).
func WithRetry(r lm.RetryConfig) Option { return func(o *options) { o.exec.Retry = r } }

// WithBreaker sets the circuit breaker (default lm.BreakerConfig's).
func WithBreaker(b lm.BreakerConfig) Option { return func(o *options) { o.exec.Breaker = b } }

// WithPrices prices the calls, in US dollars per million tokens.
func WithPrices(p lm.Prices) Option { return func(o *options) { o.exec.Prices = p } }

// WithCacheFile adds a disk tier to the response cache: an SQLite file
// shared by every process that opens it (cache.DefaultPath gives the one
// the dspex command uses).
func WithCacheFile(path string) Option { return func(o *options) { o.cachePath = path } }

// WithoutCache turns the response cache off: every call goes to the server.
func WithoutCache() Option { return func(o *options) { o.noCache = true } }

// Bare gives the plain client: one HTTP request per call, no cache, pool,
// retry or breaker. Options of those layers are then ignored.
func Bare() Option { return func(o *options) { o.bare = true } }

// ErrNoBaseURL is returned by NewLM for an empty base URL.
var ErrNoBaseURL = errors.New("dspex: base url is required (OpenAIBaseURL for OpenAI's own API)")

// NewLM returns model served at baseURL (an OpenAI-compatible API root such
// as "http://127.0.0.1:8000/v1"), with the full execution stack unless Bare
// is given. The caller closes it.
func NewLM(baseURL, model string, opts ...Option) (*LM, error) {
	if baseURL == "" {
		return nil, ErrNoBaseURL
	}
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	o.client.BaseURL, o.client.Model = baseURL, model
	client, err := openai.New(o.client)
	if err != nil {
		return nil, fmt.Errorf("dspex: %w", err)
	}
	if o.bare {
		return &LM{top: client}, nil
	}
	m := &LM{}
	exec := o.exec
	if !o.noCache {
		c, err := cache.Open(context.Background(), cache.Options{Path: o.cachePath})
		if err != nil {
			return nil, fmt.Errorf("dspex: open the response cache: %w", err)
		}
		m.cache = c
		exec.Cache = c.Store()
	}
	if exec.Hooks == nil {
		exec.Hooks = lm.EventHooks(nil)
	}
	m.top = lm.NewStack(client, exec)
	return m, nil
}
