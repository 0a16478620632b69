package module

import (
	"fmt"
	"maps"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/pyjson"
)

// MajorityInput is what Majority takes: a prediction (its Completions are
// voted on), several predictions (each one's fields are one vote), or
// completions' field maps.
type MajorityInput interface {
	*example.Prediction | []*example.Prediction | []map[string]any
}

// Majority returns the completion whose field value is the most common once
// normalized, as DSPy's dspy.majority: ties go to the value seen first, and
// the completion returned is the first that has the winning value. The
// result is a new prediction holding that one completion, with Usage and
// Cost summing the inputs'.
//
// normalize defaults (nil) to DSPy's default: NormalizeText, with values
// that normalize to "" left out of the vote — unless every value does, in
// which case all of them vote. A custom normalize's "" is likewise left out
// (DSPy leaves out None). Values that are not strings are voted on as
// Python's str() writes them.
//
// field is required: DSPy's default, the signature's last output field,
// needs a field order that DSPEx's completions do not record. A completion
// without the field is an error, as in DSPy.
func Majority[T MajorityInput](in T, field string, normalize func(string) string) (*example.Prediction, error) {
	var (
		completions []map[string]any
		usage       lm.Usage
		cost        lm.Cost
	)
	switch v := any(in).(type) {
	case *example.Prediction:
		if v == nil {
			return nil, fmt.Errorf("module: majority: nil prediction")
		}
		completions = v.Completions
		if len(completions) == 0 && v.Len() > 0 {
			completions = []map[string]any{v.Map()}
		}
		usage, cost = v.Usage, v.Cost
	case []*example.Prediction:
		for i, p := range v {
			if p == nil {
				return nil, fmt.Errorf("module: majority: prediction %d is nil", i)
			}
			completions = append(completions, p.Map())
			usage, cost = usage.Add(p.Usage), cost.Add(p.Cost)
		}
	case []map[string]any:
		completions = v
	}
	if field == "" {
		return nil, fmt.Errorf("module: majority: no field given")
	}
	if len(completions) == 0 {
		return nil, fmt.Errorf("module: majority: no completions to vote on")
	}
	if normalize == nil {
		normalize = NormalizeText
	}

	values := make([]string, len(completions))
	counted := 0
	for i, c := range completions {
		v, ok := c[field]
		if !ok {
			return nil, fmt.Errorf("module: majority: completion %d has no field %q", i, field)
		}
		values[i] = normalize(pyjson.Str(v))
		if values[i] != "" {
			counted++
		}
	}
	counts := make(map[string]int, len(values))
	var order []string // values in order of first appearance, as a Python dict keeps them
	for _, v := range values {
		if v == "" && counted > 0 {
			continue
		}
		if counts[v] == 0 {
			order = append(order, v)
		}
		counts[v]++
	}
	winner := order[0]
	for _, v := range order[1:] {
		if counts[v] > counts[winner] { // strictly more: ties keep the earlier value
			winner = v
		}
	}
	for i, v := range values {
		if v == winner {
			pred := example.NewPrediction(maps.Clone(completions[i]))
			pred.Usage, pred.Cost = usage, cost
			return pred, nil
		}
	}
	return nil, fmt.Errorf("module: majority: internal error: no completion has the winning value %q", winner)
}

// pyPunctuation is Python's string.punctuation.
const pyPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// NormalizeText is DSPy's normalize_text (dspy.evaluate.metrics), used to
// compare answers: Unicode NFD, lower case, ASCII punctuation removed, the
// English articles "a", "an" and "the" removed as whole words, and runs of
// whitespace collapsed to one space (none at the ends).
//
//	NormalizeText("The,  Eiffel  Tower!") == "eiffel tower"
func NormalizeText(s string) string {
	s = strings.ToLower(norm.NFD.String(s))
	s = strings.Map(func(r rune) rune {
		if r < 0x80 && strings.ContainsRune(pyPunctuation, r) {
			return -1
		}
		return r
	}, s)
	// Removing the articles (Python's re.sub(r"\b(a|an|the)\b", " ", ...))
	// and collapsing whitespace (" ".join(s.split())) together: split into
	// runs of word characters and the rest, drop article words, and join
	// the whitespace-separated pieces with single spaces.
	var b strings.Builder
	b.Grow(len(s))
	pending := false // a separator is owed before the next piece
	rs := []rune(s)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case isPyWord(r):
			j := i
			for j < len(rs) && isPyWord(rs[j]) {
				j++
			}
			if w := string(rs[i:j]); w == "a" || w == "an" || w == "the" {
				pending = b.Len() > 0
			} else {
				if pending {
					b.WriteByte(' ')
					pending = false
				}
				b.WriteString(w)
			}
			i = j
		case isPySpace(r):
			pending = b.Len() > 0
			i++
		default:
			if pending {
				b.WriteByte(' ')
				pending = false
			}
			b.WriteRune(r)
			i++
		}
	}
	return b.String()
}

// isPyWord is Python's \w for str patterns: alphanumeric or underscore.
func isPyWord(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r)
}

// isPySpace is Python's str.isspace for one character.
func isPySpace(r rune) bool {
	switch r {
	case '\x1c', '\x1d', '\x1e', '\x1f':
		return true
	}
	return unicode.IsSpace(r)
}
