package module

import (
	"context"
	"maps"
	"time"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/signature"
)

// Traced runs fn as one module call: inside a span of its own (so the LM
// calls and nested modules it makes are its children), publishing
// ModuleStart and ModuleEnd on the context's event bus. Modules built
// outside this package use it in their Forward to appear in traces.
func Traced(ctx context.Context, moduleName string, sig *signature.Signature, inputs Inputs,
	fn func(ctx context.Context) (*example.Prediction, error)) (*example.Prediction, error) {
	ctx, span := startSpan(ctx, moduleName, sig, inputs)
	pred, err := fn(ctx)
	span.end(pred, err)
	return pred, err
}

// moduleSpan is an open module span.
type moduleSpan struct {
	ctx   context.Context
	span  event.Span
	call  *event.ModuleCall
	start time.Time
}

// startSpan opens a module span (publishing ModuleStart) and returns the
// context inside it; end closes it. Without a bus it does nothing and
// returns a nil span, whose end does nothing either.
func startSpan(ctx context.Context, moduleName string, sig *signature.Signature, inputs Inputs) (context.Context, *moduleSpan) {
	if event.BusFrom(ctx) == nil {
		return ctx, nil
	}
	ctx, span := event.StartSpan(ctx)
	call := &event.ModuleCall{Module: moduleName, Inputs: maps.Clone(inputs)}
	if sig != nil {
		call.Signature = sig.String()
	}
	event.Publish(ctx, event.ModuleStart, span, call)
	return ctx, &moduleSpan{ctx: ctx, span: span, call: call, start: time.Now()}
}

// end publishes ModuleEnd with the outputs or the error.
func (m *moduleSpan) end(pred *example.Prediction, err error) {
	if m == nil {
		return
	}
	end := *m.call
	end.Duration = time.Since(m.start)
	if err != nil {
		end.Error = err.Error()
	} else if pred != nil {
		end.Outputs = pred.Map()
	}
	event.Publish(m.ctx, event.ModuleEnd, m.span, &end)
}
