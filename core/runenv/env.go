// Package runenv is a program file's runtime: it builds the file's LM
// endpoints wrapped in the execution layers and opens the response cache
// they share (memory and SQLite). Only what runs a program file — the CLI,
// a server — imports it; programs, evaluation and optimizers do not.
package runenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/dspex/dspex/core/cache"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/anthropic"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/programfile"
	"github.com/dspex/dspex/core/trace"
)

// Options adjust how Open builds an Env.
type Options struct {
	// CachePath overrides the file's cache path ("memory" for memory only).
	CachePath string
	// NoCache turns the response cache off.
	NoCache bool
	// Hooks observe every endpoint's execution layers; nil means
	// lm.EventHooks(Bus): events on the calls' buses, breaker changes on Bus.
	Hooks *lm.Hooks
	// Bus receives events that belong to no call (breaker changes).
	Bus *event.Bus
	// OnCacheFailure is called once if the cache's disk tier fails after
	// opening (see cache.Options.OnDiskFailure); the cache goes on from
	// memory.
	OnCacheFailure func(error)
}

// Env is a program file's runtime: its endpoints wrapped in the execution
// layers, sharing one response cache. Close it when done.
type Env struct {
	// LM is the lm: endpoint.
	LM *lm.Stack
	// Models holds the models: endpoints by name.
	Models map[string]*lm.Stack
	// Embedder is the embeddings: endpoint, nil when the file has none.
	Embedder lm.Embedder
	// Cache is the shared response cache, nil when disabled.
	Cache *cache.Cache
	// Warnings are problems that did not stop the program, such as a cache
	// file that could not be used (the cache then lives in memory only).
	Warnings []error
}

// Open builds the endpoints and cache of the program file s.
func Open(ctx context.Context, s *programfile.Spec, opts Options) (*Env, error) {
	env := &Env{Models: map[string]*lm.Stack{}}
	if opts.Hooks == nil {
		opts.Hooks = lm.EventHooks(opts.Bus)
	}
	var store lm.ResponseStore
	if !opts.NoCache && !s.Cache.Disabled {
		c, warn, err := openCache(ctx, s, opts.CachePath, opts.OnCacheFailure)
		if err != nil {
			return nil, err
		}
		if warn != nil {
			env.Warnings = append(env.Warnings, warn)
		}
		env.Cache = c
		store = c.Store()
	}
	build := func(field string, l programfile.LMSpec) (*lm.Stack, error) {
		provider, err := newProvider(s, field, l)
		if err != nil {
			return nil, err
		}
		return lm.NewStack(provider, lm.ExecConfig{
			Name:      endpointName(l),
			Pool:      l.Pool,
			RateLimit: l.RateLimit,
			Retry:     l.Retry,
			Breaker:   l.Breaker,
			Cache:     store,
			Prices:    s.Prices,
			Hooks:     opts.Hooks,
		}), nil
	}
	var err error
	if env.LM, err = build("lm", s.LM); err != nil {
		env.Close()
		return nil, err
	}
	for i, m := range s.Models {
		if env.Models[m.Name], err = build(fmt.Sprintf("models.%d", i), m); err != nil {
			env.Close()
			return nil, err
		}
	}
	if e := s.Embeddings; e != nil {
		if env.Embedder, err = newEmbedder(s, e, store, opts.Hooks); err != nil {
			env.Close()
			return nil, err
		}
	}
	return env, nil
}

// Model returns the endpoint named name: "" or "lm" is the lm: endpoint.
func (e *Env) Model(name string) (*lm.Stack, error) {
	if name == "" || name == "lm" {
		return e.LM, nil
	}
	if m, ok := e.Models[name]; ok {
		return m, nil
	}
	return nil, fmt.Errorf("runenv: no model named %q under models", name)
}

// Close releases the cache.
func (e *Env) Close() error {
	if e.Cache != nil {
		return e.Cache.Close()
	}
	return nil
}

func openCache(ctx context.Context, s *programfile.Spec, override string, onFailure func(error)) (*cache.Cache, error, error) {
	path := s.Cache.Path
	if override != "" {
		path = override
	}
	switch path {
	case "memory":
		path = ""
	case "":
		p, err := cache.DefaultPath()
		if err != nil {
			return nil, nil, s.FieldError("cache.path", err, "no default cache directory (%v); set cache.path", err)
		}
		path = p
	}
	c, err := cache.Open(ctx, cache.Options{Path: path, MemoryEntries: s.Cache.MemoryEntries, MaxDiskBytes: s.Cache.MaxDiskBytes,
		OnDiskFailure: onFailure})
	if err != nil {
		if c != nil && errors.Is(err, cache.ErrDiskUnavailable) {
			return c, err, nil
		}
		return nil, nil, fmt.Errorf("open cache: %w", err)
	}
	return c, nil, nil
}

// The response cache is the LM layer's store as it is.
var _ lm.ResponseStore = cache.Store{}

func endpointName(l programfile.LMSpec) string {
	base := l.BaseURL
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		base = u.Host
	}
	if base == "" {
		base = l.Provider
		if base == "" {
			base = programfile.ProviderOpenAI
		}
	}
	return base + "/" + l.Model
}

// timeoutOf reads a timeout field, already checked by validate; "" is 0.
func timeoutOf(v string) time.Duration {
	d, _ := time.ParseDuration(v)
	return d
}

func newProvider(s *programfile.Spec, field string, l programfile.LMSpec) (lm.LM, error) {
	timeout := timeoutOf(l.Timeout)
	var (
		m   lm.LM
		err error
	)
	switch l.Provider {
	case programfile.ProviderAnthropic:
		m, err = anthropic.New(anthropic.Config{
			Model:     l.Model,
			BaseURL:   l.BaseURL,
			APIKeyEnv: l.APIKeyEnv,
			Headers:   l.Headers,
			Timeout:   timeout,
			Params:    l.Params(),
		})
	default:
		m, err = openai.New(openai.Config{
			Model:            l.Model,
			BaseURL:          l.BaseURL,
			APIKeyEnv:        l.APIKeyEnv,
			Headers:          l.Headers,
			Timeout:          timeout,
			Params:           l.Params(),
			ResponseFormat:   lm.ResponseFormatMode(l.ResponseFormat),
			MaxResponseBytes: l.MaxResponseBytes,
		})
	}
	if err != nil {
		return nil, s.FieldError(field, err, "%v", err)
	}
	return m, nil
}

func newEmbedder(s *programfile.Spec, e *programfile.EmbeddingsSpec, store lm.ResponseStore, hooks *lm.Hooks) (lm.Embedder, error) {
	emb, err := openai.NewEmbedder(openai.EmbedderConfig{
		Model:      e.Model,
		BaseURL:    e.BaseURL,
		APIKeyEnv:  e.APIKeyEnv,
		Headers:    e.Headers,
		Timeout:    timeoutOf(e.Timeout),
		Dimensions: e.Dimensions,
		BatchSize:  e.BatchSize,
	})
	if err != nil {
		return nil, s.FieldError("embeddings", err, "%v", err)
	}
	return lm.NewEmbedStack(emb, lm.EmbedExecConfig{
		Name:    endpointName(programfile.LMSpec{BaseURL: e.BaseURL, Model: e.Model}),
		Pool:    e.Pool,
		Retry:   e.Retry,
		Breaker: e.Breaker,
		Cache:   store,
		Hooks:   hooks,
	}), nil
}

// Retention returns the trace database limits of the traces: section of s.
func Retention(s *programfile.Spec) trace.Retention {
	return trace.Retention{MaxRuns: s.Traces.MaxRuns, MaxAge: time.Duration(s.Traces.MaxAge)}
}
