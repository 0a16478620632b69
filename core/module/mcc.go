package module

import (
	"context"
	"fmt"
	"strings"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
)

// MultiChainComparison defaults and names, DSPy's.
const (
	// DefaultMCCAttempts is DSPy's M: how many attempts are compared.
	DefaultMCCAttempts = 3
	// DefaultMCCTemperature is the predictor's temperature unless the
	// options set one.
	DefaultMCCTemperature = 0.7
	// CompletionsInput is the input under which MultiChainComparison.Forward
	// takes the attempts (DSPy's completions argument).
	CompletionsInput = "completions"
	// RationaleField is the output MultiChainComparison prepends.
	RationaleField = "rationale"
)

// MultiChainComparison compares M reasoning attempts at a question and
// writes a corrected reasoning ("rationale") and answer. It is DSPy's
// dspy.MultiChainComparison: its predictor's signature is the given one
// plus inputs reasoning_attempt_1..M (prefix "Student Attempt #i:",
// description "${reasoning attempt}") and a first output "rationale"
// (prefix "Accurate Reasoning: Thank you everyone. Let's now
// holistically", description "${corrected reasoning}"); the instructions
// are the signature's. Each attempt is shown as
//
//	«I'm trying to <first line of its rationale> I'm not sure but my prediction is <first line of its answer>»
//
// where the rationale is the completion's "rationale" field (else its
// "reasoning") and the answer is the original signature's last output
// field. Safe for concurrent use.
type MultiChainComparison struct {
	// Predict is the comparing predictor, named "predict".
	Predict *Predict
	// M is how many attempts each call must be given.
	M int
	// answerField is the original signature's last output field.
	answerField string
}

var _ Program = (*MultiChainComparison)(nil)

// NewMultiChainComparison builds the module over sig for m attempts (m <= 0
// means DSPy's default, 3). The predictor runs at temperature 0.7 unless
// opts set another (DSPy's temperature=0.7, **config). It fails when sig
// already has a field the module adds.
func NewMultiChainComparison(sig *signature.Signature, m int, opts ...PredictOption) (*MultiChainComparison, error) {
	if m <= 0 {
		m = DefaultMCCAttempts
	}
	if sig == nil || sig.NumOutputs() == 0 {
		return nil, fmt.Errorf("module: multi-chain comparison needs a signature with an output field")
	}
	answer := sig.Output(sig.NumOutputs() - 1).Name
	ext := sig
	var err error
	for i := 1; i <= m; i++ {
		ext, err = ext.AppendInput(signature.Field{
			Name:   mccAttemptField(i),
			Type:   signature.StringType(),
			Desc:   "${reasoning attempt}",
			Prefix: fmt.Sprintf("Student Attempt #%d:", i),
		})
		if err != nil {
			return nil, fmt.Errorf("module: multi-chain comparison over %s: %w", sig, err)
		}
	}
	ext, err = ext.PrependOutput(signature.Field{
		Name:   RationaleField,
		Type:   signature.StringType(),
		Desc:   "${corrected reasoning}",
		Prefix: "Accurate Reasoning: Thank you everyone. Let's now holistically",
	})
	if err != nil {
		return nil, fmt.Errorf("module: multi-chain comparison over %s: %w", sig, err)
	}
	p := NewPredict(ext, opts...)
	if params := p.Params(); params.Temperature == nil {
		p.SetParams(params.Merge(lm.Params{Temperature: lm.Float(DefaultMCCTemperature)}))
	}
	return &MultiChainComparison{Predict: p, M: m, answerField: answer}, nil
}

func mccAttemptField(i int) string { return fmt.Sprintf("reasoning_attempt_%d", i) }

// Forward compares the attempts given under "completions" and passes the
// other inputs on to the predictor. The attempts may be a
// []map[string]any, a []*example.Prediction or a []example.Example (each
// one's fields), a *example.Prediction (its Completions), or a []any of
// maps, predictions and examples; there must be exactly M of them, each
// with a rationale (or reasoning) and the answer field. Inputs named reasoning_attempt_i override the formatted attempts,
// as DSPy's keyword arguments do.
func (c *MultiChainComparison) Forward(ctx context.Context, inputs Inputs) (*example.Prediction, error) {
	return Traced(ctx, "MultiChainComparison", c.Predict.Signature(), inputs, func(ctx context.Context) (*example.Prediction, error) {
		completions, err := mccCompletions(inputs[CompletionsInput])
		if err != nil {
			return nil, err
		}
		attempts, err := c.Attempts(completions)
		if err != nil {
			return nil, err
		}
		in := make(Inputs, len(inputs)+len(attempts))
		for i, a := range attempts {
			in[mccAttemptField(i+1)] = a
		}
		for k, v := range inputs {
			if k != CompletionsInput {
				in[k] = v
			}
		}
		return c.Predict.Forward(ctx, in)
	})
}

// Attempts formats completions as the predictor's reasoning_attempt_i
// values (see MultiChainComparison). It fails unless there are exactly M.
func (c *MultiChainComparison) Attempts(completions []map[string]any) ([]string, error) {
	attempts := make([]string, 0, len(completions))
	for i, comp := range completions {
		r, ok := comp[RationaleField]
		if !ok {
			r, ok = comp[ReasoningField]
		}
		if !ok {
			return nil, fmt.Errorf("module: multi-chain comparison: completion %d has neither %q nor %q", i+1, RationaleField, ReasoningField)
		}
		a, ok := comp[c.answerField]
		if !ok {
			return nil, fmt.Errorf("module: multi-chain comparison: completion %d has no field %q", i+1, c.answerField)
		}
		attempts = append(attempts, fmt.Sprintf("«I'm trying to %s I'm not sure but my prediction is %s»",
			firstLine(pyjson.Str(r)), firstLine(pyjson.Str(a))))
	}
	if len(attempts) != c.M {
		return nil, fmt.Errorf("module: multi-chain comparison: the number of attempts (%d) doesn't match the expected number M (%d); set the correct M when building MultiChainComparison", len(attempts), c.M)
	}
	return attempts, nil
}

// firstLine is Python's s.strip().split("\n")[0].strip().
func firstLine(s string) string {
	s = strings.TrimFunc(s, isPySpace)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimFunc(s, isPySpace)
}

// mccCompletions reads the completions input.
func mccCompletions(v any) ([]map[string]any, error) {
	switch x := v.(type) {
	case nil:
		return nil, fmt.Errorf("module: multi-chain comparison: no %q input", CompletionsInput)
	case []map[string]any:
		return x, nil
	case *example.Prediction:
		if x == nil {
			return nil, fmt.Errorf("module: multi-chain comparison: %q is a nil prediction", CompletionsInput)
		}
		return x.Completions, nil
	case []*example.Prediction:
		out := make([]map[string]any, len(x))
		for i, p := range x {
			if p == nil {
				return nil, fmt.Errorf("module: multi-chain comparison: completion %d is nil", i+1)
			}
			out[i] = p.Map()
		}
		return out, nil
	case []example.Example:
		out := make([]map[string]any, len(x))
		for i, e := range x {
			out[i] = e.Map()
		}
		return out, nil
	case []any:
		out := make([]map[string]any, len(x))
		for i, e := range x {
			switch m := e.(type) {
			case map[string]any:
				out[i] = m
			case *example.Prediction:
				if m == nil {
					return nil, fmt.Errorf("module: multi-chain comparison: completion %d is nil", i+1)
				}
				out[i] = m.Map()
			case example.Example:
				out[i] = m.Map()
			default:
				return nil, fmt.Errorf("module: multi-chain comparison: completion %d is %T, not a field map", i+1, e)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("module: multi-chain comparison: %q is %T, not a list of completions", CompletionsInput, v)
}

// NamedPredictors returns the predictor as "predict".
func (c *MultiChainComparison) NamedPredictors() []NamedPredictor {
	return []NamedPredictor{{Name: "predict", Predictor: c.Predict}}
}

// Clone returns an independent copy.
func (c *MultiChainComparison) Clone() Program {
	return &MultiChainComparison{Predict: c.Predict.Copy(), M: c.M, answerField: c.answerField}
}
