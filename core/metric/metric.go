// Package metric holds the scores DSPEx evaluates programs with: a Metric
// compares a program's prediction with an example's gold labels and returns
// a score (with optional feedback text). The evaluator (core/evaluate) and
// the optimizers call metrics; the CLI picks built-in ones by name (ByName).
//
// The built-in metrics are DSPy's: ExactMatch (answer_exact_match), F1
// (the token F1 of dspy.evaluate.metrics), PassageMatch
// (answer_passage_match), and Contains (PassageMatch with the prediction's
// answer as the only passage). They all compare text after
// module.NormalizeText, DSPy's normalize_text. Judge builds an LM-as-judge
// metric from a signature.
//
// A metric that cannot score (the prediction lacks the field, the example
// lacks the gold answer) returns an error rather than a silent 0, so that an
// evaluation counts the example as failed.
package metric

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/pyjson"
)

// Result is a metric's verdict on one prediction.
type Result struct {
	// Score is the score; the built-in metrics give 0..1, but any finite
	// number is allowed (an LM judge rating 1-5, say).
	Score float64
	// Feedback is optional text explaining the score (an LM judge's
	// rationale), for people and for feedback-driven optimizers.
	Feedback string
	// Usage and Cost are what computing the score spent: zero for the
	// text metrics, an LM judge's calls for Judge.
	Usage lm.Usage
	Cost  lm.Cost
}

// Metric scores a prediction against an example. Implementations are safe
// for concurrent use (an evaluation calls one metric from many goroutines)
// and honour ctx when they block.
type Metric interface {
	// Name identifies the metric in results, errors and traces
	// ("exact_match").
	Name() string
	// Score compares pred with ex's gold labels. An error means the
	// example could not be scored (a missing field, a failed LM judge
	// call); it is not a zero score.
	Score(ctx context.Context, ex example.Example, pred *example.Prediction) (Result, error)
}

// Func is a metric written as a function; FromFunc names it.
type Func func(ctx context.Context, ex example.Example, pred *example.Prediction) (Result, error)

// FromFunc returns f as a Metric called name. f must be safe for concurrent
// use.
func FromFunc(name string, f Func) Metric { return funcMetric{name: name, f: f} }

type funcMetric struct {
	name string
	f    Func
}

func (m funcMetric) Name() string { return m.name }

func (m funcMetric) Score(ctx context.Context, ex example.Example, pred *example.Prediction) (Result, error) {
	if m.f == nil {
		return Result{}, fmt.Errorf("metric %s: no function", m.name)
	}
	return m.f(ctx, ex, pred)
}

var (
	// ErrMissingField is matched (errors.Is) by every error reporting a
	// field that a metric needs and did not find; see *FieldError.
	ErrMissingField = errors.New("metric: missing field")
	// ErrUnknownMetric is returned by ByName for a name it does not know.
	ErrUnknownMetric = errors.New("metric: unknown metric")
)

// FieldError reports a field a metric needed: missing from the prediction
// or from the example, or holding a value it cannot use.
type FieldError struct {
	// Metric is the metric's name.
	Metric string
	// Field is the field's name.
	Field string
	// InPrediction is true when the field was looked for in the
	// prediction, false when in the example (the gold labels).
	InPrediction bool
	// Problem says what is wrong with a field that is present ("is an
	// empty list"); empty when the field is missing.
	Problem string
}

func (e *FieldError) Error() string {
	where := "example"
	if e.InPrediction {
		where = "prediction"
	}
	if e.Problem == "" {
		return fmt.Sprintf("metric %s: the %s has no field %q", e.Metric, where, e.Field)
	}
	return fmt.Sprintf("metric %s: the %s's field %q %s", e.Metric, where, e.Field, e.Problem)
}

// Is makes a missing field match ErrMissingField.
func (e *FieldError) Is(target error) bool { return target == ErrMissingField && e.Problem == "" }

// builtin returns the constructor of the built-in metric called name.
func builtin(name string) (func(field string) Metric, bool) {
	switch name {
	case "exact_match":
		return ExactMatch, true
	case "f1":
		return F1, true
	case "contains":
		return Contains, true
	case "passage_match":
		return func(field string) Metric { return PassageMatch(DefaultPassagesField, field) }, true
	}
	return nil, false
}

// DefaultAnswerField is the answer field ByName uses when given none
// (DSPy's metrics read example.answer and pred.answer).
const DefaultAnswerField = "answer"

// DefaultPassagesField is the prediction field holding retrieved passages
// for ByName's passage_match (DSPy's pred.context).
const DefaultPassagesField = "context"

// Names lists the built-in metrics ByName knows, sorted.
func Names() []string { return []string{"contains", "exact_match", "f1", "passage_match"} }

// ByName returns a built-in metric by name, comparing field (default
// "answer"): "exact_match", "f1", "contains" or "passage_match" (whose
// passages are the prediction's "context" field). An unknown name is an
// error wrapping ErrUnknownMetric that lists the known names.
func ByName(name, field string) (Metric, error) {
	mk, ok := builtin(strings.ToLower(strings.TrimSpace(name)))
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownMetric, name, strings.Join(Names(), ", "))
	}
	if field == "" {
		field = DefaultAnswerField
	}
	return mk(field), nil
}

// predText returns the prediction's field as text.
func predText(name string, pred *example.Prediction, field string) (string, error) {
	if pred == nil {
		return "", fmt.Errorf("metric %s: no prediction", name)
	}
	v, ok := pred.Get(field)
	if !ok {
		return "", &FieldError{Metric: name, Field: field, InPrediction: true}
	}
	return pyjson.Str(v), nil
}

// goldAnswers returns the example's gold answers: a string is one answer,
// a list is several (DSPy's answer_exact_match accepts both); numbers and
// bools count as one answer written as Python's str() writes them.
func goldAnswers(name string, ex example.Example, field string) ([]string, error) {
	v, ok := ex.Get(field)
	if !ok {
		return nil, &FieldError{Metric: name, Field: field}
	}
	return textList(name, field, false, v)
}

// textList reads v as a list of strings: one string, or a list whose items
// are strings or scalars.
func textList(name, field string, inPred bool, v any) ([]string, error) {
	bad := func(problem string) error {
		return &FieldError{Metric: name, Field: field, InPrediction: inPred, Problem: problem}
	}
	switch x := pyjson.Normalize(v).(type) {
	case string:
		return []string{x}, nil
	case int64, float64, bool:
		return []string{pyjson.Str(x)}, nil
	case []any:
		if len(x) == 0 {
			return nil, bad("is an empty list")
		}
		out := make([]string, len(x))
		for i, item := range x {
			switch item.(type) {
			case string, int64, float64, bool:
				out[i] = pyjson.Str(item)
			default:
				return nil, bad(fmt.Sprintf("holds a %s at position %d, not a string", typeName(item), i))
			}
		}
		return out, nil
	default:
		return nil, bad(fmt.Sprintf("is a %s, not a string or a list of strings", typeName(v)))
	}
}

// typeName names a value's type as JSON would.
func typeName(v any) string {
	switch pyjson.Normalize(v).(type) {
	case nil:
		return "null"
	case pyjson.Object:
		return "object"
	case []any:
		return "list"
	default:
		return fmt.Sprintf("%T", v)
	}
}
