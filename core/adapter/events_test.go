package adapter

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dspex/dspex/core/config"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/signature"
)

const (
	// providerLatency is what the fake provider reports as its own
	// latency: a value no clock in the test produces, so that LMEnd's
	// latency is seen to come from the response.
	providerLatency = 7 * time.Millisecond
	answerText      = "[[ ## answer ## ]]\nok\n\n[[ ## completed ## ]]"
)

// slowProvider answers every request after a delay that depends on the
// question (the user message names it: "slow" 100ms, else 50ms), and fails
// the first failFirst calls asking "flaky" with a server error.
type slowProvider struct {
	mu        sync.Mutex
	calls     map[string]int
	failFirst int
}

func (p *slowProvider) Model() string { return "sim" }

func (p *slowProvider) Complete(ctx context.Context, req *lm.Request) (*lm.Response, error) {
	q := req.Messages[len(req.Messages)-1].Content
	p.mu.Lock()
	if p.calls == nil {
		p.calls = map[string]int{}
	}
	key := "other"
	for _, k := range []string{"slow", "shared", "flaky"} {
		if strings.Contains(q, k) {
			key = k
		}
	}
	p.calls[key]++
	n := p.calls[key]
	p.mu.Unlock()
	if key == "flaky" && n <= p.failFirst {
		return nil, &lm.Error{Kind: lm.ErrServer, StatusCode: 503, Model: "sim"}
	}
	d := 50 * time.Millisecond
	if key == "slow" {
		d = 100 * time.Millisecond
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return nil, &lm.Error{Kind: lm.ErrCanceled, Model: "sim", Err: ctx.Err()}
	}
	return &lm.Response{ID: "r-" + key, Model: "sim", Latency: providerLatency,
		Choices: []lm.Choice{{Text: answerText, FinishReason: "stop"}},
		Usage:   lm.Usage{PromptTokens: 100, CompletionTokens: 10, TotalTokens: 110}}, nil
}

func (p *slowProvider) callsFor(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[key]
}

// mapStore is an in-memory lm.ResponseStore.
type mapStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *mapStore) Get(_ context.Context, k string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[k]
	return append([]byte(nil), b...), ok
}

func (s *mapStore) Set(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[k] = append([]byte(nil), v...)
	return nil
}

// callEvents are the events of one LM call: those placed in its span, and
// its start and end (placed by the span they open and close).
type callEvents struct {
	starts, ends []*event.LMCall
	queueWaits   []time.Duration
	retries      int
}

// Every fact of an LM call reaches its LMEnd event once, from the adapter's
// LM span: the queue wait the pool measured, the attempts the retry layer
// counted, the provider's latency, the cost metering priced, a cache hit —
// through a collapsed call and a cache hit too.
func TestLMEndFactsFromOnePublisher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		prov := &slowProvider{failFirst: 2}
		const price = 1.0 // $ per million tokens, in and out
		stack := lm.NewStack(prov, lm.ExecConfig{
			Pool:   lm.PoolConfig{Size: 1},
			Retry:  lm.RetryConfig{MaxAttempts: 3, InitialBackoff: config.Duration(time.Millisecond), MaxBackoff: config.Duration(time.Millisecond)},
			Cache:  &mapStore{},
			Prices: lm.Prices{"sim": {Input: price, Output: price}},
			Hooks:  lm.EventHooks(nil),
		})
		bus := event.NewBus()
		var mu sync.Mutex
		byParent := map[string]string{} // caller span -> LM span
		calls := map[string]*callEvents{}
		get := func(span string) *callEvents {
			if calls[span] == nil {
				calls[span] = &callEvents{}
			}
			return calls[span]
		}
		if _, err := bus.Subscribe(event.SubscribeOptions{}, func(ev event.Event) {
			mu.Lock()
			defer mu.Unlock()
			switch d := ev.Data.(type) {
			case *event.LMCall:
				byParent[ev.ParentID] = ev.SpanID
				c := get(ev.SpanID)
				if ev.Kind == event.LMStart {
					c.starts = append(c.starts, d)
				} else {
					c.ends = append(c.ends, d)
				}
			case *event.LMWait:
				if ev.Kind == event.LMQueueWait {
					get(ev.SpanID).queueWaits = append(get(ev.SpanID).queueWaits, d.Wait)
				}
			case *event.LMRetryInfo:
				get(ev.SpanID).retries++
			}
		}); err != nil {
			t.Fatal(err)
		}
		tracker := lm.NewTracker()
		base := lm.WithTracker(event.WithBus(t.Context(), bus), tracker)
		sig := signature.MustParse("question -> answer")

		results := map[string]*Result{}
		spans := map[string]string{}
		var wg sync.WaitGroup
		ask := func(name, question string) {
			ctx, span := event.StartSpan(base)
			spans[name] = span.SpanID
			wg.Go(func() {
				res, err := Call(ctx, &ChatAdapter{NoFallback: true}, stack, Request{Signature: sig, Inputs: map[string]any{"question": question}})
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
				mu.Lock()
				results[name] = res
				mu.Unlock()
			})
			synctest.Wait()
		}
		ask("holder", "slow")   // holds the pool's one slot for 100ms
		ask("first", "shared")  // waits 100ms for the slot
		ask("joined", "shared") // joins first's call
		wg.Wait()
		ask("hit", "shared") // answered by the cache
		ask("retried", "flaky")
		wg.Wait()
		bus.Close()

		if n := prov.callsFor("shared"); n != 1 {
			t.Errorf("the provider saw %d calls of the shared request, want 1 (collapsed, then cached)", n)
		}
		paid := lm.Prices{"sim": {Input: price, Output: price}}.Cost("sim", lm.Usage{PromptTokens: 100, CompletionTokens: 10})
		type facts struct {
			QueueWait, Latency       time.Duration
			Attempts, PromptTokens   int
			CacheHit, CostKnown      bool
			CostUSD                  float64
			QueueWaitEvents, Retries int
		}
		want := map[string]facts{
			"holder":  {Latency: providerLatency, Attempts: 1, PromptTokens: 100, CostKnown: true, CostUSD: paid.USD},
			"first":   {QueueWait: 100 * time.Millisecond, Latency: providerLatency, Attempts: 1, PromptTokens: 100, CostKnown: true, CostUSD: paid.USD, QueueWaitEvents: 1},
			"joined":  {QueueWait: 100 * time.Millisecond, Latency: providerLatency, CostKnown: true},
			"hit":     {CacheHit: true, CostKnown: true},
			"retried": {Latency: providerLatency, Attempts: 3, PromptTokens: 100, CostKnown: true, CostUSD: paid.USD, Retries: 2},
		}
		for name, w := range want {
			c := calls[byParent[spans[name]]]
			if c == nil || len(c.starts) != 1 || len(c.ends) != 1 {
				t.Errorf("%s: %+v; want one LMStart and one LMEnd", name, c)
				continue
			}
			e := c.ends[0]
			got := facts{QueueWait: e.QueueWait, Latency: e.Latency, Attempts: e.Attempts, PromptTokens: e.PromptTokens,
				CacheHit: e.CacheHit, CostKnown: e.CostKnown, CostUSD: e.CostUSD, QueueWaitEvents: len(c.queueWaits), Retries: c.retries}
			if got != w {
				t.Errorf("%s: LMEnd facts = %+v, want %+v", name, got, w)
			}
			if len(c.queueWaits) == 1 && c.queueWaits[0] != e.QueueWait {
				t.Errorf("%s: queue wait event %v, LMEnd %v", name, c.queueWaits[0], e.QueueWait)
			}
			if r := results[name]; r == nil || r.Cost.USD != e.CostUSD || r.Cost.Known() != e.CostKnown {
				t.Errorf("%s: result cost %+v, LMEnd $%v known=%v", name, r, e.CostUSD, e.CostKnown)
			}
		}
		tot := tracker.Total()
		if tot.Calls != 5 || tot.CacheHits != 1 || tot.Usage.PromptTokens != 300 || tot.Cost != (lm.Cost{USD: 3 * paid.USD}) {
			t.Errorf("tracker totals = %+v", tot)
		}
	})
}

// frozenProvider hands every caller the same response value, as a
// provider that kept its answers might: no layer may write it. Every third
// call fails, to be retried.
type frozenProvider struct {
	res   *lm.Response
	calls atomic.Int64
}

func (p *frozenProvider) Model() string { return "sim" }

func (p *frozenProvider) Complete(context.Context, *lm.Request) (*lm.Response, error) {
	if p.calls.Add(1)%3 == 0 {
		return nil, &lm.Error{Kind: lm.ErrServer, StatusCode: 503, Model: "sim"}
	}
	time.Sleep(time.Millisecond)
	return p.res, nil
}

// The layers record what they learn in the call's record, never on the
// response: a response shared by concurrent calls (retried, queued,
// collapsed, priced) is never written (the race detector would see it) and
// ends as it began.
func TestLayersDoNotWriteResponses(t *testing.T) {
	shared := &lm.Response{ID: "frozen", Model: "sim", Latency: providerLatency,
		Choices: []lm.Choice{{Text: answerText, FinishReason: "stop"}},
		Usage:   lm.Usage{PromptTokens: 5, CompletionTokens: 5, TotalTokens: 10}}
	snapshot := *shared
	snapshot.Choices = append([]lm.Choice(nil), shared.Choices...)
	stack := lm.NewStack(&frozenProvider{res: shared}, lm.ExecConfig{
		Pool:   lm.PoolConfig{Size: 2},
		Retry:  lm.RetryConfig{InitialBackoff: config.Duration(time.Millisecond), MaxBackoff: config.Duration(time.Millisecond)},
		Prices: lm.Prices{"sim": {Input: 1, Output: 1}},
		Hooks:  lm.EventHooks(nil),
	})
	bus := event.NewBus()
	if _, err := bus.Subscribe(event.SubscribeOptions{}, func(event.Event) {}); err != nil {
		t.Fatal(err)
	}
	ctx := event.WithBus(t.Context(), bus)
	sig := signature.MustParse("question -> answer")
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 3 {
				q := "the same question" // collapsed
				if j > 0 {
					q = fmt.Sprint("question ", i, j) // alone
				}
				if _, err := Call(ctx, &ChatAdapter{NoFallback: true}, stack, Request{Signature: sig, Inputs: map[string]any{"question": q}}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	bus.Close()
	if !reflect.DeepEqual(*shared, snapshot) {
		t.Errorf("the shared response was written: %+v, was %+v", *shared, snapshot)
	}
}

// A streamed call reports the same facts: attempts, cost and, when the
// cache answers the stream, the hit (which the trackers count).
func TestStreamedLMEndFacts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		prov := &slowProvider{failFirst: 1}
		stack := lm.NewStack(prov, lm.ExecConfig{
			Retry:  lm.RetryConfig{InitialBackoff: config.Duration(time.Millisecond), MaxBackoff: config.Duration(time.Millisecond)},
			Cache:  &mapStore{},
			Prices: lm.Prices{"sim": {Input: 1, Output: 1}},
		})
		bus := event.NewBus()
		var ends []*event.LMCall
		if _, err := bus.Subscribe(event.SubscribeOptions{Kinds: []event.Kind{event.LMEnd}}, func(ev event.Event) {
			ends = append(ends, ev.Data.(*event.LMCall))
		}); err != nil {
			t.Fatal(err)
		}
		tracker := lm.NewTracker()
		ctx := lm.WithTracker(event.WithBus(t.Context(), bus), tracker)
		req := Request{Signature: signature.MustParse("question -> answer"), Inputs: map[string]any{"question": "flaky"}}
		var results []*Result
		for range 2 {
			res, err := Stream(ctx, &ChatAdapter{NoFallback: true}, stack, req, func(FieldChunk) bool { return true })
			if err != nil {
				t.Fatal(err)
			}
			results = append(results, res)
		}
		bus.Close()
		paid := lm.Prices{"sim": {Input: 1, Output: 1}}.Cost("sim", lm.Usage{PromptTokens: 100, CompletionTokens: 10})
		if len(ends) != 2 {
			t.Fatalf("%d LMEnd events, want 2", len(ends))
		}
		if e := ends[0]; e.Attempts != 2 || e.CacheHit || !e.CostKnown || e.CostUSD != paid.USD || results[0].Cost != paid {
			t.Errorf("streamed call: LMEnd %+v, result cost %v; want 2 attempts, cost %v", e, results[0].Cost, paid)
		}
		if e := ends[1]; e.Attempts != 0 || !e.CacheHit || !e.CostKnown || e.CostUSD != 0 || results[1].Cost != (lm.Cost{}) {
			t.Errorf("streamed hit: LMEnd %+v, result cost %v", e, results[1].Cost)
		}
		if tot := tracker.Total(); tot.Calls != 2 || tot.CacheHits != 1 || tot.Cost != paid {
			t.Errorf("tracker totals = %+v", tot)
		}
	})
}
