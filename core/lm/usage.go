package lm

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"strings"
	"sync"
	"time"
)

// Price is a model's price in US dollars per million tokens.
type Price struct {
	Input  float64 `yaml:"input" json:"input"`
	Output float64 `yaml:"output" json:"output"`
}

// Prices maps model names to prices. A model is found by its exact name,
// then without a "provider/" prefix, then by the longest key that is a
// prefix of the name followed by "-" (so "gpt-4o-mini" prices
// "gpt-4o-mini-2024-07-18").
type Prices map[string]Price

// Lookup finds the price of model.
func (p Prices) Lookup(model string) (Price, bool) {
	if pr, ok := p[model]; ok {
		return pr, true
	}
	if _, rest, ok := strings.Cut(model, "/"); ok {
		if pr, ok := p[rest]; ok {
			return pr, true
		}
		model = rest
	}
	best := ""
	for k := range p {
		if strings.HasPrefix(model, k+"-") && len(k) > len(best) {
			best = k
		}
	}
	if best != "" {
		return p[best], true
	}
	return Price{}, false
}

// Cost prices usage. An unknown price gives a Cost with Unknown set: a cost
// is never silently zero.
func (p Prices) Cost(model string, u Usage) Cost {
	pr, ok := p.Lookup(model)
	if !ok {
		return Cost{Unknown: 1}
	}
	return Cost{USD: (float64(u.PromptTokens)*pr.Input + float64(u.CompletionTokens)*pr.Output) / 1e6}
}

// Cost is money spent, in US dollars, with a count of calls whose price was
// unknown (which are not in USD).
type Cost struct {
	USD     float64 `json:"usd"`
	Unknown int     `json:"unknown_price_calls,omitempty"`
}

// Add sums two costs.
func (c Cost) Add(o Cost) Cost { return Cost{USD: c.USD + o.USD, Unknown: c.Unknown + o.Unknown} }

// Known reports whether every call in the sum had a price.
func (c Cost) Known() bool { return c.Unknown == 0 }

// String writes "$0.001234", "unknown", or "$0.0012 + 3 calls of unknown
// price".
func (c Cost) String() string {
	switch {
	case c.Unknown == 0:
		return fmt.Sprintf("$%.6f", c.USD)
	case c.USD == 0:
		return "unknown"
	default:
		return fmt.Sprintf("$%.6f + %d calls of unknown price", c.USD, c.Unknown)
	}
}

// Totals sum the calls a Tracker saw.
type Totals struct {
	Calls     int `json:"calls"`
	CacheHits int `json:"cache_hits"`
	// Errors counts failed calls; Canceled those the caller gave up on
	// (counted apart: they say nothing about the LM).
	Errors   int   `json:"errors"`
	Canceled int   `json:"canceled,omitempty"`
	Usage    Usage `json:"usage"`
	Cost     Cost  `json:"cost"`
}

func (t Totals) add(res *Response, cost Cost, err error) Totals {
	t.Calls++
	if err != nil {
		if errors.Is(err, ErrCanceled) {
			t.Canceled++
		} else {
			t.Errors++
		}
		return t
	}
	if res.CacheHit {
		t.CacheHits++
	}
	t.Usage = t.Usage.Add(res.Usage)
	t.Cost = t.Cost.Add(cost)
	return t
}

// Tracker sums the usage and cost of the calls made under a context that
// carries it (WithTracker): one tracker per run, per program call, per
// optimizer trial. Safe for concurrent use.
type Tracker struct {
	mu      sync.Mutex
	total   Totals
	byModel map[string]Totals
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker { return &Tracker{byModel: map[string]Totals{}} }

// Add records one finished call: its response (nil on error), its cost
// (info.Stats.Cost) or its error.
func (t *Tracker) Add(info CallInfo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total = t.total.add(info.Response, info.Stats.Cost, info.Err)
	t.byModel[info.Model] = t.byModel[info.Model].add(info.Response, info.Stats.Cost, info.Err)
}

// Total returns the sums over every model.
func (t *Tracker) Total() Totals {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

// ByModel returns the sums per model.
func (t *Tracker) ByModel() map[string]Totals {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.byModel)
}

type trackersKey struct{}

// WithTracker returns a context whose calls are also recorded in t. Trackers
// nest: a call is recorded in every tracker of its context.
func WithTracker(ctx context.Context, t *Tracker) context.Context {
	prev, _ := ctx.Value(trackersKey{}).([]*Tracker)
	list := make([]*Tracker, len(prev), len(prev)+1)
	copy(list, prev)
	return context.WithValue(ctx, trackersKey{}, append(list, t))
}

func recordCall(ctx context.Context, info CallInfo) {
	trackers, _ := ctx.Value(trackersKey{}).([]*Tracker)
	for _, t := range trackers {
		t.Add(info)
	}
}

// Metered is the outermost execution layer: it prices each response from
// the price table into the call's CallStats (Cost), records the call in the
// context's Trackers and reports it to the Call hook. Safe for concurrent
// use.
type Metered struct {
	next   LM
	prices Prices
	hooks  *Hooks
}

var (
	_ LM       = (*Metered)(nil)
	_ Streamer = (*Metered)(nil)
)

// NewMetered wraps next.
func NewMetered(next LM, prices Prices, hooks *Hooks) *Metered {
	return &Metered{next: next, prices: prices, hooks: hooks}
}

// Model returns the wrapped LM's model.
func (m *Metered) Model() string { return m.next.Model() }

// ResponseFormat passes the wrapped LM's answer through.
func (m *Metered) ResponseFormat() ResponseFormatMode { return ResponseFormatFor(m.next) }

// Complete calls the wrapped LM and records the call.
func (m *Metered) Complete(ctx context.Context, req *Request) (*Response, error) {
	start := time.Now()
	res, err := m.next.Complete(ctx, req)
	m.finish(ctx, req, res, err, time.Since(start))
	return res, err
}

func (m *Metered) finish(ctx context.Context, req *Request, res *Response, err error, d time.Duration) {
	info := CallInfo{Model: requestModel(m.next, req), Request: req, Response: res, Err: err, Duration: d}
	st := CallStatsFrom(ctx)
	if err == nil && res != nil && !res.CacheHit {
		info.Stats.Cost = m.prices.Cost(info.Model, res.Usage)
	}
	if st != nil {
		st.Cost = info.Stats.Cost
		info.Stats = *st
	}
	recordCall(ctx, info)
	m.hooks.call(ctx, info)
}

// Stream passes deltas through and records the call when the stream ends.
func (m *Metered) Stream(ctx context.Context, req *Request) iter.Seq2[Delta, error] {
	return func(yield func(Delta, error) bool) {
		start := time.Now()
		res := &Response{Model: requestModel(m.next, req)}
		var failed error
		for d, err := range StreamOrComplete(ctx, m.next, req) {
			if err != nil {
				failed = err
			} else {
				if d.Usage != nil {
					res.Usage = *d.Usage
				}
				res.CacheHit = res.CacheHit || d.Cached
			}
			if !yield(d, err) || err != nil {
				break
			}
		}
		if failed != nil {
			res = nil
		}
		m.finish(ctx, req, res, failed, time.Since(start))
	}
}
