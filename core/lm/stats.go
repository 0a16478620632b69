package lm

import (
	"context"
	"time"
)

// CallStats is what the execution layers learn about one call on its way
// to the provider and back: each layer writes only its own field, into the
// record it finds in the call's context, and never into the Response.
// Whoever publishes the call (the adapter's LM span) puts a fresh record in
// the context with WithCallStats before the call and reads it after:
//
//	publisher ─ WithCallStats ─▶ Metered   Cost
//	                             Cached    (a hit is Response.CacheHit)
//	                             Collapse  a joined caller: the shared call's waits
//	                             Pool      QueueWait
//	                             RateLimit RateLimitWait
//	                             Retry     Attempts
//	                             Breaker → provider: Response (Usage, Latency)
//
// What the provider or the cache produced stays on the Response (choices,
// usage, latency, cache hit); what it took to get it is here. A caller
// that keeps no record (CallStatsFrom is nil) gets the same answer; the
// layers just record nothing.
//
// A record belongs to one call on one goroutine: the layers write it on the
// goroutine that makes the call, and the publisher reads it after the call
// returns (or, for a stream, after the stream ends). The callers that join
// a collapsed call each have their own record, into which the shared
// call's waits are copied. Not safe for concurrent use.
type CallStats struct {
	// QueueWait is how long the call waited for a pool slot (Pool).
	QueueWait time.Duration
	// RateLimitWait is how long the rate limiter held the call back
	// (RateLimit).
	RateLimitWait time.Duration
	// Attempts is how many provider calls the call made (Retry): retries
	// plus one; 0 for a cache hit or a call that joined another. A failed
	// call's count is also on its error (Attempts(err)), which is what a
	// caller that joined a failed call sees.
	Attempts int
	// Cost is the call's price (Metered); zero, and known, for a cache hit.
	Cost Cost
}

type callStatsKey struct{}

// statsCtx carries a call's record: one allocation for the context and the
// record together, since every adapter call makes one.
type statsCtx struct {
	context.Context
	stats CallStats
}

func (c *statsCtx) Value(key any) any {
	if key == (callStatsKey{}) {
		return &c.stats
	}
	return c.Context.Value(key)
}

// WithCallStats returns a context carrying a fresh, empty record for one
// call, and the record, which the layers fill in as the call passes them.
// Use the context for one call only.
func WithCallStats(ctx context.Context) (context.Context, *CallStats) {
	c := &statsCtx{Context: ctx}
	return c, &c.stats
}

// CallStatsFrom returns the record of ctx's call, or nil when the caller
// keeps none (then the layers record nothing).
func CallStatsFrom(ctx context.Context) *CallStats {
	s, _ := ctx.Value(callStatsKey{}).(*CallStats)
	return s
}
