package module

import (
	"context"
	"maps"
	"sync"
)

// TraceStep is one predictor call recorded by a Recorder: the predictor,
// the inputs it was given and the outputs it produced (its first
// completion). Optimizers turn the steps of successful runs into demos.
type TraceStep struct {
	Predictor *Predict
	Inputs    map[string]any
	Outputs   map[string]any
}

// Recorder collects the predictor calls made under a context that carries
// it (WithRecorder), like DSPy's dspy.settings.trace. Safe for concurrent
// use.
type Recorder struct {
	mu    sync.Mutex
	steps []TraceStep
}

// Steps returns the recorded calls in the order they finished.
func (r *Recorder) Steps() []TraceStep {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]TraceStep(nil), r.steps...)
}

func (r *Recorder) add(s TraceStep) {
	r.mu.Lock()
	r.steps = append(r.steps, s)
	r.mu.Unlock()
}

type recorderKey struct{}

// WithRecorder returns a context whose predictor calls are recorded in r.
func WithRecorder(ctx context.Context, r *Recorder) context.Context {
	return context.WithValue(ctx, recorderKey{}, r)
}

func record(ctx context.Context, p *Predict, inputs Inputs, outputs map[string]any) {
	if r, ok := ctx.Value(recorderKey{}).(*Recorder); ok {
		r.add(TraceStep{Predictor: p, Inputs: maps.Clone(inputs), Outputs: maps.Clone(outputs)})
	}
}
