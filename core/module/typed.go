package module

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
)

// Typed runs a module with Go structs for inputs and outputs, so callers get
// compile-time types. The signature comes from In's and Out's fields (see
// package signature's struct tags).
//
//	type QIn struct{ Question string `json:"question"` }
//	type QOut struct{ Answer string `json:"answer"` }
//	qa, err := module.NewTyped[QIn, QOut](module.NewPredict)
//	out, err := qa.Call(ctx, QIn{Question: "..."})
type Typed[In, Out any] struct {
	module Module
	sig    *signature.Signature
}

// NewTyped derives the signature from In and Out and builds the module with
// build (module.NewPredict, or a func wrapping NewChainOfThought).
func NewTyped[In, Out any, M Module](build func(*signature.Signature, ...PredictOption) M, opts ...PredictOption) (*Typed[In, Out], error) {
	sig, err := signature.For[In, Out]()
	if err != nil {
		return nil, err
	}
	return &Typed[In, Out]{module: build(sig, opts...), sig: sig}, nil
}

// Module returns the underlying module, for optimizers and evaluation.
func (t *Typed[In, Out]) Module() Module { return t.module }

// Signature returns the signature derived from In and Out.
func (t *Typed[In, Out]) Signature() *signature.Signature { return t.sig }

// Call runs the module on in and decodes the prediction into an Out.
// Output fields the module adds beyond Out's (such as "reasoning") are
// dropped unless Out has a field for them.
func (t *Typed[In, Out]) Call(ctx context.Context, in In) (Out, error) {
	var out Out
	obj, ok := pyjson.Normalize(in).(pyjson.Object)
	if !ok {
		return out, fmt.Errorf("module: typed input %T is not a struct", in)
	}
	// Only the top level becomes a map: nested values stay ordered objects
	// (an example.Object field keeps its order in the prompt).
	inputs := make(Inputs, len(obj))
	for _, m := range obj {
		inputs[m.Key] = m.Value
	}
	pred, err := t.module.Forward(ctx, inputs)
	if err != nil {
		return out, err
	}
	b, err := json.Marshal(pred.Map())
	if err != nil {
		return out, fmt.Errorf("module: encode prediction: %w", err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("module: decode prediction into %T: %w", out, err)
	}
	return out, nil
}
