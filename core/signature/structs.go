package signature

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/dspex/dspex/core/pyjson"
)

// Struct tags read when building signatures and object types from Go structs:
//
//	json:"name"          the field name (as encoding/json reads it; "-" skips)
//	desc:"..."           the field's description for the LM
//	literal:"a,b,c"      restricts a string (or int) field to these choices
//	prefix:"Question:"   DSPy's legacy prefix (rarely needed)
//
// Pointer fields are optional (T | None); everything else is required.
const (
	tagDesc    = "desc"
	tagLiteral = "literal"
	tagPrefix  = "prefix"
)

// Instructor is implemented by input or output structs that carry their own
// instructions (For reads the output struct first, then the input struct).
type Instructor interface {
	Instructions() string
}

// For builds a signature whose input fields are In's exported fields and
// whose output fields are Out's. See the package's struct tags.
func For[In, Out any]() (*Signature, error) {
	inT, outT := reflect.TypeFor[In](), reflect.TypeFor[Out]()
	inputs, err := structFields(inT)
	if err != nil {
		return nil, fmt.Errorf("signature: input struct %s: %w", inT, err)
	}
	outputs, err := structFields(outT)
	if err != nil {
		return nil, fmt.Errorf("signature: output struct %s: %w", outT, err)
	}
	instructions := ""
	if in, ok := any(new(Out)).(Instructor); ok {
		instructions = in.Instructions()
	} else if in, ok := any(*new(Out)).(Instructor); ok {
		instructions = in.Instructions()
	} else if in, ok := any(new(In)).(Instructor); ok {
		instructions = in.Instructions()
	} else if in, ok := any(*new(In)).(Instructor); ok {
		instructions = in.Instructions()
	}
	sig, err := New(inputs, outputs, instructions)
	if err != nil {
		return nil, err
	}
	return sig.WithName(outT.Name()), nil
}

// MustFor is For for types fixed at compile time; it panics on error.
func MustFor[In, Out any]() *Signature {
	s, err := For[In, Out]()
	if err != nil {
		panic(err)
	}
	return s
}

func structFields(t reflect.Type) ([]Field, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s is not a struct", t)
	}
	conv := &converter{seen: map[reflect.Type]*Type{}}
	var fields []Field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, skip := pyjson.JSONFieldName(sf)
		if skip {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		ft, err := conv.fieldType(sf)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", sf.Name, err)
		}
		fields = append(fields, Field{
			Name:         name,
			Type:         ft,
			Desc:         sf.Tag.Get(tagDesc),
			Prefix:       sf.Tag.Get(tagPrefix),
			TypeDeclared: true,
		})
	}
	return fields, nil
}

// TypeOf converts a Go type to a field type: string -> str, integers -> int,
// floats -> float, bool -> bool, slices -> list[T], map[string]T ->
// dict[str, T], structs -> objects, pointers -> T | None, interfaces -> Any.
func TypeOf(t reflect.Type) (*Type, error) {
	return (&converter{seen: map[reflect.Type]*Type{}}).convert(t)
}

// ObjectOf is TypeOf for a struct type T, for use with ParseWith.
func ObjectOf[T any]() (*Type, error) {
	t := reflect.TypeFor[T]()
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("signature: %s is not a struct", t)
	}
	return TypeOf(t)
}

// MustObjectOf is ObjectOf that panics on error.
func MustObjectOf[T any]() *Type {
	t, err := ObjectOf[T]()
	if err != nil {
		panic(err)
	}
	return t
}

type converter struct {
	seen map[reflect.Type]*Type
}

var (
	timeType      = reflect.TypeFor[time.Time]()
	rawJSONType   = reflect.TypeFor[json.RawMessage]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
)

func (c *converter) fieldType(sf reflect.StructField) (*Type, error) {
	t, err := c.convert(sf.Type)
	if err != nil {
		return nil, err
	}
	if lit := sf.Tag.Get(tagLiteral); lit != "" {
		base := t
		optional := t.Kind == Optional
		if optional {
			base = t.Elem
		}
		var values []any
		for _, v := range strings.Split(lit, ",") {
			v = strings.TrimSpace(v)
			switch base.Kind {
			case String:
				values = append(values, v)
			case Int:
				var n int64
				if _, err := fmt.Sscan(v, &n); err != nil {
					return nil, fmt.Errorf("literal choice %q is not an int", v)
				}
				values = append(values, n)
			default:
				return nil, fmt.Errorf("literal tag needs a string or int field, not %s", base.PythonName())
			}
		}
		t = &Type{Kind: Literal, Values: values}
		if optional {
			t = OptionalOf(t)
		}
	}
	return t, nil
}

func (c *converter) convert(t reflect.Type) (*Type, error) {
	switch {
	case t == timeType:
		return StringType(), nil
	case t == rawJSONType:
		return AnyType(), nil
	}
	switch t.Kind() {
	case reflect.String:
		return StringType(), nil
	case reflect.Bool:
		return BoolType(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return IntType(), nil
	case reflect.Float32, reflect.Float64:
		return FloatType(), nil
	case reflect.Interface:
		return AnyType(), nil
	case reflect.Pointer:
		elem, err := c.convert(t.Elem())
		if err != nil {
			return nil, err
		}
		return OptionalOf(elem), nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return StringType(), nil
		}
		elem, err := c.convert(t.Elem())
		if err != nil {
			return nil, err
		}
		return ListOf(elem), nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map key type %s is not a string", t.Key())
		}
		elem, err := c.convert(t.Elem())
		if err != nil {
			return nil, err
		}
		return DictOf(elem), nil
	case reflect.Struct:
		if t.Implements(marshalerType) {
			return AnyType(), nil
		}
		return c.object(t)
	}
	return nil, fmt.Errorf("unsupported Go type %s", t)
}

func (c *converter) object(t reflect.Type) (*Type, error) {
	if o, ok := c.seen[t]; ok {
		return o, nil
	}
	name := t.Name()
	if name == "" {
		name = "Object"
	}
	o := &Type{Kind: Object, Name: name, GoType: t}
	c.seen[t] = o
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		fname, _, skip := pyjson.JSONFieldName(sf)
		if skip {
			continue
		}
		if sf.Anonymous && fname == "" {
			et := sf.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				inner, err := c.object(et)
				if err != nil {
					return nil, err
				}
				o.Fields = append(o.Fields, inner.Fields...)
				continue
			}
		}
		if fname == "" {
			fname = sf.Name
		}
		ft, err := c.fieldType(sf)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t.Name(), sf.Name, err)
		}
		o.Fields = append(o.Fields, ObjectField{
			Name:     fname,
			Type:     ft,
			Desc:     sf.Tag.Get(tagDesc),
			Required: ft.Kind != Optional,
		})
	}
	return o, nil
}
