package lm

import (
	"context"
	"iter"
)

// ExecConfig configures the execution layers around one provider endpoint
// and model. The zero value gives the documented defaults of each layer,
// no rate limit, no cache and no prices.
type ExecConfig struct {
	// Name identifies the endpoint and model (breaker name, logs);
	// default the model name.
	Name string
	// Pool bounds the calls in flight; the zero value lets
	// DefaultPoolSize (1024) run at once, so that the caller's own
	// concurrency, not the pool, decides how many calls the endpoint
	// sees. Set Pool.Size to protect an endpoint that takes fewer.
	Pool      PoolConfig
	RateLimit RateLimitConfig
	Retry     RetryConfig
	Breaker   BreakerConfig
	// Cache stores responses; nil disables caching.
	Cache ResponseStore
	// Prices price the calls; a model without a price costs "unknown".
	Prices Prices
	// NoCollapse turns off merging of identical in-flight requests.
	NoCollapse bool
	Hooks      *Hooks
}

// Stack is a provider wrapped in the execution layers, outermost first:
//
//	metering → cache → collapse of identical in-flight requests →
//	concurrency pool → rate limiter → retry → circuit breaker → provider
//
// so that a cache hit costs nothing, identical calls share one slot, a
// retry keeps its slot while it backs off, and an open breaker stops
// retries at once. Safe for concurrent use.
type Stack struct {
	top     LM
	pool    *Pool
	breaker *Breaker
}

var (
	_ LM       = (*Stack)(nil)
	_ Streamer = (*Stack)(nil)
)

// NewStack wraps provider in the execution layers.
func NewStack(provider LM, cfg ExecConfig) *Stack {
	name := cfg.Name
	if name == "" {
		name = provider.Model()
	}
	var m LM = provider
	s := &Stack{}
	if cfg.Breaker.Failures >= 0 {
		s.breaker = NewBreaker(m, name, cfg.Breaker, cfg.Hooks)
		m = s.breaker
	}
	m = NewRetry(m, cfg.Retry, cfg.Hooks)
	if cfg.RateLimit.RPM > 0 || cfg.RateLimit.TPM > 0 {
		m = NewRateLimit(m, cfg.RateLimit, cfg.Hooks)
	}
	s.pool = NewPool(m, cfg.Pool, cfg.Hooks)
	m = s.pool
	if !cfg.NoCollapse {
		m = NewCollapse(m)
	}
	if cfg.Cache != nil {
		m = NewCached(m, cfg.Cache)
	}
	s.top = NewMetered(m, cfg.Prices, cfg.Hooks)
	return s
}

// Model returns the provider's model.
func (s *Stack) Model() string { return s.top.Model() }

// ResponseFormat passes the provider's answer through.
func (s *Stack) ResponseFormat() ResponseFormatMode { return ResponseFormatFor(s.top) }

// Complete sends req through every layer.
func (s *Stack) Complete(ctx context.Context, req *Request) (*Response, error) {
	return s.top.Complete(ctx, req)
}

// Stream sends req through every layer, streaming where the provider can.
func (s *Stack) Stream(ctx context.Context, req *Request) iter.Seq2[Delta, error] {
	return StreamOrComplete(ctx, s.top, req)
}

// PoolStats returns the pool's counters.
func (s *Stack) PoolStats() PoolStats { return s.pool.Stats() }

// BreakerState returns "closed", "open" or "half-open" ("" without a breaker).
func (s *Stack) BreakerState() string {
	if s.breaker == nil {
		return ""
	}
	return s.breaker.State()
}
