// Package example holds the field maps DSPEx passes around: Example (a data
// point, with which of its keys are inputs) and Prediction (a module's
// output, with the alternative completions when several were sampled).
//
// Field maps are map[string]any at the bottom, so files, optimizers and the
// CLI work without Go types; typed accessors read them conveniently, and
// module.Typed layers Go structs on top. Values are treated as immutable:
// methods that change an Example return a copy.
//
// Values keep Python's semantics where DSPy shows them. An Example keeps its
// keys in insertion order, as a DSPy Example (a Python dict) does, and JSON
// objects inside values are Objects, which keep their key order too; JSON
// integers beyond int64 are *big.Int. Prompts and saved state print both as
// DSPy would. A Go map has no order: an Example built from one (New), and a
// map[string]any given as a value, come out with sorted keys.
package example

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"math/big"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/pyjson"
)

// Example is a set of named values, some of which are marked as inputs.
// The zero value is an empty example. Safe for concurrent reads.
type Example struct {
	fields    map[string]any
	keys      []string // the keys of fields, in insertion order
	inputKeys []string
}

// Object is a JSON object that keeps its key order, as a Python dict does.
// Values read from JSON (JSONL data, state files, request bodies, parsed
// dict outputs) hold their objects as Objects.
type Object = pyjson.Object

// Member is one key/value pair of an Object.
type Member = pyjson.Member

// New returns an example holding a copy of fields, with no inputs marked.
// Its keys are in sorted order, the only order a Go map gives; use
// FromObject to keep an order.
func New(fields map[string]any) Example {
	return Example{fields: maps.Clone(fields), keys: slices.Sorted(maps.Keys(fields))}
}

// FromObject returns an example holding obj's members in obj's order, with
// no inputs marked. A repeated key keeps its first position and its last
// value, as a Python dict built from the pairs would.
func FromObject(obj Object) Example {
	e := Example{fields: make(map[string]any, len(obj)), keys: make([]string, 0, len(obj))}
	for _, m := range obj {
		if _, dup := e.fields[m.Key]; !dup {
			e.keys = append(e.keys, m.Key)
		}
		e.fields[m.Key] = m.Value
	}
	return e
}

// WithInputs returns a copy in which exactly keys are the inputs, as DSPy's
// with_inputs.
func (e Example) WithInputs(keys ...string) Example {
	c := e.clone()
	c.inputKeys = slices.Clone(keys)
	return c
}

// InputKeys returns the keys marked as inputs.
func (e Example) InputKeys() []string { return slices.Clone(e.inputKeys) }

// HasInputs reports whether inputs were marked with WithInputs.
func (e Example) HasInputs() bool { return len(e.inputKeys) > 0 }

func (e Example) clone() Example {
	return Example{fields: maps.Clone(e.fields), keys: slices.Clone(e.keys), inputKeys: slices.Clone(e.inputKeys)}
}

// Get returns the value under key and whether it is present.
func (e Example) Get(key string) (any, bool) {
	v, ok := e.fields[key]
	return v, ok
}

// Has reports whether key is present.
func (e Example) Has(key string) bool {
	_, ok := e.fields[key]
	return ok
}

// With returns a copy with key set to v; a new key comes last.
func (e Example) With(key string, v any) Example {
	c := e.clone()
	if c.fields == nil {
		c.fields = map[string]any{}
	}
	if _, ok := c.fields[key]; !ok {
		c.keys = append(c.keys, key)
	}
	c.fields[key] = v
	return c
}

// Without returns a copy without the given keys.
func (e Example) Without(keys ...string) Example {
	c := e.clone()
	for _, k := range keys {
		delete(c.fields, k)
	}
	c.keys = slices.DeleteFunc(c.keys, func(k string) bool { return slices.Contains(keys, k) })
	c.inputKeys = slices.DeleteFunc(c.inputKeys, func(k string) bool { return slices.Contains(keys, k) })
	return c
}

// Keys returns the keys in the example's order (see New and FromObject).
func (e Example) Keys() []string { return slices.Clone(e.keys) }

// Object returns the fields as an Object, in the example's order.
func (e Example) Object() Object {
	out := make(Object, len(e.keys))
	for i, k := range e.keys {
		out[i] = Member{Key: k, Value: e.fields[k]}
	}
	return out
}

// Len is the number of fields.
func (e Example) Len() int { return len(e.fields) }

// Map returns a copy of the fields.
func (e Example) Map() map[string]any { return maps.Clone(e.fields) }

// Inputs returns only the input fields (all fields when none are marked).
func (e Example) Inputs() map[string]any {
	if len(e.inputKeys) == 0 {
		return maps.Clone(e.fields)
	}
	out := make(map[string]any, len(e.inputKeys))
	for _, k := range e.inputKeys {
		if v, ok := e.fields[k]; ok {
			out[k] = v
		}
	}
	return out
}

// Labels returns the fields that are not inputs.
func (e Example) Labels() map[string]any {
	out := make(map[string]any, len(e.fields))
	for k, v := range e.fields {
		if !slices.Contains(e.inputKeys, k) {
			out[k] = v
		}
	}
	return out
}

// String returns the value under key as text: strings as they are, other
// values as Python's str() would write them; "" when absent.
func (e Example) String(key string) string {
	v, ok := e.fields[key]
	if !ok {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return pyjson.Str(v)
}

// Int returns the value under key as an integer: an integer, a whole float
// within int64's range, or a string holding an integer. Anything else, or
// no value, is an error.
func (e Example) Int(key string) (int64, error) {
	v, ok := e.fields[key]
	if !ok {
		return 0, fmt.Errorf("example: no field %q", key)
	}
	switch x := pyjson.Normalize(v).(type) {
	case int64:
		return x, nil
	case *big.Int:
		return 0, fmt.Errorf("example: field %q is %s, outside the int64 range", key, x)
	case float64:
		// Outside ±2^63 (or infinite) a float has no int64 value.
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return int64(x), nil
		}
	case string:
		if i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
			return i, nil
		}
	}
	return 0, fmt.Errorf("example: field %q is %T, not an integer", key, v)
}

// Float returns the value under key as a float.
func (e Example) Float(key string) (float64, error) {
	v, ok := e.fields[key]
	if !ok {
		return 0, fmt.Errorf("example: no field %q", key)
	}
	switch x := pyjson.Normalize(v).(type) {
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
	return 0, fmt.Errorf("example: field %q is %T, not a number", key, v)
}

// Bool returns the value under key as a bool.
func (e Example) Bool(key string) (bool, error) {
	v, ok := e.fields[key]
	if !ok {
		return false, fmt.Errorf("example: no field %q", key)
	}
	if b, ok := v.(bool); ok {
		return b, nil
	}
	return false, fmt.Errorf("example: field %q is %T, not a bool", key, v)
}

// Strings returns a list value as strings.
func (e Example) Strings(key string) ([]string, error) {
	v, ok := e.fields[key]
	if !ok {
		return nil, fmt.Errorf("example: no field %q", key)
	}
	arr, ok := pyjson.Normalize(v).([]any)
	if !ok {
		return nil, fmt.Errorf("example: field %q is %T, not a list", key, v)
	}
	out := make([]string, len(arr))
	for i, x := range arr {
		if s, ok := x.(string); ok {
			out[i] = s
		} else {
			out[i] = pyjson.Str(x)
		}
	}
	return out, nil
}

// Decode copies the fields into a struct (or map) pointed to by dst, through
// JSON, so struct tags apply.
func (e Example) Decode(dst any) error {
	b, err := json.Marshal(e.fields)
	if err != nil {
		return fmt.Errorf("example: encode fields: %w", err)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return fmt.Errorf("example: decode into %T: %w", dst, err)
	}
	return nil
}

// MarshalJSON writes the fields as one JSON object, in the example's order.
func (e Example) MarshalJSON() ([]byte, error) {
	if len(e.keys) == 0 {
		return []byte("{}"), nil
	}
	return json.Marshal(e.Object())
}

// UnmarshalJSON reads one JSON object as Python's json.loads would: keys
// and the keys of nested objects keep their order, integers stay integers
// of any size.
func (e *Example) UnmarshalJSON(b []byte) error {
	v, err := pyjson.Decode(b)
	if err != nil {
		return fmt.Errorf("example: %w", err)
	}
	obj, ok := v.(pyjson.Object)
	if !ok {
		return fmt.Errorf("example: expected a JSON object, got %s", strings.TrimSpace(string(b[:min(len(b), 20)])))
	}
	inputs := e.inputKeys
	*e = FromObject(obj)
	e.inputKeys = inputs
	return nil
}

// Prediction is a module's output: the chosen completion's fields, plus every
// completion when several were sampled (n > 1).
type Prediction struct {
	Example
	// Completions holds each sampled completion's fields, the chosen one first.
	Completions []map[string]any
	// Usage counts the tokens spent producing this prediction (zero for
	// cache hits).
	Usage lm.Usage
	// Cost is what producing it cost, from the configured price table.
	Cost lm.Cost
}

// NewPrediction builds a prediction from completions; the first is chosen.
func NewPrediction(completions ...map[string]any) *Prediction {
	p := &Prediction{Completions: completions}
	if len(completions) > 0 {
		p.Example = New(completions[0])
	}
	return p
}

// maxLineBytes bounds one JSONL line.
const maxLineBytes = 16 << 20

// LineError is a bad line in a JSONL data file.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// ReadJSONL reads one example per line from r; name is used in errors.
// Each line must be a JSON object; blank lines are skipped, and the first
// line that is not an object is an error naming it. inputKeys, when given,
// are marked as inputs.
func ReadJSONL(r io.Reader, name string, inputKeys ...string) ([]Example, error) {
	d, err := ReadJSONLWith(r, name, JSONLOptions{InputKeys: inputKeys})
	if err != nil {
		return nil, err
	}
	return d.Examples, nil
}

// JSONLOptions configure ReadJSONLWith. The zero value reads every line
// and fails at the first invalid one.
type JSONLOptions struct {
	// InputKeys, when given, are marked as the inputs of every example.
	InputKeys []string
	// SkipInvalid passes over lines that are not a JSON object (or are
	// longer than 16 MiB), listing them in JSONL.Skipped, instead of
	// failing at the first.
	SkipInvalid bool
}

// JSONL is what ReadJSONLWith read from a JSONL file.
type JSONL struct {
	Examples []Example
	// Lines holds the line (from 1) each example was read from.
	Lines []int
	// Skipped lists the invalid lines passed over (with SkipInvalid), in
	// file order.
	Skipped []*LineError
}

// Where names the line example i was read from, "file:line".
func (d *JSONL) Where(name string, i int) string {
	return fmt.Sprintf("%s:%d", name, d.Lines[i])
}

// ReadJSONLWith reads one example per line from r, as ReadJSONL, and
// reports the line each came from; name is used in errors. With
// opts.SkipInvalid, invalid lines are listed rather than fatal. Errors
// reading r are always fatal.
func ReadJSONLWith(r io.Reader, name string, opts JSONLOptions) (*JSONL, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	d := &JSONL{}
	var buf []byte
	for line := 1; ; line++ {
		text, long, err := nextLine(br, buf[:0], maxLineBytes)
		if err == io.EOF {
			return d, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		buf = text
		var bad error
		if long {
			bad = fmt.Errorf("line longer than %d bytes", maxLineBytes)
		} else {
			if line == 1 {
				text = bytes.TrimPrefix(text, []byte("\ufeff"))
			}
			text = bytes.TrimSpace(text)
			if len(text) == 0 {
				continue
			}
			var e Example
			if bad = e.UnmarshalJSON(text); bad == nil {
				if len(opts.InputKeys) > 0 {
					e = e.WithInputs(opts.InputKeys...)
				}
				d.Examples = append(d.Examples, e)
				d.Lines = append(d.Lines, line)
				continue
			}
		}
		le := &LineError{name, line, bad}
		if !opts.SkipInvalid {
			return nil, le
		}
		d.Skipped = append(d.Skipped, le)
	}
}

// nextLine reads the next line of br into buf, without its line ending.
// A line of more than limit bytes is read to its end but not kept: long
// reports it. At the end of the input it returns io.EOF.
func nextLine(br *bufio.Reader, buf []byte, limit int) (line []byte, long bool, err error) {
	n := 0
	for {
		chunk, err := br.ReadSlice('\n')
		n += len(chunk)
		if !long {
			if len(buf)+len(chunk) > limit+1 {
				long, buf = true, buf[:0]
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			if n == 0 {
				return nil, false, io.EOF
			}
		case err != nil:
			return nil, false, err
		}
		buf = bytes.TrimSuffix(buf, []byte("\n"))
		buf = bytes.TrimSuffix(buf, []byte("\r"))
		if long || len(buf) > limit {
			return buf[:0], true, nil
		}
		return buf, false, nil
	}
}

// LoadJSONL reads a JSONL file of examples (see ReadJSONL).
func LoadJSONL(path string, inputKeys ...string) ([]Example, error) {
	d, err := LoadJSONLWith(path, JSONLOptions{InputKeys: inputKeys})
	if err != nil {
		return nil, err
	}
	return d.Examples, nil
}

// LoadJSONLWith reads a JSONL file of examples (see ReadJSONLWith).
func LoadJSONLWith(path string, opts JSONLOptions) (*JSONL, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open data file: %w", err)
	}
	defer f.Close()
	return ReadJSONLWith(f, path, opts)
}
