package module

import (
	"context"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/signature"
)

// ReasoningField is the output ChainOfThought adds before the others.
const ReasoningField = "reasoning"

// ChainOfThought asks the LM to reason step by step before answering: its
// predictor's signature gains a first output field "reasoning", as DSPy's.
// The instructions stay those of the original signature.
type ChainOfThought struct {
	// Predict is the underlying predictor, named "predict".
	Predict *Predict
}

var _ Program = (*ChainOfThought)(nil)

// NewChainOfThought builds a ChainOfThought over sig. A signature that
// already has a "reasoning" output keeps it where it is.
func NewChainOfThought(sig *signature.Signature, opts ...PredictOption) *ChainOfThought {
	return &ChainOfThought{Predict: NewPredict(withReasoning(sig), opts...)}
}

func withReasoning(sig *signature.Signature) *signature.Signature {
	if sig.IsOutput(ReasoningField) {
		return sig
	}
	ext, err := sig.PrependOutput(signature.Field{Name: ReasoningField, Type: signature.StringType()})
	if err != nil {
		// Only possible when "reasoning" is an input; keep the signature as it is.
		return sig
	}
	return ext
}

// Forward runs the predictor; the prediction includes "reasoning".
func (c *ChainOfThought) Forward(ctx context.Context, inputs Inputs) (*example.Prediction, error) {
	return Traced(ctx, "ChainOfThought", c.Predict.Signature(), inputs, func(ctx context.Context) (*example.Prediction, error) {
		return c.Predict.Forward(ctx, inputs)
	})
}

// NamedPredictors returns the predictor as "predict".
func (c *ChainOfThought) NamedPredictors() []NamedPredictor {
	return []NamedPredictor{{Name: "predict", Predictor: c.Predict}}
}

// Clone returns an independent copy.
func (c *ChainOfThought) Clone() Program {
	return &ChainOfThought{Predict: c.Predict.Copy()}
}
