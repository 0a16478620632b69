package lm

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/dspex/dspex/core/config"
)

// RetryConfig sets how failed calls are retried.
type RetryConfig struct {
	// MaxAttempts bounds provider calls per request, the first included.
	// Default 4 (three retries, as DSPy's num_retries=3); 1 disables retries.
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts"`
	// InitialBackoff is the base wait before the first retry; each later
	// retry doubles it. Default 500ms.
	InitialBackoff config.Duration `yaml:"initial_backoff" json:"initial_backoff"`
	// MaxBackoff caps the base wait. Default 30s.
	MaxBackoff config.Duration `yaml:"max_backoff" json:"max_backoff"`
	// MaxRetryAfter caps how long a server's Retry-After is honoured; a
	// server asking for longer gets its error returned instead. Default 2m.
	MaxRetryAfter config.Duration `yaml:"max_retry_after" json:"max_retry_after"`
}

func (c RetryConfig) withDefaults() RetryConfig {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 4
	}
	if c.InitialBackoff <= 0 {
		c.InitialBackoff = config.Duration(500 * time.Millisecond)
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = config.Duration(30 * time.Second)
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = config.Duration(2 * time.Minute)
	}
	return c
}

// Retry is the execution layer that repeats calls that failed with a
// retryable error (rate limited, server error, timeout, connection failure:
// see Retryable). Waits grow exponentially with jitter ("equal jitter": half
// the base wait plus a random part of the other half), and never undercut a
// server's Retry-After. A cancelled context, an open breaker or a full pool
// is never retried, and no wait outlives the context's deadline. It counts
// the provider calls in the call's CallStats (Attempts); a call it gives up
// on also carries the count on its error (AttemptsError), for callers that
// keep no record. Safe for concurrent use.
type Retry struct {
	next  LM
	cfg   RetryConfig
	hooks *Hooks
	sleep func(ctx context.Context, d time.Duration) error

	mu  sync.Mutex
	rng *rand.Rand
}

var (
	_ LM       = (*Retry)(nil)
	_ Streamer = (*Retry)(nil)
)

// NewRetry wraps next.
func NewRetry(next LM, cfg RetryConfig, hooks *Hooks) *Retry {
	return &Retry{next: next, cfg: cfg.withDefaults(), hooks: hooks, sleep: sleepCtx,
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x9e3779b97f4a7c15))}
}

// Model returns the wrapped LM's model.
func (r *Retry) Model() string { return r.next.Model() }

// ResponseFormat passes the wrapped LM's answer through.
func (r *Retry) ResponseFormat() ResponseFormatMode { return ResponseFormatFor(r.next) }

// Complete calls the wrapped LM, retrying retryable failures.
func (r *Retry) Complete(ctx context.Context, req *Request) (*Response, error) {
	model := requestModel(r.next, req)
	st := CallStatsFrom(ctx)
	for attempt := 1; ; attempt++ {
		if st != nil {
			st.Attempts = attempt
		}
		res, err := r.next.Complete(ctx, req)
		if err == nil {
			return res, nil
		}
		wait, ok := r.shouldRetry(ctx, attempt, err)
		if !ok {
			return nil, withAttempts(err, attempt)
		}
		r.hooks.retry(ctx, model, attempt, err, wait)
		if r.sleep(ctx, wait) != nil {
			return nil, withAttempts(err, attempt)
		}
	}
}

// Stream retries failures that happen before the first delta; once text
// has been yielded, a failure ends the stream (the caller has seen part of
// an answer that a new attempt would not continue).
func (r *Retry) Stream(ctx context.Context, req *Request) iter.Seq2[Delta, error] {
	return func(yield func(Delta, error) bool) {
		model := requestModel(r.next, req)
		st := CallStatsFrom(ctx)
		for attempt := 1; ; attempt++ {
			if st != nil {
				st.Attempts = attempt
			}
			started := false
			var failed error
			for d, err := range StreamOrComplete(ctx, r.next, req) {
				if err != nil {
					failed = err
					break
				}
				started = true
				if !yield(d, nil) {
					return
				}
			}
			if failed == nil {
				return
			}
			wait, ok := r.shouldRetry(ctx, attempt, failed)
			if started || !ok {
				yield(Delta{}, withAttempts(failed, attempt))
				return
			}
			r.hooks.retry(ctx, model, attempt, failed, wait)
			if r.sleep(ctx, wait) != nil {
				yield(Delta{}, withAttempts(failed, attempt))
				return
			}
		}
	}
}

// AttemptsError is the error of a call the retry layer gave up on: the
// last attempt's error and how many provider calls were made. It unwraps
// to the last error, so errors.Is and errors.As see through it.
type AttemptsError struct {
	Attempts int
	Err      error
}

// Error is the last error, with the number of attempts when there were
// several.
func (e *AttemptsError) Error() string {
	if e.Attempts <= 1 {
		return e.Err.Error()
	}
	return fmt.Sprintf("%v (after %d attempts)", e.Err, e.Attempts)
}

func (e *AttemptsError) Unwrap() error { return e.Err }

// Attempts returns how many provider calls a failed call made, as the retry
// layer counted them; 0 when err did not pass through one.
func Attempts(err error) int {
	var ae *AttemptsError
	if errors.As(err, &ae) {
		return ae.Attempts
	}
	return 0
}

func withAttempts(err error, attempts int) error {
	return &AttemptsError{Attempts: attempts, Err: err}
}

// shouldRetry decides whether attempt's failure is retried, and after how
// long.
func (r *Retry) shouldRetry(ctx context.Context, attempt int, err error) (time.Duration, bool) {
	if attempt >= r.cfg.MaxAttempts || ctx.Err() != nil || !Retryable(err) {
		return 0, false
	}
	after := RetryAfter(err)
	if after > time.Duration(r.cfg.MaxRetryAfter) {
		return 0, false
	}
	wait := max(r.backoff(attempt), after)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		return 0, false
	}
	return wait, true
}

// backoff is the jittered wait before retry number attempt (1-based).
func (r *Retry) backoff(attempt int) time.Duration {
	base := time.Duration(r.cfg.InitialBackoff)
	for i := 1; i < attempt && base < time.Duration(r.cfg.MaxBackoff); i++ {
		base *= 2
	}
	base = min(base, time.Duration(r.cfg.MaxBackoff))
	half := base / 2
	r.mu.Lock()
	j := time.Duration(r.rng.Int64N(int64(half) + 1))
	r.mu.Unlock()
	return half + j
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
