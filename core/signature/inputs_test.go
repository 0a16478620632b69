package signature

import (
	"errors"
	"slices"
	"testing"

	"github.com/dspex/dspex/core/pyjson"
)

func TestCheckInputs(t *testing.T) {
	sig := MustParse(`question, context: list[str], k: int, temp: float, hint: str | None, mode: Literal["a", "b"], tags: dict[str, int] -> answer`)
	ok := map[string]any{"question": "q", "context": []any{"c"}, "k": int64(3), "temp": int64(1), "mode": "a", "tags": map[string]any{"x": 1}}
	// with returns ok with k set to v, and without the keys in drop.
	with := func(k string, v any, drop ...string) map[string]any {
		m := map[string]any{}
		for kk, vv := range ok {
			m[kk] = vv
		}
		m[k] = v
		for _, d := range drop {
			delete(m, d)
		}
		return m
	}
	cases := []struct {
		name   string
		inputs map[string]any
		kind   error
		fields []string
		msg    string
	}{
		{name: "valid", inputs: ok},
		{name: "optional given", inputs: with("hint", "h")},
		{name: "null fits any field", inputs: with("question", nil)},
		{name: "str takes a list of strings", inputs: with("question", []any{"a", "b"})},
		{name: "float takes an int", inputs: with("temp", 2)},
		{name: "json numbers", inputs: with("k", pyjson.Object{{Key: "x", Value: 1}}), kind: ErrInputType, fields: []string{"k"},
			msg: `input field "k": expected int, got object {"x": 1}`},
		{name: "misspelt", inputs: with("questoin", "q", "question"), kind: ErrUnknownInput, fields: []string{"questoin"},
			msg: `unknown input field "questoin"; did you mean "question"?`},
		{name: "missing", inputs: with("hint", "h", "question"), kind: ErrMissingInput, fields: []string{"question"},
			msg: `missing input field "question"`},
		{name: "unknown, no suggestion", inputs: with("zzz", 1), kind: ErrUnknownInput, fields: []string{"zzz"},
			msg: `unknown input field "zzz"; the inputs are: question, context, k, temp, hint, mode, tags`},
		{name: "case and swap", inputs: with("Hnit", "x"), kind: ErrUnknownInput,
			msg: `unknown input field "Hnit"; did you mean "hint"?`},
		{name: "output as input", inputs: with("answer", "x"), kind: ErrUnknownInput, fields: []string{"answer"}},
		{name: "str given a number", inputs: with("question", 123), kind: ErrInputType, fields: []string{"question"},
			msg: `input field "question": expected str, got number 123`},
		{name: "int given a string", inputs: with("k", "3"), kind: ErrInputType, msg: `input field "k": expected int, got string "3"`},
		{name: "int given a float", inputs: with("k", 2.5), kind: ErrInputType},
		{name: "list element", inputs: with("context", []any{"a", 1}), kind: ErrInputType, msg: `input field "context": [1]: expected str, got number 1`},
		{name: "list given a string", inputs: with("context", "c"), kind: ErrInputType},
		{name: "literal", inputs: with("mode", "c"), kind: ErrInputType, msg: `input field "mode": string "c" is not one of Literal['a', 'b']`},
		{name: "dict value", inputs: with("tags", map[string]any{"x": "1"}), kind: ErrInputType, msg: `input field "tags": x: expected int`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := sig.CheckInputs(c.inputs)
			if c.kind == nil {
				if err != nil {
					t.Fatalf("CheckInputs = %v, want nil", err)
				}
				return
			}
			var ie *InputError
			if !errors.As(err, &ie) || !errors.Is(err, c.kind) {
				t.Fatalf("CheckInputs = %v, want an InputError of kind %v", err, c.kind)
			}
			if c.fields != nil && !slices.Equal(ie.Fields, c.fields) {
				t.Errorf("fields = %q, want %q", ie.Fields, c.fields)
			}
			if c.msg != "" && (len(err.Error()) < len(c.msg) || err.Error()[:len(c.msg)] != c.msg) {
				t.Errorf("message = %q, want it to start with %q", err, c.msg)
			}
		})
	}
}

func TestCheckInputsSuggestsOnlyFieldsNotGiven(t *testing.T) {
	sig := MustParse("question, questions -> answer")
	err := sig.CheckInputs(map[string]any{"question": "a", "questoins": "b"})
	if err == nil || err.Error() != `unknown input field "questoins"; did you mean "questions"?` {
		t.Errorf("err = %v", err)
	}
	err = MustParse("a, b -> c").CheckInputs(map[string]any{"a": "x", "b": "y", "c": "z", "zz": 1})
	if want := `unknown input fields "c", "zz"; the inputs are: a, b`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"questoin", "question", 1}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"ca", "abc", 3}, {"héllo", "hello", 1}} {
		if got := editDistance(c.a, c.b); got != c.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}
