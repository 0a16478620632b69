package lm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"iter"
	"sync"
)

// RequestKey identifies a request for caching and collapsing: the hex
// SHA-256 of its canonical form — model, messages, sampling parameters,
// response format and rollout id. API keys and base URLs are not part of a
// Request, so they never reach the key: the same request to the same model
// through another key or proxy shares the entry.
func RequestKey(model string, req *Request) string {
	canon := struct {
		V              int             `json:"v"`
		Model          string          `json:"model"`
		Messages       [][2]string     `json:"messages"`
		Params         Params          `json:"params"`
		ResponseFormat *ResponseFormat `json:"response_format,omitempty"`
		RolloutID      string          `json:"rollout_id,omitempty"`
	}{V: 1, Model: model, Params: req.Params, ResponseFormat: req.ResponseFormat, RolloutID: req.RolloutID}
	canon.Messages = make([][2]string, len(req.Messages))
	for i, m := range req.Messages {
		canon.Messages[i] = [2]string{m.Role, m.Content}
	}
	b, err := json.Marshal(canon)
	if err != nil {
		// Only Extra or Schema values that JSON cannot encode get here;
		// such a request has no stable key, so it gets a unique one.
		b = []byte(err.Error() + "\x00" + model)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Collapse is the execution layer that merges identical requests in
// flight: while one call is running, identical requests wait for its result
// instead of calling again, and each gets its own copy. The shared call
// runs until it finishes or every caller waiting for it has given up.
// Streams are not collapsed. Safe for concurrent use.
type Collapse struct {
	next LM

	mu      sync.Mutex
	flights map[string]*flight
}

type flight struct {
	key     string
	done    chan struct{}
	res     *Response
	err     error
	waiters int
	cancel  context.CancelFunc
}

var (
	_ LM       = (*Collapse)(nil)
	_ Streamer = (*Collapse)(nil)
)

// NewCollapse wraps next.
func NewCollapse(next LM) *Collapse {
	return &Collapse{next: next, flights: map[string]*flight{}}
}

// Model returns the wrapped LM's model.
func (c *Collapse) Model() string { return c.next.Model() }

// ResponseFormat passes the wrapped LM's answer through.
func (c *Collapse) ResponseFormat() ResponseFormatMode { return ResponseFormatFor(c.next) }

// Complete joins an identical call in flight, or starts one.
func (c *Collapse) Complete(ctx context.Context, req *Request) (*Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, contextKindError(ctx, requestModel(c.next, req))
	}
	key := RequestKey(requestModel(c.next, req), req)
	c.mu.Lock()
	f, joined := c.flights[key]
	if !joined {
		// The shared call keeps the first caller's values (trackers,
		// settings) but not its cancellation: it is cancelled when the
		// last waiter leaves.
		callCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{key: key, done: make(chan struct{}), cancel: cancel}
		c.flights[key] = f
		go c.run(callCtx, key, f, req)
	}
	f.waiters++
	c.mu.Unlock()

	select {
	case <-f.done:
		c.leave(f)
		if f.err != nil {
			return nil, f.err
		}
		res := f.res.Clone()
		if joined {
			// A joined call spent nothing of its own.
			res.Usage = Usage{}
			res.Attempts = 0
		}
		return res, nil
	case <-ctx.Done():
		c.leave(f)
		return nil, contextKindError(ctx, requestModel(c.next, req))
	}
}

func (c *Collapse) run(ctx context.Context, key string, f *flight, req *Request) {
	res, err := c.next.Complete(ctx, req)
	c.mu.Lock()
	f.res, f.err = res, err
	if c.flights[key] == f {
		delete(c.flights, key)
	}
	c.mu.Unlock()
	f.cancel()
	close(f.done)
}

// leave drops a waiter; the last one to leave an unfinished call cancels it
// and unlists it, so that later callers start afresh.
func (c *Collapse) leave(f *flight) {
	c.mu.Lock()
	f.waiters--
	abandon := f.waiters == 0
	select {
	case <-f.done:
		abandon = false
	default:
	}
	if abandon && c.flights[f.key] == f {
		delete(c.flights, f.key)
	}
	c.mu.Unlock()
	if abandon {
		f.cancel()
	}
}

// Stream is not collapsed: it passes through to the wrapped LM.
func (c *Collapse) Stream(ctx context.Context, req *Request) iter.Seq2[Delta, error] {
	return StreamOrComplete(ctx, c.next, req)
}
