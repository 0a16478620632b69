package lm

import (
	"bytes"
	"context"
	"hash/maphash"
	"iter"
	"reflect"
	"slices"
	"sync"
)

// RequestKey identifies a request for caching and collapsing: the hex
// SHA-256 of its canonical form — model, messages, sampling parameters,
// response format and rollout id. API keys and base URLs are not part of a
// Request, so they never reach the key: the same request to the same model
// through another key or proxy shares the entry.
func RequestKey(model string, req *Request) string {
	b, err := canonical(model, req)
	if err != nil {
		// Only Extra or Schema values that JSON cannot encode get here;
		// such a request has no stable key, so it gets a unique one.
		b = []byte(err.Error() + "\x00" + model)
	}
	return requestKey(b)
}

// Collapse is the execution layer that merges identical requests in
// flight: while one call is running, identical requests (same model,
// messages, sampling parameters, response format and rollout id) wait for
// its result instead of calling again, and each gets its own copy. Streams
// are not collapsed. Safe for concurrent use.
//
// A call costs no goroutine and no hashing of more than a cheap in-memory
// hash of the request: the first caller makes the call on its own
// goroutine, with its own context, and callers that join it wait. The
// call belongs to its first caller: it runs until that caller's context
// ends (or it finishes). Callers that joined may leave at any time; if the
// first caller leaves before the call ends, the call is cancelled and the
// callers still waiting start it again among themselves (one of them
// makes it, the others join), so that no caller's cancellation waits on
// another's call.
//
// A caller that joined gets its own copy of the response, with zero usage,
// and the shared call's queue and rate-limit waits in its own CallStats,
// with no attempts: it spent nothing of its own.
type Collapse struct {
	next LM
	seed maphash.Seed

	mu      sync.Mutex
	flights map[uint64]*flight // by requestHash; colliding requests chain
}

type flight struct {
	model string
	req   *Request
	next  *flight       // another request with the same hash
	done  chan struct{} // made when a second caller joins; closed at the end
	res   *Response
	err   error
	// stats are the call's waits, as its first caller's record got them:
	// each caller that joined copies them into its own record.
	stats CallStats
	// restart tells the callers that joined that the first caller left
	// before the call ended: they start again.
	restart bool
}

var (
	_ LM       = (*Collapse)(nil)
	_ Streamer = (*Collapse)(nil)
)

// NewCollapse wraps next.
func NewCollapse(next LM) *Collapse {
	return &Collapse{next: next, seed: maphash.MakeSeed(), flights: map[uint64]*flight{}}
}

// Model returns the wrapped LM's model.
func (c *Collapse) Model() string { return c.next.Model() }

// ResponseFormat passes the wrapped LM's answer through.
func (c *Collapse) ResponseFormat() ResponseFormatMode { return ResponseFormatFor(c.next) }

// Complete joins an identical call in flight, or makes one.
func (c *Collapse) Complete(ctx context.Context, req *Request) (*Response, error) {
	model := requestModel(c.next, req)
	h := c.requestHash(model, req)
	for {
		if err := ctx.Err(); err != nil {
			return nil, contextKindError(ctx, model)
		}
		c.mu.Lock()
		f := c.flights[h]
		for f != nil && !sameRequest(f.model, f.req, model, req) {
			f = f.next
		}
		if f == nil {
			break // c.mu is held: this caller makes the call
		}
		if f.done == nil {
			f.done = make(chan struct{})
		}
		done := f.done
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, contextKindError(ctx, model)
		}
		if f.restart {
			continue
		}
		if f.err != nil {
			return nil, f.err
		}
		if st := CallStatsFrom(ctx); st != nil {
			// It waited as long as the shared call; it made no attempt.
			st.QueueWait += f.stats.QueueWait
			st.RateLimitWait += f.stats.RateLimitWait
		}
		res := f.res.Clone()
		res.Usage = Usage{} // a joined call spent nothing of its own
		return res, nil
	}
	f := &flight{model: model, req: req, next: c.flights[h]}
	c.flights[h] = f
	c.mu.Unlock()

	// The shared call's waits reach the callers that join through the first
	// caller's record (a caller that keeps none shares none): the call runs
	// on that caller's own context, untouched.
	st := CallStatsFrom(ctx)
	var before CallStats
	if st != nil {
		before = *st
	}
	res, err := c.next.Complete(ctx, req)

	c.mu.Lock()
	// Unlist f; it may not head its chain any more.
	if head := c.flights[h]; head == f {
		if f.next == nil {
			delete(c.flights, h)
		} else {
			c.flights[h] = f.next
		}
	} else {
		for p := head; p != nil; p = p.next {
			if p.next == f {
				p.next = f.next
				break
			}
		}
	}
	joined := f.done != nil
	if joined {
		f.res, f.err = res, err
		if st != nil {
			f.stats = CallStats{QueueWait: st.QueueWait - before.QueueWait, RateLimitWait: st.RateLimitWait - before.RateLimitWait}
		}
		f.restart = err != nil && ctx.Err() != nil
		if err == nil {
			// The callers that joined clone f.res; this caller gets a
			// copy of its own, which it may change.
			res = res.Clone()
		}
		close(f.done)
	}
	c.mu.Unlock()
	return res, err
}

// requestHash hashes what RequestKey covers, except Params.Extra (compared
// by sameRequest), with a per-layer seed: a cheap in-memory key, never
// stored.
func (c *Collapse) requestHash(model string, req *Request) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(model)
	h.WriteByte(0)
	h.WriteString(req.RolloutID)
	h.WriteByte(0)
	for _, m := range req.Messages {
		h.WriteString(m.Role)
		h.WriteByte(0)
		h.WriteString(m.Content)
		h.WriteByte(0)
	}
	p := &req.Params
	if p.Temperature != nil {
		maphash.WriteComparable(&h, *p.Temperature)
	}
	if p.MaxTokens != nil {
		maphash.WriteComparable(&h, *p.MaxTokens)
	}
	if p.TopP != nil {
		maphash.WriteComparable(&h, *p.TopP)
	}
	if p.N != nil {
		maphash.WriteComparable(&h, *p.N)
	}
	if p.Seed != nil {
		maphash.WriteComparable(&h, *p.Seed)
	}
	for _, s := range p.Stop {
		h.WriteString(s)
		h.WriteByte(0)
	}
	if rf := req.ResponseFormat; rf != nil {
		h.WriteString(rf.Type)
		h.WriteByte(0)
		h.WriteString(rf.Name)
		h.Write(rf.Schema)
	}
	return h.Sum64()
}

// sameRequest reports whether two requests are identical for collapsing:
// what RequestKey covers, compared field by field.
func sameRequest(ma string, a *Request, mb string, b *Request) bool {
	if a == b && ma == mb {
		return true
	}
	if ma != mb || a.RolloutID != b.RolloutID || !slices.Equal(a.Messages, b.Messages) ||
		!equalPtr(a.Temperature, b.Temperature) || !equalPtr(a.MaxTokens, b.MaxTokens) ||
		!equalPtr(a.TopP, b.TopP) || !equalPtr(a.N, b.N) || !equalPtr(a.Seed, b.Seed) ||
		!slices.Equal(a.Stop, b.Stop) || !reflect.DeepEqual(a.Extra, b.Extra) {
		return false
	}
	ra, rb := a.ResponseFormat, b.ResponseFormat
	if ra == nil || rb == nil {
		return ra == rb
	}
	return ra.Type == rb.Type && ra.Name == rb.Name && ra.Strict == rb.Strict && bytes.Equal(ra.Schema, rb.Schema)
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Stream is not collapsed: it passes through to the wrapped LM.
func (c *Collapse) Stream(ctx context.Context, req *Request) iter.Seq2[Delta, error] {
	return StreamOrComplete(ctx, c.next, req)
}
