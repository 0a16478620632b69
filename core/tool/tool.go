// Package tool turns Go functions into tools an agent (ReAct, in
// core/module) may call: the arguments' JSON schema shown
// to the LM, derived from a struct as DSPy derives it from a Python
// function, validation of the LM's arguments as DSPy validates them, and
// the observation the result becomes. Calculator is a ready-made tool.
package tool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
)

// FinishName is the name of the tool ReAct adds to every agent to end its
// loop; New refuses it, and only NewFunc may take it.
const FinishName = "finish"

var toolNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Tool is a Go function an agent (ReAct) may call. Its arguments are the
// fields of a struct; their JSON schema, derived from the struct as DSPy
// derives it from a Python function's parameters, is shown to the LM.
//
// A Tool is immutable and safe for concurrent use as long as its function
// is: ReAct programs running concurrently call the same function
// concurrently.
type Tool struct {
	name string
	desc string
	// typ is the argument struct as an Object type: the validator.
	typ *signature.Type
	// args maps each argument to its JSON schema, as DSPy's Tool.args.
	args pyjson.Object
	// run decodes validated arguments into the struct and calls the function.
	run func(ctx context.Context, args map[string]any) (any, error)
}

// New wraps fn as a tool. Args must be a struct type: each exported field
// is one argument, named by its json tag, described by its desc tag
// (literal tags restrict choices, as for signatures). Pointer fields are
// optional (T | None, default None); every other field is required. The name
// must be an identifier other than "finish"; desc tells the LM what the tool
// does (empty for none).
//
// fn receives the context of the ReAct call; its result is shown to the LM
// as the observation (see Call), and a non-nil error is shown as an
// execution error.
func New[Args any](name, desc string, fn func(ctx context.Context, args Args) (any, error)) (*Tool, error) {
	if !toolNameRE.MatchString(name) {
		return nil, fmt.Errorf("tool: name %q is not an identifier", name)
	}
	if name == FinishName {
		return nil, fmt.Errorf("tool: name %q is reserved for ReAct's own finish tool", name)
	}
	if fn == nil {
		return nil, fmt.Errorf("tool: %s has no function", name)
	}
	rt := reflect.TypeFor[Args]()
	if rt.Kind() != reflect.Struct {
		return nil, fmt.Errorf("tool: %s: arguments type %s is not a struct", name, rt)
	}
	typ, err := signature.TypeOf(rt)
	if err != nil {
		return nil, fmt.Errorf("tool: %s: arguments type %s: %w", name, rt, err)
	}
	return newTool(name, desc, typ, func(ctx context.Context, args map[string]any) (any, error) {
		var a Args
		b, err := json.Marshal(args)
		if err == nil {
			err = json.Unmarshal(b, &a)
		}
		if err != nil {
			return nil, &Error{Tool: name, BadArgs: true, Err: fmt.Errorf("decode arguments into %s: %w", rt, err)}
		}
		return fn(ctx, a)
	}), nil
}

// NewFunc makes a tool of fn, whose arguments are the fields of args, an
// Object type (nil for none), given to fn as a map after validation and
// coercion. It is for tools built at run time (from configuration, or
// ReAct's own finish tool); New derives the type from a Go struct.
func NewFunc(name, desc string, args *signature.Type, fn func(ctx context.Context, args map[string]any) (any, error)) (*Tool, error) {
	if !toolNameRE.MatchString(name) {
		return nil, fmt.Errorf("tool: name %q is not an identifier", name)
	}
	if fn == nil {
		return nil, fmt.Errorf("tool: %s has no function", name)
	}
	if args == nil {
		args = &signature.Type{Kind: signature.Object, Name: name}
	}
	if args.Kind != signature.Object {
		return nil, fmt.Errorf("tool: %s: arguments type %s is not an object", name, args)
	}
	return newTool(name, desc, args, fn), nil
}

func newTool(name, desc string, typ *signature.Type, run func(context.Context, map[string]any) (any, error)) *Tool {
	args := make(pyjson.Object, 0, len(typ.Fields))
	for _, f := range typ.Fields {
		s := toolSchema(f.Type, map[*signature.Type]bool{})
		// DSPy adds these after pydantic's sorted schema, in this order.
		if !f.Required {
			s = append(s, pyjson.Member{Key: "default", Value: nil})
		}
		if f.Desc != "" {
			s = append(s, pyjson.Member{Key: "description", Value: f.Desc})
		}
		args = append(args, pyjson.Member{Key: f.Name, Value: s})
	}
	return &Tool{name: name, desc: desc, typ: typ, args: args, run: run}
}

// Name returns the tool's name.
func (t *Tool) Name() string { return t.name }

// Desc returns the tool's description.
func (t *Tool) Desc() string { return t.desc }

// ArgType returns the argument struct as a signature object type.
func (t *Tool) ArgType() *signature.Type { return t.typ }

// Args returns each argument's JSON schema by name (DSPy's Tool.args), a
// fresh copy on each call.
func (t *Tool) Args() map[string]any {
	return pyjson.Plain(pyjson.Normalize(t.args)).(map[string]any)
}

// Parameters returns the JSON schema of the whole argument object, as
// function-calling APIs take it: {"type": "object", "properties": ...,
// "required": [...]}.
func (t *Tool) Parameters() map[string]any {
	var required []any
	for _, f := range t.typ.Fields {
		if f.Required {
			required = append(required, f.Name)
		}
	}
	if required == nil {
		required = []any{}
	}
	return map[string]any{"type": "object", "properties": t.Args(), "required": required}
}

// String describes the tool as DSPy's ReAct lists it in its instructions:
//
//	search, whose description is <desc>Search the web.</desc>. It takes arguments {'query': {'type': 'string'}}.
//
// with the argument schemas written as a Python dict.
func (t *Tool) String() string {
	desc := "."
	if t.desc != "" {
		desc = strings.ReplaceAll(", whose description is <desc>"+t.desc+"</desc>.", "\n", "  ")
	}
	return t.name + desc + " It takes arguments " + pyjson.Repr(t.args) + "."
}

// Error is a failed tool call: arguments refused before the call, the
// tool's own error, or a panic inside the tool.
type Error struct {
	// Tool is the tool's name.
	Tool string
	// Arg names the argument at fault ("query", "filter.year"), empty when
	// the fault is not one argument's.
	Arg string
	// BadArgs reports that the arguments were refused and the tool did not
	// run.
	BadArgs bool
	// Panic is the value the tool panicked with, nil if it did not panic.
	Panic any
	// Err is the cause: what was wrong with the arguments, or the tool's
	// own error.
	Err error
}

func (e *Error) Error() string {
	if e.Panic != nil {
		return "tool " + e.Tool + " panicked: " + fmt.Sprint(e.Panic)
	}
	return "tool " + e.Tool + ": " + e.Detail()
}

// detail is the message without the tool's name: what ReAct shows the LM
// after "Execution error in <tool>: ".
// Detail is the error without the tool's name: what ReAct shows the LM
// after "Execution error in NAME: ".
func (e *Error) Detail() string {
	switch {
	case e.Panic != nil:
		return "the tool panicked: " + fmt.Sprint(e.Panic)
	case e.Arg != "":
		return fmt.Sprintf("argument %q: %v", e.Arg, e.Err)
	case e.Err != nil:
		return e.Err.Error()
	}
	return "failed"
}

func (e *Error) Unwrap() error { return e.Err }

// Call validates args against the tool's schema and runs the tool. Unknown
// arguments, missing required ones and values of the wrong type are refused
// before the tool runs, as DSPy's Tool does (strict JSON-schema types: "3"
// is not an int, 3.0 is). The result is rendered as DSPy renders an
// observation in ReAct's trajectory: strings as they are, lists as a
// numbered list, dicts and structs as JSON, other values as Python's str().
//
// Every failure is a *Error — bad arguments, the tool's error (wrapped,
// so errors.Is reaches it) or a panic, which is recovered — except a done
// context, whose error is returned as it is.
func (t *Tool) Call(ctx context.Context, args map[string]any) (string, error) {
	v, err := t.Invoke(ctx, args)
	if err != nil {
		return "", err
	}
	return formatObservation(v), nil
}

// CallJSON is Call with the arguments as a JSON object; empty input or null
// means no arguments.
func (t *Tool) CallJSON(ctx context.Context, args json.RawMessage) (string, error) {
	m, err := t.decodeArgs(args)
	if err != nil {
		return "", err
	}
	return t.Call(ctx, m)
}

func (t *Tool) decodeArgs(raw json.RawMessage) (map[string]any, error) {
	if s := strings.TrimSpace(string(raw)); s == "" || s == "null" {
		return map[string]any{}, nil
	}
	v, err := pyjson.Decode(raw)
	if err != nil {
		return nil, &Error{Tool: t.name, BadArgs: true, Err: fmt.Errorf("arguments are not valid JSON: %w", err)}
	}
	obj, ok := v.(pyjson.Object)
	if !ok {
		return nil, &Error{Tool: t.name, BadArgs: true, Err: fmt.Errorf("arguments must be a JSON object, got %s", describeValue(v))}
	}
	return obj.Map(), nil
}

func formatObservation(v any) string { return adapter.FormatValue(signature.StringType(), v) }

// Invoke validates and runs the tool, returning its raw result rather
// than the observation Call makes of it. Its failures are those of Call.
func (t *Tool) Invoke(ctx context.Context, args map[string]any) (result any, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	norm, _ := pyjson.Normalize(args).(pyjson.Object)
	if err := t.validate(norm); err != nil {
		return nil, err
	}
	coerced, err := t.typ.Coerce(norm)
	if err != nil {
		return nil, &Error{Tool: t.name, BadArgs: true, Err: err}
	}
	m, _ := coerced.(map[string]any)
	defer func() {
		if p := recover(); p != nil {
			result, err = nil, &Error{Tool: t.name, Panic: p}
		}
	}()
	result, err = t.run(ctx, m)
	if err != nil {
		var te *Error
		if errors.As(err, &te) && te.Tool == t.name {
			return nil, err
		}
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return nil, err
		}
		return nil, &Error{Tool: t.name, Err: err}
	}
	return result, nil
}

// validate checks arguments as DSPy does before calling a tool: no unknown
// argument, every required one present, each value valid for its schema.
func (t *Tool) validate(args pyjson.Object) error {
	names := make([]string, len(t.typ.Fields))
	for i, f := range t.typ.Fields {
		names[i] = f.Name
	}
	unknown := make([]string, 0)
	for _, m := range args {
		if !slices.Contains(names, m.Key) {
			unknown = append(unknown, m.Key)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		takes := "no arguments"
		if len(names) > 0 {
			takes = "arguments " + strings.Join(names, ", ")
		}
		return &Error{Tool: t.name, Arg: unknown[0], BadArgs: true,
			Err: fmt.Errorf("not an argument of the tool (it takes %s)", takes)}
	}
	for _, f := range t.typ.Fields {
		v, ok := args.Get(f.Name)
		if !ok {
			if f.Required {
				return &Error{Tool: t.name, Arg: f.Name, BadArgs: true, Err: errors.New("required but missing")}
			}
			continue
		}
		if path, err := checkValue(f.Type, v, f.Name); err != nil {
			return &Error{Tool: t.name, Arg: path, BadArgs: true, Err: err}
		}
	}
	return nil
}

// checkValue validates a JSON-model value against t with JSON-schema
// strictness (no string-to-number conversions), returning the path of the
// offending value. Keys of nested objects that t does not know are ignored,
// as pydantic ignores them.
func checkValue(t *signature.Type, v any, path string) (string, error) {
	if t == nil {
		t = signature.StringType()
	}
	ok := false
	switch t.Kind {
	case signature.Any:
		return "", nil
	case signature.String:
		_, ok = v.(string)
	case signature.Int:
		switch x := v.(type) {
		case int64:
			ok = true
		case float64:
			ok = x == math.Trunc(x) && !math.IsInf(x, 0)
		}
	case signature.Float:
		switch v.(type) {
		case int64, float64:
			ok = true
		}
	case signature.Bool:
		_, ok = v.(bool)
	case signature.Literal:
		for _, c := range t.Values {
			if signature.LiteralEqual(c, v) {
				return "", nil
			}
		}
		return path, fmt.Errorf("%s is not one of %s", describeValue(v), t.PythonName())
	case signature.Optional:
		if v == nil {
			return "", nil
		}
		return checkValue(t.Elem, v, path)
	case signature.List:
		arr, isArr := v.([]any)
		if !isArr {
			break
		}
		if t.Elem != nil {
			for i, e := range arr {
				if p, err := checkValue(t.Elem, e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return p, err
				}
			}
		}
		return "", nil
	case signature.Dict:
		obj, isObj := v.(pyjson.Object)
		if !isObj {
			break
		}
		if t.Elem != nil {
			for _, m := range obj {
				if p, err := checkValue(t.Elem, m.Value, path+"."+m.Key); err != nil {
					return p, err
				}
			}
		}
		return "", nil
	case signature.Object:
		obj, isObj := v.(pyjson.Object)
		if !isObj {
			break
		}
		for _, f := range t.Fields {
			fv, present := obj.Get(f.Name)
			if !present {
				if f.Required {
					return path + "." + f.Name, errors.New("required but missing")
				}
				continue
			}
			if p, err := checkValue(f.Type, fv, path+"."+f.Name); err != nil {
				return p, err
			}
		}
		return "", nil
	}
	if ok {
		return "", nil
	}
	return path, fmt.Errorf("expected %s, got %s", t.PythonName(), describeValue(v))
}

func describeValue(v any) string {
	s := pyjson.Dumps(v, -1)
	if utf8.RuneCountInString(s) > 60 {
		s = string([]rune(s)[:57]) + "..."
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
		return "boolean " + s
	default:
		return "number " + s
	}
}

// toolSchema is the JSON schema pydantic's TypeAdapter gives a parameter of
// type t, after DSPy inlines every $ref: keys sorted, an object's
// properties in declaration order. A type met again inside itself (a
// recursive struct) is cut off as {} — DSPy cannot describe such a tool at
// all.
func toolSchema(t *signature.Type, open map[*signature.Type]bool) pyjson.Object {
	if t == nil {
		return pyjson.Object{{Key: "type", Value: "string"}}
	}
	switch t.Kind {
	case signature.String:
		return pyjson.Object{{Key: "type", Value: "string"}}
	case signature.Int:
		return pyjson.Object{{Key: "type", Value: "integer"}}
	case signature.Float:
		return pyjson.Object{{Key: "type", Value: "number"}}
	case signature.Bool:
		return pyjson.Object{{Key: "type", Value: "boolean"}}
	case signature.List:
		items := pyjson.Object{}
		if t.Elem != nil {
			items = toolSchema(t.Elem, open)
		}
		return pyjson.Object{{Key: "items", Value: items}, {Key: "type", Value: "array"}}
	case signature.Dict:
		var additional any = true
		if t.Elem != nil && t.Elem.Kind != signature.Any {
			additional = toolSchema(t.Elem, open)
		}
		return pyjson.Object{{Key: "additionalProperties", Value: additional}, {Key: "type", Value: "object"}}
	case signature.Optional:
		return pyjson.Object{{Key: "anyOf", Value: []any{toolSchema(t.Elem, open), pyjson.Object{{Key: "type", Value: "null"}}}}}
	case signature.Literal:
		var out pyjson.Object
		if len(t.Values) == 1 {
			out = pyjson.Object{{Key: "const", Value: t.Values[0]}}
		} else {
			out = pyjson.Object{{Key: "enum", Value: slices.Clone(t.Values)}}
		}
		if jt := literalType(t.Values); jt != "" {
			out = append(out, pyjson.Member{Key: "type", Value: jt})
		}
		return out
	case signature.Object:
		if open[t] {
			return pyjson.Object{}
		}
		open[t] = true
		defer delete(open, t)
		props := make(pyjson.Object, 0, len(t.Fields))
		var required []any
		for _, f := range t.Fields {
			s := toolSchema(f.Type, open)
			// pydantic titles every field except model-typed ones (a $ref,
			// possibly nullable), whose description DSPy's $ref inlining
			// also drops when the model is not nullable.
			isModel := f.Type != nil && f.Type.Kind == signature.Object
			isNullableModel := f.Type != nil && f.Type.Kind == signature.Optional && f.Type.Elem.Kind == signature.Object
			if !isModel {
				if !isNullableModel {
					s = append(s, pyjson.Member{Key: "title", Value: fieldTitle(f.Name)})
				}
				if f.Desc != "" {
					s = append(s, pyjson.Member{Key: "description", Value: f.Desc})
				}
			}
			if f.Required {
				required = append(required, f.Name)
			} else if !isModel {
				s = append(s, pyjson.Member{Key: "default", Value: nil})
			}
			sort.SliceStable(s, func(i, j int) bool { return s[i].Key < s[j].Key })
			props = append(props, pyjson.Member{Key: f.Name, Value: s})
		}
		out := pyjson.Object{{Key: "properties", Value: props}}
		if len(required) > 0 {
			out = append(out, pyjson.Member{Key: "required", Value: required})
		}
		return append(out, pyjson.Member{Key: "title", Value: t.Name}, pyjson.Member{Key: "type", Value: "object"})
	}
	return pyjson.Object{} // Any
}

func literalType(values []any) string {
	kind := ""
	for _, v := range values {
		var k string
		switch v.(type) {
		case string:
			k = "string"
		case int64:
			k = "integer"
		case float64:
			k = "number"
		case bool:
			k = "boolean"
		case nil:
			k = "null"
		default:
			return ""
		}
		if kind != "" && k != kind {
			return ""
		}
		kind = k
	}
	return kind
}

// fieldTitle is pydantic's default title: words capitalised, underscores
// turned into spaces ("max_chars" -> "Max Chars").
func fieldTitle(name string) string {
	var b strings.Builder
	prevLetter := false
	for _, r := range name {
		isLetter := unicode.IsLetter(r)
		switch {
		case isLetter && !prevLetter:
			b.WriteRune(unicode.ToUpper(r))
		case isLetter:
			b.WriteRune(unicode.ToLower(r))
		case r == '_':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
		prevLetter = isLetter
	}
	return b.String()
}
