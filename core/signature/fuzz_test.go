package signature

import (
	"errors"
	"testing"

	"github.com/dspex/dspex/core/pyjson"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"question -> answer",
		"question, context: list[str] -> answer, confidence: float",
		"x: dict[str, list[int]] -> y: Literal['a', \"b\", 3, True]",
		"x: str | None -> y: Optional[list[str]]",
		"q -> a: Union[int, None]",
		"q: lst[str] -> a",
		"-> a",
		"a -> b -> c",
		"q -> a: Literal['unterminated",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := Parse(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error is not a *ParseError: %v", err)
			}
			_ = pe.Error()
			return
		}
		// A parsed signature must survive a round trip through its string form.
		again, err := Parse(sig.String())
		if err != nil {
			t.Fatalf("round trip of %q (%q) failed: %v", s, sig.String(), err)
		}
		if again.String() != sig.String() {
			t.Fatalf("round trip changed %q to %q", sig.String(), again.String())
		}
		for _, fl := range sig.Fields() {
			_ = fl.Type.JSONSchema()
		}
	})
}

func FuzzParseText(f *testing.F) {
	for _, s := range []string{"42", "[1, 2]", `{"a": [1, {"b": null}]}`, "True", "```json\n{}\n```", "'x'", "[[[[", "{'a': 1,}"} {
		f.Add(s)
	}
	types := []*Type{IntType(), FloatType(), BoolType(), ListOf(IntType()), DictOf(AnyType()), OptionalOf(ListOf(StringType())), LiteralOf("a", "b"), MustObjectOf[address]()}
	f.Fuzz(func(t *testing.T, s string) {
		for _, typ := range types {
			v, err := typ.ParseText(s)
			if err != nil {
				continue
			}
			if _, err := typ.Coerce(v); err != nil {
				t.Fatalf("%s: parsed value %#v does not validate again: %v", typ.PythonName(), v, err)
			}
		}
	})
}

// FuzzCheckInputs: any JSON object is either accepted, with every key an
// input field and every required field given, or refused with an
// *InputError naming at least one field.
func FuzzCheckInputs(f *testing.F) {
	sig := MustParse(`question, context: list[str], k: int | None, mode: Literal["a", "b"], tags: dict[str, float] -> answer`)
	for _, s := range []string{`{"question": "q", "context": ["c"], "mode": "a", "tags": {}}`, `{"questoin": 1}`, `{"question": null, "context": "x", "mode": "b", "tags": {"a": 1}}`, `{}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		v, err := pyjson.Decode([]byte(data))
		if err != nil {
			return
		}
		obj, ok := v.(pyjson.Object)
		if !ok {
			return
		}
		in := obj.Map()
		err = sig.CheckInputs(in)
		if err == nil {
			for k := range in {
				if !sig.IsInput(k) {
					t.Fatalf("accepted unknown field %q", k)
				}
			}
			for _, name := range []string{"question", "context", "mode", "tags"} {
				if _, ok := in[name]; !ok {
					t.Fatalf("accepted inputs without %q", name)
				}
			}
			return
		}
		var ie *InputError
		if !errors.As(err, &ie) || len(ie.Fields) == 0 || err.Error() == "" {
			t.Fatalf("CheckInputs = %#v", err)
		}
	})
}
