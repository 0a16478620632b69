// Package event is DSPEx's typed in-process event bus. Every module call,
// LM call, parse failure, retry, breaker change, evaluation example and
// optimizer step is an Event carrying a run id, a span id and the parent
// span's id, taken from the context. Logging, the SQLite trace store,
// OpenTelemetry export, progress bars and the dashboard are subscribers;
// the core never prints.
//
// The bus travels in the context (WithBus): publishing where no bus is set,
// or where no subscriber wants the event's kind, costs a context lookup and
// an atomic load. Subscribers choose kinds and a bounded buffer with a
// policy: Block (nothing lost; a publisher waits, for at most the
// subscription's BlockTimeout, for a stalled subscriber) or DropOldest (a
// publisher never waits; the oldest buffered events are dropped and
// counted). A subscriber that panics is reported and keeps receiving.
//
// This package imports nothing else of DSPEx, so every package may publish.
package event

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"time"
)

// Kind names what happened; subscribers filter on it.
type Kind string

// The kinds DSPEx publishes. Payload types are given for each.
const (
	RunStart         Kind = "run.start"           // *RunInfo
	RunEnd           Kind = "run.end"             // *RunInfo
	ModuleStart      Kind = "module.start"        // *ModuleCall
	ModuleEnd        Kind = "module.end"          // *ModuleCall
	LMStart          Kind = "lm.start"            // *LMCall
	LMEnd            Kind = "lm.end"              // *LMCall
	LMRetry          Kind = "lm.retry"            // *LMRetryInfo
	LMQueueWait      Kind = "lm.queue_wait"       // *LMWait
	LMRateLimitWait  Kind = "lm.rate_limit_wait"  // *LMWait
	BreakerState     Kind = "lm.breaker"          // *BreakerChange
	ParseFailure     Kind = "adapter.parse_error" // *ParseFailureInfo
	AdapterFallback  Kind = "adapter.fallback"    // *ParseFailureInfo
	DemoExtraKeys    Kind = "module.demo_keys"    // *DemoKeysInfo
	Progress         Kind = "progress"            // *ProgressInfo
	EvalExample      Kind = "eval.example"        // *EvalExampleInfo
	OptimizerStart   Kind = "optimizer.start"     // *OptimizerInfo
	OptimizerTrial   Kind = "optimizer.trial"     // *OptimizerTrialInfo
	OptimizerNewBest Kind = "optimizer.new_best"  // *OptimizerTrialInfo
	OptimizerEnd     Kind = "optimizer.end"       // *OptimizerInfo
	SubscriberError  Kind = "event.subscriber"    // *SubscriberProblem
)

// Candidates an optimizer built or proposed before its search (MIPROv2's
// demo sets and instruction proposals), one event each.
const (
	OptimizerDemoSet     Kind = "optimizer.demo_set"    // *OptimizerDemoSetInfo
	OptimizerInstruction Kind = "optimizer.instruction" // *OptimizerInstructionInfo
)

// Event is one thing that happened.
type Event struct {
	Kind Kind
	Time time.Time
	// RunID, SpanID and ParentID place the event: the run it belongs to,
	// the span it starts, ends or happens within, and that span's parent.
	RunID    string
	SpanID   string
	ParentID string
	// Data is the kind's payload (see the Kind constants). Payloads are
	// shared between subscribers and must be treated as read-only.
	Data any
}

// Durable is implemented by payloads that a store writing events in
// batches (the trace store) commits at once instead of with its next
// batch: records a resumed run reads back to avoid repeating paid work,
// such as the id of a fine-tuning job just started. Keep them rare.
type Durable interface {
	Durable() bool
}

// IsDurable reports whether ev's payload asks to be written at once.
func IsDurable(ev Event) bool {
	d, ok := ev.Data.(Durable)
	return ok && d.Durable()
}

// Span identifies a unit of work: a run's top level, a module call, an LM
// call.
type Span struct {
	RunID    string
	SpanID   string
	ParentID string
}

type spanKey struct{}

// SpanFrom returns the span the context is in (zero when none).
func SpanFrom(ctx context.Context) Span {
	s, _ := ctx.Value(spanKey{}).(Span)
	return s
}

// WithSpan returns a context inside s.
func WithSpan(ctx context.Context, s Span) context.Context {
	return context.WithValue(ctx, spanKey{}, s)
}

// NewID returns a random 16-hex-digit id for runs and spans.
func NewID() string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// StartSpan opens a child span of the context's span (a root span of a new
// run when the context has no run) and returns the context inside it.
func StartSpan(ctx context.Context) (context.Context, Span) {
	parent := SpanFrom(ctx)
	s := Span{RunID: parent.RunID, SpanID: NewID(), ParentID: parent.SpanID}
	if s.RunID == "" {
		s.RunID = NewID()
	}
	return WithSpan(ctx, s), s
}

// StartRun starts a new run: its root span has no parent.
func StartRun(ctx context.Context) (context.Context, Span) {
	s := Span{RunID: NewID(), SpanID: NewID()}
	return WithSpan(ctx, s), s
}

type busKey struct{}

// WithBus returns a context whose events go to b.
func WithBus(ctx context.Context, b *Bus) context.Context {
	return context.WithValue(ctx, busKey{}, b)
}

// BusFrom returns the context's bus, nil when none.
func BusFrom(ctx context.Context) *Bus {
	b, _ := ctx.Value(busKey{}).(*Bus)
	return b
}

// Enabled reports whether publishing kind in ctx would reach a subscriber,
// so callers can skip building a costly payload.
func Enabled(ctx context.Context, kind Kind) bool {
	b := BusFrom(ctx)
	return b != nil && b.Wants(kind)
}

// Publish sends an event of kind with data, placed in span, to the
// context's bus. Without a bus, or without a subscriber for kind, it
// returns at once.
func Publish(ctx context.Context, kind Kind, span Span, data any) {
	b := BusFrom(ctx)
	if b == nil || !b.Wants(kind) {
		return
	}
	b.Publish(Event{Kind: kind, Time: time.Now(), RunID: span.RunID, SpanID: span.SpanID, ParentID: span.ParentID, Data: data})
}

// ContinueRun starts a new root span in an existing run (resuming an
// interrupted optimization): later events belong to runID.
func ContinueRun(ctx context.Context, runID string) (context.Context, Span) {
	s := Span{RunID: runID, SpanID: NewID()}
	return WithSpan(ctx, s), s
}
