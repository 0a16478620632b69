package module

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/signature"
)

// Chunk is one item of a module's stream: new text of an output field as
// the LM writes it, or — as the last item — the final prediction.
type Chunk struct {
	// Field and Text are set for a piece of an output field.
	Field string
	Text  string
	// Prediction is set on the last chunk.
	Prediction *example.Prediction
}

// Streamer is implemented by modules that can stream their outputs.
type Streamer interface {
	Stream(ctx context.Context, inputs Inputs) iter.Seq2[Chunk, error]
}

var (
	_ Streamer = (*Predict)(nil)
	_ Streamer = (*ChainOfThought)(nil)
)

// Stream runs the prediction like Forward, yielding each output field's
// text as the provider streams tokens (with ChatAdapter and JSONAdapter),
// then the final prediction. A cached answer yields the final prediction at
// once. Retries apply before the first token; a failure is yielded as the
// last pair's error. Stopping the iteration early cancels the LM call.
func (p *Predict) Stream(ctx context.Context, inputs Inputs) iter.Seq2[Chunk, error] {
	return func(yield func(Chunk, error) bool) {
		s := p.snapshot()
		stopped := false
		pred, err := Traced(ctx, "Predict", s.sig, inputs, func(ctx context.Context) (*example.Prediction, error) {
			p.checkDemos(ctx, s)
			model, a, req, err := s.prepare(ctx, inputs)
			if err != nil {
				return nil, err
			}
			res, err := adapter.Stream(ctx, a, model, req, func(c adapter.FieldChunk) bool {
				if !yield(Chunk{Field: c.Field, Text: c.Text}, nil) {
					stopped = true
					return false
				}
				return true
			})
			return p.prediction(ctx, s.sig, inputs, res, err)
		})
		if stopped || errors.Is(err, adapter.ErrStopped) {
			return
		}
		if err != nil {
			yield(Chunk{}, err)
			return
		}
		yield(Chunk{Prediction: pred}, nil)
	}
}

// Stream streams the reasoning and then the outputs; see Predict.Stream.
func (c *ChainOfThought) Stream(ctx context.Context, inputs Inputs) iter.Seq2[Chunk, error] {
	return func(yield func(Chunk, error) bool) {
		ctx, span := startSpan(ctx, "ChainOfThought", c.Predict.Signature(), inputs)
		var final *example.Prediction
		var failed error
		for ch, err := range c.Predict.Stream(ctx, inputs) {
			if err != nil {
				failed = err
			} else if ch.Prediction != nil {
				final = ch.Prediction
			}
			if !yield(ch, err) {
				failed = adapter.ErrStopped
				break
			}
		}
		span.end(final, failed)
	}
}

// checkInputs reports a missing required input field.
func checkInputs(sig *signature.Signature, inputs Inputs) error {
	for i := range sig.NumInputs() {
		f := sig.Input(i)
		if _, ok := inputs[f.Name]; !ok && f.Type.Kind != signature.Optional {
			return fmt.Errorf("predict %s: missing input field %q", sig, f.Name)
		}
	}
	return nil
}
