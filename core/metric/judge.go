package metric

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
)

// JudgeOption configures Judge.
type JudgeOption func(*judgeConfig)

type judgeConfig struct {
	name string
	lm   lm.LM
	cot  bool
}

// JudgeName names the metric (default "judge").
func JudgeName(name string) JudgeOption { return func(c *judgeConfig) { c.name = name } }

// JudgeLM gives the judge its own LM; by default it uses the context's (the
// program's) LM.
func JudgeLM(m lm.LM) JudgeOption { return func(c *judgeConfig) { c.lm = m } }

// JudgeChainOfThought makes the judge reason first (module.ChainOfThought);
// its reasoning becomes the feedback when the signature has no feedback
// output of its own.
func JudgeChainOfThought() JudgeOption { return func(c *judgeConfig) { c.cot = true } }

var _ Metric = (*judge)(nil)

// judge is an LM-as-judge metric.
type judge struct {
	name     string
	sig      *signature.Signature
	prog     module.Module
	score    signature.Field
	feedback string // output giving Result.Feedback; "" for none
}

// Judge returns an LM-as-judge metric defined by sig: a predictor
// (module.NewPredict, or module.NewChainOfThought with
// JudgeChainOfThought) runs under the context Score is called with, so it
// uses the context's LM settings and appears in traces as a child of the
// example being scored.
//
// Each input of sig is filled by name:
//
//   - "pred_X" or "predicted_X": the prediction's field X;
//   - "gold_X" or "expected_X": the example's field X;
//   - any other name: the example's field of that name, or, when the
//     example has none, the prediction's.
//
// So "question, gold_answer, pred_answer -> correct: bool" compares the
// prediction's answer with the example's. A field found nowhere is an error
// matching ErrMissingField, unless the input is optional (T | None), which
// is then left out.
//
// The first output of sig is the score and must be bool (1 or 0), int or
// float (taken as it is, not clamped; a non-finite number is an error). A
// str output named "feedback", "rationale" or "reasoning" (the first of
// these it has; JudgeChainOfThought adds "reasoning") becomes
// Result.Feedback; Result.Usage and Cost are
// the judge's calls'. Judge fails when sig is nil or its first output is
// not a number or bool. The metric is safe for concurrent use.
func Judge(sig *signature.Signature, opts ...JudgeOption) (Metric, error) {
	cfg := judgeConfig{name: "judge"}
	for _, o := range opts {
		o(&cfg)
	}
	if sig == nil {
		return nil, errors.New("metric: judge: no signature")
	}
	if sig.NumOutputs() == 0 {
		return nil, fmt.Errorf("metric: judge %s: the signature has no output for the score", sig)
	}
	score := sig.Output(0)
	if t := score.Type; t == nil || (t.Kind != signature.Bool && t.Kind != signature.Int && t.Kind != signature.Float) {
		return nil, fmt.Errorf("metric: judge %s: the first output %q is %s; the score must be bool, int or float",
			sig, score.Name, score.Type.PythonName())
	}
	j := &judge{name: cfg.name, sig: sig, score: score}
	var popts []module.PredictOption
	if cfg.lm != nil {
		popts = append(popts, module.WithOwnLM(cfg.lm))
	}
	progSig := sig
	if cfg.cot {
		cot := module.NewChainOfThought(sig, popts...)
		j.prog, progSig = cot, cot.Predict.Signature()
	} else {
		j.prog = module.NewPredict(sig, popts...)
	}
	// The outputs (of type str) that become Result.Feedback, in order of
	// preference.
	for _, name := range []string{"feedback", "rationale", "reasoning"} {
		if f, ok := progSig.Field(name); ok && progSig.IsOutput(name) && f.Type.IsStr() {
			j.feedback = name
			break
		}
	}
	return j, nil
}

func (j *judge) Name() string { return j.name }

func (j *judge) Score(ctx context.Context, ex example.Example, pred *example.Prediction) (Result, error) {
	if pred == nil {
		return Result{}, fmt.Errorf("metric %s: no prediction", j.name)
	}
	inputs := make(module.Inputs, j.sig.NumInputs())
	for _, f := range j.sig.Inputs() {
		v, err := j.lookup(f.Name, ex, pred)
		if err != nil {
			if f.Type != nil && f.Type.Kind == signature.Optional {
				continue
			}
			return Result{}, err
		}
		inputs[f.Name] = v
	}
	out, err := j.prog.Forward(ctx, inputs)
	if err != nil {
		return Result{}, fmt.Errorf("metric %s: %w", j.name, err)
	}
	res := Result{Usage: out.Usage, Cost: out.Cost}
	v, ok := out.Get(j.score.Name)
	if !ok {
		return res, &FieldError{Metric: j.name, Field: j.score.Name, InPrediction: true}
	}
	switch x := pyjson.Normalize(v).(type) {
	case bool:
		if x {
			res.Score = 1
		}
	case int64:
		res.Score = float64(x)
	case float64:
		res.Score = x
	default:
		return res, fmt.Errorf("metric %s: the judge's score %q is %s, not a number", j.name, j.score.Name, typeName(v))
	}
	if math.IsNaN(res.Score) || math.IsInf(res.Score, 0) {
		return res, fmt.Errorf("metric %s: the judge's score %q is %v", j.name, j.score.Name, res.Score)
	}
	if j.feedback != "" {
		res.Feedback = out.String(j.feedback)
	}
	return res, nil
}

// lookup finds the value of the judge input called name (see Judge).
func (j *judge) lookup(name string, ex example.Example, pred *example.Prediction) (any, error) {
	for _, p := range []string{"pred_", "predicted_"} {
		if field, ok := strings.CutPrefix(name, p); ok && field != "" {
			if v, ok := pred.Get(field); ok {
				return v, nil
			}
			return nil, &FieldError{Metric: j.name, Field: field, InPrediction: true}
		}
	}
	for _, p := range []string{"gold_", "expected_"} {
		if field, ok := strings.CutPrefix(name, p); ok && field != "" {
			if v, ok := ex.Get(field); ok {
				return v, nil
			}
			return nil, &FieldError{Metric: j.name, Field: field}
		}
	}
	if v, ok := ex.Get(name); ok {
		return v, nil
	}
	if v, ok := pred.Get(name); ok {
		return v, nil
	}
	return nil, &FieldError{Metric: j.name, Field: name}
}
