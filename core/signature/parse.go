package signature

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ParseError reports a malformed signature string: where, and what was
// expected there.
type ParseError struct {
	Input string // the whole signature string
	Pos   int    // byte offset of the problem
	Msg   string
}

func (e *ParseError) Error() string {
	col := utf8.RuneCountInString(e.Input[:min(e.Pos, len(e.Input))]) + 1
	return fmt.Sprintf("signature %q: column %d: %s", e.Input, col, e.Msg)
}

// Types names the object types a signature string may use, e.g.
// {"Person": signature.MustObjectOf[Person]()}.
type Types map[string]*Type

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tArrow
	tPunct // one of , : | [ ] .
)

type token struct {
	kind tokKind
	text string // identifier, punctuation, number text, or unquoted string
	pos  int
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of input"
	case tString:
		return strconv.Quote(t.text)
	default:
		return fmt.Sprintf("%q", t.text)
	}
}

type lexer struct {
	src string
	pos int
}

func (l *lexer) errorf(pos int, format string, args ...any) *ParseError {
	return &ParseError{Input: l.src, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func (l *lexer) next() (token, error) {
	for l.pos < len(l.src) {
		r, n := utf8.DecodeRuneInString(l.src[l.pos:])
		if !unicode.IsSpace(r) {
			break
		}
		l.pos += n
	}
	start := l.pos
	if l.pos >= len(l.src) {
		return token{kind: tEOF, pos: start}, nil
	}
	c := l.src[l.pos]
	switch {
	case c == '-' && strings.HasPrefix(l.src[l.pos:], "->"):
		l.pos += 2
		return token{kind: tArrow, text: "->", pos: start}, nil
	case strings.IndexByte(",:|[].", c) >= 0:
		l.pos++
		return token{kind: tPunct, text: string(c), pos: start}, nil
	case c == '"' || c == '\'':
		return l.str(c)
	case c == '-' || (c >= '0' && c <= '9'):
		end := l.pos + 1
		for end < len(l.src) && strings.IndexByte("0123456789.eE+-_", l.src[end]) >= 0 {
			if (l.src[end] == '+' || l.src[end] == '-') && l.src[end-1] != 'e' && l.src[end-1] != 'E' {
				break
			}
			end++
		}
		l.pos = end
		return token{kind: tNumber, text: l.src[start:end], pos: start}, nil
	case c == '_' || c < utf8.RuneSelf && unicode.IsLetter(rune(c)):
		end := l.pos
		for end < len(l.src) {
			ch := l.src[end]
			if ch == '_' || ('a' <= ch && ch <= 'z') || ('A' <= ch && ch <= 'Z') || ('0' <= ch && ch <= '9') {
				end++
				continue
			}
			break
		}
		l.pos = end
		return token{kind: tIdent, text: l.src[start:end], pos: start}, nil
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.pos:])
	return token{}, l.errorf(start, "unexpected character %q", r)
}

func (l *lexer) str(quote byte) (token, error) {
	start := l.pos
	var b strings.Builder
	i := l.pos + 1
	for i < len(l.src) {
		c := l.src[i]
		switch {
		case c == quote:
			l.pos = i + 1
			return token{kind: tString, text: b.String(), pos: start}, nil
		case c == '\\' && i+1 < len(l.src):
			switch e := l.src[i+1]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(e)
			}
			i += 2
		case c == '\n':
			return token{}, l.errorf(i, "unterminated string literal")
		default:
			b.WriteByte(c)
			i++
		}
	}
	return token{}, l.errorf(start, "unterminated string literal")
}

type parser struct {
	lex   lexer
	tok   token
	types Types
	// names maps each field name to where it first appears; dup reports
	// the first name seen twice, after any syntax error.
	names map[string]int
	dup   *ParseError
}

func (p *parser) advance() error {
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) errorf(format string, args ...any) *ParseError {
	return p.lex.errorf(p.tok.pos, format, args...)
}

func (p *parser) isPunct(s string) bool { return p.tok.kind == tPunct && p.tok.text == s }

func (p *parser) expectPunct(s, context string) error {
	if !p.isPunct(s) {
		return p.errorf("expected %q %s, found %s", s, context, p.tok.describe())
	}
	return p.advance()
}

// Parse reads a signature string such as
//
//	"question, context: list[str] -> answer, confidence: float"
//
// Types are str (the default), int, float, bool, list[T], dict[str, T],
// Literal["a", "b"], Any, and optional T | None (or Optional[T]). Errors are
// *ParseError values naming the column and what was expected.
func Parse(s string) (*Signature, error) {
	return ParseWith(s, nil)
}

// MustParse is Parse for signatures fixed at compile time; it panics on error.
func MustParse(s string) *Signature {
	sig, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sig
}

// ParseWith is Parse with named object types available to the string.
func ParseWith(s string, types Types) (*Signature, error) {
	p := &parser{lex: lexer{src: s}, types: types, names: map[string]int{}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	inputs, err := p.fieldList(true)
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tArrow {
		if p.tok.kind == tEOF {
			return nil, p.errorf("expected \"->\" between input and output fields, found end of input")
		}
		return nil, p.errorf("expected \",\" or \"->\", found %s", p.tok.describe())
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	outPos := p.tok.pos
	outputs, err := p.fieldList(false)
	if err != nil {
		return nil, err
	}
	if p.tok.kind == tArrow {
		return nil, p.errorf("a signature has exactly one \"->\"")
	}
	if p.tok.kind != tEOF {
		return nil, p.errorf("expected \",\" or end of input, found %s", p.tok.describe())
	}
	if len(outputs) == 0 {
		return nil, &ParseError{Input: s, Pos: outPos, Msg: "expected at least one output field after \"->\""}
	}
	if p.dup != nil {
		return nil, p.dup
	}
	return New(inputs, outputs, "")
}

func (p *parser) fieldList(inputs bool) ([]Field, error) {
	var fields []Field
	if p.tok.kind == tArrow || p.tok.kind == tEOF {
		return nil, nil
	}
	for {
		f, err := p.field(inputs)
		if err != nil {
			return nil, err
		}
		fields = append(fields, f)
		if !p.isPunct(",") {
			return fields, nil
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
}

func (p *parser) field(input bool) (Field, error) {
	if p.tok.kind != tIdent {
		return Field{}, p.errorf("expected a field name, found %s", p.tok.describe())
	}
	name := p.tok.text
	if first, dup := p.names[name]; !dup {
		p.names[name] = p.tok.pos
	} else if p.dup == nil {
		p.dup = p.lex.errorf(first, "duplicate field name %q", name)
	}
	if err := p.advance(); err != nil {
		return Field{}, err
	}
	f := Field{Name: name, Type: StringType()}
	if p.isPunct(":") {
		if err := p.advance(); err != nil {
			return Field{}, err
		}
		t, err := p.typeExpr(false)
		if err != nil {
			return Field{}, err
		}
		f.Type = t
		f.TypeDeclared = true
	}
	return f, nil
}

// typeExpr parses a type, unions "T | U" included. A lone None is refused
// unless noneOK (a member of Union[...]), where it is returned as nil.
func (p *parser) typeExpr(noneOK bool) (*Type, error) {
	start := p.tok.pos
	first, err := p.primary()
	if err != nil {
		return nil, err
	}
	types := []*Type{first}
	for p.isPunct("|") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		t, err := p.primary()
		if err != nil {
			return nil, err
		}
		types = append(types, t)
	}
	if noneOK && len(types) == 1 {
		return first, nil
	}
	return p.union(types, start)
}

// union folds T | None (in either order) into Optional[T]. Unions of two
// different non-None types are refused: there is no faithful Go value for them.
func (p *parser) union(types []*Type, pos int) (*Type, error) {
	if len(types) == 1 {
		if types[0] == nil {
			return nil, p.lex.errorf(pos, "None alone is not a field type; use T | None")
		}
		return types[0], nil
	}
	var elem *Type
	hasNone := false
	for _, t := range types {
		if t == nil {
			hasNone = true
			continue
		}
		if elem != nil && !sameType(elem, t) {
			return nil, p.lex.errorf(pos, "unions of several types are not supported (only T | None)")
		}
		elem = t
	}
	if elem == nil {
		return nil, p.lex.errorf(pos, "None alone is not a field type; use T | None")
	}
	if !hasNone {
		return elem, nil
	}
	return OptionalOf(elem), nil
}

func sameType(a, b *Type) bool { return a.String() == b.String() }

// primary parses one type. It returns nil (and no error) for None.
func (p *parser) primary() (*Type, error) {
	if p.tok.kind != tIdent {
		return nil, p.errorf("expected a type (str, int, float, bool, list[T], dict[str, T], Literal[...], T | None), found %s", p.tok.describe())
	}
	namePos := p.tok.pos
	name := p.tok.text
	if err := p.advance(); err != nil {
		return nil, err
	}
	for p.isPunct(".") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind != tIdent {
			return nil, p.errorf("expected a name after \".\", found %s", p.tok.describe())
		}
		name += "." + p.tok.text
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	name = strings.TrimPrefix(name, "typing.")
	hasArgs := p.isPunct("[")
	switch name {
	case "str", "int", "float", "bool", "Any", "None", "NoneType":
		if hasArgs {
			return nil, p.errorf("type %s takes no arguments", name)
		}
		switch name {
		case "str":
			return StringType(), nil
		case "int":
			return IntType(), nil
		case "float":
			return FloatType(), nil
		case "bool":
			return BoolType(), nil
		case "Any":
			return AnyType(), nil
		}
		return nil, nil
	case "list", "List":
		if !hasArgs {
			return &Type{Kind: List}, nil
		}
		args, err := p.typeArgs(name)
		if err != nil {
			return nil, err
		}
		if len(args) != 1 {
			return nil, p.lex.errorf(namePos, "list takes one type argument, got %d", len(args))
		}
		return ListOf(args[0]), nil
	case "dict", "Dict":
		if !hasArgs {
			return &Type{Kind: Dict}, nil
		}
		args, err := p.typeArgs(name)
		if err != nil {
			return nil, err
		}
		if len(args) != 2 {
			return nil, p.lex.errorf(namePos, "dict takes two type arguments (dict[str, T]), got %d", len(args))
		}
		if args[0].Kind != String {
			return nil, p.lex.errorf(namePos, "dict keys must be str (JSON object keys), got %s", args[0].PythonName())
		}
		return DictOf(args[1]), nil
	case "Optional":
		if !hasArgs {
			return nil, p.errorf("expected \"[\" after Optional")
		}
		args, err := p.typeArgs(name)
		if err != nil {
			return nil, err
		}
		if len(args) != 1 {
			return nil, p.lex.errorf(namePos, "Optional takes one type argument, got %d", len(args))
		}
		return OptionalOf(args[0]), nil
	case "Union":
		if !hasArgs {
			return nil, p.errorf("expected \"[\" after Union")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		var types []*Type
		for {
			t, err := p.typeExpr(true)
			if err != nil {
				return nil, err
			}
			types = append(types, t)
			if !p.isPunct(",") {
				break
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		if err := p.expectPunct("]", "to close Union["); err != nil {
			return nil, err
		}
		return p.union(types, namePos)
	case "Literal":
		if !hasArgs {
			return nil, p.errorf("expected \"[\" after Literal")
		}
		return p.literal()
	}
	if t, ok := p.types[name]; ok && t != nil {
		if hasArgs {
			return nil, p.errorf("type %s takes no arguments", name)
		}
		return t, nil
	}
	return nil, p.lex.errorf(namePos, "unknown type %q; expected str, int, float, bool, list[T], dict[str, T], Literal[...], Any, T | None, or an object type passed to ParseWith", name)
}

func (p *parser) typeArgs(name string) ([]*Type, error) {
	if err := p.advance(); err != nil { // consume [
		return nil, err
	}
	var args []*Type
	for {
		t, err := p.typeExpr(false)
		if err != nil {
			return nil, err
		}
		args = append(args, t)
		if !p.isPunct(",") {
			break
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	if err := p.expectPunct("]", "to close "+name+"["); err != nil {
		return nil, err
	}
	return args, nil
}

func (p *parser) literal() (*Type, error) {
	if err := p.advance(); err != nil { // consume [
		return nil, err
	}
	var values []any
	for {
		var v any
		switch p.tok.kind {
		case tString:
			v = p.tok.text
		case tNumber:
			text := strings.ReplaceAll(p.tok.text, "_", "")
			if i, err := strconv.ParseInt(text, 10, 64); err == nil {
				v = i
			} else if f, err := strconv.ParseFloat(text, 64); err == nil {
				v = f
			} else {
				return nil, p.errorf("malformed number %q in Literal", p.tok.text)
			}
		case tIdent:
			switch p.tok.text {
			case "True":
				v = true
			case "False":
				v = false
			case "None":
				v = nil
			default:
				return nil, p.errorf("expected a quoted string, number, True, False or None in Literal, found %s", p.tok.describe())
			}
		default:
			return nil, p.errorf("expected a quoted string, number, True, False or None in Literal, found %s", p.tok.describe())
		}
		values = append(values, v)
		if err := p.advance(); err != nil {
			return nil, err
		}
		if !p.isPunct(",") {
			break
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	if err := p.expectPunct("]", "to close Literal["); err != nil {
		return nil, err
	}
	return &Type{Kind: Literal, Values: values}, nil
}
