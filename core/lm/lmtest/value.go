package lmtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode"

	"github.com/dspex/dspex/core/pyjson"
)

// kind is the shape of a field type the simulator generates values for.
type kind uint8

const (
	kStr kind = iota
	kInt
	kFloat
	kBool
	kList     // list[Elem]
	kTuple    // tuple[Items...]
	kDict     // dict[str, Elem]
	kLiteral  // one of Values
	kOptional // Elem | None
	kObject   // Props in order; Name from the prompt or schema title
	kAny
	kNull
	kEllipsis // the "..." of tuple[T, ...]; never generated
)

// ftype is a field type as read from a prompt: from its Python annotation
// or from the JSON schema in its note. Schema $refs may make it cyclic.
type ftype struct {
	Kind   kind
	Elem   *ftype
	Items  []*ftype
	Values []any
	Name   string
	Props  []prop
	// Min and Max bound numbers (from a schema's minimum/maximum).
	Min, Max *float64
	// MinItems and MaxItems bound list lengths; zero means unbounded.
	MinItems, MaxItems int
}

type prop struct {
	Name string
	Type *ftype
}

// strType returns a new str type.
func strType() *ftype { return &ftype{Kind: kStr} }

// typed reports whether a value of t is parsed rather than taken as raw
// text, i.e. whether a wrong value can fail to parse.
func (t *ftype) typed() bool {
	for range maxValueDepth { // schema $refs can make Optional cycles
		if t == nil {
			return false
		}
		switch t.Kind {
		case kStr, kAny, kEllipsis:
			return false
		case kOptional:
			t = t.Elem
			continue
		}
		return true
	}
	return false
}

// Bounds on generated values: nesting depth, so recursive schemas end,
// and the number of values in one completion, so wide schemas stay small.
const (
	maxValueDepth = 6
	maxValues     = 2000
)

// generator produces deterministic placeholder values from its RNG. A
// generator serves one completion.
type generator struct {
	r *rand.Rand
	// snippet is a few words of the first input value, quoted in
	// placeholder sentences.
	snippet string
	// made counts values generated, against maxValues.
	made int
}

func (g *generator) value(t *ftype, name string, depth int) any {
	if t == nil {
		t = strType()
	}
	g.made++
	if depth > maxValueDepth || g.made > maxValues {
		return minimalValue(t)
	}
	switch t.Kind {
	case kInt:
		lo, hi := bounds(t, 1, 10)
		lo, hi = math.Ceil(lo), math.Floor(hi)
		if hi < lo {
			return int64(lo)
		}
		return int64(lo) + int64(g.r.Uint64N(uint64(hi-lo)+1))
	case kFloat:
		lo, hi := bounds(t, 0, 1)
		f := lo + (hi-lo)*float64(g.r.IntN(101))/100
		return math.Round(f*100) / 100
	case kBool:
		return g.r.IntN(2) == 1
	case kList:
		n := 1 + g.r.IntN(3)
		if t.MaxItems > 0 && n > t.MaxItems {
			n = t.MaxItems
		}
		if n < t.MinItems {
			n = t.MinItems
		}
		out := make([]any, n)
		for i := range out {
			out[i] = g.value(t.Elem, name+" item", depth+1)
		}
		return out
	case kTuple:
		out := make([]any, 0, len(t.Items))
		for _, it := range t.Items {
			if it.Kind != kEllipsis {
				out = append(out, g.value(it, name+" item", depth+1))
			}
		}
		return out
	case kDict:
		n := 1 + g.r.IntN(2)
		out := make(pyjson.Object, n)
		for i := range out {
			out[i] = pyjson.Member{Key: fmt.Sprintf("key_%d", i+1), Value: g.value(t.Elem, name+" value", depth+1)}
		}
		return out
	case kLiteral:
		if len(t.Values) == 0 {
			return nil
		}
		return pyjson.Normalize(t.Values[g.r.IntN(len(t.Values))])
	case kOptional:
		return g.value(t.Elem, name, depth+1)
	case kObject:
		out := make(pyjson.Object, 0, len(t.Props))
		for _, p := range t.Props {
			out = append(out, pyjson.Member{Key: p.Name, Value: g.value(p.Type, p.Name, depth+1)})
		}
		return out
	case kNull, kEllipsis:
		return nil
	}
	return g.sentence(name)
}

// bounds returns the range for a number, honouring schema limits.
func bounds(t *ftype, lo, hi float64) (float64, float64) {
	switch {
	case t.Min != nil && t.Max != nil:
		return *t.Min, *t.Max
	case t.Min != nil:
		return *t.Min, *t.Min + hi - lo
	case t.Max != nil:
		return *t.Max - (hi - lo), *t.Max
	}
	return lo, hi
}

func minimalValue(t *ftype) any {
	switch t.Kind {
	case kStr, kAny:
		return ""
	case kInt:
		return int64(0)
	case kFloat:
		return 0.0
	case kBool:
		return false
	case kList, kTuple:
		return []any{}
	case kDict, kObject:
		return pyjson.Object{}
	case kLiteral:
		if len(t.Values) > 0 {
			return pyjson.Normalize(t.Values[0])
		}
	}
	return nil
}

// sentence is a placeholder string: it names the field and quotes a bit of
// the input, and carries a tag from the RNG so different seeds differ.
// Every variant says it was simulated, so that a placeholder copied out of
// a command's output is never taken for a model's answer.
func (g *generator) sentence(name string) string {
	label := strings.TrimSpace(strings.ReplaceAll(name, "_", " "))
	if label == "" {
		label = "text"
	}
	topic := "the input"
	if g.snippet != "" {
		topic = "'" + g.snippet + "'"
	}
	tag := fmt.Sprintf("%04x", g.r.IntN(0x10000))
	switch g.r.IntN(3) {
	case 0:
		return fmt.Sprintf("Simulated %s (%s) for %s.", label, tag, topic)
	case 1:
		return fmt.Sprintf("A simulated %s about %s, variant %s.", label, topic, tag)
	default:
		return fmt.Sprintf("Placeholder %s %s from the simulated LM, replying to %s.", label, tag, topic)
	}
}

// snippet returns the first few words of s, reduced to characters that
// cannot be mistaken for prompt markers or JSON syntax.
func snippet(s string) string {
	const maxWords, maxRunes = 6, 40
	clean := strings.Map(func(r rune) rune {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			return r
		case strings.ContainsRune(" .,?!-:;'", r):
			return r
		case unicode.IsSpace(r):
			return ' '
		}
		return -1
	}, s)
	words := strings.Fields(strings.ReplaceAll(clean, "'", ""))
	cut := len(words) > maxWords
	if cut {
		words = words[:maxWords]
	}
	out := strings.Join(words, " ")
	if r := []rune(out); len(r) > maxRunes {
		out, cut = strings.TrimSpace(string(r[:maxRunes])), true
	}
	if cut {
		out += "..."
	}
	return out
}

// chatValue formats a field value as DSPy's ChatAdapter does: strings
// raw, lists and objects as JSON, other scalars as Python's str().
func chatValue(v any) string {
	switch x := pyjson.Normalize(v).(type) {
	case string:
		return x
	case []any, pyjson.Object:
		return pyjson.Dumps(x, -1)
	default:
		return pyjson.Str(x)
	}
}

// chatText writes output fields in ChatAdapter form, ending with the
// completed marker.
func chatText(names []string, values []any) string {
	var b strings.Builder
	for i, name := range names {
		if i > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString("[[ ## " + name + " ## ]]\n")
		b.WriteString(chatValue(values[i]))
	}
	if len(names) > 0 {
		b.WriteString("\n\n")
	}
	b.WriteString(completedMarker + "\n")
	return b.String()
}

// jsonText writes output fields as one JSON object, indented as
// json.dumps(indent=2) writes it.
func jsonText(names []string, values []any) string {
	obj := make(pyjson.Object, len(names))
	for i, name := range names {
		obj[i] = pyjson.Member{Key: name, Value: values[i]}
	}
	return pyjson.Dumps(obj, 2)
}

// scriptedValue converts a value from a script for a field of type t. In
// JSON mode a string given for a typed field is read as JSON (or a Python
// bool) when it parses, so "0.9" becomes the number 0.9.
func scriptedValue(t *ftype, v any, jsonMode bool) any {
	v = pyjson.Normalize(v)
	s, ok := v.(string)
	if !ok || !jsonMode || !t.typed() {
		return v
	}
	inner := t
	if inner.Kind == kOptional {
		inner = inner.Elem
	}
	if inner.Kind == kLiteral {
		return v
	}
	switch strings.TrimSpace(s) {
	case "True":
		return true
	case "False":
		return false
	case "None":
		return nil
	}
	if d, err := pyjson.Decode([]byte(s)); err == nil {
		return d
	}
	return v
}

// badValue is a value that does not parse as type t, used by the
// "badfields" fault: words for scalars and Literals, a JSON value of the
// wrong shape for lists and objects (a merely unterminated one would be
// repaired by lenient parsers).
func badValue(t *ftype) any {
	if t.Kind == kOptional {
		t = t.Elem
	}
	switch t.Kind {
	case kList, kTuple:
		return pyjson.Object{{Key: "simulated", Value: "bad field: not a list"}}
	case kDict, kObject:
		return []any{"simulated bad field", "not an object"}
	case kBool:
		return "simulated bad field: not a boolean"
	case kLiteral:
		return "simulated bad field: none of the choices"
	}
	return "simulated bad field: not a number"
}

// spoilFields applies the "badfields" fault: the first typed field gets a
// value that does not parse; when no field is typed, the last field is
// left out.
func spoilFields(fields []promptField, names []string, values []any) ([]string, []any) {
	for i, f := range fields {
		if f.Type.typed() {
			values = slices.Clone(values)
			values[i] = badValue(f.Type)
			return names, values
		}
	}
	if len(names) == 0 {
		return names, values
	}
	return names[:len(names)-1], values[:len(values)-1]
}

// plainText is the answer to a prompt the simulator does not understand.
func plainText(r *rand.Rand) string {
	return fmt.Sprintf("This is a simulated response from the DSPEx LM simulator (ref %04x).", r.IntN(0x10000))
}
