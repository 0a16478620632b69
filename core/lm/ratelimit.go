package lm

import (
	"context"
	"iter"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
)

// RateLimitConfig limits requests and tokens per minute for one endpoint
// and model. Zero values mean no limit.
type RateLimitConfig struct {
	// RPM is requests per minute.
	RPM int `yaml:"rpm" json:"rpm"`
	// TPM is tokens (prompt plus completion) per minute.
	TPM int `yaml:"tpm" json:"tpm"`
	// BurstSeconds is how many seconds' worth of the allowance may be used
	// at once after a quiet spell. Default 10.
	BurstSeconds int `yaml:"burst_seconds" json:"burst_seconds"`
}

// RateLimit is the execution layer that keeps calls within requests and
// tokens per minute (golang.org/x/time/rate). A call's tokens are estimated
// before it is sent (prompt characters / 4, plus max_tokens when set) and
// corrected once its usage is known: a call that used more borrows from
// later calls. Waiting honours the context. Safe for concurrent use.
type RateLimit struct {
	next  LM
	reqs  *rate.Limiter // nil when unlimited
	toks  *rate.Limiter
	hooks *Hooks
}

var (
	_ LM       = (*RateLimit)(nil)
	_ Streamer = (*RateLimit)(nil)
)

// NewRateLimit wraps next.
func NewRateLimit(next LM, cfg RateLimitConfig, hooks *Hooks) *RateLimit {
	burst := cfg.BurstSeconds
	if burst <= 0 {
		burst = 10
	}
	r := &RateLimit{next: next, hooks: hooks}
	if cfg.RPM > 0 {
		r.reqs = rate.NewLimiter(rate.Limit(float64(cfg.RPM)/60), max(1, cfg.RPM*burst/60))
	}
	if cfg.TPM > 0 {
		r.toks = rate.NewLimiter(rate.Limit(float64(cfg.TPM)/60), max(1, cfg.TPM*burst/60))
	}
	return r
}

// Model returns the wrapped LM's model.
func (r *RateLimit) Model() string { return r.next.Model() }

// ResponseFormat passes the wrapped LM's answer through.
func (r *RateLimit) ResponseFormat() ResponseFormatMode { return ResponseFormatFor(r.next) }

// EstimateTokens guesses a request's tokens before it is sent: a quarter of
// the prompt's characters plus max_tokens when set.
func EstimateTokens(req *Request) int {
	chars := 0
	for _, m := range req.Messages {
		chars += utf8.RuneCountInString(m.Content)
	}
	n := (chars + 3) / 4
	if req.MaxTokens != nil {
		n += *req.MaxTokens
	}
	return max(1, n)
}

// wait holds the call until the limits allow it and returns the tokens it
// reserved.
func (r *RateLimit) wait(ctx context.Context, req *Request) (int, error) {
	start := time.Now()
	if r.reqs != nil {
		if err := r.reqs.Wait(ctx); err != nil {
			return 0, contextKindErrorOr(ctx, requestModel(r.next, req), err)
		}
	}
	est := 0
	if r.toks != nil {
		est = min(EstimateTokens(req), r.toks.Burst())
		if err := r.toks.WaitN(ctx, est); err != nil {
			return 0, contextKindErrorOr(ctx, requestModel(r.next, req), err)
		}
	}
	wait := time.Since(start)
	if st := CallStatsFrom(ctx); st != nil {
		st.RateLimitWait += wait
	}
	r.hooks.rateLimitWait(ctx, requestModel(r.next, req), wait)
	return est, nil
}

// settle charges tokens used beyond the estimate to later calls.
func (r *RateLimit) settle(est int, u Usage) {
	if r.toks == nil {
		return
	}
	if extra := u.TotalTokens - est; extra > 0 {
		r.toks.ReserveN(time.Now(), min(extra, r.toks.Burst()))
	}
}

// Complete waits for the limits, then calls the wrapped LM.
func (r *RateLimit) Complete(ctx context.Context, req *Request) (*Response, error) {
	est, err := r.wait(ctx, req)
	if err != nil {
		return nil, err
	}
	res, err := r.next.Complete(ctx, req)
	if res != nil {
		r.settle(est, res.Usage)
	}
	return res, err
}

// Stream waits for the limits, then streams.
func (r *RateLimit) Stream(ctx context.Context, req *Request) iter.Seq2[Delta, error] {
	return func(yield func(Delta, error) bool) {
		est, err := r.wait(ctx, req)
		if err != nil {
			yield(Delta{}, err)
			return
		}
		for d, err := range StreamOrComplete(ctx, r.next, req) {
			if d.Usage != nil {
				r.settle(est, *d.Usage)
			}
			if !yield(d, err) || err != nil {
				return
			}
		}
	}
}

// contextKindErrorOr reports an ended context as its *Error; a limiter's own
// refusal (the wait would pass the deadline) is a timeout.
func contextKindErrorOr(ctx context.Context, model string, err error) *Error {
	if ctx.Err() != nil {
		return contextKindError(ctx, model)
	}
	return &Error{Kind: ErrTimeout, Model: model, Message: "rate limit wait would pass the deadline", Err: err}
}
