// Package signature declares what an LM step takes and returns: named, typed
// input and output fields with descriptions, plus instructions.
//
// A Signature comes from a string ("question, context: list[str] -> answer"),
// from Go structs (For[In, Out]), or from New. Signatures are immutable: the
// With* methods return modified copies, so a signature may be shared between
// goroutines and between predictors without locking.
//
// The type system mirrors the Python annotations DSPy accepts, and each field
// yields the JSON schema pydantic would produce for it, so prompts built from
// a signature match DSPy's byte for byte.
package signature

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/dspex/dspex/core/internal/pystr"
)

// Field is one named input or output of a signature.
type Field struct {
	Name string
	// Type is the field's type; nil means str.
	Type *Type
	// Desc describes the field to the LM; empty for none.
	Desc string
	// Prefix is DSPy's legacy field prefix ("Question:"), kept for state
	// files; when empty it is inferred from Name.
	Prefix string
	// TypeDeclared reports whether the type was written out rather than
	// defaulted to str.
	TypeDeclared bool
}

// Signature is an immutable set of input fields, output fields and
// instructions. Safe for concurrent use.
type Signature struct {
	name         string
	inputs       []Field
	outputs      []Field
	instructions string
	derived      *sync.Map // values computed from this (immutable) signature
}

// Derived returns the value cached under key, computing it with compute the
// first time. Since a signature never changes, anything computed from it
// alone (an adapter's system message, say) can be cached here. Keys should
// be unexported types of the caller's package. Safe for concurrent use;
// compute may run more than once under contention.
func (s *Signature) Derived(key any, compute func() any) any {
	if v, ok := s.derived.Load(key); ok {
		return v
	}
	v, _ := s.derived.LoadOrStore(key, compute())
	return v
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// New builds a signature from fields. Instructions are cleaned as DSPy
// cleans them (Python's inspect.cleandoc); empty ones take DSPy's default
// ("Given the fields `a`, produce the fields `b`."), while whitespace-only
// ones clean to none at all, as in DSPy. Field names must be
// identifiers, unique across inputs and outputs; at least one output is
// required.
func New(inputs, outputs []Field, instructions string) (*Signature, error) {
	if len(outputs) == 0 {
		return nil, fmt.Errorf("signature: at least one output field is required")
	}
	seen := map[string]bool{}
	in := make([]Field, len(inputs))
	out := make([]Field, len(outputs))
	for i, f := range append(append([]Field{}, inputs...), outputs...) {
		if err := completeField(&f); err != nil {
			return nil, err
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("signature: duplicate field name %q", f.Name)
		}
		seen[f.Name] = true
		if i < len(inputs) {
			in[i] = f
		} else {
			out[i-len(inputs)] = f
		}
	}
	s := &Signature{name: "StringSignature", inputs: in, outputs: out, derived: new(sync.Map)}
	s.setInstructions(instructions)
	return s, nil
}

// Name is the signature's class name, "StringSignature" unless set.
func (s *Signature) Name() string { return s.name }

// Instructions returns the instructions shown to the LM.
func (s *Signature) Instructions() string { return s.instructions }

// Inputs returns a copy of the input fields in order.
func (s *Signature) Inputs() []Field { return slices.Clone(s.inputs) }

// Outputs returns a copy of the output fields in order.
func (s *Signature) Outputs() []Field { return slices.Clone(s.outputs) }

// NumInputs and NumOutputs count the fields without copying them.
func (s *Signature) NumInputs() int  { return len(s.inputs) }
func (s *Signature) NumOutputs() int { return len(s.outputs) }

// Input returns the i-th input field.
func (s *Signature) Input(i int) Field { return s.inputs[i] }

// Output returns the i-th output field.
func (s *Signature) Output(i int) Field { return s.outputs[i] }

// Fields returns inputs then outputs.
func (s *Signature) Fields() []Field {
	return append(slices.Clone(s.inputs), s.outputs...)
}

// Field looks a field up by name.
func (s *Signature) Field(name string) (Field, bool) {
	for _, f := range s.inputs {
		if f.Name == name {
			return f, true
		}
	}
	for _, f := range s.outputs {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// IsInput reports whether name is an input field.
func (s *Signature) IsInput(name string) bool {
	return slices.ContainsFunc(s.inputs, func(f Field) bool { return f.Name == name })
}

// IsOutput reports whether name is an output field.
func (s *Signature) IsOutput(name string) bool {
	return slices.ContainsFunc(s.outputs, func(f Field) bool { return f.Name == name })
}

// DefaultInstructions is DSPy's wording for a signature without instructions.
func (s *Signature) DefaultInstructions() string {
	quote := func(fs []Field) string {
		parts := make([]string, len(fs))
		for i, f := range fs {
			parts[i] = "`" + f.Name + "`"
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprintf("Given the fields %s, produce the fields %s.", quote(s.inputs), quote(s.outputs))
}

func (s *Signature) clone() *Signature {
	c := *s
	c.inputs = slices.Clone(s.inputs)
	c.outputs = slices.Clone(s.outputs)
	c.derived = new(sync.Map)
	return &c
}

// WithInstructions returns a copy with new instructions, cleaned as New
// cleans them (empty restores the default).
func (s *Signature) WithInstructions(instructions string) *Signature {
	c := s.clone()
	c.setInstructions(instructions)
	return c
}

// WithLoadedInstructions returns a copy whose instructions are set as
// DSPy's load_state sets them (through Signature.instructions' setter):
// cleaned with inspect.cleandoc, and never replaced by the default, so
// that saved empty instructions load as empty.
func (s *Signature) WithLoadedInstructions(instructions string) *Signature {
	c := s.clone()
	c.instructions = pystr.Cleandoc(instructions)
	return c
}

// setInstructions stores instructions as DSPy's make_signature and
// Signature.instructions do: "" (DSPy's None, or an empty docstring) gives
// the default for the signature's fields; anything else is cleaned with
// inspect.cleandoc, which may leave nothing.
func (s *Signature) setInstructions(instructions string) {
	if instructions == "" {
		s.instructions = s.DefaultInstructions()
	} else {
		s.instructions = pystr.Cleandoc(instructions)
	}
}

// refields re-derives the instructions of s, a copy whose fields changed:
// DSPy builds such a copy as Signature(new_fields, old.instructions), so
// the old (cleaned) instructions are cleaned again, and empty ones become
// the default for the new fields.
func (s *Signature) refields() *Signature {
	s.setInstructions(s.instructions)
	return s
}

// WithName returns a copy with another class name.
func (s *Signature) WithName(name string) *Signature {
	c := s.clone()
	c.name = name
	return c
}

// WithDesc returns a copy in which the named field has a new description.
func (s *Signature) WithDesc(name, desc string) (*Signature, error) {
	return s.WithField(name, func(f *Field) { f.Desc = desc })
}

// WithField returns a copy in which the named field is changed by edit.
// The field's name cannot be changed this way.
func (s *Signature) WithField(name string, edit func(*Field)) (*Signature, error) {
	c := s.clone()
	for _, list := range [][]Field{c.inputs, c.outputs} {
		for i := range list {
			if list[i].Name == name {
				edit(&list[i])
				list[i].Name = name
				if list[i].Type == nil {
					list[i].Type = StringType()
				}
				return c.refields(), nil
			}
		}
	}
	return nil, fmt.Errorf("signature: no field named %q", name)
}

// PrependOutput returns a copy with f inserted as the first output field, as
// ChainOfThought does with "reasoning". Instructions are kept, cleaned
// again as DSPy does when it rebuilds a signature (so whitespace-only
// instructions, cleaned to none, become the default for the new fields).
func (s *Signature) PrependOutput(f Field) (*Signature, error) {
	return s.insertOutput(0, f)
}

// AppendOutput returns a copy with f added as the last output field.
func (s *Signature) AppendOutput(f Field) (*Signature, error) {
	return s.insertOutput(len(s.outputs), f)
}

// AppendInput returns a copy with f added as the last input field.
func (s *Signature) AppendInput(f Field) (*Signature, error) {
	if err := s.checkNew(&f); err != nil {
		return nil, err
	}
	c := s.clone()
	c.inputs = append(c.inputs, f)
	return c.refields(), nil
}

func (s *Signature) insertOutput(i int, f Field) (*Signature, error) {
	if err := s.checkNew(&f); err != nil {
		return nil, err
	}
	c := s.clone()
	c.outputs = slices.Insert(c.outputs, i, f)
	return c.refields(), nil
}

// checkNew checks and completes f, a field to add to s.
func (s *Signature) checkNew(f *Field) error {
	if err := completeField(f); err != nil {
		return err
	}
	if _, dup := s.Field(f.Name); dup {
		return fmt.Errorf("signature: duplicate field name %q", f.Name)
	}
	return nil
}

// completeField checks that f's name is an identifier and fills in its
// defaults: type str, and the prefix inferred from the name.
func completeField(f *Field) error {
	if !identRE.MatchString(f.Name) {
		return fmt.Errorf("signature: field name %q is not an identifier", f.Name)
	}
	if f.Type == nil {
		f.Type = StringType()
	}
	if f.Prefix == "" {
		f.Prefix = InferPrefix(f.Name) + ":"
	}
	return nil
}

// Without returns a copy without the named field.
func (s *Signature) Without(name string) (*Signature, error) {
	c := s.clone()
	del := func(f Field) bool { return f.Name == name }
	n := len(c.inputs) + len(c.outputs)
	c.inputs = slices.DeleteFunc(c.inputs, del)
	c.outputs = slices.DeleteFunc(c.outputs, del)
	if len(c.inputs)+len(c.outputs) == n {
		return nil, fmt.Errorf("signature: no field named %q", name)
	}
	if len(c.outputs) == 0 {
		return nil, fmt.Errorf("signature: removing %q leaves no output field", name)
	}
	return c.refields(), nil
}

// String writes the signature in string form: "question -> answer: int".
func (s *Signature) String() string {
	part := func(fs []Field) string {
		parts := make([]string, len(fs))
		for i, f := range fs {
			parts[i] = f.Name
			if f.Type != nil && f.Type.Kind != String {
				parts[i] += ": " + f.Type.String()
			}
		}
		return strings.Join(parts, ", ")
	}
	return part(s.inputs) + " -> " + part(s.outputs)
}

// Equal reports whether two signatures have the same fields (names, types,
// descriptions) and instructions.
func (s *Signature) Equal(o *Signature) bool {
	if s == o {
		return true
	}
	if s == nil || o == nil || s.instructions != o.instructions {
		return false
	}
	eq := func(a, b []Field) bool {
		return slices.EqualFunc(a, b, func(x, y Field) bool {
			return x.Name == y.Name && x.Desc == y.Desc && x.Prefix == y.Prefix && x.Type.String() == y.Type.String()
		})
	}
	return eq(s.inputs, o.inputs) && eq(s.outputs, o.outputs)
}

var (
	prefixRE1 = regexp.MustCompile(`(.)([A-Z][a-z]+)`)
	prefixRE2 = regexp.MustCompile(`([a-z0-9])([A-Z])`)
	prefixRE3 = regexp.MustCompile(`([a-zA-Z])(\d)`)
	prefixRE4 = regexp.MustCompile(`(\d)([a-zA-Z])`)
)

// InferPrefix is DSPy's infer_prefix: "camelCaseText" -> "Camel Case Text",
// "snake_case" -> "Snake Case", "HTMLParser" -> "HTML Parser".
func InferPrefix(name string) string {
	s := prefixRE1.ReplaceAllString(name, "${1}_${2}")
	s = prefixRE2.ReplaceAllString(s, "${1}_${2}")
	s = prefixRE3.ReplaceAllString(s, "${1}_${2}")
	s = prefixRE4.ReplaceAllString(s, "${1}_${2}")
	words := strings.Split(s, "_")
	out := make([]string, 0, len(words))
	for _, w := range words {
		if isUpper(w) {
			out = append(out, w)
		} else {
			out = append(out, capitalize(w))
		}
	}
	return strings.Join(out, " ")
}

// isUpper is Python's str.isupper: at least one cased rune, none lower case.
func isUpper(s string) bool {
	cased := false
	for _, r := range s {
		if unicode.IsLower(r) {
			return false
		}
		if unicode.IsUpper(r) {
			cased = true
		}
	}
	return cased
}

// capitalize is Python's str.capitalize.
func capitalize(s string) string {
	if s == "" {
		return s
	}
	r := []rune(strings.ToLower(s))
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}
