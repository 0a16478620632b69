package lm

import (
	"context"
	"errors"
	"iter"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/dspex/dspex/core/config"
)

// ErrBreakerOpen is the Kind of the error returned while an endpoint's
// circuit breaker is open: the call failed fast, without reaching the
// endpoint. It is not retried.
var ErrBreakerOpen = errors.New("lm: circuit breaker open")

// BreakerConfig sets when an endpoint's circuit breaker opens.
type BreakerConfig struct {
	// Failures is how many consecutive failed calls open the breaker.
	// Default 5; a negative value disables the breaker.
	Failures int `yaml:"failures" json:"failures"`
	// OpenTimeout is how long the breaker stays open before letting probe
	// calls through (half-open). Default 30s.
	OpenTimeout config.Duration `yaml:"open_timeout" json:"open_timeout"`
	// HalfOpenRequests is how many probe calls run while half-open; that
	// many successes close the breaker, one failure opens it again. Default 1.
	HalfOpenRequests int `yaml:"half_open_requests" json:"half_open_requests"`
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.Failures == 0 {
		c.Failures = 5
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = config.Duration(30 * time.Second)
	}
	if c.HalfOpenRequests <= 0 {
		c.HalfOpenRequests = 1
	}
	return c
}

// Breaker is the execution layer that stops calling an endpoint that keeps
// failing (github.com/sony/gobreaker/v2). Server errors, timeouts,
// connection failures and malformed responses count as failures; a caller's
// cancellation or deadline, and rate limiting (the endpoint is up and
// answering), count as neither failure nor success; other errors (bad
// request, auth) mean the endpoint works. Safe for concurrent use.
type Breaker struct {
	next  LM
	cb    *gobreaker.CircuitBreaker[*Response]
	clock *openClock
}

var (
	_ LM       = (*Breaker)(nil)
	_ Streamer = (*Breaker)(nil)
)

// NewBreaker wraps next in a breaker named name (the endpoint and model).
// State changes are reported to hooks.BreakerState.
func NewBreaker(next LM, name string, cfg BreakerConfig, hooks *Hooks) *Breaker {
	st, clock := breakerSettings(name, cfg, hooks)
	return &Breaker{next: next, cb: gobreaker.NewCircuitBreaker[*Response](st), clock: clock}
}

// openClock remembers when a breaker last opened, so that a refused call
// can say how long the breaker stays open. Safe for concurrent use.
type openClock struct {
	timeout  time.Duration
	openedAt atomic.Int64 // UnixNano; 0 before the first opening
}

// retryAfter is the open time left at now, rounded up to whole seconds
// (as Retry-After counts), or the whole open timeout when that is unknown
// or past (a half-open breaker busy with its probes).
func (c *openClock) retryAfter(now time.Time) time.Duration {
	if at := c.openedAt.Load(); at != 0 {
		if left := time.Unix(0, at).Add(c.timeout).Sub(now); left > 0 {
			return (left + time.Second - 1).Truncate(time.Second)
		}
	}
	return c.timeout
}

// breakerSettings builds gobreaker's settings for cfg, with the clock its
// state changes keep.
func breakerSettings(name string, cfg BreakerConfig, hooks *Hooks) (gobreaker.Settings, *openClock) {
	cfg = cfg.withDefaults()
	failures := uint32(cfg.Failures)
	clock := &openClock{timeout: time.Duration(cfg.OpenTimeout)}
	return gobreaker.Settings{
		Name:        name,
		MaxRequests: uint32(cfg.HalfOpenRequests),
		Timeout:     time.Duration(cfg.OpenTimeout),
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= failures
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				clock.openedAt.Store(time.Now().UnixNano())
			}
			hooks.breakerState(name, from.String(), to.String())
		},
		IsSuccessful: func(err error) bool { return err == nil || !breakerFailure(err) },
		IsExcluded:   breakerExcluded,
	}, clock
}

func breakerFailure(err error) bool {
	return errors.Is(err, ErrServer) || errors.Is(err, ErrTimeout) ||
		errors.Is(err, ErrConnection) || errors.Is(err, ErrBadResponse)
}

// errCallerEnded marks failures caused by the caller's own context, which
// say nothing about the endpoint.
var errCallerEnded = errors.New("lm: caller context ended")

func breakerExcluded(err error) bool {
	return errors.Is(err, errCallerEnded) || errors.Is(err, ErrCanceled) || errors.Is(err, ErrRateLimited)
}

// Model returns the wrapped LM's model.
func (b *Breaker) Model() string { return b.next.Model() }

// ResponseFormat passes the wrapped LM's answer through.
func (b *Breaker) ResponseFormat() ResponseFormatMode { return ResponseFormatFor(b.next) }

// State is the breaker's state: "closed", "open" or "half-open".
func (b *Breaker) State() string { return b.cb.State().String() }

// Complete calls the wrapped LM unless the breaker is open.
func (b *Breaker) Complete(ctx context.Context, req *Request) (*Response, error) {
	res, err := b.cb.Execute(func() (*Response, error) {
		res, err := b.next.Complete(ctx, req)
		if err != nil && ctx.Err() != nil {
			return nil, &excludedErr{err}
		}
		return res, err
	})
	return res, breakerError(b.cb, b.clock, requestModel(b.next, req), err)
}

// excludedErr carries an error the breaker should not count.
type excludedErr struct{ err error }

func (e *excludedErr) Error() string   { return e.err.Error() }
func (e *excludedErr) Unwrap() []error { return []error{e.err, errCallerEnded} }

// breakerError is the error a caller of cb sees for err, what cb.Execute
// returned for a call to model: the call's own error (unwrapped when it
// was excluded), or an ErrBreakerOpen naming the breaker when cb refused
// the call, whose RetryAfter is how long the breaker stays open (clock).
func breakerError[T any](cb *gobreaker.CircuitBreaker[T], clock *openClock, model string, err error) error {
	var ex *excludedErr
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ex):
		return ex.err
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return &Error{Kind: ErrBreakerOpen, Model: model, RetryAfter: clock.retryAfter(time.Now()),
			Message: "breaker " + cb.Name() + " is " + cb.State().String() + ": failing fast", Err: err}
	}
	return err
}

// Stream passes the stream through the breaker: a failure before or during
// the stream counts once.
func (b *Breaker) Stream(ctx context.Context, req *Request) iter.Seq2[Delta, error] {
	return func(yield func(Delta, error) bool) {
		stopped := false
		_, err := b.cb.Execute(func() (*Response, error) {
			for d, err := range StreamOrComplete(ctx, b.next, req) {
				if err != nil {
					if ctx.Err() != nil {
						return nil, &excludedErr{err}
					}
					return nil, err
				}
				if !yield(d, nil) {
					stopped = true
					return nil, nil
				}
			}
			return nil, nil
		})
		if err != nil && !stopped {
			yield(Delta{}, breakerError(b.cb, b.clock, requestModel(b.next, req), err))
		}
	}
}
