package lm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dspex/dspex/core/config"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
)

// sim starts the simulated LM with the given faults and latency, and
// returns it with an OpenAI client pointed at it.
func sim(t testing.TB, latency string, faults ...string) (*lmtest.Server, *openai.Client) {
	t.Helper()
	cfg := lmtest.Config{Seed: 1}
	for _, f := range faults {
		fault, err := lmtest.ParseFault(f)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Faults = append(cfg.Faults, fault)
	}
	if latency != "" {
		l, err := lmtest.ParseLatency(latency)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Latency = l
	}
	srv, err := lmtest.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	client, err := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
	if err != nil {
		t.Fatal(err)
	}
	return srv, client
}

func ask(q string) *lm.Request {
	return &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: q}}}
}

func fastRetry(attempts int) lm.RetryConfig {
	return lm.RetryConfig{MaxAttempts: attempts, InitialBackoff: config.Duration(time.Millisecond), MaxBackoff: config.Duration(5 * time.Millisecond)}
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeLM{fail: failFirst(1, func() error {
			return &lm.Error{Kind: lm.ErrRateLimited, StatusCode: 429, RetryAfter: time.Second}
		})}
		var waits []time.Duration
		hooks := &lm.Hooks{Retry: func(_ context.Context, _ string, _ int, _ error, wait time.Duration) { waits = append(waits, wait) }}
		r := lm.NewRetry(fake, fastRetry(3), hooks)
		ctx, st := lm.WithCallStats(context.Background())
		if _, err := r.Complete(ctx, ask("hi")); err != nil {
			t.Fatal(err)
		}
		if st.Attempts != 2 {
			t.Errorf("attempts = %d, want 2", st.Attempts)
		}
		calls := fake.Calls()
		if len(calls) != 2 {
			t.Fatalf("provider saw %d requests, want 2", len(calls))
		}
		if gap := calls[1].Start.Sub(calls[0].Start); gap < time.Second {
			t.Errorf("retried after %v, before the server's Retry-After of 1s", gap)
		}
		if len(waits) != 1 || waits[0] < time.Second {
			t.Errorf("retry hook waits = %v", waits)
		}
	})
}

func TestRetryIsBounded(t *testing.T) {
	srv, client := sim(t, "", "500")
	r := lm.NewRetry(client, fastRetry(3), nil)
	_, err := r.Complete(context.Background(), ask("hi"))
	if !errors.Is(err, lm.ErrServer) {
		t.Fatalf("err = %v", err)
	}
	if n := srv.Stats().Requests; n != 3 {
		t.Errorf("server saw %d requests, want exactly MaxAttempts=3", n)
	}
}

func TestRetryErrorCountsAttempts(t *testing.T) {
	_, client := sim(t, "", "500")
	_, err := lm.NewRetry(client, fastRetry(3), nil).Complete(context.Background(), ask("hi"))
	if !errors.Is(err, lm.ErrServer) {
		t.Fatalf("err = %v, want a server error", err)
	}
	if n := lm.Attempts(err); n != 3 {
		t.Errorf("Attempts(err) = %d, want 3", n)
	}
	if !strings.HasSuffix(err.Error(), "(after 3 attempts)") {
		t.Errorf("err = %q, want it to end with the attempts made", err)
	}
	var le *lm.Error
	if !errors.As(err, &le) || le.StatusCode != 500 {
		t.Errorf("errors.As(*lm.Error) = %v", le)
	}

	_, client = sim(t, "", "500")
	_, err = lm.NewRetry(client, fastRetry(1), nil).Complete(context.Background(), ask("hi"))
	if n := lm.Attempts(err); n != 1 || strings.Contains(err.Error(), "attempts") {
		t.Errorf("one attempt: Attempts = %d, err = %q", n, err)
	}
	for _, err := range lm.NewRetry(client, fastRetry(2), nil).Stream(context.Background(), ask("hi")) {
		if err != nil && lm.Attempts(err) != 2 {
			t.Errorf("stream: Attempts(%v) = %d, want 2", err, lm.Attempts(err))
		}
	}
}

func TestRetryNeverRetries(t *testing.T) {
	t.Run("non-retryable error", func(t *testing.T) {
		srv, err := lmtest.Start(context.Background(), lmtest.Config{APIKey: "right"})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		client, _ := openai.New(openai.Config{Model: "m", BaseURL: srv.URL(), APIKey: "wrong"})
		_, err = lm.NewRetry(client, fastRetry(5), nil).Complete(context.Background(), ask("hi"))
		if !errors.Is(err, lm.ErrAuth) {
			t.Fatalf("err = %v", err)
		}
		if n := srv.Stats().Rejected; n != 1 {
			t.Errorf("server saw %d requests, want 1", n)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fake := &fakeLM{fail: func(int) error { return serverError() }}
			ctx, cancel := context.WithCancel(context.Background())
			r := lm.NewRetry(fake, lm.RetryConfig{MaxAttempts: 5, InitialBackoff: config.Duration(time.Hour)}, &lm.Hooks{
				Retry: func(context.Context, string, int, error, time.Duration) { cancel() },
			})
			start := time.Now()
			_, err := r.Complete(ctx, ask("hi"))
			if err == nil || time.Since(start) != 0 || len(fake.Calls()) != 1 {
				t.Fatalf("err %v after %v and %d requests", err, time.Since(start), len(fake.Calls()))
			}
		})
	})
	t.Run("deadline shorter than the backoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fake := &fakeLM{fail: func(int) error {
				return &lm.Error{Kind: lm.ErrServer, Model: "dspex-sim", StatusCode: 503}
			}}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			r := lm.NewRetry(fake, lm.RetryConfig{MaxAttempts: 5, InitialBackoff: config.Duration(10 * time.Second)}, nil)
			start := time.Now()
			_, err := r.Complete(ctx, ask("hi"))
			// The wait would pass the deadline, so the error comes back at
			// once rather than when the deadline passes.
			if !errors.Is(err, lm.ErrServer) || time.Since(start) != 0 || len(fake.Calls()) != 1 {
				t.Fatalf("err %v after %v and %d requests", err, time.Since(start), len(fake.Calls()))
			}
		})
	})
	t.Run("open breaker", func(t *testing.T) {
		srv, client := sim(t, "", "500")
		b := lm.NewBreaker(client, "sim", lm.BreakerConfig{Failures: 1, OpenTimeout: config.Duration(time.Hour)}, nil)
		_, err := lm.NewRetry(b, fastRetry(5), nil).Complete(context.Background(), ask("hi"))
		if !errors.Is(err, lm.ErrBreakerOpen) || srv.Stats().Requests != 1 {
			t.Fatalf("err %v after %d requests", err, srv.Stats().Requests)
		}
	})
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The first 3 requests fail; afterwards the endpoint is healthy again.
		fake := &fakeLM{fail: failFirst(3, serverError)}
		var mu sync.Mutex
		var states []string
		hooks := &lm.Hooks{BreakerState: func(_, from, to string) {
			mu.Lock()
			states = append(states, from+"->"+to)
			mu.Unlock()
		}}
		b := lm.NewBreaker(fake, "sim/dspex-sim", lm.BreakerConfig{Failures: 3, OpenTimeout: config.Duration(200 * time.Millisecond)}, hooks)
		ctx := context.Background()
		for range 3 {
			if _, err := b.Complete(ctx, ask("hi")); !errors.Is(err, lm.ErrServer) {
				t.Fatalf("err = %v", err)
			}
		}
		if b.State() != "open" {
			t.Fatalf("state after 3 failures = %s", b.State())
		}
		for range 10 {
			start := time.Now()
			_, err := b.Complete(ctx, ask("hi"))
			if !errors.Is(err, lm.ErrBreakerOpen) || time.Since(start) != 0 {
				t.Fatalf("open breaker: err %v after %v", err, time.Since(start))
			}
		}
		if n := len(fake.Calls()); n != 3 {
			t.Fatalf("%d requests reached the provider while the breaker was open", n-3)
		}
		time.Sleep(199 * time.Millisecond)
		if _, err := b.Complete(ctx, ask("hi")); !errors.Is(err, lm.ErrBreakerOpen) {
			t.Fatalf("before the open timeout: err = %v, want the breaker still open", err)
		}
		time.Sleep(2 * time.Millisecond) // gobreaker half-opens once the timeout has strictly passed
		if _, err := b.Complete(ctx, ask("hi")); err != nil {
			t.Fatalf("half-open probe: %v", err)
		}
		if b.State() != "closed" || len(fake.Calls()) != 4 {
			t.Errorf("after the probe: state %s, %d requests", b.State(), len(fake.Calls()))
		}
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(states) != "[closed->open open->half-open half-open->closed]" {
			t.Errorf("state changes = %v", states)
		}
	})
}

func TestBreakerOpenErrorSaysWhenToRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeLM{fail: func(int) error { return serverError() }}
		b := lm.NewBreaker(fake, "sim", lm.BreakerConfig{Failures: 1, OpenTimeout: config.Duration(time.Minute)}, nil)
		_, _ = b.Complete(context.Background(), ask("hi"))
		for _, tc := range []struct {
			after time.Duration
			want  time.Duration
		}{
			{0, time.Minute},
			{20 * time.Millisecond, time.Minute}, // what is left, rounded up to whole seconds
			{1500 * time.Millisecond, 59 * time.Second},
		} {
			time.Sleep(tc.after)
			_, err := b.Complete(context.Background(), ask("hi"))
			if !errors.Is(err, lm.ErrBreakerOpen) {
				t.Fatalf("err = %v, want the breaker open", err)
			}
			if after := lm.RetryAfter(err); after != tc.want {
				t.Errorf("RetryAfter = %v, want %v: what is left of the minute the breaker stays open, in whole seconds", after, tc.want)
			}
			if !strings.Contains(err.Error(), "retry after "+tc.want.String()) {
				t.Errorf("err = %q, want it to say when to retry", err)
			}
		}
	})
}

func TestBreakerIgnoresCallerCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeLM{hang: true}
		b := lm.NewBreaker(fake, "sim", lm.BreakerConfig{Failures: 1}, nil)
		for range 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			_, err := b.Complete(ctx, ask("hi"))
			cancel()
			if !errors.Is(err, lm.ErrTimeout) {
				t.Fatalf("err = %v", err)
			}
		}
		if b.State() != "closed" {
			t.Errorf("caller deadlines opened the breaker: %s", b.State())
		}
	})
}

func TestCollapseIdenticalCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeLM{latency: 200 * time.Millisecond}
		c := lm.NewCollapse(fake)
		var wg sync.WaitGroup
		var failures, tokens atomic.Int64
		texts := make([]string, 100)
		for i := range 100 {
			wg.Go(func() {
				res, err := c.Complete(context.Background(), ask("the same question"))
				if err != nil {
					failures.Add(1)
					return
				}
				tokens.Add(int64(res.Usage.TotalTokens))
				res.Choices[0].Text += "mutated"
				texts[i] = res.Choices[0].Text
			})
		}
		wg.Wait()
		if failures.Load() != 0 {
			t.Fatalf("%d calls failed", failures.Load())
		}
		if n := len(fake.Calls()); n != 1 {
			t.Fatalf("100 identical concurrent calls reached the provider %d times, want 1", n)
		}
		for _, tx := range texts {
			if tx != texts[0] {
				t.Fatal("collapsed callers share one response value")
			}
		}
		if tokens.Load() == 0 {
			t.Error("no caller was charged the tokens")
		}
		// Different requests are not merged.
		if _, err := c.Complete(context.Background(), ask("another question")); err != nil || len(fake.Calls()) != 2 {
			t.Errorf("err %v, %d requests", err, len(fake.Calls()))
		}
	})
}

func TestCollapseLastWaiterCancels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeLM{hang: true}
		c := lm.NewCollapse(fake)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				if _, err := c.Complete(ctx, ask("q")); !errors.Is(err, lm.ErrCanceled) {
					t.Errorf("err = %v", err)
				}
			})
		}
		synctest.Wait() // every caller waits on the one shared call
		if calls := fake.Calls(); len(calls) != 1 || calls[0].Duration != 0 {
			t.Fatalf("calls before cancelling = %+v, want one running", calls)
		}
		cancel()
		wg.Wait()
		// The shared call was cancelled too: the provider sees its context end.
		synctest.Wait()
		if calls := fake.Calls(); len(calls) != 1 || calls[0].Duration == 0 {
			t.Errorf("the shared request was not cancelled when every caller left: %+v", calls)
		}
	})
}

func TestPoolQueueBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeLM{latency: 300 * time.Millisecond}
		p := lm.NewPool(fake, lm.PoolConfig{Size: 2, Queue: 3}, nil)
		var wg sync.WaitGroup
		var ok, full atomic.Int64
		for i := range 10 {
			wg.Go(func() {
				_, err := p.Complete(context.Background(), ask(fmt.Sprint("q", i)))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, lm.ErrQueueFull):
					full.Add(1)
				default:
					t.Errorf("err = %v", err)
				}
			})
			synctest.Wait() // arrive in order
		}
		wg.Wait()
		if ok.Load() != 5 || full.Load() != 5 {
			t.Errorf("%d served, %d refused; want 5 and 5 (2 slots + 3 queued)", ok.Load(), full.Load())
		}
		st := p.Stats()
		if st.MaxWait < 300*time.Millisecond || st.Refused != 5 || st.Waiting != 0 || st.InFlight != 0 {
			t.Errorf("stats = %+v", st)
		}
		if n := len(fake.Calls()); n != 5 {
			t.Errorf("provider saw %d requests", n)
		}
	})
}

func TestPoolCancellationReleasesWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeLM{hang: true}
		p := lm.NewPool(fake, lm.PoolConfig{Size: 1, Queue: 50}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			wg.Go(func() {
				_, err := p.Complete(ctx, ask(fmt.Sprint(i)))
				errs <- err
			})
		}
		synctest.Wait()
		if st := p.Stats(); st.Waiting != 19 || st.InFlight != 1 {
			t.Fatalf("stats before cancelling = %+v", st)
		}
		cancel()
		// synctest.Test fails the test if a waiter is never released.
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, lm.ErrCanceled) {
				t.Errorf("err = %v", err)
			}
		}
		if st := p.Stats(); st.Waiting != 0 || st.InFlight != 0 || st.Abandoned != 19 {
			t.Errorf("stats after cancel = %+v", st)
		}
	})
}

func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &fakeLM{}
		// 6000 requests per minute is one every 10ms; a 1-second burst allows 100
		// at once, so 120 calls need at least ~200ms.
		r := lm.NewRateLimit(fake, lm.RateLimitConfig{RPM: 6000, BurstSeconds: 1}, nil)
		start := time.Now()
		var wg sync.WaitGroup
		for i := range 120 {
			wg.Go(func() {
				if _, err := r.Complete(context.Background(), ask(fmt.Sprint(i))); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if d := time.Since(start); d < 190*time.Millisecond || d > 210*time.Millisecond {
			t.Errorf("120 calls at 6000 rpm with a 100-call burst took %v, want 200ms", d)
		}

		// Tokens: 60000 per minute is 1000/s; each call is estimated at about
		// 400 tokens (max_tokens), so after a 1000-token burst the rest wait.
		rt := lm.NewRateLimit(fake, lm.RateLimitConfig{TPM: 60000, BurstSeconds: 1}, nil)
		req := ask("tokens")
		req.MaxTokens = lm.Int(400)
		start = time.Now()
		for range 5 {
			if _, err := rt.Complete(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Errorf("5 calls of ~400 tokens at 1000 tokens/s took only %v", d)
		}

		// A wait that would pass the deadline fails at once.
		slow := lm.NewRateLimit(fake, lm.RateLimitConfig{RPM: 1}, nil)
		_, _ = slow.Complete(context.Background(), ask("first"))
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start = time.Now()
		if _, err := slow.Complete(ctx, ask("second")); !errors.Is(err, lm.ErrTimeout) || time.Since(start) != 0 {
			t.Errorf("err = %v after %v", err, time.Since(start))
		}
	})
}

func TestStackUsageAndCost(t *testing.T) {
	_, client := sim(t, "")
	var calls atomic.Int64
	s := lm.NewStack(client, lm.ExecConfig{
		Prices: lm.Prices{"dspex-sim": {Input: 1, Output: 2}},
		Hooks:  &lm.Hooks{Call: func(context.Context, lm.CallInfo) { calls.Add(1) }},
	})
	run := lm.NewTracker()
	ctx := lm.WithTracker(context.Background(), run)
	callCtx, st := lm.WithCallStats(ctx)
	res, err := s.Complete(callCtx, ask("price me"))
	if err != nil {
		t.Fatal(err)
	}
	want := (float64(res.Usage.PromptTokens)*1 + float64(res.Usage.CompletionTokens)*2) / 1e6
	if !st.Cost.Known() || st.Cost.USD != want {
		t.Errorf("cost = %v, want $%v", st.Cost, want)
	}
	tot := run.Total()
	if tot.Calls != 1 || tot.Usage != res.Usage || tot.Cost != st.Cost || calls.Load() != 1 {
		t.Errorf("tracker = %+v, hook calls %d", tot, calls.Load())
	}

	unpriced := lm.NewStack(client, lm.ExecConfig{})
	callCtx, st = lm.WithCallStats(ctx)
	if _, err = unpriced.Complete(callCtx, ask("no price")); err != nil {
		t.Fatal(err)
	}
	if st.Cost.Known() || st.Cost.String() != "unknown" {
		t.Errorf("unknown price reported as %v", st.Cost)
	}
	if tot := run.Total(); tot.Cost.Known() || tot.Calls != 2 {
		t.Errorf("run total = %+v", tot)
	}
}

func TestPricesLookup(t *testing.T) {
	p := lm.Prices{"gpt-4o": {Input: 2.5}, "gpt-4o-mini": {Input: 0.15}}
	for model, want := range map[string]float64{
		"gpt-4o": 2.5, "gpt-4o-mini": 0.15, "gpt-4o-mini-2024-07-18": 0.15, "openai/gpt-4o": 2.5, "gpt-4o-2024-08-06": 2.5,
	} {
		if pr, ok := p.Lookup(model); !ok || pr.Input != want {
			t.Errorf("Lookup(%q) = %v %v, want %v", model, pr, ok, want)
		}
	}
	if _, ok := p.Lookup("claude-3"); ok {
		t.Error("unknown model priced")
	}
}
