package module

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/signature"
)

// Module is anything that turns inputs into a prediction. Implementations
// are safe for concurrent use and honour ctx.
type Module interface {
	Forward(ctx context.Context, inputs Inputs) (*example.Prediction, error)
}

// NamedPredictor is a predictor and its stable dotted name within a program
// ("predict", "generate.predict").
type NamedPredictor struct {
	Name      string
	Predictor *Predict
}

// Program is a module whose predictors optimizers can reach, and which can
// be copied so that a candidate can be changed without touching the
// original. Programs are Go structs holding modules; they list their
// predictors with stable dotted names ("generate.predict") — see Children —
// without reflection.
type Program interface {
	Module
	// NamedPredictors lists the program's predictors in a stable order.
	NamedPredictors() []NamedPredictor
	// Clone returns a deep copy: its predictors are independent copies.
	Clone() Program
}

// ErrNoLM is returned when a predictor has no LM of its own and the context
// carries none.
var ErrNoLM = errors.New("module: no LM configured (use module.WithLM(ctx, model) or Predict.SetLM)")

// Predict formats a signature with its demos and the inputs, calls the LM
// and parses the answer. Its state — signature (with instructions), demos,
// its own LM and sampling parameters — is what optimizers tune. Safe for
// concurrent use: Forward works on a snapshot of the state.
type Predict struct {
	mu     sync.RWMutex
	sig    *signature.Signature
	demos  []example.Example
	model  lm.LM
	params lm.Params
	// demosChecked is set once the demos were checked for keys the
	// signature lacks (see checkDemos); SetDemos and SetSignature clear it.
	demosChecked atomic.Bool
}

var _ Program = (*Predict)(nil)

// PredictOption configures a Predict.
type PredictOption func(*Predict)

// WithConfig sets the predictor's sampling parameters (DSPy's **config).
func WithConfig(p lm.Params) PredictOption { return func(pr *Predict) { pr.params = p } }

// WithDemos sets the predictor's demos.
func WithDemos(demos ...example.Example) PredictOption {
	return func(pr *Predict) { pr.demos = slices.Clone(demos) }
}

// WithOwnLM gives the predictor its own LM, used instead of the context's.
func WithOwnLM(m lm.LM) PredictOption { return func(pr *Predict) { pr.model = m } }

// NewPredict returns a predictor for sig.
func NewPredict(sig *signature.Signature, opts ...PredictOption) *Predict {
	p := &Predict{sig: sig}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Signature returns the predictor's signature.
func (p *Predict) Signature() *signature.Signature {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.sig
}

// SetSignature replaces the signature (and with it the instructions).
func (p *Predict) SetSignature(sig *signature.Signature) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sig = sig
	p.demosChecked.Store(false)
}

// Demos returns a copy of the demos.
func (p *Predict) Demos() []example.Example {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return slices.Clone(p.demos)
}

// SetDemos replaces the demos.
func (p *Predict) SetDemos(demos []example.Example) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.demos = slices.Clone(demos)
	p.demosChecked.Store(false)
}

// LM returns the predictor's own LM, nil when it uses the context's.
func (p *Predict) LM() lm.LM {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.model
}

// SetLM sets the predictor's own LM (nil to use the context's).
func (p *Predict) SetLM(m lm.LM) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.model = m
}

// Params returns the predictor's sampling parameters.
func (p *Predict) Params() lm.Params {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.params
}

// SetParams replaces the predictor's sampling parameters.
func (p *Predict) SetParams(params lm.Params) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.params = params
}

// Clone returns an independent copy of the predictor (as a Program).
func (p *Predict) Clone() Program { return p.Copy() }

// Copy returns an independent copy of the predictor's state. The
// signature and the LM, which are immutable, are shared; the demos and the
// parameters' Stop and Extra are copied.
func (p *Predict) Copy() *Predict {
	s := p.snapshot()
	params := s.params
	params.Stop = slices.Clone(params.Stop)
	params.Extra = maps.Clone(params.Extra)
	return &Predict{sig: s.sig, demos: slices.Clone(s.demos), model: s.own, params: params}
}

// NamedPredictors returns the predictor itself, named "self" as DSPy names a
// bare predictor.
func (p *Predict) NamedPredictors() []NamedPredictor {
	return []NamedPredictor{{Name: "self", Predictor: p}}
}

// Forward runs one prediction. Missing input fields are an error (optional
// inputs, typed T | None, may be left out). LM errors are returned wrapped,
// matching lm's sentinels with errors.Is; unparsable answers are
// *adapter.ParseError.
func (p *Predict) Forward(ctx context.Context, inputs Inputs) (*example.Prediction, error) {
	s := p.snapshot()
	return Traced(ctx, "Predict", s.sig, inputs, func(ctx context.Context) (*example.Prediction, error) {
		p.checkDemos(ctx, s)
		model, a, req, err := s.prepare(ctx, inputs)
		if err != nil {
			return nil, err
		}
		res, err := adapter.Call(ctx, a, model, req)
		return p.prediction(ctx, s.sig, inputs, res, err)
	})
}

// checkDemos publishes a DemoExtraKeys event for each demo holding keys
// the signature lacks, once per set of demos and signature. DSPy accepts
// such demos and leaves the keys out of the prompt, and so does Predict;
// the event tells the user, since a misspelt field name looks the same.
// "augmented", DSPy's mark on bootstrapped demos, is expected and skipped.
func (p *Predict) checkDemos(ctx context.Context, s predictState) {
	if len(s.demos) == 0 || !event.Enabled(ctx, event.DemoExtraKeys) || p.demosChecked.Swap(true) {
		return
	}
	for i, d := range s.demos {
		var extra []string
		for _, k := range d.Keys() {
			if _, ok := s.sig.Field(k); !ok && k != "augmented" {
				extra = append(extra, k)
			}
		}
		if len(extra) > 0 {
			event.Publish(ctx, event.DemoExtraKeys, event.SpanFrom(ctx),
				&event.DemoKeysInfo{Signature: s.sig.String(), Demo: i + 1, Keys: extra})
		}
	}
}

// outputsInOrder is a completion's fields in the signature's output order,
// the order DSPy's adapters return them in (a Prediction is a dict), then
// any others sorted.
func outputsInOrder(sig *signature.Signature, fields map[string]any) example.Example {
	obj := make(example.Object, 0, len(fields))
	for i := range sig.NumOutputs() { // Outputs would copy the fields
		f := sig.Output(i)
		if v, ok := fields[f.Name]; ok {
			obj = append(obj, example.Member{Key: f.Name, Value: v})
		}
	}
	if len(obj) < len(fields) { // fields the signature does not name follow, sorted
		for _, k := range slices.Sorted(maps.Keys(fields)) {
			if !sig.IsOutput(k) {
				obj = append(obj, example.Member{Key: k, Value: fields[k]})
			}
		}
	}
	return example.FromObject(obj)
}

// predictState is a snapshot of a predictor's state: a call works on one,
// so that setters running meanwhile do not change it halfway. The setters
// replace the demos slice rather than change it, so sharing it is safe.
type predictState struct {
	sig    *signature.Signature
	demos  []example.Example
	own    lm.LM
	params lm.Params
}

func (p *Predict) snapshot() predictState {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return predictState{sig: p.sig, demos: p.demos, own: p.model, params: p.params}
}

// prepare checks the inputs and resolves what a call under ctx uses: the
// predictor's own LM or else the context's, the context's adapter (a
// ChatAdapter by default), and the request, whose parameters are the
// predictor's with the context's merged over them.
func (s predictState) prepare(ctx context.Context, inputs Inputs) (lm.LM, adapter.Adapter, adapter.Request, error) {
	if err := checkInputs(s.sig, inputs); err != nil {
		return nil, nil, adapter.Request{}, err
	}
	set := SettingsFrom(ctx)
	model := s.own
	if model == nil {
		model = set.LM
	}
	if model == nil {
		return nil, nil, adapter.Request{}, ErrNoLM
	}
	a := set.Adapter
	if a == nil {
		a = &adapter.ChatAdapter{}
	}
	return model, a, adapter.Request{
		Signature: s.sig,
		Demos:     s.demos,
		Inputs:    inputs,
		Params:    s.params.Merge(set.Params),
		RolloutID: set.RolloutID,
	}, nil
}

// prediction turns an adapter call's outcome into the predictor's result,
// recording the call (its first completion) for a Recorder in ctx.
func (p *Predict) prediction(ctx context.Context, sig *signature.Signature, inputs Inputs, res *adapter.Result, err error) (*example.Prediction, error) {
	if err != nil {
		return nil, fmt.Errorf("predict %s: %w", sig, err)
	}
	// Built directly rather than with example.NewPrediction, whose
	// Example (a sorted copy of the fields) would be replaced at once.
	pred := &example.Prediction{Completions: res.Outputs, Example: outputsInOrder(sig, res.Outputs[0])}
	pred.Usage, pred.Cost = res.Usage, res.Cost
	record(ctx, p, inputs, res.Outputs[0])
	return pred, nil
}
