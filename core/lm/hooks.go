package lm

import (
	"context"
	"time"

	"github.com/dspex/dspex/core/event"
)

// Hooks let observers (logging, metrics, the event bus) watch the execution
// layers: the moments inside a call (waits, retries) as they happen, breaker
// changes, and finished calls. A call's totals (waits, attempts, cost) are
// in its CallStats, which the LM call's one publisher reads; through
// EventHooks, hooks are the only other source of an LM call's events. Nil
// fields, and a nil *Hooks, are skipped. Hooks are called synchronously on
// the calling goroutine and must not block.
type Hooks struct {
	// QueueWait reports a call admitted by a pool after waiting.
	QueueWait func(ctx context.Context, model string, wait time.Duration)
	// RateLimitWait reports a call held back by the rate limiter.
	RateLimitWait func(ctx context.Context, model string, wait time.Duration)
	// Retry reports a failed attempt about to be retried after wait.
	Retry func(ctx context.Context, model string, attempt int, err error, wait time.Duration)
	// BreakerState reports a circuit breaker changing state ("closed",
	// "open", "half-open"). name is the breaker's endpoint and model.
	BreakerState func(name, from, to string)
	// Call reports every finished call through a Metered layer, cache hits
	// included.
	Call func(ctx context.Context, info CallInfo)
}

// CallInfo describes one finished call.
type CallInfo struct {
	Model    string
	Request  *Request
	Response *Response // nil on error
	Err      error
	Duration time.Duration
	// Stats is the call's record as the layers left it: the caller's
	// CallStats, or one with only the cost when the caller keeps none.
	Stats CallStats
}

func (h *Hooks) queueWait(ctx context.Context, model string, wait time.Duration) {
	if h != nil && h.QueueWait != nil && wait > 0 {
		h.QueueWait(ctx, model, wait)
	}
}

func (h *Hooks) rateLimitWait(ctx context.Context, model string, wait time.Duration) {
	if h != nil && h.RateLimitWait != nil && wait > 0 {
		h.RateLimitWait(ctx, model, wait)
	}
}

func (h *Hooks) retry(ctx context.Context, model string, attempt int, err error, wait time.Duration) {
	if h != nil && h.Retry != nil {
		h.Retry(ctx, model, attempt, err, wait)
	}
}

func (h *Hooks) breakerState(name, from, to string) {
	if h != nil && h.BreakerState != nil {
		h.BreakerState(name, from, to)
	}
}

func (h *Hooks) call(ctx context.Context, info CallInfo) {
	if h != nil && h.Call != nil {
		h.Call(ctx, info)
	}
}

// EventHooks returns hooks that publish what the layers do as events: retries
// and pool or rate-limit waits on the bus of the call's context (in the
// span of the LM call), breaker changes — which belong to no call — on bus
// (nil for none).
func EventHooks(bus *event.Bus) *Hooks {
	return &Hooks{
		QueueWait: func(ctx context.Context, model string, wait time.Duration) {
			event.Publish(ctx, event.LMQueueWait, event.SpanFrom(ctx), &event.LMWait{Model: model, Wait: wait})
		},
		RateLimitWait: func(ctx context.Context, model string, wait time.Duration) {
			if wait >= time.Millisecond {
				event.Publish(ctx, event.LMRateLimitWait, event.SpanFrom(ctx), &event.LMWait{Model: model, Wait: wait})
			}
		},
		Retry: func(ctx context.Context, model string, attempt int, err error, wait time.Duration) {
			event.Publish(ctx, event.LMRetry, event.SpanFrom(ctx), &event.LMRetryInfo{Model: model, Attempt: attempt, Error: err.Error(), Wait: wait})
		},
		BreakerState: func(name, from, to string) {
			if bus != nil && bus.Wants(event.BreakerState) {
				bus.Publish(event.Event{Kind: event.BreakerState, Time: time.Now(), Data: &event.BreakerChange{Name: name, From: from, To: to}})
			}
		},
	}
}
