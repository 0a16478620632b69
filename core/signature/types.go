package signature

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/dspex/dspex/core/pyjson"
)

// Kind names the shape of a field type.
type Kind uint8

// The kinds of field types. They mirror the Python annotations DSPy accepts.
const (
	String   Kind = iota + 1 // str
	Int                      // int
	Float                    // float
	Bool                     // bool
	List                     // list[T]; Elem is T, nil for a bare list
	Dict                     // dict[str, T]; Elem is T, nil for a bare dict
	Literal                  // Literal["a", "b"]; Values holds the choices
	Optional                 // T | None; Elem is T
	Object                   // a nested object, from a Go struct
	Any                      // typing.Any
)

// Type is a field's type. Types are immutable once built; share them freely.
type Type struct {
	Kind Kind
	// Elem is the element type of List and Dict, and the wrapped type of Optional.
	Elem *Type
	// Values are the choices of a Literal: string, int64, float64, bool or nil.
	Values []any
	// Name is an Object's name (its Go type name), shown to the LM.
	Name string
	// Fields are an Object's fields in declaration order.
	Fields []ObjectField
	// GoType is the Go struct an Object was built from, if any.
	GoType reflect.Type
}

// ObjectField is one field of an Object type.
type ObjectField struct {
	Name     string
	Type     *Type
	Desc     string
	Required bool
}

// The scalar types. Each call returns a new value: a Type's fields are
// exported, so a value shared by every signature would let one caller's
// change reach all the others.

// StringType returns str.
func StringType() *Type { return &Type{Kind: String} }

// IntType returns int.
func IntType() *Type { return &Type{Kind: Int} }

// FloatType returns float.
func FloatType() *Type { return &Type{Kind: Float} }

// BoolType returns bool.
func BoolType() *Type { return &Type{Kind: Bool} }

// AnyType returns typing.Any.
func AnyType() *Type { return &Type{Kind: Any} }

// strType is what a nil *Type means to the package's own readers. It is
// never handed out, so nothing outside the package can change it.
var strType = &Type{Kind: String}

// ListOf returns list[elem].
func ListOf(elem *Type) *Type { return &Type{Kind: List, Elem: elem} }

// DictOf returns dict[str, elem].
func DictOf(elem *Type) *Type { return &Type{Kind: Dict, Elem: elem} }

// OptionalOf returns elem | None. Optional of Optional collapses.
func OptionalOf(elem *Type) *Type {
	if elem.Kind == Optional {
		return elem
	}
	return &Type{Kind: Optional, Elem: elem}
}

// LiteralOf returns Literal[values...]. Values must be strings, integers,
// floats, bools or nil.
func LiteralOf(values ...any) *Type {
	vs := make([]any, len(values))
	for i, v := range values {
		vs[i] = pyjson.Normalize(v)
	}
	return &Type{Kind: Literal, Values: vs}
}

// IsStr reports whether t is plain str (the one type DSPy passes through
// without JSON parsing or type notes).
func (t *Type) IsStr() bool { return t == nil || t.Kind == String }

// PythonName is the type as DSPy writes it in prompts: str, list[str],
// dict[str, int], Literal['a', 'b'], Union[str, NoneType], or an object's name.
func (t *Type) PythonName() string {
	if t == nil {
		return "str"
	}
	switch t.Kind {
	case String:
		return "str"
	case Int:
		return "int"
	case Float:
		return "float"
	case Bool:
		return "bool"
	case Any:
		return "Any"
	case List:
		if t.Elem == nil {
			return "list"
		}
		return "list[" + t.Elem.PythonName() + "]"
	case Dict:
		if t.Elem == nil {
			return "dict"
		}
		return "dict[str, " + t.Elem.PythonName() + "]"
	case Optional:
		return "Union[" + t.Elem.PythonName() + ", NoneType]"
	case Literal:
		parts := make([]string, len(t.Values))
		for i, v := range t.Values {
			if s, ok := v.(string); ok {
				parts[i] = quoteLiteral(s)
			} else {
				parts[i] = pyjson.Str(v)
			}
		}
		return "Literal[" + strings.Join(parts, ", ") + "]"
	case Object:
		return t.Name
	}
	return "unknown"
}

// String returns the type as it is written in a signature string.
func (t *Type) String() string {
	if t != nil && t.Kind == Optional {
		return t.Elem.String() + " | None"
	}
	return t.PythonName()
}

// quoteLiteral quotes a string the way Python's repr does inside Literal[...].
func quoteLiteral(s string) string {
	hasSingle := strings.Contains(s, "'")
	hasDouble := strings.Contains(s, `"`)
	switch {
	case hasSingle && !hasDouble:
		return `"` + s + `"`
	case hasSingle && hasDouble:
		return "'" + strings.ReplaceAll(s, "'", `\'`) + "'"
	default:
		return "'" + s + "'"
	}
}

// LiteralChoices renders a Literal's choices as DSPy's type note does:
// Python str() of each, joined by "; ".
func (t *Type) LiteralChoices() string {
	parts := make([]string, len(t.Values))
	for i, v := range t.Values {
		parts[i] = pyjson.Str(v)
	}
	return strings.Join(parts, "; ")
}

// JSONSchema returns the JSON schema pydantic would generate for the type,
// with keys ordered as DSPy orders them in prompts ("type" first, then
// alphabetical, recursively). Nested objects are collected under "$defs".
func (t *Type) JSONSchema() pyjson.Object {
	g := &schemaGen{defs: map[string]pyjson.Object{}}
	root := g.schema(t, true)
	if len(g.defs) > 0 {
		defs := make(pyjson.Object, 0, len(g.defs))
		for name, d := range g.defs {
			defs = append(defs, pyjson.Member{Key: name, Value: d})
		}
		root = append(root, pyjson.Member{Key: "$defs", Value: defs})
	}
	return sortTypeFirst(root).(pyjson.Object)
}

type schemaGen struct {
	defs map[string]pyjson.Object
}

func (g *schemaGen) schema(t *Type, root bool) pyjson.Object {
	if t == nil {
		return pyjson.Object{{Key: "type", Value: "string"}}
	}
	switch t.Kind {
	case String:
		return pyjson.Object{{Key: "type", Value: "string"}}
	case Int:
		return pyjson.Object{{Key: "type", Value: "integer"}}
	case Float:
		return pyjson.Object{{Key: "type", Value: "number"}}
	case Bool:
		return pyjson.Object{{Key: "type", Value: "boolean"}}
	case Any:
		return pyjson.Object{}
	case List:
		items := pyjson.Object{}
		if t.Elem != nil {
			items = g.schema(t.Elem, false)
		}
		return pyjson.Object{{Key: "type", Value: "array"}, {Key: "items", Value: items}}
	case Dict:
		if t.Elem == nil || t.Elem.Kind == Any {
			return pyjson.Object{{Key: "type", Value: "object"}, {Key: "additionalProperties", Value: true}}
		}
		return pyjson.Object{{Key: "type", Value: "object"}, {Key: "additionalProperties", Value: g.schema(t.Elem, false)}}
	case Optional:
		return pyjson.Object{{Key: "anyOf", Value: []any{g.schema(t.Elem, false), pyjson.Object{{Key: "type", Value: "null"}}}}}
	case Literal:
		out := pyjson.Object{}
		if len(t.Values) == 1 {
			out = append(out, pyjson.Member{Key: "const", Value: t.Values[0]})
		} else {
			out = append(out, pyjson.Member{Key: "enum", Value: append([]any(nil), t.Values...)})
		}
		if jt := literalJSONType(t.Values); jt != "" {
			out = append(out, pyjson.Member{Key: "type", Value: jt})
		}
		return out
	case Object:
		if root {
			return g.objectBody(t)
		}
		if _, seen := g.defs[t.Name]; !seen {
			g.defs[t.Name] = nil // reserve first, so recursive types terminate
			g.defs[t.Name] = g.objectBody(t)
		}
		return pyjson.Object{{Key: "$ref", Value: "#/$defs/" + t.Name}}
	}
	return pyjson.Object{}
}

func (g *schemaGen) objectBody(t *Type) pyjson.Object {
	props := pyjson.Object{}
	var required []any
	for _, f := range t.Fields {
		p := g.schema(f.Type, false)
		if isModel(f.Type) {
			// pydantic gives model-typed fields (and optional ones) no title.
			if f.Desc != "" {
				p = append(p, pyjson.Member{Key: "description", Value: f.Desc})
			}
		} else {
			p = append(p, pyjson.Member{Key: "title", Value: pythonTitle(f.Name)})
			if f.Desc != "" {
				p = append(p, pyjson.Member{Key: "description", Value: f.Desc})
			}
		}
		if f.Required {
			required = append(required, f.Name)
		} else {
			p = append(p, pyjson.Member{Key: "default", Value: nil})
		}
		props = append(props, pyjson.Member{Key: f.Name, Value: p})
	}
	out := pyjson.Object{{Key: "type", Value: "object"}, {Key: "properties", Value: props}}
	if len(required) > 0 {
		out = append(out, pyjson.Member{Key: "required", Value: required})
	}
	return append(out, pyjson.Member{Key: "title", Value: t.Name})
}

// isModel reports whether t is an object, or an optional object.
func isModel(t *Type) bool {
	return t != nil && (t.Kind == Object || (t.Kind == Optional && t.Elem != nil && t.Elem.Kind == Object))
}

func literalJSONType(values []any) string {
	kinds := map[string]bool{}
	for _, v := range values {
		switch v.(type) {
		case string:
			kinds["string"] = true
		case int64:
			kinds["integer"] = true
		case float64:
			kinds["number"] = true
		case bool:
			kinds["boolean"] = true
		case nil:
			kinds["null"] = true
		default:
			return ""
		}
	}
	if len(kinds) != 1 {
		return ""
	}
	for k := range kinds {
		return k
	}
	return ""
}

// sortTypeFirst orders every object's keys as DSPy's move_type_to_front
// does: "type" first, then the rest alphabetically. Arrays keep their order.
func sortTypeFirst(v any) any {
	switch x := v.(type) {
	case pyjson.Object:
		out := make(pyjson.Object, len(x))
		for i, m := range x {
			out[i] = pyjson.Member{Key: m.Key, Value: sortTypeFirst(m.Value)}
		}
		sort.SliceStable(out, func(i, j int) bool {
			ti, tj := out[i].Key == "type", out[j].Key == "type"
			if ti != tj {
				return ti
			}
			return out[i].Key < out[j].Key
		})
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = sortTypeFirst(e)
		}
		return out
	default:
		return v
	}
}

// pythonTitle is pydantic's default field title: name.title() with
// underscores turned into spaces ("first_name" -> "First Name").
func pythonTitle(name string) string {
	var b strings.Builder
	prevLetter := false
	for _, r := range name {
		isLetter := ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || r > 127
		switch {
		case isLetter && !prevLetter:
			b.WriteString(strings.ToUpper(string(r)))
		case isLetter:
			b.WriteString(strings.ToLower(string(r)))
		default:
			b.WriteRune(r)
		}
		prevLetter = isLetter
	}
	return strings.ReplaceAll(b.String(), "_", " ")
}

// StrictSchema returns the schema for OpenAI structured outputs as DSPy's
// _get_structured_outputs_response_format builds it: pydantic's key order
// (keys sorted, except that "properties" keeps the fields' order, which
// models follow when they generate), every object listing all its
// properties as required, in field order, and forbidding additional
// properties. The root object is treated as a pydantic model with
// extra="forbid", as DSPy declares its output model. It reports an error for
// open-ended mappings (dict), which strict mode cannot express.
func (t *Type) StrictSchema() (pyjson.Object, error) {
	if err := t.checkStrict(map[*Type]bool{}); err != nil {
		return nil, err
	}
	g := &schemaGen{defs: map[string]pyjson.Object{}}
	root := g.schema(t, true)
	if t != nil && t.Kind == Object {
		root = root.Set("additionalProperties", false)
	}
	if len(g.defs) > 0 {
		defs := make(pyjson.Object, 0, len(g.defs))
		for name, d := range g.defs {
			defs = append(defs, pyjson.Member{Key: name, Value: d})
		}
		root = append(root, pyjson.Member{Key: "$defs", Value: defs})
	}
	return enforceRequired(pydanticSort(root, "").(pyjson.Object)), nil
}

// pydanticSort orders keys as pydantic's GenerateJsonSchema.sort does:
// alphabetically, recursively, except the members of "properties" and
// "default", which keep their order. parent is the key v sits under (lists
// pass their own key down).
func pydanticSort(v any, parent string) any {
	switch x := v.(type) {
	case pyjson.Object:
		out := make(pyjson.Object, len(x))
		for i, m := range x {
			out[i] = pyjson.Member{Key: m.Key, Value: pydanticSort(m.Value, m.Key)}
		}
		if parent != "properties" && parent != "default" {
			sort.SliceStable(out, func(i, j int) bool { return out[i].Key < out[j].Key })
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = pydanticSort(e, parent)
		}
		return out
	default:
		return v
	}
}

// checkStrict reports the first part of t that strict schemas cannot
// express; seen holds the objects already checked, so that recursive types
// terminate.
func (t *Type) checkStrict(seen map[*Type]bool) error {
	if t == nil {
		return nil
	}
	switch t.Kind {
	case Dict:
		return fmt.Errorf("signature: open-ended mapping %s is not supported by structured outputs", t.PythonName())
	case List, Optional:
		if t.Elem != nil {
			return t.Elem.checkStrict(seen)
		}
	case Object:
		if seen[t] {
			return nil
		}
		seen[t] = true
		for _, f := range t.Fields {
			if err := f.Type.checkStrict(seen); err != nil {
				return err
			}
		}
	}
	return nil
}

// enforceRequired is DSPy's enforce_required: every object schema lists all
// its properties as required (replacing pydantic's list where it has one,
// appending otherwise) and gets additionalProperties false; array items and
// $defs are treated the same way.
func enforceRequired(s pyjson.Object) pyjson.Object {
	typ, _ := s.Get("type")
	if typ == "object" {
		pv, _ := s.Get("properties")
		if props, ok := pv.(pyjson.Object); ok {
			names := make([]any, len(props))
			for i, m := range props {
				names[i] = m.Key
			}
			s = s.Set("required", names).Set("additionalProperties", false)
			for i, m := range props {
				if sub, ok := m.Value.(pyjson.Object); ok {
					props[i].Value = enforceRequired(sub)
				}
			}
		} else {
			s = s.Set("properties", pyjson.Object{}).Set("required", []any{}).Set("additionalProperties", false)
		}
	}
	if typ == "array" {
		if items, ok := member(s, "items").(pyjson.Object); ok {
			s = s.Set("items", enforceRequired(items))
		}
	}
	for _, key := range []string{"$defs", "definitions"} {
		if defs, ok := member(s, key).(pyjson.Object); ok {
			for i, m := range defs {
				if sub, ok := m.Value.(pyjson.Object); ok {
					defs[i].Value = enforceRequired(sub)
				}
			}
		}
	}
	return s
}

func member(o pyjson.Object, key string) any {
	v, _ := o.Get(key)
	return v
}
