package metric

import (
	"context"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyjson"
)

// ExactMatch is DSPy's answer_exact_match (frac=1.0): 1 when the
// prediction's field equals the example's field once both are normalized
// (module.NormalizeText), else 0. The gold value may be a string or a list
// of acceptable strings (any one matching scores 1). Values that are not
// strings are compared as Python's str() writes them (DSPy rejects a gold
// value that is neither a string nor a list). A missing field is an error
// matching ErrMissingField, as is an empty gold list. Safe for concurrent
// use.
func ExactMatch(field string) Metric {
	return textMetric{name: "exact_match", field: field, score: func(pred string, gold []string) float64 {
		p := module.NormalizeText(pred)
		for _, g := range gold {
			if module.NormalizeText(g) == p {
				return 1
			}
		}
		return 0
	}}
}

// F1 is DSPy's token F1 (dspy.evaluate.metrics.F1): both texts are
// normalized (module.NormalizeText) and split on spaces; the score is the
// harmonic mean of precision and recall over the tokens they share
// (counting repeats), the best over the gold answers. No shared token
// scores 0 — also when both texts are empty, as in DSPy. Gold values and
// errors as ExactMatch. Safe for concurrent use.
func F1(field string) Metric {
	return textMetric{name: "f1", field: field, score: func(pred string, gold []string) float64 {
		p := normalizedTokens(pred)
		best := 0.0
		for _, g := range gold {
			best = max(best, tokenF1(p, normalizedTokens(g)))
		}
		return best
	}}
}

// Contains scores 1 when a gold answer occurs in the prediction's field:
// it is PassageMatch with that field as the only passage, so both are
// normalized and tokenized as DSPy's has_answer does and the answer's
// tokens must appear as a contiguous run ("paris" is in "Paris, France" but
// not in "Parisian"). As in DSPy, a gold answer that normalizes to nothing
// ("the") is in every text. Gold values and errors as ExactMatch. Safe for
// concurrent use.
func Contains(field string) Metric {
	return textMetric{name: "contains", field: field, score: func(pred string, gold []string) float64 {
		return passageMatch([]string{pred}, gold)
	}}
}

// PassageMatch is DSPy's answer_passage_match: 1 when any passage in the
// prediction's passagesField (a list of strings, or one string) contains
// any gold answer from the example's answerField, compared as Contains
// compares. Gold values and errors as ExactMatch; an empty passage list
// scores 0. Safe for concurrent use.
func PassageMatch(passagesField, answerField string) Metric {
	return passageMetric{passages: passagesField, answer: answerField}
}

var (
	_ Metric = textMetric{}
	_ Metric = passageMetric{}
)

// textMetric compares one prediction field with the gold answers.
type textMetric struct {
	name  string
	field string
	score func(pred string, gold []string) float64
}

func (m textMetric) Name() string { return m.name }

func (m textMetric) Score(_ context.Context, ex example.Example, pred *example.Prediction) (Result, error) {
	gold, err := goldAnswers(m.name, ex, m.field)
	if err != nil {
		return Result{}, err
	}
	p, err := predText(m.name, pred, m.field)
	if err != nil {
		return Result{}, err
	}
	return Result{Score: m.score(p, gold)}, nil
}

type passageMetric struct {
	passages, answer string
}

func (m passageMetric) Name() string { return "passage_match" }

func (m passageMetric) Score(_ context.Context, ex example.Example, pred *example.Prediction) (Result, error) {
	gold, err := goldAnswers(m.Name(), ex, m.answer)
	if err != nil {
		return Result{}, err
	}
	if pred == nil {
		return Result{}, &FieldError{Metric: m.Name(), Field: m.passages, InPrediction: true}
	}
	v, ok := pred.Get(m.passages)
	if !ok {
		return Result{}, &FieldError{Metric: m.Name(), Field: m.passages, InPrediction: true}
	}
	var passages []string
	switch x := v.(type) {
	case string:
		passages = []string{x}
	case []string:
		passages = x
	default:
		if list, ok := pyjson.Normalize(v).([]any); ok && len(list) == 0 {
			return Result{}, nil // no passage contains anything
		}
		if passages, err = textList(m.Name(), m.passages, true, v); err != nil {
			return Result{}, err
		}
	}
	return Result{Score: passageMatch(passages, gold)}, nil
}

// normalizedTokens is DSPy's normalize_text(s).split().
func normalizedTokens(s string) []string {
	n := module.NormalizeText(s)
	if n == "" {
		return nil
	}
	// NormalizeText leaves single spaces between words and none at the ends.
	return strings.Split(n, " ")
}

// tokenF1 is DSPy's f1_score on token lists.
func tokenF1(pred, gold []string) float64 {
	if len(pred) == 0 || len(gold) == 0 {
		return 0
	}
	counts := make(map[string]int, len(gold))
	for _, t := range gold {
		counts[t]++
	}
	same := 0
	for _, t := range pred {
		if counts[t] > 0 {
			counts[t]--
			same++
		}
	}
	if same == 0 {
		return 0
	}
	precision := float64(same) / float64(len(pred))
	recall := float64(same) / float64(len(gold))
	return 2 * precision * recall / (precision + recall)
}

// passageMatch is DSPy's _passage_match: 1 when a passage's DPR tokens
// contain an answer's DPR tokens as a contiguous run, both normalized
// first.
func passageMatch(passages, answers []string) float64 {
	tokenized := make([][]string, len(answers))
	for i, a := range answers {
		tokenized[i] = dprTokens(module.NormalizeText(a))
	}
	for _, p := range passages {
		text := dprTokens(module.NormalizeText(p))
		for _, a := range tokenized {
			if containsRun(text, a) {
				return 1
			}
		}
	}
	return 0
}

// containsRun reports whether needle occurs in hay as a contiguous run (an
// empty needle always does, as in DSPy's has_answer).
func containsRun(hay, needle []string) bool {
	for i := 0; i+len(needle) <= len(hay); i++ {
		match := true
		for j, t := range needle {
			if hay[i+j] != t {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// dprTokens is DSPy's DPR_normalize (from DPR's SimpleTokenizer): after
// Unicode NFD, each token is a run of letters, digits and marks
// ([\p{L}\p{N}\p{M}]+) or any other single character that is neither a
// separator nor a control or unassigned character ([^\p{Z}\p{C}]), lower
// cased.
func dprTokens(s string) []string {
	s = norm.NFD.String(s)
	var out []string
	start := -1 // start of the current alphanumeric run
	for i, r := range s {
		if isDPRAlnum(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			out = append(out, strings.ToLower(s[start:i]))
			start = -1
		}
		if !unicode.In(r, unicode.Z, unicode.C) && isAssigned(r) {
			out = append(out, strings.ToLower(string(r)))
		}
	}
	if start >= 0 {
		out = append(out, strings.ToLower(s[start:]))
	}
	return out
}

func isDPRAlnum(r rune) bool {
	return unicode.In(r, unicode.L, unicode.N, unicode.M)
}

// isAssigned reports whether r has a general category other than Cn
// (unassigned), which \p{C} includes.
func isAssigned(r rune) bool {
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C)
}
