package lm

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// gateLM answers when released, or fails when its caller's context ends;
// it counts calls and records each call's context.
type gateLM struct {
	mu      sync.Mutex
	calls   int
	ctxs    []context.Context
	entered chan struct{}
	release chan struct{}
}

func newGateLM() *gateLM {
	return &gateLM{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (g *gateLM) Model() string { return "gate" }

func (g *gateLM) Complete(ctx context.Context, _ *Request) (*Response, error) {
	g.mu.Lock()
	g.calls++
	g.ctxs = append(g.ctxs, ctx)
	g.mu.Unlock()
	g.entered <- struct{}{}
	select {
	case <-g.release:
		return &Response{Choices: []Choice{{Text: "answer"}}, Usage: Usage{TotalTokens: 3}}, nil
	case <-ctx.Done():
		return nil, contextKindError(ctx, "gate")
	}
}

// joined waits until n callers besides the first wait on the flight of req.
func waitJoined(t *testing.T, c *Collapse, req *Request) {
	t.Helper()
	h := c.requestHash(requestModel(c.next, req), req)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		f := c.flights[h]
		ok := f != nil && f.done != nil
		c.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the second caller never joined the call in flight")
}

// The first caller makes the call itself, with its own context: no
// goroutine, no derived context.
func TestCollapseCallsOnTheCallersContext(t *testing.T) {
	g := newGateLM()
	close(g.release)
	c := NewCollapse(g)
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, 1)
	if _, err := c.Complete(ctx, &Request{Messages: []Message{{Role: RoleUser, Content: "q"}}}); err != nil {
		t.Fatal(err)
	}
	if len(g.ctxs) != 1 || g.ctxs[0] != ctx {
		t.Errorf("the provider got another context than the caller's")
	}
	if len(c.flights) != 0 {
		t.Errorf("%d flights left listed", len(c.flights))
	}
}

// A call with no identical call in flight allocates next to nothing in the
// layer (the old layer spent a goroutine, a context, a channel, a JSON
// encoding and a SHA-256 per call).
func TestCollapseLoneCallAllocations(t *testing.T) {
	res := &Response{Choices: []Choice{{Text: "a"}}}
	c := NewCollapse(funcLM(func(context.Context, *Request) (*Response, error) { return res, nil }))
	req := &Request{Messages: []Message{{Role: RoleSystem, Content: strings.Repeat("system ", 200)}, {Role: RoleUser, Content: "q"}}}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := c.Complete(ctx, req); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("%.0f allocations per lone call, want at most 1 (the flight)", allocs)
	}
}

type funcLM func(context.Context, *Request) (*Response, error)

func (funcLM) Model() string { return "func" }
func (f funcLM) Complete(ctx context.Context, r *Request) (*Response, error) {
	return f(ctx, r)
}

// When the first caller leaves, the call is cancelled and the callers
// that joined it start it again: they still get an answer.
func TestCollapseFirstCallerLeaves(t *testing.T) {
	g := newGateLM()
	c := NewCollapse(g)
	req := &Request{Messages: []Message{{Role: RoleUser, Content: "q"}}}
	first, leave := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Complete(first, req)
		errc <- err
	}()
	<-g.entered
	resc := make(chan *Response, 1)
	go func() {
		res, err := c.Complete(context.Background(), &Request{Messages: []Message{{Role: RoleUser, Content: "q"}}})
		if err != nil {
			t.Error(err)
		}
		resc <- res
	}()
	waitJoined(t, c, req)
	leave()
	if err := <-errc; !errors.Is(err, ErrCanceled) {
		t.Errorf("first caller: err = %v, want ErrCanceled", err)
	}
	<-g.entered // the second caller's own call
	close(g.release)
	if res := <-resc; res == nil || res.Choices[0].Text != "answer" {
		t.Errorf("second caller got %+v", res)
	}
	if g.calls != 2 {
		t.Errorf("%d provider calls, want 2", g.calls)
	}
}

// Callers that join share the first caller's call and get copies; a
// request that differs only in Params.Extra is not joined.
func TestCollapseJoinsOnlyIdentical(t *testing.T) {
	g := newGateLM()
	c := NewCollapse(g)
	mk := func(extra map[string]any) *Request {
		return &Request{Messages: []Message{{Role: RoleUser, Content: "q"}}, Params: Params{Temperature: Float(0), Extra: extra}}
	}
	var wg sync.WaitGroup
	results := make([]*Response, 3)
	for i, r := range []*Request{mk(map[string]any{"x": 1}), mk(map[string]any{"x": 1}), mk(map[string]any{"x": 2})} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Complete(context.Background(), r)
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		}()
		if i != 1 {
			<-g.entered
		} else {
			waitJoined(t, c, r)
		}
	}
	close(g.release)
	wg.Wait()
	if g.calls != 2 {
		t.Errorf("%d provider calls, want 2 (one shared, one for the other extra)", g.calls)
	}
	if results[0] == results[1] || &results[0].Choices[0] == &results[1].Choices[0] {
		t.Error("callers share one response value")
	}
	if results[0].Usage.TotalTokens+results[1].Usage.TotalTokens != 3 {
		t.Errorf("usage %v and %v: want the call's tokens charged once", results[0].Usage, results[1].Usage)
	}
}
