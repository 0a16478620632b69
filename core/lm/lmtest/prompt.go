package lmtest

import (
	"strconv"
	"strings"

	"github.com/dspex/dspex/core/pyjson"
)

// Markers of DSPy-style prompts. The simulator reads prompts as text, so it
// works with any adapter that writes them, ours or DSPy's.
const (
	inputHeader     = "Your input fields are:"
	outputHeader    = "Your output fields are:"
	jsonOutputsMark = "Outputs will be a JSON object"
	schemaNote      = "must adhere to the JSON schema: "
	completedMarker = "[[ ## completed ## ]]"
)

// Bounds on what the parser accepts, so hostile prompts cannot make it
// allocate without limit or recurse deeply.
const (
	maxPromptFields = 256
	maxTypeDepth    = 32
	maxSchemaDepth  = 64
)

// fieldListStops are the lines that end a field list. The first two follow
// the lists in ChatAdapter and JSONAdapter prompts; the rest are defensive.
var fieldListStops = []string{
	"\nAll interactions will be structured",
	"\nInputs will have the following structure",
	"\n" + jsonOutputsMark,
	"\n[[ ## ",
	"\nIn adhering to this structure",
}

// promptField is one field listed in a system message.
type promptField struct {
	// Name is the field name between backticks.
	Name string
	// TypeName is the type as the prompt writes it, e.g. "list[str]".
	TypeName string
	// Desc is the field description, possibly several lines.
	Desc string
	// Type is the type the simulator generates values for: from the JSON
	// schema in the field's note when there is one, else from TypeName.
	Type *ftype
}

// prompt is what the simulator understands of a DSPy-style system message.
type prompt struct {
	Inputs  []promptField
	Outputs []promptField
	// JSON is set when the structure section says outputs are a JSON
	// object (JSONAdapter); otherwise outputs use [[ ## field ## ]] markers.
	JSON bool
}

// parsePrompt reads the field lists and structure section of a DSPy-style
// system message. It reports false when the message has no "Your output
// fields are:" block with at least one field. It never panics, whatever
// the input.
func parsePrompt(system string) (*prompt, bool) {
	system = strings.ReplaceAll(system, "\r\n", "\n")
	oi := strings.Index(system, outputHeader)
	if oi < 0 {
		return nil, false
	}
	p := &prompt{}
	if ii := strings.Index(system[:oi], inputHeader); ii >= 0 {
		p.Inputs = parseFieldList(system[ii+len(inputHeader) : oi])
	}
	rest := system[oi+len(outputHeader):]
	end := len(rest)
	for _, stop := range fieldListStops {
		if i := strings.Index(rest, stop); i >= 0 && i < end {
			end = i
		}
	}
	p.Outputs = parseFieldList(rest[:end])
	if len(p.Outputs) == 0 {
		return nil, false
	}
	structure := rest[end:]
	p.JSON = strings.Contains(structure, jsonOutputsMark)
	var notes map[string]string
	if p.JSON {
		notes = jsonNotes(structure)
	} else {
		notes = chatNotes(structure, p.Outputs)
	}
	for i := range p.Outputs {
		f := &p.Outputs[i]
		if t := schemaType(notes[f.Name]); t != nil {
			f.Type = t
			continue
		}
		f.Type = parsePyType(f.TypeName)
	}
	for i := range p.Inputs {
		p.Inputs[i].Type = parsePyType(p.Inputs[i].TypeName)
	}
	return p, true
}

// parseFieldList reads lines of the form "1. `name` (type): description".
// Lines that are not field lines continue the previous field's description.
func parseFieldList(text string) []promptField {
	var fields []promptField
	for line := range strings.SplitSeq(text, "\n") {
		if f, ok := parseFieldLine(line); ok {
			if len(fields) == maxPromptFields {
				break
			}
			fields = append(fields, f)
			continue
		}
		if n := len(fields); n > 0 && strings.TrimSpace(line) != "" {
			fields[n-1].Desc = strings.TrimSpace(fields[n-1].Desc + "\n" + line)
		}
	}
	return fields
}

func parseFieldLine(line string) (promptField, bool) {
	i := 0
	for i < len(line) && line[i] >= '0' && line[i] <= '9' {
		i++
	}
	if i == 0 || !strings.HasPrefix(line[i:], ". `") {
		return promptField{}, false
	}
	rest := line[i+3:]
	j := strings.IndexByte(rest, '`')
	if j <= 0 {
		return promptField{}, false
	}
	name := rest[:j]
	rest = rest[j+1:]
	if !strings.HasPrefix(rest, " (") {
		return promptField{}, false
	}
	rest = rest[2:]
	k := closingParen(rest)
	if k < 0 {
		return promptField{}, false
	}
	typeName := rest[:k]
	rest = rest[k+1:]
	if !strings.HasPrefix(rest, ":") {
		return promptField{}, false
	}
	return promptField{Name: name, TypeName: typeName, Desc: strings.TrimSpace(rest[1:])}, true
}

// closingParen returns the index of the ")" that closes a type annotation
// (the opening "(" is already consumed), skipping brackets and quoted
// strings, or -1.
func closingParen(s string) int {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if quote != 0 {
			switch c {
			case '\\':
				i++
			case quote:
				quote = 0
			}
			continue
		}
		switch c {
		case '\'', '"':
			quote = c
		case '(', '[':
			depth++
		case ']':
			depth--
		case ')':
			if depth == 0 {
				return i
			}
			depth--
		}
	}
	return -1
}

// chatNotes reads the ChatAdapter structure section: for each output field,
// the text after "{name}" on the line under its "[[ ## name ## ]]" marker.
// It reads the section once, whatever the number of fields.
func chatNotes(structure string, outputs []promptField) map[string]string {
	want := make(map[string]bool, len(outputs))
	for _, f := range outputs {
		want[f.Name] = true
	}
	notes := make(map[string]string, len(outputs))
	rest := structure
	for {
		i := strings.Index(rest, "[[ ## ")
		if i < 0 {
			return notes
		}
		rest = rest[i+len("[[ ## "):]
		j := strings.Index(rest, " ## ]]\n{")
		if j < 0 {
			return notes
		}
		name := rest[:j]
		if strings.IndexByte(name, '\n') >= 0 {
			continue
		}
		after, ok := strings.CutPrefix(rest[j+len(" ## ]]\n"):], "{"+name+"}")
		if _, seen := notes[name]; !ok || !want[name] || seen {
			continue
		}
		if nl := strings.IndexByte(after, '\n'); nl >= 0 {
			after = after[:nl]
		}
		notes[name] = strings.TrimSpace(after)
	}
}

// jsonNotes reads the JSONAdapter structure section, a JSON object whose
// values are "{name}" followed by the field's note.
func jsonNotes(structure string) map[string]string {
	i := strings.Index(structure, jsonOutputsMark)
	obj, ok := balancedObject(structure[i:])
	if !ok {
		return nil
	}
	v, err := pyjson.Decode([]byte(obj))
	if err != nil {
		return nil
	}
	o, ok := v.(pyjson.Object)
	if !ok {
		return nil
	}
	notes := make(map[string]string, len(o))
	for _, m := range o {
		s, ok := m.Value.(string)
		if !ok {
			continue
		}
		notes[m.Key] = strings.TrimSpace(strings.TrimPrefix(s, "{"+m.Key+"}"))
	}
	return notes
}

// balancedObject returns the first complete {...} in s, skipping braces in
// strings.
func balancedObject(s string) (string, bool) {
	start := strings.IndexByte(s, '{')
	if start < 0 {
		return "", false
	}
	depth := 0
	inString := false
	for i := start; i < len(s); i++ {
		c := s[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return s[start : i+1], true
			}
		}
	}
	return "", false
}

// schemaType reads the JSON schema from a field note ("# note: the value you
// produce must adhere to the JSON schema: {...}"), or returns nil.
func schemaType(note string) *ftype {
	i := strings.Index(note, schemaNote)
	if i < 0 {
		return nil
	}
	obj, ok := balancedObject(note[i+len(schemaNote):])
	if !ok {
		return nil
	}
	v, err := pyjson.Decode([]byte(obj))
	if err != nil {
		return nil
	}
	root, ok := v.(pyjson.Object)
	if !ok {
		return nil
	}
	return fromSchema(root)
}

// userSections splits a user message into its "[[ ## name ## ]]" sections,
// in order. Text before the first marker is ignored.
func userSections(msg string) []section {
	var out []section
	rest := msg
	for len(out) < maxPromptFields {
		i := strings.Index(rest, "[[ ## ")
		if i < 0 {
			break
		}
		rest = rest[i+len("[[ ## "):]
		j := strings.Index(rest, " ## ]]")
		if j < 0 || strings.IndexByte(rest[:j], '\n') >= 0 {
			continue
		}
		name := rest[:j]
		rest = rest[j+len(" ## ]]"):]
		value := rest
		if k := strings.Index(rest, "[[ ## "); k >= 0 {
			value = rest[:k]
		}
		out = append(out, section{Name: name, Value: strings.TrimSpace(value)})
	}
	return out
}

type section struct {
	Name, Value string
}

// pyTypeParser reads Python type annotations as DSPy writes them.
type pyTypeParser struct {
	s   string
	pos int
}

// parsePyType reads a Python-style annotation: str, int, float, bool, Any,
// list[T], dict[str, T], tuple[...], set[T], Literal[...], Union[...],
// Optional[T], T | None, or a class name. Whatever it cannot read is
// treated as str, the type DSPy passes through as raw text.
func parsePyType(s string) *ftype {
	p := &pyTypeParser{s: s}
	t, ok := p.union(0)
	if !ok {
		return strType()
	}
	p.skipSpace()
	if p.pos != len(p.s) {
		return strType()
	}
	return t
}

func (p *pyTypeParser) skipSpace() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func (p *pyTypeParser) accept(c byte) bool {
	p.skipSpace()
	if p.pos < len(p.s) && p.s[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *pyTypeParser) union(depth int) (*ftype, bool) {
	if depth > maxTypeDepth {
		return nil, false
	}
	var alts []*ftype
	for {
		t, ok := p.primary(depth)
		if !ok {
			return nil, false
		}
		alts = append(alts, t)
		if !p.accept('|') {
			break
		}
	}
	return unionOf(alts), true
}

func (p *pyTypeParser) ident() string {
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			p.pos++
			continue
		}
		break
	}
	return p.s[start:p.pos]
}

func (p *pyTypeParser) primary(depth int) (*ftype, bool) {
	name := p.ident()
	if name == "" {
		return nil, false
	}
	if name == "..." {
		return &ftype{Kind: kEllipsis}, true
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:] // typing.List, dspy.Foo, builtins.str
	}
	if name == "Literal" {
		if !p.accept('[') {
			return nil, false
		}
		vals, ok := p.literalValues()
		if !ok {
			return nil, false
		}
		return &ftype{Kind: kLiteral, Values: vals}, true
	}
	var args []*ftype
	if p.accept('[') {
		for {
			t, ok := p.union(depth + 1)
			if !ok {
				return nil, false
			}
			args = append(args, t)
			if p.accept(']') {
				break
			}
			if !p.accept(',') {
				return nil, false
			}
		}
	}
	arg := func(i int) *ftype {
		if i < len(args) {
			return args[i]
		}
		return nil
	}
	switch name {
	case "str", "bytes":
		return strType(), true
	case "int":
		return &ftype{Kind: kInt}, true
	case "float":
		return &ftype{Kind: kFloat}, true
	case "bool":
		return &ftype{Kind: kBool}, true
	case "Any", "object":
		return &ftype{Kind: kAny}, true
	case "None", "NoneType":
		return &ftype{Kind: kNull}, true
	case "list", "List", "set", "Set", "frozenset", "Sequence":
		return &ftype{Kind: kList, Elem: arg(0)}, true
	case "tuple", "Tuple":
		if len(args) == 2 && args[1].Kind == kEllipsis {
			return &ftype{Kind: kList, Elem: args[0]}, true
		}
		return &ftype{Kind: kTuple, Items: args}, true
	case "dict", "Dict", "Mapping":
		return &ftype{Kind: kDict, Elem: arg(1)}, true
	case "Optional":
		if len(args) != 1 {
			return nil, false
		}
		return &ftype{Kind: kOptional, Elem: args[0]}, true
	case "Union":
		if len(args) == 0 {
			return nil, false
		}
		return unionOf(args), true
	}
	return &ftype{Kind: kObject, Name: name}, true
}

// literalValues reads the choices of Literal[...] up to and including "]".
func (p *pyTypeParser) literalValues() ([]any, bool) {
	var vals []any
	for {
		p.skipSpace()
		if p.pos >= len(p.s) {
			return nil, false
		}
		switch c := p.s[p.pos]; {
		case c == '\'' || c == '"':
			s, ok := p.quoted(c)
			if !ok {
				return nil, false
			}
			vals = append(vals, s)
		default:
			start := p.pos
			for p.pos < len(p.s) && !strings.ContainsRune(",] \t", rune(p.s[p.pos])) {
				p.pos++
			}
			vals = append(vals, literalWord(p.s[start:p.pos]))
		}
		if len(vals) > maxPromptFields {
			return nil, false
		}
		if p.accept(']') {
			return vals, true
		}
		if !p.accept(',') {
			return nil, false
		}
	}
}

func (p *pyTypeParser) quoted(q byte) (string, bool) {
	p.pos++ // opening quote
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		switch c {
		case '\\':
			if p.pos < len(p.s) {
				b.WriteByte(p.s[p.pos])
				p.pos++
			}
		case q:
			return b.String(), true
		default:
			b.WriteByte(c)
		}
	}
	return "", false
}

// literalWord converts an unquoted Literal choice: True, False, None,
// integers and floats as Python reads them, anything else as a string.
func literalWord(w string) any {
	switch w {
	case "True":
		return true
	case "False":
		return false
	case "None":
		return nil
	}
	if i, err := strconv.ParseInt(w, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(w, 64); err == nil {
		return f
	}
	return w
}

// unionOf collapses Union alternatives: None makes the rest optional; of
// several non-None alternatives the first is generated.
func unionOf(alts []*ftype) *ftype {
	var rest []*ftype
	optional := false
	for _, a := range alts {
		if a.Kind == kNull {
			optional = true
			continue
		}
		rest = append(rest, a)
	}
	if len(rest) == 0 {
		return &ftype{Kind: kNull}
	}
	t := rest[0]
	if optional && t.Kind != kOptional {
		return &ftype{Kind: kOptional, Elem: t}
	}
	return t
}

// fromSchema converts a JSON schema (as pydantic writes them, with "$defs"
// and "$ref") into an ftype. Recursive references produce cyclic ftypes;
// value generation bounds its depth.
func fromSchema(root pyjson.Object) *ftype {
	c := &schemaConv{refs: map[string]*ftype{}}
	for _, key := range []string{"$defs", "definitions"} {
		if d, ok := root.Get(key); ok {
			if defs, ok := d.(pyjson.Object); ok {
				c.defs = append(c.defs, defsEntry{prefix: "#/" + key + "/", defs: defs})
			}
		}
	}
	return c.conv(root, 0)
}

type defsEntry struct {
	prefix string
	defs   pyjson.Object
}

type schemaConv struct {
	defs []defsEntry
	refs map[string]*ftype
}

func (c *schemaConv) conv(v any, depth int) *ftype {
	s, ok := v.(pyjson.Object)
	if !ok || depth > maxSchemaDepth {
		return &ftype{Kind: kAny}
	}
	if ref, ok := s.Get("$ref"); ok {
		return c.ref(ref, depth)
	}
	for _, key := range []string{"anyOf", "oneOf"} {
		if alts, ok := s.Get(key); ok {
			if list, ok := alts.([]any); ok && len(list) > 0 {
				ts := make([]*ftype, len(list))
				for i, a := range list {
					ts[i] = c.conv(a, depth+1)
				}
				return unionOf(ts)
			}
		}
	}
	if all, ok := s.Get("allOf"); ok {
		if list, ok := all.([]any); ok && len(list) > 0 {
			return c.conv(list[0], depth+1)
		}
	}
	if e, ok := s.Get("enum"); ok {
		if vals, ok := e.([]any); ok && len(vals) > 0 {
			return &ftype{Kind: kLiteral, Values: vals}
		}
	}
	if cv, ok := s.Get("const"); ok {
		return &ftype{Kind: kLiteral, Values: []any{cv}}
	}
	typ, _ := s.Get("type")
	if list, ok := typ.([]any); ok {
		alts := make([]*ftype, 0, len(list))
		for _, name := range list {
			n, _ := name.(string)
			t := c.convTyped(s, n, depth)
			alts = append(alts, t)
		}
		if len(alts) == 0 {
			return &ftype{Kind: kAny}
		}
		return unionOf(alts)
	}
	name, _ := typ.(string)
	if name == "" {
		if _, ok := s.Get("properties"); ok {
			name = "object"
		}
	}
	return c.convTyped(s, name, depth)
}

func (c *schemaConv) convTyped(s pyjson.Object, name string, depth int) *ftype {
	switch name {
	case "string":
		return strType()
	case "integer", "number":
		t := &ftype{Kind: kInt}
		if name == "number" {
			t.Kind = kFloat
		}
		t.Min, t.Max = schemaNumber(s, "minimum", "exclusiveMinimum"), schemaNumber(s, "maximum", "exclusiveMaximum")
		return t
	case "boolean":
		return &ftype{Kind: kBool}
	case "null":
		return &ftype{Kind: kNull}
	case "array":
		if pi, ok := s.Get("prefixItems"); ok {
			if list, ok := pi.([]any); ok {
				t := &ftype{Kind: kTuple}
				for _, it := range list {
					t.Items = append(t.Items, c.conv(it, depth+1))
				}
				return t
			}
		}
		t := &ftype{Kind: kList}
		if items, ok := s.Get("items"); ok {
			t.Elem = c.conv(items, depth+1)
		}
		t.MinItems, t.MaxItems = schemaInt(s, "minItems", -1), schemaInt(s, "maxItems", -1)
		return t
	case "object":
		props, _ := s.Get("properties")
		if po, ok := props.(pyjson.Object); ok {
			t := &ftype{Kind: kObject}
			if title, ok := s.Get("title"); ok {
				t.Name, _ = title.(string)
			}
			for _, m := range po {
				if len(t.Props) == maxPromptFields {
					break
				}
				t.Props = append(t.Props, prop{Name: m.Key, Type: c.conv(m.Value, depth+1)})
			}
			return t
		}
		t := &ftype{Kind: kDict}
		if ap, ok := s.Get("additionalProperties"); ok {
			if _, isObj := ap.(pyjson.Object); isObj {
				t.Elem = c.conv(ap, depth+1)
			}
		}
		return t
	}
	return &ftype{Kind: kAny}
}

func (c *schemaConv) ref(v any, depth int) *ftype {
	ref, _ := v.(string)
	if t, ok := c.refs[ref]; ok {
		return t
	}
	for _, d := range c.defs {
		name, ok := strings.CutPrefix(ref, d.prefix)
		if !ok {
			continue
		}
		body, ok := d.defs.Get(name)
		if !ok {
			break
		}
		// Reserve the entry before converting so that recursive
		// definitions end in a cycle rather than unbounded recursion.
		t := &ftype{Kind: kAny}
		c.refs[ref] = t
		*t = *c.conv(body, depth+1)
		if t.Kind == kObject && t.Name == "" {
			t.Name = name
		}
		return t
	}
	return &ftype{Kind: kAny}
}

func schemaNumber(s pyjson.Object, keys ...string) *float64 {
	for _, k := range keys {
		v, ok := s.Get(k)
		if !ok {
			continue
		}
		switch x := v.(type) {
		case int64:
			f := float64(x)
			return &f
		case float64:
			return &x
		}
	}
	return nil
}

func schemaInt(s pyjson.Object, key string, def int) int {
	v, ok := s.Get(key)
	if !ok {
		return def
	}
	if i, ok := v.(int64); ok && i >= 0 && i <= 1000 {
		return int(i)
	}
	return def
}
