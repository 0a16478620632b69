package signature

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dspex/dspex/core/internal/jsonrepair"
	"github.com/dspex/dspex/core/pyjson"
)

// Go values of parsed fields, by kind: str -> string, int -> int64 (or
// *big.Int beyond int64's range, as Python ints have no bound), float ->
// float64, bool -> bool, list -> []any, dict and untyped values ->
// pyjson.Object (example.Object outside the module), which keeps the keys in
// the order the LM wrote them as a Python dict does, objects (pydantic
// models) -> map[string]any (printed in the model's field order), Literal ->
// the matching choice, None -> nil.

// ParseText converts the text an LM wrote for a field into the field's Go
// value, as DSPy's parse_value does: str fields take the text as it is;
// Literal fields accept the choice with stray quotes or a Literal[...]
// wrapper; other types read the text as (repaired) JSON or a Python literal
// and validate it.
func (t *Type) ParseText(text string) (any, error) {
	if t.IsStr() {
		return text, nil
	}
	if t.Kind == Literal {
		return t.literalFromText(text)
	}
	if t.Kind == Optional && t.Elem.IsStr() {
		return text, nil
	}
	candidate, ok := jsonrepair.Parse(text)
	if !ok {
		candidate = text
	}
	return t.Coerce(candidate)
}

// ParseValue converts a value already decoded from JSON (as the JSON adapter
// reads it) into the field's Go value. A str field takes Python's str() of a
// non-string value; a string value for another type is parsed as ParseText
// parses text.
func (t *Type) ParseValue(v any) (any, error) {
	if t.IsStr() {
		return pyjson.Str(v), nil
	}
	if s, ok := v.(string); ok {
		return t.ParseText(s)
	}
	return t.Coerce(v)
}

func (t *Type) literalFromText(text string) (any, error) {
	if v, ok := t.matchLiteral(text); ok {
		return v, nil
	}
	v := strings.TrimSpace(text)
	if (strings.HasPrefix(v, "Literal[") || strings.HasPrefix(v, "str[")) && strings.HasSuffix(v, "]") {
		v = v[strings.IndexByte(v, '[')+1 : len(v)-1]
	}
	if len(v) > 1 && v[0] == v[len(v)-1] && (v[0] == '"' || v[0] == '\'') {
		v = v[1 : len(v)-1]
	}
	if m, ok := t.matchLiteral(v); ok {
		return m, nil
	}
	return nil, fmt.Errorf("%q is not one of %s", text, t.PythonName())
}

// matchLiteral finds the choice equal to s, comparing strings exactly and
// other choices by their Python spelling ("1", "True").
func (t *Type) matchLiteral(s string) (any, bool) {
	for _, c := range t.Values {
		if cs, ok := c.(string); ok {
			if cs == s {
				return c, true
			}
		} else if pyjson.Str(c) == s {
			return c, true
		}
	}
	return nil, false
}

// Coerce validates a JSON-model value (as pyjson or jsonrepair produce, or
// plain Go maps and slices) against the type, with pydantic's lax
// conversions: "3" and 3.0 are ints, 1 and "true" are bools, and so on.
func (t *Type) Coerce(v any) (any, error) {
	return t.coerce(pyjson.Normalize(v), "")
}

type coerceError struct {
	path string
	msg  string
}

func (e *coerceError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return e.path + ": " + e.msg
}

func mismatch(path string, t *Type, v any) error {
	return &coerceError{path, fmt.Sprintf("expected %s, got %s", t.PythonName(), describe(v))}
}

func describe(v any) string {
	s := pyjson.Dumps(v, -1)
	if len(s) > 60 {
		cut := 57
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	switch v.(type) {
	case nil:
		return "null"
	case pyjson.Object:
		return "object " + s
	case []any:
		return "array " + s
	case string:
		return "string " + s
	case bool:
		return "bool " + s
	default:
		return "number " + s
	}
}

func (t *Type) coerce(v any, path string) (any, error) {
	if t == nil {
		t = strType
	}
	switch t.Kind {
	case Any:
		return v, nil
	case String:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case Int:
		switch x := v.(type) {
		case int64, *big.Int:
			return x, nil
		case float64:
			// pydantic takes whole floats within int64's range only.
			if x == math.Trunc(x) && !math.IsInf(x, 0) && math.Abs(x) < 1<<63 {
				return int64(x), nil
			}
		case string:
			// pydantic reads digits of any length, with zeros after a
			// decimal point ("7.00") allowed.
			s := strings.TrimSpace(x)
			if i, ok := pyjson.ParseInt(trimZeroFraction(s)); ok {
				return i, nil
			}
			if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
				return int64(f), nil
			}
		}
	case Float:
		switch x := v.(type) {
		case int64:
			return float64(x), nil
		case *big.Int:
			f, _ := new(big.Float).SetInt(x).Float64()
			return f, nil
		case float64:
			return x, nil
		case string:
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				return f, nil
			}
		}
	case Bool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case int64:
			if x == 0 || x == 1 {
				return x == 1, nil
			}
		case float64:
			if x == 0 || x == 1 {
				return x == 1, nil
			}
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "1", "true", "t", "yes", "y", "on":
				return true, nil
			case "0", "false", "f", "no", "n", "off":
				return false, nil
			}
		}
	case Literal:
		for _, c := range t.Values {
			if LiteralEqual(c, v) {
				return c, nil
			}
		}
		if s, ok := v.(string); ok {
			if m, err := t.literalFromText(s); err == nil {
				return m, nil
			}
		}
		return nil, &coerceError{path, fmt.Sprintf("%s is not one of %s", describe(v), t.PythonName())}
	case Optional:
		if v == nil {
			return nil, nil
		}
		return t.Elem.coerce(v, path)
	case List:
		arr, ok := v.([]any)
		if !ok {
			break
		}
		out := make([]any, len(arr))
		for i, e := range arr {
			if t.Elem == nil {
				out[i] = e
				continue
			}
			c, err := t.Elem.coerce(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case Dict:
		obj, ok := v.(pyjson.Object)
		if !ok {
			break
		}
		out := make(pyjson.Object, len(obj))
		for i, m := range obj {
			out[i] = m
			if t.Elem == nil {
				continue
			}
			c, err := t.Elem.coerce(m.Value, joinPath(path, m.Key))
			if err != nil {
				return nil, err
			}
			out[i].Value = c
		}
		return out, nil
	case Object:
		obj, ok := v.(pyjson.Object)
		if !ok {
			break
		}
		out := make(map[string]any, len(t.Fields))
		for _, f := range t.Fields {
			fv, present := obj.Get(f.Name)
			if !present {
				if f.Required {
					return nil, &coerceError{joinPath(path, f.Name), "missing required field"}
				}
				out[f.Name] = nil
				continue
			}
			c, err := f.Type.coerce(fv, joinPath(path, f.Name))
			if err != nil {
				return nil, err
			}
			out[f.Name] = c
		}
		return out, nil
	}
	return nil, mismatch(path, t, v)
}

// trimZeroFraction drops a fraction of zeros: "12.00" -> "12".
func trimZeroFraction(s string) string {
	whole, frac, ok := strings.Cut(s, ".")
	if !ok || frac == "" || strings.Trim(frac, "0") != "" {
		return s
	}
	return whole
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Normalize renders a Go value for this type in the JSON model, ordering an
// object's keys as the type declares its fields (the order DSPy would print
// a pydantic model in). Keys the type does not know follow, sorted.
func (t *Type) Normalize(v any) any {
	return t.order(pyjson.Normalize(v))
}

func (t *Type) order(v any) any {
	if t == nil {
		return v
	}
	switch t.Kind {
	case Optional:
		return t.Elem.order(v)
	case List:
		arr, ok := v.([]any)
		if !ok || t.Elem == nil {
			return v
		}
		out := make([]any, len(arr))
		for i, e := range arr {
			out[i] = t.Elem.order(e)
		}
		return out
	case Dict:
		obj, ok := v.(pyjson.Object)
		if !ok || t.Elem == nil {
			return v
		}
		out := make(pyjson.Object, len(obj))
		for i, m := range obj {
			out[i] = pyjson.Member{Key: m.Key, Value: t.Elem.order(m.Value)}
		}
		return out
	case Object:
		obj, ok := v.(pyjson.Object)
		if !ok {
			return v
		}
		out := make(pyjson.Object, 0, len(obj))
		used := make(map[string]bool, len(t.Fields))
		for _, f := range t.Fields {
			if fv, ok := obj.Get(f.Name); ok {
				out = append(out, pyjson.Member{Key: f.Name, Value: f.Type.order(fv)})
				used[f.Name] = true
			}
		}
		for _, m := range obj {
			if !used[m.Key] {
				out = append(out, m)
			}
		}
		return out
	}
	return v
}
