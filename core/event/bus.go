package event

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Policy says what a publisher does when a subscriber's buffer is full.
type Policy uint8

const (
	// Block makes the publisher wait for room, so nothing is lost — up to
	// the subscription's BlockTimeout. A subscriber that stays full that
	// long is stalled: the event is dropped for it and reported, and until
	// it has room again later events are dropped for it without waiting.
	Block Policy = iota
	// DropOldest never makes the publisher wait: when the buffer is full
	// the oldest event in it is dropped and counted.
	DropOldest
)

// Defaults for SubscribeOptions.
const (
	DefaultBuffer       = 1024
	DefaultBlockTimeout = 5 * time.Second
)

// ErrClosed is returned when subscribing to a closed bus.
var ErrClosed = errors.New("event: bus closed")

// SubscribeOptions configure a subscription.
type SubscribeOptions struct {
	// Name identifies the subscriber in problem reports.
	Name string
	// Kinds are the kinds delivered; nil means every kind.
	Kinds []Kind
	// Buffer is how many events may wait for the subscriber. Default 1024.
	Buffer int
	// Policy is Block (the default) or DropOldest.
	Policy Policy
	// BlockTimeout bounds a publisher's wait on a full Block subscriber.
	// Default 5s.
	BlockTimeout time.Duration
}

// Stats are a subscription's counters.
type Stats struct {
	Delivered int64 // events handed to the handler
	Dropped   int64 // events lost (drop-oldest overflow, or a stalled block subscriber)
	Panics    int64 // handler panics recovered
	Stalls    int64 // times a block subscriber stayed full past BlockTimeout
}

// Bus delivers events to subscribers, each on its own goroutine. Safe for
// concurrent use. The zero value is not usable; call NewBus.
type Bus struct {
	mu     sync.Mutex // serializes Subscribe, Unsubscribe and Close
	subs   atomic.Pointer[[]*Subscription]
	closed atomic.Bool
}

// NewBus returns an empty bus.
func NewBus() *Bus {
	b := &Bus{}
	b.subs.Store(&[]*Subscription{})
	return b
}

// Subscription is one subscriber's buffer and goroutine.
type Subscription struct {
	bus     *Bus
	name    string
	kinds   map[Kind]bool
	policy  Policy
	timeout time.Duration
	handle  func(Event)

	ch      chan Event // Block
	mu      sync.Mutex // DropOldest ring
	ring    []Event
	head, n int
	notify  chan struct{}
	stalled atomic.Bool

	closing   chan struct{}
	closeOnce sync.Once
	done      chan struct{}

	delivered, dropped, panics, stalls atomic.Int64
}

// Subscribe registers handler for the kinds in opts. The handler runs on
// the subscription's goroutine, one event at a time, in publishing order
// (per publisher).
func (b *Bus) Subscribe(opts SubscribeOptions, handler func(Event)) (*Subscription, error) {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.BlockTimeout <= 0 {
		opts.BlockTimeout = DefaultBlockTimeout
	}
	s := &Subscription{
		bus: b, name: opts.Name, policy: opts.Policy, timeout: opts.BlockTimeout, handle: handler,
		closing: make(chan struct{}), done: make(chan struct{}),
	}
	if s.name == "" {
		s.name = "subscriber"
	}
	if opts.Kinds != nil {
		s.kinds = make(map[Kind]bool, len(opts.Kinds))
		for _, k := range opts.Kinds {
			s.kinds[k] = true
		}
	}
	if opts.Policy == DropOldest {
		s.ring = make([]Event, opts.Buffer)
		s.notify = make(chan struct{}, 1)
	} else {
		s.ch = make(chan Event, opts.Buffer)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return nil, ErrClosed
	}
	list := append(slices.Clone(*b.subs.Load()), s)
	b.subs.Store(&list)
	go s.run()
	return s, nil
}

// Wants reports whether any subscriber takes kind.
func (b *Bus) Wants(kind Kind) bool {
	for _, s := range *b.subs.Load() {
		if s.wants(kind) {
			return true
		}
	}
	return false
}

func (s *Subscription) wants(kind Kind) bool { return s.kinds == nil || s.kinds[kind] }

// Publish delivers ev to every subscriber that wants its kind.
func (b *Bus) Publish(ev Event) {
	for _, s := range *b.subs.Load() {
		if s.wants(ev.Kind) {
			s.deliver(ev, true)
		}
	}
}

// Close closes every subscription — each handles what it has buffered —
// and waits for their goroutines. Later publishing is a no-op.
func (b *Bus) Close() {
	b.mu.Lock()
	b.closed.Store(true)
	subs := *b.subs.Load()
	b.mu.Unlock()
	// Subscribers stay listed while they drain, so that problems found
	// while draining still reach the others.
	for _, s := range subs {
		s.shutdown()
	}
	b.mu.Lock()
	b.subs.Store(&[]*Subscription{})
	b.mu.Unlock()
}

// Close unsubscribes: the handler still gets the events already buffered,
// then the goroutine ends; Close waits for that.
func (s *Subscription) Close() {
	b := s.bus
	b.mu.Lock()
	list := slices.DeleteFunc(slices.Clone(*b.subs.Load()), func(x *Subscription) bool { return x == s })
	b.subs.Store(&list)
	b.mu.Unlock()
	s.shutdown()
}

func (s *Subscription) shutdown() {
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.done
}

// Stats returns the subscription's counters.
func (s *Subscription) Stats() Stats {
	return Stats{Delivered: s.delivered.Load(), Dropped: s.dropped.Load(), Panics: s.panics.Load(), Stalls: s.stalls.Load()}
}

// deliver buffers ev; wait says whether a Block subscriber may make the
// publisher wait.
func (s *Subscription) deliver(ev Event, wait bool) {
	if s.policy == DropOldest {
		s.mu.Lock()
		if s.n == len(s.ring) {
			s.head = (s.head + 1) % len(s.ring)
			s.n--
			s.dropped.Add(1)
		}
		s.ring[(s.head+s.n)%len(s.ring)] = ev
		s.n++
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
		return
	}
	select {
	case s.ch <- ev:
		s.stalled.Store(false)
		return
	case <-s.closing:
		return
	default:
	}
	if !wait || s.stalled.Load() {
		s.dropped.Add(1)
		return
	}
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case s.ch <- ev:
	case <-s.closing:
	case <-t.C:
		s.dropped.Add(1)
		s.stalls.Add(1)
		if !s.stalled.Swap(true) {
			s.report(fmt.Sprintf("stalled: its buffer stayed full for %s; dropping its events until it catches up", s.timeout))
		}
	}
}

// report tells the other subscribers about a problem with s, without ever
// waiting on them.
func (s *Subscription) report(problem string) {
	ev := Event{Kind: SubscriberError, Time: time.Now(),
		Data: &SubscriberProblem{Subscriber: s.name, Problem: problem, Dropped: s.dropped.Load()}}
	for _, o := range *s.bus.subs.Load() {
		if o != s && o.wants(SubscriberError) {
			o.deliver(ev, false)
		}
	}
}

func (s *Subscription) run() {
	defer close(s.done)
	if s.policy == DropOldest {
		s.runRing()
		return
	}
	for {
		select {
		case ev := <-s.ch:
			s.call(ev)
		case <-s.closing:
			for {
				select {
				case ev := <-s.ch:
					s.call(ev)
				default:
					return
				}
			}
		}
	}
}

func (s *Subscription) runRing() {
	var batch []Event
	for {
		closing := false
		select {
		case <-s.notify:
		case <-s.closing:
			closing = true
		}
		s.mu.Lock()
		batch = batch[:0]
		for s.n > 0 {
			batch = append(batch, s.ring[s.head])
			s.ring[s.head] = Event{}
			s.head = (s.head + 1) % len(s.ring)
			s.n--
		}
		s.mu.Unlock()
		for _, ev := range batch {
			s.call(ev)
		}
		if closing {
			return
		}
	}
}

// call runs the handler, containing a panic.
func (s *Subscription) call(ev Event) {
	defer func() {
		if r := recover(); r != nil {
			s.panics.Add(1)
			if ev.Kind != SubscriberError {
				s.report(fmt.Sprintf("panicked handling %s: %v", ev.Kind, r))
			}
		}
	}()
	s.delivered.Add(1)
	s.handle(ev)
}
