// Package pyjson renders Go values the way Python renders them, so that
// prompts built here are byte-for-byte equal to prompts built by DSPy.
//
// DSPy formats field values with Python's json.dumps(ensure_ascii=False) and
// str(); both differ from encoding/json (float spelling, HTML escaping,
// separators, key order). Values are first normalized to a small JSON model
// (nil, bool, int64, *big.Int, float64, string, []any, Object) in which
// objects keep their key order and integers keep every digit (as Python's
// dicts and ints do), then written.
package pyjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Member is one key/value pair of an Object.
type Member struct {
	Key   string
	Value any
}

// Object is a JSON object that keeps its key order, as Python dicts do.
type Object []Member

// Get returns the value under key and whether it was present.
func (o Object) Get(key string) (any, bool) {
	for _, m := range o {
		if m.Key == key {
			return m.Value, true
		}
	}
	return nil, false
}

// Set returns o with key set to v, as assigning to a Python dict does: an
// existing key keeps its position and takes the new value (in o's own
// backing array); a new key is appended.
func (o Object) Set(key string, v any) Object {
	for i := range o {
		if o[i].Key == key {
			o[i].Value = v
			return o
		}
	}
	return append(o, Member{key, v})
}

// Map converts the object (recursively) to plain Go maps and slices.
func (o Object) Map() map[string]any {
	out := make(map[string]any, len(o))
	for _, m := range o {
		out[m.Key] = Plain(m.Value)
	}
	return out
}

// MarshalJSON writes the object in key order.
func (o Object) MarshalJSON() ([]byte, error) {
	return []byte(Dumps(o, -1)), nil
}

// Plain converts a normalized value back to plain Go maps and slices.
func Plain(v any) any {
	switch x := v.(type) {
	case Object:
		return x.Map()
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Plain(e)
		}
		return out
	default:
		return v
	}
}

// Normalize converts an arbitrary Go value into the JSON model: nil, bool,
// int64, *big.Int (only for integers outside int64's range), float64,
// string, []any or Object. Objects keep their order, structs become objects
// in field order (honouring json tags), maps become objects with sorted keys
// (a Go map has no order to keep), and
// types implementing json.Marshaler are marshalled and decoded. Values that
// cannot be represented become their fmt.Sprint string, as DSPy falls back to
// str(value).
func Normalize(v any) any {
	return normalize(reflect.ValueOf(v), 0)
}

const maxDepth = 64

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

func normalize(rv reflect.Value, depth int) any {
	if !rv.IsValid() {
		return nil
	}
	if depth > maxDepth {
		return fmt.Sprint(rv.Interface())
	}
	switch x := rv.Interface().(type) {
	case Object:
		out := make(Object, len(x))
		for i, m := range x {
			out[i] = Member{m.Key, normalize(reflect.ValueOf(m.Value), depth+1)}
		}
		return out
	case json.Number:
		return numberValue(x)
	case *big.Int:
		if x == nil {
			return nil
		}
		return intValue(x)
	case big.Int:
		return intValue(&x)
	}
	if rv.Kind() != reflect.Pointer && rv.Kind() != reflect.Interface && rv.Type().Implements(jsonMarshalerType) {
		b, err := rv.Interface().(json.Marshaler).MarshalJSON()
		if err != nil {
			return fmt.Sprint(rv.Interface())
		}
		v, err := Decode(b)
		if err != nil {
			return fmt.Sprint(rv.Interface())
		}
		return v
	}
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return normalize(rv.Elem(), depth+1)
	case reflect.Bool:
		return rv.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return new(big.Int).SetUint64(u)
		}
		return int64(u)
	case reflect.Float32:
		// Round through the shortest float32 spelling so 0.1f stays 0.1.
		f, _ := strconv.ParseFloat(strconv.FormatFloat(rv.Float(), 'g', -1, 32), 64)
		return f
	case reflect.Float64:
		return rv.Float()
	case reflect.String:
		return rv.String()
	case reflect.Slice:
		if rv.IsNil() {
			return []any{}
		}
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return string(rv.Bytes())
		}
		fallthrough
	case reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = normalize(rv.Index(i), depth+1)
		}
		return out
	case reflect.Map:
		keys := rv.MapKeys()
		type kv struct {
			k string
			v reflect.Value
		}
		items := make([]kv, 0, len(keys))
		for _, k := range keys {
			items = append(items, kv{mapKey(k), rv.MapIndex(k)})
		}
		sort.Slice(items, func(i, j int) bool { return items[i].k < items[j].k })
		out := make(Object, len(items))
		for i, it := range items {
			out[i] = Member{it.k, normalize(it.v, depth+1)}
		}
		return out
	case reflect.Struct:
		return normalizeStruct(rv, depth)
	default:
		return fmt.Sprint(rv.Interface())
	}
}

func mapKey(k reflect.Value) string {
	if k.Kind() == reflect.String {
		return k.String()
	}
	if k.Type().Implements(textMarshalerType) {
		if b, err := k.Interface().(encoding.TextMarshaler).MarshalText(); err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(k.Interface())
}

func normalizeStruct(rv reflect.Value, depth int) Object {
	var out Object
	t := rv.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, omitEmpty, skip := JSONFieldName(sf)
		if skip {
			continue
		}
		fv := rv.Field(i)
		if sf.Anonymous && name == "" {
			inner := fv
			if inner.Kind() == reflect.Pointer {
				if inner.IsNil() {
					continue
				}
				inner = inner.Elem()
			}
			if inner.Kind() == reflect.Struct {
				out = append(out, normalizeStruct(inner, depth+1)...)
				continue
			}
		}
		if name == "" {
			name = sf.Name
		}
		if omitEmpty && fv.IsZero() {
			continue
		}
		out = append(out, Member{name, normalize(fv, depth+1)})
	}
	return out
}

// JSONFieldName reads a struct field's json tag: the name ("" when the tag
// gives none), whether omitempty/omitzero is set, and whether the field is
// skipped ("-").
func JSONFieldName(sf reflect.StructField) (name string, omitEmpty, skip bool) {
	tag, ok := sf.Tag.Lookup("json")
	if !ok {
		return "", false, false
	}
	if tag == "-" {
		return "", false, true
	}
	parts := strings.Split(tag, ",")
	for _, p := range parts[1:] {
		if p == "omitempty" || p == "omitzero" {
			omitEmpty = true
		}
	}
	return parts[0], omitEmpty, false
}

// intValue puts an integer in the model: int64 when it fits, else a copy
// of the *big.Int (so the model never shares a caller's mutable value).
func intValue(x *big.Int) any {
	if x.IsInt64() {
		return x.Int64()
	}
	return new(big.Int).Set(x)
}

// ParseInt reads a decimal integer literal of any size, as Python's int()
// reads one from JSON: int64 when it fits, *big.Int otherwise.
func ParseInt(s string) (any, bool) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, true
	}
	b, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, false
	}
	return b, true
}

func numberValue(n json.Number) any {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if i, ok := ParseInt(s); ok {
			return i
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return f
}

// Decode parses JSON text into the JSON model, keeping object key order and
// telling integers (int64, or *big.Int beyond int64) from floats (float64)
// as Python's json.loads does.
func Decode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if rest := bytes.TrimSpace(b[dec.InputOffset():]); len(rest) > 0 {
		return nil, &TrailingDataError{Offset: dec.InputOffset()}
	}
	return v, nil
}

// TrailingDataError is JSON text with more than whitespace after its value.
type TrailingDataError struct {
	// Offset is where the value ends.
	Offset int64
}

func (e *TrailingDataError) Error() string {
	return fmt.Sprintf("pyjson: unexpected data after the JSON value at offset %d", e.Offset)
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := Object{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, _ := kt.(string)
				val, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				obj = obj.Set(key, val)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				val, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, val)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return arr, nil
		}
		return nil, fmt.Errorf("pyjson: unexpected delimiter %q", t)
	case json.Number:
		return numberValue(t), nil
	default:
		return t, nil
	}
}

// Dumps writes v as Python's json.dumps(v, ensure_ascii=False) would, or
// with json.dumps(..., indent=indent) when indent >= 0. v is normalized first.
func Dumps(v any, indent int) string {
	var b strings.Builder
	writeValue(&b, Normalize(v), indent, 0)
	return b.String()
}

// Str returns Python's str() of a value: strings as they are,
// True/False/None, integers in full, Python's float repr; lists and objects
// as Python's repr of a list or dict ("{'a': 1, 'b': [True, None]}").
func Str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	switch x := Normalize(v).(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case *big.Int:
		return x.String()
	case float64:
		return FormatFloat(x)
	case string:
		return x
	default:
		return Repr(x)
	}
}

// Repr returns Python's repr() of a value: strings quoted as Python quotes
// them, True/False/None, lists and dicts (objects, in their order) with
// Python's ", " and ": " separators. v is normalized first.
func Repr(v any) string {
	var b strings.Builder
	writeRepr(&b, Normalize(v))
	return b.String()
}

func writeRepr(b *strings.Builder, v any) {
	switch x := v.(type) {
	case string:
		writeStrRepr(b, x)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, e)
		}
		b.WriteByte(']')
	case Object:
		b.WriteByte('{')
		for i, m := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeStrRepr(b, m.Key)
			b.WriteString(": ")
			writeRepr(b, m.Value)
		}
		b.WriteByte('}')
	default:
		b.WriteString(Str(x))
	}
}

// writeStrRepr quotes s as CPython's unicode_repr does: single quotes
// unless s holds a single quote and no double quote; \t, \n, \r and the
// quote escaped; other unprintable characters as \xhh, \uhhhh or
// \Uhhhhhhhh.
func writeStrRepr(b *strings.Builder, s string) {
	quote := '\''
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		quote = '"'
	}
	b.WriteRune(quote)
	for _, r := range s {
		switch {
		case r == quote || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(b, `\x%02x`, r)
		case r < 0x7f || unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			fmt.Fprintf(b, `\U%08x`, r)
		}
	}
	b.WriteRune(quote)
}

func writeValue(b *strings.Builder, v any, indent, level int) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case *big.Int:
		b.WriteString(x.String())
	case float64:
		switch {
		case math.IsNaN(x):
			b.WriteString("NaN")
		case math.IsInf(x, 1):
			b.WriteString("Infinity")
		case math.IsInf(x, -1):
			b.WriteString("-Infinity")
		default:
			b.WriteString(FormatFloat(x))
		}
	case string:
		WriteString(b, x)
	case []any:
		if len(x) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
				if indent < 0 {
					b.WriteByte(' ')
				}
			}
			newline(b, indent, level+1)
			writeValue(b, e, indent, level+1)
		}
		newline(b, indent, level)
		b.WriteByte(']')
	case Object:
		if len(x) == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteByte('{')
		for i, m := range x {
			if i > 0 {
				b.WriteByte(',')
				if indent < 0 {
					b.WriteByte(' ')
				}
			}
			newline(b, indent, level+1)
			WriteString(b, m.Key)
			b.WriteString(": ")
			writeValue(b, m.Value, indent, level+1)
		}
		newline(b, indent, level)
		b.WriteByte('}')
	default:
		WriteString(b, fmt.Sprint(x))
	}
}

func newline(b *strings.Builder, indent, level int) {
	if indent < 0 {
		return
	}
	b.WriteByte('\n')
	b.WriteString(strings.Repeat(" ", indent*level))
}

// WriteString writes s as a JSON string the way Python's json module does
// with ensure_ascii=False: only quotes, backslashes and control characters
// are escaped.
func WriteString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// FormatFloat spells f as Python's repr(float) does: the shortest digits that
// round-trip, always with a decimal point or exponent ("1.0", "0.1",
// "1e-05", "1e+16").
func FormatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	// 'e' with -1 precision gives the shortest round-trip digits: d.ddde±XX.
	s := strconv.FormatFloat(f, 'e', -1, 64)
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	decpt := exp + 1 // position of the decimal point relative to digits
	if decpt <= -4 || decpt > 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		es := "+"
		if exp < 0 {
			es, exp = "-", -exp
		}
		return fmt.Sprintf("%s%se%s%02d", sign, m, es, exp)
	}
	switch {
	case decpt <= 0:
		return sign + "0." + strings.Repeat("0", -decpt) + digits
	case decpt >= len(digits):
		return sign + digits + strings.Repeat("0", decpt-len(digits)) + ".0"
	default:
		return sign + digits[:decpt] + "." + digits[decpt:]
	}
}
