package signature

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/dspex/dspex/core/pyjson"
)

// Kinds of InputError.
var (
	ErrUnknownInput = errors.New("signature: unknown input field")
	ErrMissingInput = errors.New("signature: missing input field")
	ErrInputType    = errors.New("signature: input field of the wrong type")
)

// InputError is a set of inputs that does not fit a signature's input
// fields: fields it does not have, required fields left out, or values of
// the wrong type.
type InputError struct {
	// Kind is ErrUnknownInput, ErrMissingInput or ErrInputType.
	Kind error
	// Fields names the fields at fault: unknown ones sorted, others in the
	// signature's order.
	Fields []string
	msg    string
}

func (e *InputError) Error() string { return e.msg }
func (e *InputError) Unwrap() error { return e.Kind }

// CheckInputs checks inputs (values in the JSON model: decoded JSON, or
// plain Go values) against the signature's input fields, as a program's
// callers from outside — dspex run, dspex serve — check what their users
// send. In order: every key must be an input field (a misspelt one is
// named with the closest field, "did you mean"); every input field that is
// not optional must be given; and every value must fit its field's type.
//
// Types are checked as DSPy checks them before warning of a mismatch: null
// fits any field, a str field also takes a list of strings, an int field a
// bool; and since JSON numbers have one type, a float field takes an
// integer. Values are not converted: "3" does not fit an int field. It
// returns nil or an *InputError.
func (s *Signature) CheckInputs(inputs map[string]any) error {
	var unknown []string
	for k := range inputs {
		if !s.IsInput(k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		return s.unknownInputs(unknown, inputs)
	}
	var missing []string
	for _, f := range s.inputs {
		if _, ok := inputs[f.Name]; !ok && (f.Type == nil || f.Type.Kind != Optional) {
			missing = append(missing, f.Name)
		}
	}
	if len(missing) > 0 {
		return &InputError{Kind: ErrMissingInput, Fields: missing,
			msg: fmt.Sprintf("missing input %s %s", plural(len(missing), "field"), quoteAll(missing))}
	}
	for _, f := range s.inputs {
		v, ok := inputs[f.Name]
		if !ok {
			continue
		}
		if err := f.Type.checkInput(pyjson.Normalize(v)); err != nil {
			return &InputError{Kind: ErrInputType, Fields: []string{f.Name},
				msg: fmt.Sprintf("input field %q: %v", f.Name, err)}
		}
	}
	return nil
}

func (s *Signature) unknownInputs(unknown []string, inputs map[string]any) error {
	slices.Sort(unknown)
	names := make([]string, len(s.inputs))
	for i, f := range s.inputs {
		names[i] = f.Name
	}
	e := &InputError{Kind: ErrUnknownInput, Fields: unknown}
	suggest := func(k string) string {
		best, bestD := "", 0
		for _, n := range names {
			if _, given := inputs[n]; given {
				continue
			}
			d := editDistance(strings.ToLower(k), strings.ToLower(n))
			if d <= max(1, len(n)/3) && (best == "" || d < bestD) {
				best, bestD = n, d
			}
		}
		return best
	}
	if len(unknown) == 1 {
		if m := suggest(unknown[0]); m != "" {
			e.msg = fmt.Sprintf("unknown input field %q; did you mean %q?", unknown[0], m)
			return e
		}
	}
	parts := make([]string, len(unknown))
	for i, k := range unknown {
		parts[i] = strconv.Quote(k)
		if m := suggest(k); m != "" {
			parts[i] += fmt.Sprintf(" (did you mean %q?)", m)
		}
	}
	e.msg = fmt.Sprintf("unknown input %s %s; the inputs are: %s", plural(len(unknown), "field"),
		strings.Join(parts, ", "), strings.Join(names, ", "))
	return e
}

// checkInput checks a top-level input value: null fits, and a str field
// takes a list of strings (DSPy's _is_value_compatible_with_type).
func (t *Type) checkInput(v any) error {
	if v == nil {
		return nil
	}
	if t.IsStr() {
		if arr, ok := v.([]any); ok {
			for _, x := range arr {
				if _, ok := x.(string); !ok {
					return mismatch("", t, v)
				}
			}
			return nil
		}
	}
	return t.check(v, "")
}

// check reports whether v, a JSON-model value, is of type t without
// conversion (DSPy's _check_type, with a float field taking an integer).
func (t *Type) check(v any, path string) error {
	if t == nil {
		t = strType
	}
	ok := false
	switch t.Kind {
	case Any:
		return nil
	case String:
		_, ok = v.(string)
	case Int:
		switch v.(type) {
		case int64, *big.Int, bool:
			ok = true
		}
	case Float:
		switch v.(type) {
		case int64, *big.Int, float64:
			ok = true
		}
	case Bool:
		_, ok = v.(bool)
	case Literal:
		for _, c := range t.Values {
			if LiteralEqual(c, v) {
				return nil
			}
		}
		return &coerceError{path, fmt.Sprintf("%s is not one of %s", describe(v), t.PythonName())}
	case Optional:
		if v == nil {
			return nil
		}
		return t.Elem.check(v, path)
	case List:
		arr, isList := v.([]any)
		if !isList {
			break
		}
		if t.Elem != nil {
			for i, e := range arr {
				if err := t.Elem.check(e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
		}
		return nil
	case Dict:
		obj, isObj := v.(pyjson.Object)
		if !isObj {
			break
		}
		if t.Elem != nil {
			for _, m := range obj {
				if err := t.Elem.check(m.Value, joinPath(path, m.Key)); err != nil {
					return err
				}
			}
		}
		return nil
	case Object:
		obj, isObj := v.(pyjson.Object)
		if !isObj {
			break
		}
		for _, f := range t.Fields {
			fv, present := obj.Get(f.Name)
			if !present {
				if f.Required {
					return &coerceError{joinPath(path, f.Name), "missing required field"}
				}
				continue
			}
			if err := f.Type.check(fv, joinPath(path, f.Name)); err != nil {
				return err
			}
		}
		return nil
	}
	if !ok {
		return mismatch(path, t, v)
	}
	return nil
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours count one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
