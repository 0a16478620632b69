package telemetry

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// spanKey identifies an event span. Span ids are random 64-bit numbers, so
// the run id is part of the key only to keep separate runs apart.
type spanKey struct{ run, span string }

// traceIDFor derives a run's OTel trace id from its run id, so that every
// span of a run, whenever it is seen, lands in the same trace. A span
// without a run (which the event package never makes) gets a trace of its
// own span id.
func traceIDFor(runID, spanID string) trace.TraceID {
	seed := "dspex.run/" + runID
	if runID == "" {
		seed = "dspex.span/" + spanID
	}
	h := sha256.Sum256([]byte(seed))
	var id trace.TraceID
	copy(id[:], h[:])
	if !id.IsValid() {
		id[15] = 1
	}
	return id
}

// spanIDFor returns the OTel span id of an event span id. Event ids are 16
// hex digits, which is exactly an OTel span id; anything else is hashed.
func spanIDFor(id string) trace.SpanID {
	var sid trace.SpanID
	if len(id) == 2*len(sid) {
		if b, err := hex.DecodeString(id); err == nil {
			copy(sid[:], b)
			if sid.IsValid() {
				return sid
			}
		}
	}
	h := sha256.Sum256([]byte("dspex.span/" + id))
	copy(sid[:], h[:])
	if !sid.IsValid() {
		sid[7] = 1
	}
	return sid
}

// wantIDs carries, in the context passed to Tracer.Start, the ids the
// idGenerator is to hand out for the span being started.
type wantIDs struct {
	trace trace.TraceID
	span  trace.SpanID
}

type wantIDsKey struct{}

// idGenerator gives the SDK the ids derived from events instead of random
// ones. Stateless, so safe for concurrent use.
type idGenerator struct{}

var _ sdktrace.IDGenerator = idGenerator{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if w, ok := ctx.Value(wantIDsKey{}).(wantIDs); ok {
		return w.trace, w.span
	}
	var tid trace.TraceID
	binary.LittleEndian.PutUint64(tid[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(tid[8:], rand.Uint64()|1)
	return tid, randomSpanID()
}

func (idGenerator) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if w, ok := ctx.Value(wantIDsKey{}).(wantIDs); ok {
		return w.span
	}
	return randomSpanID()
}

func randomSpanID() trace.SpanID {
	var sid trace.SpanID
	binary.LittleEndian.PutUint64(sid[:], rand.Uint64()|1)
	return sid
}
