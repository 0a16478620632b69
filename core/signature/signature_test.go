package signature

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dspex/dspex/core/pyjson"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in         string
		wantString string
		wantInstr  string
	}{
		{"question -> answer", "question -> answer", "Given the fields `question`, produce the fields `answer`."},
		{"question, context: list[str] -> answer, confidence: float",
			"question, context: list[str] -> answer, confidence: float",
			"Given the fields `question`, `context`, produce the fields `answer`, `confidence`."},
		{"q:int->a:bool", "q: int -> a: bool", ""},
		{"x: dict[str, list[int]] -> y: Literal['a', \"b\", 3, True]", "x: dict[str, list[int]] -> y: Literal['a', 'b', 3, True]", ""},
		{"x: str | None -> y: Optional[list[str]]", "x: str | None -> y: list[str] | None", ""},
		{"x: None | int -> y: typing.List[typing.Any]", "x: int | None -> y: list[Any]", ""},
		{"x: Union[int, None] -> y: list", "x: int | None -> y: list", ""},
		{"-> answer", " -> answer", "Given the fields , produce the fields `answer`."},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			s, err := Parse(c.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := s.String(); got != c.wantString {
				t.Errorf("String() = %q, want %q", got, c.wantString)
			}
			if c.wantInstr != "" && s.Instructions() != c.wantInstr {
				t.Errorf("Instructions() = %q, want %q", s.Instructions(), c.wantInstr)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		in      string
		col     int
		message string
	}{
		{"question answer", 10, `expected "," or "->", found "answer"`},
		{"question", 9, `expected "->"`},
		{"question -> ", 13, "at least one output field"},
		{"q -> a -> b", 8, `exactly one "->"`},
		{"q: lst[str] -> a", 4, `unknown type "lst"`},
		{"q: list[str -> a", 13, `expected "]" to close list[`},
		{"q -> a: dict[int, str]", 9, "dict keys must be str"},
		{"q -> a: Literal[foo]", 17, "expected a quoted string"},
		{"q -> q", 1, `duplicate field name "q"`},
		{"xq, q -> q", 5, `duplicate field name "q"`}, // not the "q" inside "xq"
		{"q -> a: int | str", 9, "unions of several types"},
		{"q, -> a", 4, "expected a field name"},
		{"q -> a: 'x", 9, "unterminated string"},
		{"q -> a: str[int]", 12, "takes no arguments"},
		{"q -> a; b", 7, "unexpected character ';'"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			_, err := Parse(c.in)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error = %v, want *ParseError", c.in, err)
			}
			if !strings.Contains(err.Error(), c.message) {
				t.Errorf("error %q does not mention %q", err, c.message)
			}
			if want := "column " + strconv.Itoa(c.col) + ":"; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		})
	}
}

type address struct {
	City    string `json:"city"`
	Country string `json:"country"`
}

type summary struct {
	Title   string    `json:"title"`
	Address address   `json:"address"`
	Scores  []float64 `json:"scores"`
	Note    *string   `json:"note" desc:"optional remark"`
}

func TestObjectSchema(t *testing.T) {
	typ := MustObjectOf[summary]()
	got := pyjson.Dumps(typ.JSONSchema(), -1)
	want := `{"type": "object", "$defs": {"address": {"type": "object", "properties": {"city": {"type": "string", "title": "City"}, "country": {"type": "string", "title": "Country"}}, "required": ["city", "country"], "title": "address"}}, "properties": {"address": {"$ref": "#/$defs/address"}, "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null, "description": "optional remark", "title": "Note"}, "scores": {"type": "array", "items": {"type": "number"}, "title": "Scores"}, "title": {"type": "string", "title": "Title"}}, "required": ["title", "address", "scores"], "title": "summary"}`
	if got != want {
		t.Errorf("schema\n got %s\nwant %s", got, want)
	}
	strict, err := typ.StrictSchema()
	if err != nil {
		t.Fatal(err)
	}
	// pydantic's order: keys sorted, properties and required in field order.
	wantStrict := `{"$defs": {"address": {"properties": {"city": {"title": "City", "type": "string"}, "country": {"title": "Country", "type": "string"}}, "required": ["city", "country"], "title": "address", "type": "object", "additionalProperties": false}}, "additionalProperties": false, "properties": {"title": {"title": "Title", "type": "string"}, "address": {"$ref": "#/$defs/address"}, "scores": {"items": {"type": "number"}, "title": "Scores", "type": "array"}, "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null, "description": "optional remark", "title": "Note"}}, "required": ["title", "address", "scores", "note"], "title": "summary", "type": "object"}`
	if got := pyjson.Dumps(strict, -1); got != wantStrict {
		t.Errorf("strict schema\n got %s\nwant %s", got, wantStrict)
	}
	if _, err := DictOf(IntType()).StrictSchema(); err == nil {
		t.Error("dict accepted by strict schema")
	}
}

// treeNode and its two mutually recursive types are types whose schemas
// refer back to themselves.
type treeNode struct {
	Label    string     `json:"label"`
	Children []treeNode `json:"children"`
}

type ping struct {
	Pong *pong `json:"pong"`
}

type pong struct {
	Ping *ping             `json:"ping"`
	Meta map[string]string `json:"meta"`
}

func TestRecursiveObjectSchema(t *testing.T) {
	tree := MustObjectOf[treeNode]()
	got := pyjson.Dumps(tree.JSONSchema(), -1)
	if !strings.Contains(got, `"children": {"type": "array", "items": {"$ref": "#/$defs/treeNode"}`) {
		t.Errorf("recursive field is not a $ref: %s", got)
	}
	if _, err := tree.StrictSchema(); err != nil {
		t.Errorf("strict schema of a recursive type: %v", err)
	}
	// The open mapping two levels down is found, and the cycle ends.
	if _, err := MustObjectOf[ping]().StrictSchema(); err == nil || !strings.Contains(err.Error(), "dict[str, str]") {
		t.Errorf("strict schema of ping: err = %v, want the open mapping named", err)
	}
}

type qaIn struct {
	Question string   `json:"question" desc:"a trivia question"`
	Context  []string `json:"context"`
}

type qaOut struct {
	Answer     string  `json:"answer"`
	Confidence float64 `json:"confidence"`
	Label      string  `json:"label" literal:"yes,no"`
}

func (qaOut) Instructions() string { return "Answer briefly." }

func TestFor(t *testing.T) {
	s, err := For[qaIn, qaOut]()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "question, context: list[str] -> answer, confidence: float, label: Literal['yes', 'no']"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if s.Instructions() != "Answer briefly." {
		t.Errorf("instructions = %q", s.Instructions())
	}
	if f, _ := s.Field("question"); f.Desc != "a trivia question" || f.Prefix != "Question:" {
		t.Errorf("question field = %+v", f)
	}
	if _, err := For[qaIn, int](); err == nil {
		t.Error("non-struct output accepted")
	}
}

func TestInferPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"camelCaseText": "Camel Case Text", "snake_case_text": "Snake Case Text",
		"text2number": "Text 2 Number", "HTMLParser": "HTML Parser", "question": "Question",
	} {
		if got := InferPrefix(in); got != want {
			t.Errorf("InferPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseText(t *testing.T) {
	person := MustObjectOf[address]()
	cases := []struct {
		typ     *Type
		text    string
		want    string
		wantErr string
	}{
		{IntType(), "42", "42", ""},
		{IntType(), " 7.0 ", "7", ""},
		{IntType(), "forty", "", "expected int"},
		{FloatType(), "0.5", "0.5", ""},
		{BoolType(), "True", "True", ""},
		{BoolType(), "no", "False", ""},
		{ListOf(StringType()), `["a", 'b',]`, `['a', 'b']`, ""},
		{ListOf(StringType()), "```json\n[\"a\"]\n```", `['a']`, ""},
		{ListOf(IntType()), `[1, "x"]`, "", "[1]: expected int"},
		{LiteralOf("yes", "no"), "'yes'", "yes", ""},
		{LiteralOf("yes", "no"), "Literal[no]", "no", ""},
		{LiteralOf("yes", "no"), "maybe", "", "not one of"},
		{LiteralOf(int64(1), "b"), "1", "1", ""},
		{OptionalOf(IntType()), "None", "None", ""},
		{OptionalOf(StringType()), "None", "None", ""},
		{DictOf(IntType()), `{"a": 1, "b": 2}`, `{'a': 1, 'b': 2}`, ""},
		// A dict keeps the LM's key order, as a Python dict does.
		{DictOf(IntType()), `{"b": 1, "a": "2"}`, `{'b': 1, 'a': 2}`, ""},
		{DictOf(nil), `{"z": {"y": 1, "x": [{"b": 1, "a": 2}]}, "a": null}`, `{'z': {'y': 1, 'x': [{'b': 1, 'a': 2}]}, 'a': None}`, ""},
		{ListOf(nil), `[{"b": 1, "a": 2}]`, `[{'b': 1, 'a': 2}]`, ""},
		{AnyType(), `{"b": 1, "a": 2}`, `{'b': 1, 'a': 2}`, ""},
		// Integers of any size stay exact.
		{IntType(), "12345678901234567890", "12345678901234567890", ""},
		// DSPy reads the text as JSON first: a float beyond int64 is refused.
		{IntType(), "-98765432109876543210.0", "", "expected int"},
		{ListOf(IntType()), "[12345678901234567890, 1]", "[12345678901234567890, 1]", ""},
		{FloatType(), "12345678901234567890", "1.2345678901234567e+19", ""},
		{person, `{"country": "UK", "city": "London", "extra": 1}`, `{'city': 'London', 'country': 'UK'}`, ""},
		{person, `{"city": "London"}`, "", "country: missing required field"},
		{ListOf(person), `[{"city": "A", "country": 3}]`, "", "[0].country: expected str"},
		{StringType(), "  keep as is ", "  keep as is ", ""},
	}
	for _, c := range cases {
		t.Run(c.typ.PythonName()+"/"+c.text, func(t *testing.T) {
			v, err := c.typ.ParseText(c.text)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := pyjson.Str(c.typ.Normalize(v)); got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestCoerceBigIntegers(t *testing.T) {
	// Expected values are pydantic's TypeAdapter(int).validate_python.
	for in, want := range map[any]string{
		"-98765432109876543210.0": "-98765432109876543210",
		" 12345678901234567890 ":  "12345678901234567890",
		"7.00":                    "7",
		int64(5):                  "5",
		1e18:                      "1000000000000000000",
	} {
		v, err := IntType().Coerce(in)
		if err != nil {
			t.Errorf("Coerce(%v): %v", in, err)
			continue
		}
		if got := pyjson.Str(v); got != want {
			t.Errorf("Coerce(%v) = %s, want %s", in, got, want)
		}
	}
	for _, in := range []any{9.3e18, "1.5", "12345678901234567890.5"} {
		if v, err := IntType().Coerce(in); err == nil {
			t.Errorf("Coerce(%v) = %v, want an error", in, v)
		}
	}
}

func TestCoerceErrorIsValidUTF8(t *testing.T) {
	// A long value is shortened in the message at a character boundary.
	_, err := IntType().Coerce("x" + strings.Repeat("é", 40))
	if err == nil || !utf8.ValidString(err.Error()) || !strings.Contains(err.Error(), "...") {
		t.Errorf("err = %q, want a shortened, valid UTF-8 message", err)
	}
}

func TestImmutability(t *testing.T) {
	s := MustParse("q -> a")
	c, err := s.PrependOutput(Field{Name: "reasoning"})
	if err != nil {
		t.Fatal(err)
	}
	if s.NumOutputs() != 1 || c.NumOutputs() != 2 || c.Output(0).Name != "reasoning" {
		t.Fatalf("prepend changed the original or failed: %s / %s", s, c)
	}
	if c.Instructions() != s.Instructions() {
		t.Errorf("prepend changed instructions")
	}
	if _, err := c.PrependOutput(Field{Name: "q"}); err == nil {
		t.Error("duplicate field accepted")
	}
	// inspect.cleandoc keeps a last line of spaces when no other line sets
	// a margin: "blank" is not "empty" to it.
	w := s.WithInstructions("  Be brief.\n  ")
	if w.Instructions() != "Be brief.\n  " || s.Instructions() == w.Instructions() {
		t.Errorf("WithInstructions: %q / %q", s.Instructions(), w.Instructions())
	}
}
