package lm

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"
)

// ErrQueueFull is the Kind of the error a Pool returns when every slot is
// busy and its wait queue is full. It is not retried: the caller is already
// sending more than the endpoint is configured to take.
var ErrQueueFull = errors.New("lm: pool queue full")

// DefaultPoolSize is PoolConfig.Size when it is not set: large enough that
// a caller's own concurrency (Evaluate's workers, a bootstrap's, a server's
// clients) passes through to the endpoint, so that the default is never the
// bottleneck. Set a smaller Size to protect an endpoint that takes fewer
// concurrent requests (a local server, a provider's concurrency limit).
const DefaultPoolSize = 1024

// DefaultPoolQueue is PoolConfig.Queue when it is not set.
const DefaultPoolQueue = 1024

// PoolConfig bounds the calls in flight to one endpoint and model. The
// zero value lets DefaultPoolSize calls run at once and DefaultPoolQueue
// more wait; the caller after those is refused with ErrQueueFull at once.
type PoolConfig struct {
	// Size is how many calls may run at once. Default DefaultPoolSize
	// (1024): the pool does not throttle callers unless told to.
	Size int `yaml:"size" json:"size"`
	// Queue is how many further callers may wait for a slot; one more is
	// refused with ErrQueueFull. Default DefaultPoolQueue (1024); a
	// negative value means none may wait.
	Queue int `yaml:"queue" json:"queue"`
}

func (c PoolConfig) withDefaults() PoolConfig {
	if c.Size <= 0 {
		c.Size = DefaultPoolSize
	}
	if c.Queue == 0 {
		c.Queue = DefaultPoolQueue
	}
	if c.Queue < 0 {
		c.Queue = 0
	}
	return c
}

// PoolStats are a pool's counters.
type PoolStats struct {
	Size, Queue       int
	InFlight, Waiting int
	// Admitted counts calls that got a slot; Refused those turned away
	// with ErrQueueFull; Abandoned those whose context ended while waiting.
	Admitted, Refused, Abandoned int64
	// TotalWait and MaxWait sum and bound the time admitted calls waited.
	TotalWait, MaxWait time.Duration
}

// Slots is a counting semaphore with a bounded wait queue, the core of Pool
// (and of the embedding pool). Safe for concurrent use.
type Slots struct {
	sem       chan struct{}
	releaseFn func() // s.release, made once: a method value allocates
	mu        sync.Mutex
	stats     PoolStats
}

// NewSlots returns slots for cfg.
func NewSlots(cfg PoolConfig) *Slots {
	cfg = cfg.withDefaults()
	s := &Slots{sem: make(chan struct{}, cfg.Size), stats: PoolStats{Size: cfg.Size, Queue: cfg.Queue}}
	s.releaseFn = s.release
	return s
}

// Acquire takes a slot, waiting in the queue if all are busy. It returns
// the release function and how long it waited. A full queue fails at once
// with ErrQueueFull; a context that ends while waiting fails with its error
// and leaves the queue.
func (s *Slots) Acquire(ctx context.Context) (release func(), wait time.Duration, err error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	select {
	case s.sem <- struct{}{}:
		s.admitted(0)
		return s.releaseFn, 0, nil
	default:
	}
	s.mu.Lock()
	if s.stats.Waiting >= s.stats.Queue {
		s.stats.Refused++
		waiting := s.stats.Waiting
		s.mu.Unlock()
		return nil, 0, fmt.Errorf("%w: %d calls in flight and %d waiting", ErrQueueFull, s.stats.Size, waiting)
	}
	s.stats.Waiting++
	s.mu.Unlock()
	start := time.Now()
	select {
	case s.sem <- struct{}{}:
		wait = time.Since(start)
		s.mu.Lock()
		s.stats.Waiting--
		s.mu.Unlock()
		s.admitted(wait)
		return s.releaseFn, wait, nil
	case <-ctx.Done():
		s.mu.Lock()
		s.stats.Waiting--
		s.stats.Abandoned++
		s.mu.Unlock()
		return nil, time.Since(start), ctx.Err()
	}
}

// acquireFor is Acquire for a call to model: a wait is recorded in the
// call's CallStats and reported to hooks, and a failure is an *Error (ErrQueueFull, or the ended context's kind).
func (s *Slots) acquireFor(ctx context.Context, model string, hooks *Hooks) (func(), time.Duration, error) {
	release, wait, err := s.Acquire(ctx)
	if err != nil {
		if errors.Is(err, ErrQueueFull) {
			return nil, wait, &Error{Kind: ErrQueueFull, Model: model, Message: err.Error()}
		}
		return nil, wait, contextKindError(ctx, model)
	}
	if st := CallStatsFrom(ctx); st != nil {
		st.QueueWait += wait
	}
	hooks.queueWait(ctx, model, wait)
	return release, wait, nil
}

func (s *Slots) admitted(wait time.Duration) {
	s.mu.Lock()
	s.stats.Admitted++
	s.stats.InFlight++
	s.stats.TotalWait += wait
	s.stats.MaxWait = max(s.stats.MaxWait, wait)
	s.mu.Unlock()
}

func (s *Slots) release() {
	s.mu.Lock()
	s.stats.InFlight--
	s.mu.Unlock()
	<-s.sem
}

// Stats returns a snapshot of the counters.
func (s *Slots) Stats() PoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Pool is the execution layer that bounds concurrent calls to one endpoint
// and model. It records how long each call waited for a slot in the call's
// CallStats (QueueWait). Safe for concurrent use.
type Pool struct {
	next  LM
	slots *Slots
	hooks *Hooks
}

var (
	_ LM       = (*Pool)(nil)
	_ Streamer = (*Pool)(nil)
)

// NewPool wraps next in a pool.
func NewPool(next LM, cfg PoolConfig, hooks *Hooks) *Pool {
	return &Pool{next: next, slots: NewSlots(cfg), hooks: hooks}
}

// Model returns the wrapped LM's model.
func (p *Pool) Model() string { return p.next.Model() }

// ResponseFormat passes the wrapped LM's answer through.
func (p *Pool) ResponseFormat() ResponseFormatMode { return ResponseFormatFor(p.next) }

// Stats returns the pool's counters.
func (p *Pool) Stats() PoolStats { return p.slots.Stats() }

// Complete waits for a slot, then calls the wrapped LM.
func (p *Pool) Complete(ctx context.Context, req *Request) (*Response, error) {
	model := requestModel(p.next, req)
	release, _, err := p.slots.acquireFor(ctx, model, p.hooks)
	if err != nil {
		return nil, err
	}
	defer release()
	return p.next.Complete(ctx, req)
}

// Stream holds a slot for the whole stream.
func (p *Pool) Stream(ctx context.Context, req *Request) iter.Seq2[Delta, error] {
	return func(yield func(Delta, error) bool) {
		release, _, err := p.slots.acquireFor(ctx, requestModel(p.next, req), p.hooks)
		if err != nil {
			yield(Delta{}, err)
			return
		}
		defer release()
		for d, err := range StreamOrComplete(ctx, p.next, req) {
			if !yield(d, err) || err != nil {
				return
			}
		}
	}
}

// requestModel is the model a request goes to.
func requestModel(m LM, req *Request) string {
	if req != nil && req.Model != "" {
		return req.Model
	}
	return m.Model()
}

// contextKindError turns an ended context into the matching *Error.
func contextKindError(ctx context.Context, model string) *Error {
	e := &Error{Kind: ErrCanceled, Model: model, Err: ctx.Err()}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		e.Kind = ErrTimeout
	}
	return e
}
