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
	if event.BusFrom(ctx) == nil {
		return fn(ctx)
	}
	ctx, span := event.StartSpan(ctx)
	call := &event.ModuleCall{Module: moduleName, Inputs: maps.Clone(inputs)}
	if sig != nil {
		call.Signature = sig.String()
	}
	event.Publish(ctx, event.ModuleStart, span, call)
	start := time.Now()
	pred, err := fn(ctx)
	end := *call
	end.Duration = time.Since(start)
	if err != nil {
		end.Error = err.Error()
	} else if pred != nil {
		end.Outputs = pred.Map()
	}
	event.Publish(ctx, event.ModuleEnd, span, &end)
	return pred, err
}
