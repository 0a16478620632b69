package lm_test

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/dspex/dspex/core/lm"
)

// fakeLM is an in-memory provider for the layer tests. Unlike the simulated
// LM server it does no network I/O, so it runs inside a testing/synctest
// bubble, where its latency and the layers' waits pass in fake time and a
// test of a one-second backoff takes no real second.
type fakeLM struct {
	// latency is how long each call takes.
	latency time.Duration
	// hang makes every call wait until its context ends.
	hang bool
	// fail returns the error of the n-th call (1-based), or nil for an
	// answer. nil means every call succeeds.
	fail func(n int) error

	mu    sync.Mutex
	calls []fakeCall
}

// fakeCall records one call the fake received.
type fakeCall struct {
	Start time.Time
	// Duration is how long the call took; 0 while it is still running.
	Duration time.Duration
}

var _ lm.LM = (*fakeLM)(nil)

func (f *fakeLM) Model() string { return "dspex-sim" }

func (f *fakeLM) Complete(ctx context.Context, req *lm.Request) (*lm.Response, error) {
	f.mu.Lock()
	n := len(f.calls)
	start := time.Now()
	f.calls = append(f.calls, fakeCall{Start: start})
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.calls[n].Duration = max(time.Since(start), time.Nanosecond)
		f.mu.Unlock()
	}()

	if f.hang {
		<-ctx.Done()
		return nil, f.ctxError(ctx)
	}
	if f.latency > 0 {
		t := time.NewTimer(f.latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, f.ctxError(ctx)
		}
	}
	if f.fail != nil {
		if err := f.fail(n + 1); err != nil {
			return nil, err
		}
	}
	q := ""
	if len(req.Messages) > 0 {
		q = req.Messages[len(req.Messages)-1].Content
	}
	return &lm.Response{
		Model:   f.Model(),
		Choices: []lm.Choice{{Text: "answer to " + q, FinishReason: "stop"}},
		Usage:   lm.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15},
	}, nil
}

// ctxError is the error a provider returns when the caller's context ends.
func (f *fakeLM) ctxError(ctx context.Context) error {
	kind := lm.ErrCanceled
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		kind = lm.ErrTimeout
	}
	return &lm.Error{Kind: kind, Model: f.Model(), Err: ctx.Err()}
}

// Calls returns a copy of the calls received so far.
func (f *fakeLM) Calls() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

// serverError is a 5xx answer.
func serverError() error {
	return &lm.Error{Kind: lm.ErrServer, Model: "dspex-sim", StatusCode: 500, Message: "simulated failure"}
}

// failFirst fails the first k calls with err() and answers the rest.
func failFirst(k int, err func() error) func(int) error {
	return func(n int) error {
		if n <= k {
			return err()
		}
		return nil
	}
}
