package lm

import (
	"context"
	"encoding/json"
	"iter"
)

// ResponseStore is the byte store the Cached layer keeps responses in
// (core/cache provides one with a memory and an SQLite tier). Get must
// return a copy the caller may keep.
type ResponseStore interface {
	Get(ctx context.Context, key string) ([]byte, bool)
	Set(ctx context.Context, key string, value []byte) error
}

// CacheMode says how a call uses the response cache.
type CacheMode uint8

const (
	// CacheReadWrite answers from the cache when it can and stores misses.
	CacheReadWrite CacheMode = iota
	// CacheRefresh skips the lookup but stores the fresh response.
	CacheRefresh
	// CacheOff neither reads nor writes the cache.
	CacheOff
)

type cacheModeKey struct{}

// WithCacheMode returns a context whose calls use the cache as mode says.
func WithCacheMode(ctx context.Context, mode CacheMode) context.Context {
	return context.WithValue(ctx, cacheModeKey{}, mode)
}

func cacheModeFrom(ctx context.Context) CacheMode {
	m, _ := ctx.Value(cacheModeKey{}).(CacheMode)
	return m
}

// cachedResponse is the stored form of a response.
type cachedResponse struct {
	ID      string   `json:"id,omitempty"`
	Model   string   `json:"model,omitempty"`
	Choices []Choice `json:"choices"`
	Usage   Usage    `json:"usage"`
}

// Cached is the outermost execution layer below Metered: identical requests
// (RequestKey: same model, messages, sampling parameters, response format
// and rollout id) are answered from the store. A hit is a fresh copy marked
// CacheHit, with zero usage: it cost no tokens (and, in the call's
// CallStats, no attempts). Responses
// with a choice cut off by the token limit (Response.Truncated) are never
// stored, nor served if found. Store
// failures never fail a call; the call just goes to the provider. Safe for
// concurrent use.
type Cached struct {
	next  LM
	store ResponseStore
}

var (
	_ LM       = (*Cached)(nil)
	_ Streamer = (*Cached)(nil)
)

// NewCached wraps next with store.
func NewCached(next LM, store ResponseStore) *Cached {
	return &Cached{next: next, store: store}
}

// Model returns the wrapped LM's model.
func (c *Cached) Model() string { return c.next.Model() }

// ResponseFormat passes the wrapped LM's answer through.
func (c *Cached) ResponseFormat() ResponseFormatMode { return ResponseFormatFor(c.next) }

func (c *Cached) lookup(ctx context.Context, key string) (*Response, bool) {
	b, ok := c.store.Get(ctx, key)
	if !ok {
		return nil, false
	}
	var cr cachedResponse
	if json.Unmarshal(b, &cr) != nil || len(cr.Choices) == 0 {
		return nil, false // a damaged entry is a miss; the fresh answer replaces it
	}
	res := &Response{ID: cr.ID, Model: cr.Model, Choices: cr.Choices, CacheHit: true}
	if res.Truncated() {
		return nil, false // stored by an older dspex; never served again
	}
	return res, true
}

// save stores res under key, unless it has no choices or a choice was cut
// off by the token limit: a truncated answer is a failure to retry, not an
// answer to serve again once the cause is fixed.
func (c *Cached) save(ctx context.Context, key string, res *Response) {
	if res == nil || len(res.Choices) == 0 || res.Truncated() {
		return
	}
	b, err := json.Marshal(cachedResponse{ID: res.ID, Model: res.Model, Choices: res.Choices, Usage: res.Usage})
	if err == nil {
		_ = c.store.Set(context.WithoutCancel(ctx), key, b)
	}
}

// Complete answers from the cache, or calls the wrapped LM and stores the
// response.
func (c *Cached) Complete(ctx context.Context, req *Request) (*Response, error) {
	mode := cacheModeFrom(ctx)
	if mode == CacheOff {
		return c.next.Complete(ctx, req)
	}
	key := RequestKey(requestModel(c.next, req), req)
	if mode == CacheReadWrite {
		if res, ok := c.lookup(ctx, key); ok {
			return res, nil
		}
	}
	res, err := c.next.Complete(ctx, req)
	if err == nil {
		c.save(ctx, key, res)
	}
	return res, err
}

// Stream yields a cached response at once (one delta per choice), or
// streams from the wrapped LM and stores the whole answer when the stream
// completes.
func (c *Cached) Stream(ctx context.Context, req *Request) iter.Seq2[Delta, error] {
	return func(yield func(Delta, error) bool) {
		mode := cacheModeFrom(ctx)
		if mode == CacheOff {
			for d, err := range StreamOrComplete(ctx, c.next, req) {
				if !yield(d, err) || err != nil {
					return
				}
			}
			return
		}
		key := RequestKey(requestModel(c.next, req), req)
		if mode == CacheReadWrite {
			if res, ok := c.lookup(ctx, key); ok {
				yieldResponse(res, true, yield) // a hit's usage is zero
				return
			}
		}
		var deltas []Delta
		for d, err := range StreamOrComplete(ctx, c.next, req) {
			if err != nil {
				yield(d, err)
				return
			}
			deltas = append(deltas, d)
			if !yield(d, nil) {
				return
			}
		}
		res, _ := Collect(func(y func(Delta, error) bool) {
			for _, d := range deltas {
				if !y(d, nil) {
					return
				}
			}
		})
		c.save(ctx, key, res)
	}
}
